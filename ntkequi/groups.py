"""Finite symmetry groups: elements, composition, action on inputs, representation on outputs.

A group element is an integer index ``0..order-1`` with ``0`` the identity.
Composition follows ``act(compose(g, h), x) == act(g, act(h, x))``.

Inputs are batches: images ``(N, H, W, C)`` (NHWC, also lattice configurations)
or points ``(N, d)``. Outputs (targets, predictions) are ``(N, k)``; the output
representation maps them by ``y -> y @ out_rep(g).T``.

Every input action here is linear. Exact actions (pixel permutations,
orthogonal matrices) are stored as gather indices and weights, or as matrices;
interpolated rotations (C8, C16 of images) are stored as bilinear-interpolation
gathers and report their measured closure error instead of claiming exactness.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GroupError", "Group", "GatherGroup", "MatrixGroup", "GroupReport",
    "rotations", "dihedral", "lattice_translations", "lattice_rotations",
    "planar_rotations", "trivial_rep", "check_group", "image_rotation_gather",
    "irreps", "regular_rep", "VectorGroup", "rotations3d", "so3_subgroup_matrices",
    "random_rotations3d",
]


class GroupError(ValueError):
    """A group (or its use) violates a group axiom or does not fit the data."""


# ----------------------------------------------------------------------------
# Cayley tables
# ----------------------------------------------------------------------------

def _cyclic_table(n: int) -> np.ndarray:
    i = np.arange(n)
    return (i[:, None] + i[None, :]) % n


def _table_from_elements(elements: Sequence[np.ndarray], compose: Callable,
                         what: str, atol: float = 1e-9) -> np.ndarray:
    """Cayley table by matching ``compose(a, b)`` against the element list.

    Raises GroupError naming the first product that is not an element."""
    n = len(elements)
    flat = np.stack([np.asarray(e, dtype=np.float64).ravel() for e in elements])
    table = np.empty((n, n), dtype=np.int32)
    for a in range(n):
        for b in range(n):
            prod = np.asarray(compose(elements[a], elements[b]), dtype=np.float64).ravel()
            d = np.abs(flat - prod[None]).max(axis=1)
            j = int(np.argmin(d))
            if d[j] > atol:
                raise GroupError(
                    f"closure fails for {what}: element {a} composed with element {b} "
                    f"is not in the set (nearest element {j} differs by {d[j]:.3g})")
            table[a, b] = j
    return table


def _validate_table(table: np.ndarray, name: str) -> None:
    n = table.shape[0]
    if table.shape != (n, n):
        raise GroupError(f"{name}: Cayley table must be square, got {table.shape}")
    if not np.array_equal(table[0], np.arange(n)) or not np.array_equal(table[:, 0], np.arange(n)):
        raise GroupError(f"{name}: identity fails: element 0 is not the identity")
    for g in range(n):
        if sorted(table[g]) != list(range(n)):
            raise GroupError(f"{name}: inverses fail: row {g} of the Cayley table "
                             f"is not a permutation (no unique inverse)")
    a = table[table, :]          # a[g, h, k] = (g h) k  -> table[table[g,h], k]
    b = table[:, table]          # b[g, h, k] = g (h k)
    if not np.array_equal(a, b):
        g, h, k = np.argwhere(a != b)[0]
        raise GroupError(f"{name}: associativity fails for elements ({g}, {h}, {k})")


# ----------------------------------------------------------------------------
# Output representations
# ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Rep:
    """A representation on outputs: ``matrices[g]`` is ``(k, k)``; ``None`` = trivial
    (acts as the identity on any output dimension)."""
    matrices: Optional[np.ndarray] = None
    name: str = "trivial"

    @property
    def is_trivial(self) -> bool:
        return self.matrices is None

    def matrix(self, g, k: int) -> jnp.ndarray:
        if self.matrices is None:
            return jnp.eye(k)
        m = jnp.asarray(self.matrices)[g]
        if m.shape[-1] != k:
            raise GroupError(f"output representation '{self.name}' is {m.shape[-1]}-dimensional "
                             f"but the outputs have k={k} components")
        return m


def trivial_rep() -> Rep:
    """The trivial representation (invariant targets such as class logits)."""
    return Rep(None, "trivial")


# ----------------------------------------------------------------------------
# Group base class
# ----------------------------------------------------------------------------

class Group:
    """A finite group acting linearly on a batch of inputs.

    Subclasses set ``name``, ``table`` (Cayley table, ``(n, n)`` int), ``exact``,
    ``event_shape`` (per-sample input shape; ``None`` entries match any size) and
    implement ``_act(g, x)`` for a validated batch ``x``.
    """
    name: str
    table: np.ndarray
    exact: bool
    event_shape: tuple
    out: Rep

    # --- abstract structure -------------------------------------------------
    @property
    def order(self) -> int:
        """|G|."""
        return int(self.table.shape[0])

    def __len__(self) -> int:
        return self.order

    @property
    def elements(self) -> jnp.ndarray:
        """All elements as indices, ``(|G|,)``; 0 is the identity."""
        return jnp.arange(self.order)

    def compose(self, g, h):
        """Index of ``g h`` (apply h first)."""
        return jnp.asarray(self.table)[g, h]

    @property
    def inverses(self) -> np.ndarray:
        """``(|G|,)`` array of inverse indices."""
        return np.argmax(self.table == 0, axis=1).astype(np.int32)

    def inverse(self, g):
        """Index of ``g^-1``."""
        return jnp.asarray(self.inverses)[g]

    # --- action on inputs ---------------------------------------------------
    def check_input(self, x) -> jnp.ndarray:
        """Validate a batch ``(N, *event_shape)``; returns it as a jax array."""
        x = jnp.asarray(x)
        ev = self.event_shape
        if x.ndim != len(ev) + 1:
            raise GroupError(
                f"{self.name} acts on inputs of shape (N, {', '.join('*' if e is None else str(e) for e in ev)}) "
                f"(rank {len(ev) + 1}); got shape {tuple(x.shape)} (rank {x.ndim})")
        for i, (e, s) in enumerate(zip(ev, x.shape[1:])):
            if e is not None and e != s:
                raise GroupError(f"{self.name} acts on inputs with per-sample shape {ev}; "
                                 f"got {tuple(x.shape[1:])} (axis {i + 1} is {s}, expected {e})")
        return x

    def act(self, g, x) -> jnp.ndarray:
        """``rho_in(g) x`` for a batch ``x`` ``(N, ...)``; ``g`` an int (may be traced)."""
        return self._act(g, self.check_input(x))

    def orbit(self, x) -> jnp.ndarray:
        """All transforms of ``x``: ``(|G|, N, ...)``, index 0 = ``x`` itself."""
        x = self.check_input(x)
        return jax.vmap(lambda g: self._act(g, x))(self.elements)

    # --- action on outputs --------------------------------------------------
    def out_rep(self, g, k: int = 1) -> jnp.ndarray:
        """``rho_out(g)`` as a ``(k, k)`` matrix."""
        return self.out.matrix(g, k)

    def act_out(self, g, y) -> jnp.ndarray:
        """``rho_out(g)`` applied to outputs ``y`` ``(N, k)``."""
        y = jnp.asarray(y)
        if y.ndim != 2:
            raise GroupError(f"outputs must have shape (N, k); got {tuple(y.shape)}")
        if self.out.is_trivial:
            return y
        return y @ self.out_rep(g, y.shape[1]).T

    def orbit_out(self, y) -> jnp.ndarray:
        """``(|G|, N, k)``: ``rho_out(g) y`` for every g."""
        return jax.vmap(lambda g: self.act_out(g, y))(self.elements)

    def with_output(self, rep: Rep) -> "Group":
        """A copy of this group with another output representation."""
        if rep.matrices is not None:
            m = np.asarray(rep.matrices)
            if m.ndim != 3 or m.shape[0] != self.order or m.shape[1] != m.shape[2]:
                raise GroupError(f"output representation must be (|G|={self.order}, k, k); got {m.shape}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.out = rep
        return new

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name}, order={self.order}, exact={self.exact}, "
                f"event_shape={self.event_shape}, out={self.out.name})")

    def _act(self, g, x):  # pragma: no cover - abstract
        raise NotImplementedError


class GatherGroup(Group):
    """Group acting on the sites of a grid by linear interpolation.

    ``index[g]`` ``(S, P)`` and ``weight[g]`` ``(S, P)``: output site ``s`` is
    ``sum_p weight[g, s, p] * x[index[g, s, p]]``, for ``S = H*W`` sites and ``P``
    taps (1 for permutations, 4 for bilinear interpolation). Channels are untouched.
    """

    def __init__(self, name, index, weight, table, exact, grid_shape, out: Optional[Rep] = None):
        self.name = name
        self.index = np.asarray(index, dtype=np.int32)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.table = np.asarray(table, dtype=np.int32)
        self.exact = bool(exact)
        self.grid_shape = tuple(grid_shape)
        self.event_shape = self.grid_shape + (None,)
        self.out = out or trivial_rep()
        _validate_table(self.table, name)

    @classmethod
    def from_permutations(cls, name, perms, grid_shape, out: Optional[Rep] = None):
        """Build from site permutations ``perms`` ``(|G|, H*W)`` (output site s reads
        input site ``perms[g, s]``); the Cayley table is derived, closure checked."""
        perms = np.asarray(perms, dtype=np.int64)
        if perms.ndim != 2 or perms.shape[1] != int(np.prod(grid_shape)):
            raise GroupError(f"{name}: permutations must be (|G|, {int(np.prod(grid_shape))}); got {perms.shape}")
        for g, p in enumerate(perms):
            if sorted(p) != list(range(perms.shape[1])):
                raise GroupError(f"{name}: element {g} is not a permutation of the sites")
        if not np.array_equal(perms[0], np.arange(perms.shape[1])):
            raise GroupError(f"{name}: identity fails: element 0 must be the identity permutation")
        # (g h) x = g (h x): site s of g(hx) reads (hx)[p_g[s]] = x[p_h[p_g[s]]]
        table = _table_from_elements(list(perms), lambda pg, ph: ph[pg], name, atol=0.5)
        return cls(name, perms[:, :, None], np.ones(perms.shape + (1,)), table, True, grid_shape, out)

    def _act(self, g, x):
        n, c = x.shape[0], x.shape[-1]
        flat = x.reshape(n, -1, c)
        idx = jnp.asarray(self.index)[g]                       # (S, P)
        w = jnp.asarray(self.weight, dtype=x.dtype)[g]         # (S, P)
        out = jnp.einsum("nspc,sp->nsc", flat[:, idx, :], w)
        return out.reshape(x.shape)


class MatrixGroup(Group):
    """Group acting on points ``(N, d)`` by matrices ``mats[g]`` ``(d, d)``."""

    def __init__(self, name, mats, out: Optional[Rep] = None, atol: float = 1e-9):
        mats = np.asarray(mats, dtype=np.float64)
        if mats.ndim != 3 or mats.shape[1] != mats.shape[2]:
            raise GroupError(f"{name}: matrices must be (|G|, d, d); got {mats.shape}")
        if not np.allclose(mats[0], np.eye(mats.shape[1]), atol=atol):
            raise GroupError(f"{name}: identity fails: element 0 must be the identity matrix")
        self.name = name
        self.mats = mats
        self.table = _table_from_elements(list(mats), lambda a, b: a @ b, name, atol=atol)
        self.exact = True
        self.event_shape = (mats.shape[1],)
        self.out = out or trivial_rep()
        _validate_table(self.table, name)

    def _act(self, g, x):
        return x @ jnp.asarray(self.mats, dtype=x.dtype)[g].T


# ----------------------------------------------------------------------------
# Constructors
# ----------------------------------------------------------------------------

def _rot90_perm(h: int, w: int, k: int) -> np.ndarray:
    """Site permutation of ``np.rot90(img, k)`` (counter-clockwise) on an HxW grid."""
    sites = np.arange(h * w).reshape(h, w)
    return np.rot90(sites, k).ravel()


def _flip_perm(h: int, w: int) -> np.ndarray:
    """Mirror left-right (reflection across the vertical axis)."""
    return np.arange(h * w).reshape(h, w)[:, ::-1].ravel()


def image_rotation_gather(h: int, w: int, angle: float):
    """Bilinear rotation of an HxW image by ``angle`` (radians, counter-clockwise)
    about the image centre ``((H-1)/2, (W-1)/2)``; samples falling outside the
    image read zeros. Returns ``(index (S, 4), weight (S, 4))``.

    Output pixel ``(i, j)`` reads the input at the inversely rotated position;
    out-of-image taps get weight 0 (zero padding)."""
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    y, xx = ci - ii, jj - cj                      # y up, x right
    c, s = math.cos(angle), math.sin(angle)
    # inverse rotation (by -angle) of the output position gives the source
    xs = c * xx + s * y
    ys = -s * xx + c * y
    si, sj = ci - ys, xs + cj                     # back to row/col
    i0, j0 = np.floor(si), np.floor(sj)
    di, dj = si - i0, sj - j0
    idx, wts = [], []
    for oi, oj, wt in ((0, 0, (1 - di) * (1 - dj)), (0, 1, (1 - di) * dj),
                       (1, 0, di * (1 - dj)), (1, 1, di * dj)):
        ti, tj = i0 + oi, j0 + oj
        inside = (ti >= 0) & (ti < h) & (tj >= 0) & (tj < w)
        idx.append(np.where(inside, ti * w + tj, 0).ravel())
        wts.append(np.where(inside, wt, 0.0).ravel())
    index = np.stack(idx, -1).astype(np.int32)
    weight = np.stack(wts, -1)
    weight[np.abs(weight) < 1e-12] = 0.0
    return index, weight


def rotations(n: int, shape=(28, 28), out: Optional[Rep] = None) -> GatherGroup:
    """C_n rotations of square ``shape`` images about their centre.

    n in {1, 2, 4}: exact pixel permutations (``np.rot90``). Other n (8, 16, ...):
    bilinear interpolation with zero padding (:func:`image_rotation_gather`),
    except that multiples of 90 degrees are exact permutations; ``exact`` is False and ``closure_error`` reports ``||g^n x - x|| / ||x||``."""
    h, w = shape
    if h != w:
        raise GroupError(f"rotations need square images; got shape {shape}")
    if n < 1:
        raise GroupError(f"C_n needs n >= 1; got n={n}")
    if n in (1, 2, 4):
        perms = [_rot90_perm(h, w, k * (4 // n)) for k in range(n)]
        return GatherGroup.from_permutations(f"C{n}", perms, (h, w), out)
    index, weight = [], []
    for k in range(n):
        if (4 * k) % n == 0:   # multiples of 90 degrees (incl. identity): exact permutation
            perm = _rot90_perm(h, w, 4 * k // n)
            index.append(np.stack([perm] + [np.zeros(h * w, int)] * 3, -1))
            weight.append(np.stack([np.ones(h * w)] + [np.zeros(h * w)] * 3, -1))
        else:
            i, wt = image_rotation_gather(h, w, 2 * math.pi * k / n)
            index.append(i)
            weight.append(wt)
    index, weight = np.stack(index), np.stack(weight)
    return GatherGroup(f"C{n}", index, weight, _cyclic_table(n), False, (h, w), out)


def dihedral(n: int, shape=(28, 28), out: Optional[Rep] = None) -> GatherGroup:
    """D_n (n rotations and n reflections) of square images, exact for n in {1, 2, 4}.

    Elements ``0..n-1`` are the rotations ``r^k``; ``n..2n-1`` are ``r^k s`` with
    ``s`` the left-right mirror."""
    h, w = shape
    if n not in (1, 2, 4):
        raise GroupError(f"dihedral groups of images are exact only for n in (1, 2, 4); got n={n}")
    if h != w:
        raise GroupError(f"dihedral groups need square images; got shape {shape}")
    rots = [_rot90_perm(h, w, k * (4 // n)) for k in range(n)]
    flip = _flip_perm(h, w)
    # element r^k s acts as x -> r^k (s x): site p reads (s x)[r[p]] = x[flip[r[p]]]
    refl = [flip[r] for r in rots]
    return GatherGroup.from_permutations(f"D{n}", rots + refl, (h, w), out)


def lattice_translations(L: int, out: Optional[Rep] = None) -> GatherGroup:
    """All L*L cyclic translations of a periodic L x L lattice (inputs ``(N, L, L, C)``).

    Element ``a*L + b`` shifts by ``a`` rows and ``b`` columns (``np.roll``)."""
    sites = np.arange(L * L).reshape(L, L)
    perms = [np.roll(sites, (a, b), axis=(0, 1)).ravel() for a in range(L) for b in range(L)]
    return GatherGroup.from_permutations(f"T{L}x{L}", perms, (L, L), out)


def lattice_rotations(L: int, out: Optional[Rep] = None) -> GatherGroup:
    """The C4 rotations of an L x L lattice (exact site permutations)."""
    g = rotations(4, (L, L), out)
    g.name = f"C4(lattice {L}x{L})"
    return g


def planar_rotations(n: int, out: str | Rep = "trivial") -> MatrixGroup:
    """C_n rotations of points in the plane (exact 2x2 orthogonal matrices).

    ``out='standard'`` uses the same 2x2 matrices on 2-vector outputs
    (equivariant targets); ``'trivial'`` for invariant targets."""
    if n < 1:
        raise GroupError(f"C_n needs n >= 1; got n={n}")
    ang = 2 * np.pi * np.arange(n) / n
    mats = np.stack([np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) for a in ang])
    mats[0] = np.eye(2)
    if isinstance(out, str):
        if out == "trivial":
            rep = trivial_rep()
        elif out == "standard":
            rep = Rep(mats, "standard")
        else:
            raise GroupError(f"unknown output representation {out!r}; use 'trivial' or 'standard'")
    else:
        rep = out
    return MatrixGroup(f"C{n}(plane)", mats, rep)


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GroupReport:
    """Result of :func:`check_group`. Errors are max relative norms over g (and h)."""
    name: str
    order: int
    exact: bool
    identity_error: float
    composition_error: float
    inverse_error: float
    orthogonality_error: float
    closure_error: float
    out_rep_error: float


def _rel(a, b):
    num = jnp.linalg.norm((a - b).reshape(a.shape[0], -1), axis=1)
    den = jnp.linalg.norm(b.reshape(b.shape[0], -1), axis=1)
    return float(jnp.max(num / jnp.maximum(den, 1e-300)))


def _smooth_images(key, n, shape):
    """Band-limited random images (a few low Fourier modes) vanishing at the
    border, for measuring interpolation errors meaningfully."""
    h, w, c = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    env = np.clip(1 - (yy ** 2 + xx ** 2), 0, None)[None, :, :, None]
    coef = jax.random.normal(key, (n, 3, 3, c))
    img = 0
    for a in range(3):
        for b in range(3):
            img = img + coef[:, a, b][:, None, None, :] * np.cos(np.pi * a * yy / 2)[None, :, :, None] \
                * np.cos(np.pi * b * xx / 2)[None, :, :, None]
    return jnp.asarray(img * env)


def _sample_inputs(group: Group, key, n: int, smooth: bool):
    shape = tuple(4 if e is None else e for e in group.event_shape)
    if smooth and len(shape) == 3:
        return _smooth_images(key, n, shape)
    return jax.random.normal(key, (n,) + shape)


def closure_error(group: Group, x=None, key=None) -> float:
    """Measured ``max_g ||g^{ord(g)} x - x|| / ||x||`` (0 up to rounding for exact
    actions); smooth random inputs by default."""
    key = jax.random.PRNGKey(0) if key is None else key
    x = _sample_inputs(group, key, 4, True) if x is None else group.check_input(x)
    worst = 0.0
    for g in range(1, group.order):
        y, h = group.act(g, x), g
        while h != 0:
            h = int(group.table[g, h])
            if h != 0:
                y = group.act(g, y)
        worst = max(worst, _rel(y, x))
    return worst


def check_group(group: Group, x=None, key=None, tol: float = 1e-10) -> GroupReport:
    """Verify the group axioms and the action on random inputs.

    Always: the Cayley table is a group (identity, inverses, associativity) and the
    output representation is a homomorphism. For exact actions also: identity,
    compatibility ``g(hx) = (gh)x``, inverses ``g^-1(gx) = x`` and orthogonality
    (inner products preserved) to ``tol`` relative; the first failure raises
    :class:`GroupError` naming the property and the elements. For inexact
    (interpolated) actions the same quantities are measured and reported.
    """
    _validate_table(np.asarray(group.table), group.name)
    key = jax.random.PRNGKey(0) if key is None else key
    x = _sample_inputs(group, key, 3, not group.exact) if x is None else group.check_input(x)
    x = x.astype(jnp.float64) if jax.config.jax_enable_x64 else x
    if not bool(jnp.all(jnp.isfinite(x))):
        raise GroupError("check_group: inputs contain non-finite values")
    n = group.order
    orb = group.orbit(x)
    id_err = _rel(orb[0], x)
    comp_err = inv_err = ortho_err = 0.0
    inv = group.inverses
    flat = x.reshape(x.shape[0], -1)
    gram = flat @ flat.T
    for g in range(n):
        for h in range(n):
            e = _rel(group.act(g, orb[h]), orb[int(group.table[g, h])])
            comp_err = max(comp_err, e)
            if group.exact and e > tol:
                raise GroupError(f"{group.name}: action is not a group action: "
                                 f"act({g}, act({h}, x)) != act(compose({g},{h})={int(group.table[g, h])}, x) "
                                 f"(relative error {e:.3g})")
        e = _rel(group.act(int(inv[g]), orb[g]), x)
        inv_err = max(inv_err, e)
        if group.exact and e > tol:
            raise GroupError(f"{group.name}: inverse fails: act(inverse({g}), act({g}, x)) != x "
                             f"(relative error {e:.3g})")
        gf = orb[g].reshape(x.shape[0], -1)
        e = float(jnp.max(jnp.abs(gf @ gf.T - gram)) / jnp.max(jnp.abs(gram)))
        ortho_err = max(ortho_err, e)
        if group.exact and e > tol:
            raise GroupError(f"{group.name}: orthogonality fails: element {g} does not preserve "
                             f"inner products (relative error {e:.3g})")
    if group.exact and id_err > tol:
        raise GroupError(f"{group.name}: identity fails: act(0, x) != x (relative error {id_err:.3g})")
    rep_err = 0.0
    if not group.out.is_trivial:
        m = np.asarray(group.out.matrices)
        k = m.shape[1]
        for g in range(n):
            for h in range(n):
                rep_err = max(rep_err, float(np.abs(m[g] @ m[h] - m[int(group.table[g, h])]).max()))
        if rep_err > 1e-8:
            raise GroupError(f"{group.name}: output representation '{group.out.name}' is not a "
                             f"homomorphism (max error {rep_err:.3g})")
        if not np.allclose(m[0], np.eye(k)):
            raise GroupError(f"{group.name}: output representation of the identity is not I")
    clo = 0.0 if group.exact else closure_error(group, x)
    return GroupReport(group.name, n, group.exact, id_err, comp_err, inv_err, ortho_err, clo, rep_err)


# ----------------------------------------------------------------------------
# Irreducible representations (of the abstract group, from its Cayley table)
# ----------------------------------------------------------------------------

def regular_rep(table: np.ndarray) -> np.ndarray:
    """Right regular representation ``(|G|, |G|, |G|)``: ``R[a][g, h] = 1`` iff
    ``h = g a``; a homomorphism, ``R[compose(a, b)] = R[a] @ R[b]``."""
    table = np.asarray(table)
    n = table.shape[0]
    R = np.zeros((n, n, n))
    g = np.arange(n)
    for a in range(n):
        R[a, g, table[g, a]] = 1.0
    return R


def _irreps_numerical(table: np.ndarray, seed: int) -> list:
    """Decompose the regular representation: a random Hermitian element of its
    commutant (spanned by the left multiplications) has one eigenspace per copy of
    each irrep; restricting R to an eigenspace gives that irrep in a unitary basis."""
    n = table.shape[0]
    R = regular_rep(table)
    L = np.zeros((n, n, n))
    h = np.arange(n)
    for b in range(n):
        L[b, table[b, h], h] = 1.0          # L_b e_h = e_{b h}; commutes with every R_a
    rng = np.random.default_rng(seed)
    c = rng.normal(size=n) + 1j * rng.normal(size=n)
    A = np.einsum("b,bgh->gh", c, L)
    w, V = np.linalg.eigh(A + A.conj().T)
    tol = 1e-8 * max(1.0, float(np.abs(w).max()))
    clusters, start = [], 0
    for i in range(1, n + 1):
        if i == n or w[i] - w[i - 1] > tol:
            clusters.append(np.arange(start, i))
            start = i
    reps, chars = [], []
    for idx in clusters:
        Vc = V[:, idx]
        rho = np.einsum("gi,agh,hj->aij", Vc.conj(), R, Vc)
        chi = np.trace(rho, axis1=1, axis2=2)
        if any(len(ch) == len(chi) and np.abs(ch - chi).max() < 1e-6 for ch in chars):
            continue
        reps.append(rho)
        chars.append(chi)
    return reps


def _check_irreps(reps: list, table: np.ndarray, tol: float = 1e-8) -> str:
    """'' if ``reps`` is a complete set of inequivalent unitary irreps, else why not."""
    n = table.shape[0]
    if sum(r.shape[1] ** 2 for r in reps) != n:
        return f"sum of squared dimensions {sum(r.shape[1] ** 2 for r in reps)} != |G| = {n}"
    for r in reps:
        d = r.shape[1]
        if np.abs(r[table] - np.einsum("aij,bjk->abik", r, r)).max() > tol:
            return f"a {d}-dimensional candidate is not a homomorphism"
        if np.abs(np.einsum("aji,ajk->aik", r.conj(), r) - np.eye(d)).max() > tol:
            return f"a {d}-dimensional candidate is not unitary"
        # irreducible iff <chi, chi> = 1
        chi = np.trace(r, axis1=1, axis2=2)
        if abs(np.vdot(chi, chi) / n - 1) > 1e-6:
            return f"a {d}-dimensional candidate is reducible"
    return ""


def irreps(group: Group) -> list:
    """The unitary irreducible representations of ``group`` (as an abstract group,
    from its Cayley table), one per equivalence class: a list of complex arrays
    ``(|G|, d, d)`` with ``rho[compose(g, h)] = rho[g] @ rho[h]``; the first is the
    trivial one, and ``sum d^2 = |G|``.

    Cyclic tables get the characters ``exp(2 pi i k g / n)`` (the DFT over the
    group index); any other group (dihedral, products of cyclic groups, ...) is
    decomposed numerically from its regular representation and checked (homomorphism,
    unitarity, irreducibility, completeness). Cached on the group object."""
    cached = getattr(group, "_irreps", None)
    if cached is not None:
        return cached
    table = np.asarray(group.table)
    n = table.shape[0]
    if np.array_equal(table, _cyclic_table(n)):
        g = np.arange(n)
        reps = [np.exp(2j * np.pi * k * g / n)[:, None, None] for k in range(n)]
        reps[0] = np.ones((n, 1, 1), dtype=complex)
    else:
        why = ""
        for seed in range(5):
            reps = _irreps_numerical(table, seed)
            why = _check_irreps(reps, table)
            if not why:
                break
        if why:  # pragma: no cover - would need a pathological random draw 5 times
            raise GroupError(f"{group.name}: could not decompose the regular representation: {why}")
        triv = [i for i, r in enumerate(reps) if r.shape[1] == 1 and np.allclose(r[:, 0, 0], 1)]
        reps = [np.ones((n, 1, 1), dtype=complex)] + [r for i, r in enumerate(reps) if i != triv[0]]
    group._irreps = reps
    return reps


# ----------------------------------------------------------------------------
# Finite rotation groups of R^3 acting on sets of 3-vectors
# ----------------------------------------------------------------------------

class VectorGroup(MatrixGroup):
    """A finite group of 3x3 orthogonal matrices acting on inputs made of several
    3-vectors, ``(N, V, 3)`` (each vector rotated: ``x -> x @ R^T``), and, through its
    output representation, on outputs ``(N, k)`` (``'vector'``: the same matrices on
    ``(N, 3)`` outputs)."""

    def __init__(self, name, mats, out: Optional[Rep] = None, atol: float = 1e-9):
        super().__init__(name, mats, out, atol)
        if self.mats.shape[1:] != (3, 3):
            raise GroupError(f"{name}: VectorGroup needs 3x3 matrices; got {self.mats.shape[1:]}")
        self.event_shape = (None, 3)


def _axis_rotation(axis, angle: float) -> np.ndarray:
    """Rotation by ``angle`` (radians, right-handed) about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _generate(gens, limit: int, name: str, atol: float = 1e-9) -> np.ndarray:
    """All products of the generators (breadth first), identity first; GroupError if
    more than ``limit`` elements appear (the generators do not generate a finite
    group of that size)."""
    elems = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for a in frontier:
            for g in gens:
                p = g @ a
                p[np.abs(p) < 1e-15] = 0.0
                if not any(np.abs(p - e).max() < atol for e in elems):
                    elems.append(p)
                    new.append(p)
                    if len(elems) > limit:
                        raise GroupError(f"{name}: generators produce more than {limit} elements")
        frontier = new
    return np.stack(elems)


