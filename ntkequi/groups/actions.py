"""Finite groups acting linearly on inputs: image gathers, lattices, points, 3-vectors.

A :class:`Group` is a :class:`~ntkequi.groups.finite.FiniteGroup` (its Cayley table)
together with an action on batches of inputs and a representation on outputs
(:class:`~ntkequi.groups.reps.Rep`). Composition follows
``act(compose(g, h), x) == act(g, act(h, x))``.

Inputs are batches: images ``(N, H, W, C)`` (NHWC, also lattice configurations)
or points ``(N, d)``. Outputs (targets, predictions) are ``(N, k)``; the output
representation maps them by ``y -> y @ out_rep(g).T``.

Every input action here is linear. Exact actions (pixel permutations,
orthogonal matrices) are stored as gather indices and weights, or as matrices;
interpolated rotations (C8, C16 of images) are stored as bilinear-interpolation
gathers and report their measured closure error instead of claiming exactness.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .finite import FiniteGroup, GroupError, table_from_elements, validate_table
from .reps import Rep, trivial_rep

__all__ = ["Group", "GatherGroup", "MatrixGroup", "VectorGroup"]


class Group(FiniteGroup):
    """A finite group acting linearly on a batch of inputs.

    Subclasses set ``name``, ``table`` (Cayley table, ``(n, n)`` int), ``exact``,
    ``event_shape`` (per-sample input shape; ``None`` entries match any size) and
    implement ``_act(g, x)`` for a validated batch ``x``.

    >>> import jax.numpy as jnp
    >>> from ntkequi import groups
    >>> c4 = groups.rotations(4, (3, 3))
    >>> x = jnp.arange(9.0).reshape(1, 3, 3, 1)
    >>> c4.orbit(x).shape, int(c4.compose(1, 3)), int(c4.inverse(1))
    ((4, 1, 3, 3, 1), 0, 3)
    >>> bool(jnp.all(c4.act(1, c4.act(3, x)) == x))
    True
    """
    name: str
    table: np.ndarray
    exact: bool
    event_shape: tuple
    out: Rep

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
        validate_table(self.table, name)

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
        table = table_from_elements(list(perms), lambda pg, ph: ph[pg], name, atol=0.5)
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
        self.table = table_from_elements(list(mats), lambda a, b: a @ b, name, atol=atol)
        self.exact = True
        self.event_shape = (mats.shape[1],)
        self.out = out or trivial_rep()
        validate_table(self.table, name)

    def _act(self, g, x):
        return x @ jnp.asarray(self.mats, dtype=x.dtype)[g].T



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