def so3_subgroup_matrices(name: str) -> np.ndarray:
    """Exact rotation matrices ``(|G|, 3, 3)`` (identity first) of a finite subgroup
    of SO(3): 'T' (tetrahedral, 12), 'O' (octahedral, 24), 'I' (icosahedral, 60),
    'C<n>' (rotations about z by 2 pi k / n) or 'D<n>' (C<n> and the n half-turns
    about axes in the xy-plane, 2n)."""
    if name == "T":
        # even permutation matrices x sign changes with det +1
        perms = [np.eye(3)[list(p)] for p in ((0, 1, 2), (1, 2, 0), (2, 0, 1))]
        signs = [np.diag(s) for s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))]
        mats = np.stack([s @ p for p in perms for s in signs])
    elif name == "O":
        import itertools
        mats = []
        for p in itertools.permutations(range(3)):
            for s in itertools.product((1, -1), repeat=3):
                m = np.diag(s) @ np.eye(3)[list(p)]
                if np.linalg.det(m) > 0:
                    mats.append(m)
        mats = np.stack(mats)
    elif name == "I":
        phi = (1 + math.sqrt(5)) / 2
        gens = [_axis_rotation((0, 1, phi), 2 * math.pi / 5), _axis_rotation((1, 1, 1), 2 * math.pi / 3)]
        mats = _generate(gens, 60, "icosahedral group")
    elif name[:1] in ("C", "D") and name[1:].isdigit() and int(name[1:]) >= 1:
        n = int(name[1:])
        rot = [_axis_rotation((0, 0, 1), 2 * math.pi * k / n) for k in range(n)]
        if name[0] == "D":
            rot = rot + [r @ _axis_rotation((1, 0, 0), math.pi) for r in rot]
        mats = np.stack(rot)
    else:
        raise GroupError(f"unknown finite rotation group {name!r}: use 'T', 'O', 'I', 'C<n>' or 'D<n>'")
    mats = np.asarray(mats, dtype=np.float64)
    mats[np.abs(mats) < 1e-15] = 0.0
    ident = int(np.argmin(np.abs(mats - np.eye(3)).reshape(len(mats), -1).max(axis=1)))
    order = [ident] + [i for i in range(len(mats)) if i != ident]
    mats = mats[order]
    mats[0] = np.eye(3)
    return mats


def rotations3d(name: str, out: str | Rep = "vector") -> VectorGroup:
    """A finite rotation group of R^3 (see :func:`so3_subgroup_matrices`) acting on
    inputs ``(N, V, 3)``; ``out='vector'`` rotates ``(N, 3)`` outputs by the same
    matrices (equivariant targets such as a cross product), ``'trivial'`` leaves them."""
    mats = so3_subgroup_matrices(name)
    if isinstance(out, str):
        if out == "vector":
            rep = Rep(mats, "vector")
        elif out == "trivial":
            rep = trivial_rep()
        else:
            raise GroupError(f"unknown output representation {out!r}; use 'vector' or 'trivial'")
    else:
        rep = out
    return VectorGroup(name if name in ("T", "O", "I") else f"{name}(z)", mats, rep)


def random_rotations3d(key, n: int) -> jnp.ndarray:
    """``(n, 3, 3)`` rotations drawn uniformly (Haar) from SO(3): QR of Gaussian
    matrices with the sign fix, then det +1."""
    a = jax.random.normal(key, (n, 3, 3))
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = jnp.linalg.det(q)
    return q * jnp.where(det < 0, -1.0, 1.0)[:, None, None]
