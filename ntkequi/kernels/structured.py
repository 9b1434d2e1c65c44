"""Group-structured NTK solves for orbit-augmented training sets.

Training on the full orbit ``{g x_i}`` of ``N`` inputs under a finite group ``G`` makes
the kernel matrix ``|G| N x |G| N``: done directly it costs ``|G|^2`` times the memory
and ``|G|^3`` times the solve of the unaugmented problem. When ``G`` acts exactly and
the kernel is invariant under the simultaneous action, ``k(g x, g x') = k(x, x')``,

    K_aug[(g, i), (h, j)] = k(g x_i, h x_j) = k(x_i, g^-1 h x_j) = B_{g^-1 h}[i, j],

with only ``|G|`` blocks ``B_a = k(X, a X)`` (``N x N``). ``K_aug = sum_a R(a) (x) B_a``
for the regular representation ``R``; the group Fourier transform
``K^(rho) = sum_a rho(a) (x) B_a`` over the irreducible representations ``rho``
(:func:`ntkequi.groups.irreps`; for a cyclic group the DFT over the group index) turns
it into independent Hermitian blocks of size ``d_rho N`` (``sum d_rho^2 = |G|``), and
every function of ``K_aug`` (inverse, ``(I - exp(-K t)) K^-1``, products with the
NNGP blocks) is computed block by block.

Targets ``rho_out(g) y_i`` only have components in the irreps contained in
``rho_out``, so the mean needs those blocks only: a single real ``N x N`` block (the
trivial irrep, ``sum_a B_a``) for invariant targets. The covariance at test points
needs all blocks.

Conventions (time, ``diag_reg``, ``get``) are those of :func:`ntkequi.kernels.ntk.predict`.
:class:`BlockSolve` is the solve from blocks, for the structured path and (with the trivial
group's one irrep, :data:`PLAIN`) the direct one; :class:`~ntkequi.kernels.Predictor` chooses
the path and computes the blocks. The two paths agree to rounding (``tests/test_structured.py``).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from ..groups import Group, GroupError, irreps
from ._common import (
    ArchLike,
    Prediction,
    check_finite,
    check_schedule,
    divisor_batch,
    jit_kernel,
    kernel_of,
    tiles_itself,
)

__all__ = ["max_eigenvalue", "max_eigenvalue_of_blocks", "solve_blocks", "BlockSolve", "kernel_blocks", "check_structure",
           "StructureError", "structured_memory_bytes"]


class StructureError(GroupError):
    """The augmented kernel is not group-structured (inexact action or non-invariant
    kernel), so the structured solve would give a wrong answer."""


def kernels_needed(get: str, compute_cov: bool) -> tuple:
    """The kernels a prediction of ``get`` needs: the NTK's covariance needs the NNGP too.

    >>> kernels_needed("ntk", True), kernels_needed("nngp", True), kernels_needed("ntk", False)
    (('nngp', 'ntk'), ('nngp',), ('ntk',))
    """
    return ("nngp", "ntk") if (compute_cov and get == "ntk") else (get,)


def kernel_blocks(kernel_fn: Callable, group: Group, x1, x2=None, get=("ntk",),
                  batch_size: int = 0) -> dict:
    """``{g: (|G|, N1, N2)}`` with ``[a] = k_g(x1, a x2)`` for each kernel ``g`` in ``get``.

    One kernel call on ``x1`` against the whole orbit of ``x2`` (``|G| N2`` inputs).
    ``x2=None`` means ``x2 = x1``; then only one block of each pair ``{a, a^-1}`` is computed
    and the other is its transpose, ``B_{a^-1} = B_a^T`` (true for an exact action and an
    invariant kernel, which :func:`check_structure` verifies on samples; for an inexact action
    every block is computed), and the identity block is computed with ``x2=None`` (the
    precise diagonal). ``batch_size`` computes the kernel in row/column batches with
    ``nt.batch``, spread over all local devices (a kernel_fn that tiles itself, such as
    ``ArchSpec.kernel_fn``, is called as it is)."""
    get = tuple(get)
    same = x2 is None
    x2 = x1 if same else x2
    n1, n2, order = x1.shape[0], x2.shape[0], group.order
    fn = kernel_fn
    if batch_size and not tiles_itself(kernel_fn):
        from ..nt import nt                # a neural-tangents kernel: batched by neural-tangents
        bs = divisor_batch([n1, n2], batch_size)
        fn = nt.batch(kernel_fn, batch_size=bs,
                      device_count=-1 if jax.local_device_count() > 1 else 0)
    if same and group.exact:
        inv = np.asarray(group.inverses)
        reps = [a for a in range(1, order) if a <= inv[a]]
        k0 = fn(x1, None, get)
        blocks = {g: [None] * order for g in get}
        if reps:
            others = jnp.concatenate([group.act(a, x1) for a in reps])
            k = jit_kernel(fn)(x1, others, get)
            for g in get:
                vals = getattr(k, g).reshape(n1, len(reps), n1)
                for j, a in enumerate(reps):
                    blocks[g][a] = vals[:, j]
                    blocks[g][inv[a]] = vals[:, j].T
        return {g: jnp.stack([getattr(k0, g)] + v[1:]) for g, v in blocks.items()}
    orbit = group.orbit(x2).reshape((order * n2,) + x2.shape[1:])
    k = jit_kernel(fn)(x1, orbit, get)
    out = {g: jnp.moveaxis(getattr(k, g).reshape(n1, order, n2), 1, 0) for g in get}
    if same:
        k0 = fn(x1, None, get)
        out = {g: v.at[0].set(getattr(k0, g)) for g, v in out.items()}
    return out


def check_structure(kernel_fn: Callable, group: Group, x, blocks: Optional[jnp.ndarray] = None,
                    get: str = "ntk", tol: float = 1e-8, n_sample: int = 6,
                    key=None) -> float:
    """Measured relative error of the assumptions of the structured solve; raises
    :class:`StructureError` naming the failure if it exceeds ``tol``.

    Checks: the action is exact (``group.exact``); the kernel is invariant under the
    simultaneous action, ``k(g x, g x') = k(x, x')``, on ``n_sample`` inputs of ``x``
    and every g (at most 8 random g for larger groups; one kernel call); and, if the
    train blocks are given, their symmetry ``B_a^T = B_{a^-1}`` on 64 random rows
    of every block (all rows for N <= 64; implied by invariance). Returns the largest measured error."""
    if not group.exact:
        raise StructureError(
            f"{group.name} acts inexactly (interpolated rotations): the augmented kernel is not "
            f"block-structured; use solver='direct'")
    key = jax.random.PRNGKey(0) if key is None else key
    n = x.shape[0]
    k1, k2, k3 = jax.random.split(key, 3)      # inputs, group elements, block rows: independent
    s = min(n, n_sample)
    xs = x[np.asarray(jax.random.choice(k1, n, (s,), replace=False))]
    gs = np.arange(group.order)
    if gs.size > 9:
        gs = np.concatenate([[0], np.asarray(jax.random.choice(k2, gs[1:], (8,), replace=False))])
    pts = jnp.concatenate([group.act(int(g), xs) for g in gs])
    kk = jit_kernel(kernel_fn)(pts, pts, get).reshape(len(gs), s, len(gs), s)
    ref = kk[0, :, 0, :]
    diag = jnp.stack([kk[i, :, i, :] for i in range(len(gs))])
    err = float(jnp.max(jnp.linalg.norm(diag - ref, axis=(1, 2))) / jnp.linalg.norm(ref))
    if blocks is not None:
        # B_a[i, :] == B_{a^-1}[:, i] for a sample of rows i (all of them for N <= 64)
        inv = group.inverses
        rows = np.asarray(jax.random.choice(k3, n, (min(n, 64),), replace=False))
        a = blocks[:, rows, :]
        b = jnp.swapaxes(blocks[:, :, rows][inv], 1, 2)
        err = max(err, float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a)))
    if not err <= tol:
        raise StructureError(
            f"the kernel is not invariant under the simultaneous action of {group.name} "
            f"(relative error {err:.2e} > tol={tol:.0e}): the augmented kernel is not "
            f"block-structured; use solver='direct'")
    return err


def structured_memory_bytes(order: int, n_train: int, n_test: int, itemsize: int,
                            n_kernels: int = 1, compute_cov: bool = False) -> int:
    """Estimated peak bytes of :func:`predict`: ``|G|`` train blocks and ``|G|`` test
    blocks per kernel, their Fourier transforms and eigenvectors (complex, ``sum d^2 =
    |G|``, so twice the real blocks each), and the test-test kernel."""
    blocks = n_kernels * order * (n_train * n_train + n_test * n_train)
    fourier = 2 * 2 * order * n_train * n_train
    return int((blocks + fourier + (n_test * n_test if compute_cov else 0)) * itemsize)


class _Fourier:
    """Group Fourier transform over a list of unitary irreps ``(|G|, d, d)``."""

    def __init__(self, reps):
        self.reps = [jnp.asarray(r) for r in reps]
        self.order = int(self.reps[0].shape[0])

    def matrix(self, r: int, B) -> jnp.ndarray:
        """``sum_a rho(a) (x) B_a`` for blocks ``B (|G|, N, N)`` -> ``(d N, d N)``."""
        rho = self.reps[r]
        d, n = rho.shape[1], B.shape[1]
        if d == 1 and bool(jnp.all(jnp.abs(rho.imag) == 0)):
            return jnp.einsum("a,aij->ij", rho[:, 0, 0].real.astype(B.dtype), B)
        return jnp.einsum("akl,aij->kilj", rho, B).reshape(d * n, d * n)

    def forward(self, r: int, V) -> jnp.ndarray:
        """``sum_h rho(h)^H (x) V(h)`` for a function ``V (|G|, N, P)`` on the group
        -> ``(d N, d P)``; ``K^(rho) forward(V) = forward(K_aug V)``."""
        rho = self.reps[r]
        d, n, p = rho.shape[1], V.shape[1], V.shape[2]
        if d == 1 and bool(jnp.all(jnp.abs(rho.imag) == 0)):
            return jnp.einsum("a,aip->ip", rho[:, 0, 0].real.astype(V.dtype), V)
        return jnp.einsum("hlk,hip->kilp", rho.conj(), V).reshape(d * n, d * p)

    def inverse(self, parts: dict, n: int, p: int) -> jnp.ndarray:
        """``V(h) = 1/|G| sum_rho d_rho ptr[(rho(h) (x) I) V^(rho)]`` from
        ``{r: (d N, d P)}`` (irreps absent from ``parts`` contribute zero)."""
        out = 0.0
        for r, m in parts.items():
            rho = self.reps[r]
            d = rho.shape[1]
            m4 = m.reshape(d, n, d, p)
            out = out + d * jnp.einsum("hkl,likp->hip", rho, m4)
        return (out / self.order).real


#: the plain (unaugmented) case of :func:`solve_blocks`: the trivial group's one irrep
PLAIN = (np.ones((1, 1, 1)),)


def inf_cutoff(lambda_max: float, size: int, dtype) -> float:
    """Eigenvalues of the train kernel at or below this are zero in the ``t = inf`` limit:
    ``size * eps(dtype) * lambda_max`` (numpy's ``matrix_rank`` tolerance; ``size`` is the
    augmented train kernel's side ``|G| N``). Gradient flow never moves along a null
    direction of the kernel, so the limit is the minimum-norm (pseudo-inverse) solution.

    >>> inf_cutoff(2.0, 1000, np.float64)
    4.440892098500626e-13
    """
    return float(size * np.finfo(dtype).eps * lambda_max)


def _phi(evals, t, kind: str, cutoff: float = 0.0):
    """Spectral functions of the gradient-flow solution: 'mean' ``(1 - e^{-l t}) / l``,
    'cov_nngp' ``(1 - e^{-2 l t}) / l``; ``t = inf`` gives ``1 / l`` for ``l > cutoff``
    and 0 for the (numerically) null directions."""
    factor = 2.0 if kind == "cov_nngp" else 1.0
    if math.isinf(t):
        keep = evals > cutoff
        return jnp.where(keep, 1.0 / jnp.where(keep, evals, 1.0), 0.0)
    lt = factor * evals * t
    safe = jnp.where(evals == 0, 1.0, evals)
    return jnp.where(evals == 0, factor * t, -jnp.expm1(-lt) / safe)


def _phi_steps(evals, steps: float, eta: float, kind: str, cutoff: float = 0.0):
    """Spectral functions of ``steps`` steps of full-batch gradient descent with step ``eta``:
    'mean' ``(1 - (1 - eta l)^s) / l``, 'cov_nngp' ``(1 - (1 - eta l)^{2s}) / l`` (``s eta`` and
    ``2 s eta`` at ``l = 0``); ``s = inf`` is the converged solution of :func:`_phi` (stable
    steps, ``eta l < 2``, are the caller's check: :meth:`_Solver.check_step`)."""
    if math.isinf(steps):
        return _phi(evals, math.inf, kind, cutoff)
    power = 2.0 * steps if kind == "cov_nngp" else float(steps)
    a = eta * evals
    small = a < 1.0
    # 1 - (1 - a)^p: by expm1/log1p where 1 - a > 0 (no cancellation for small a), else directly
    one_minus = jnp.where(small, -jnp.expm1(power * jnp.log1p(-jnp.where(small, a, 0.0))),
                          1.0 - jnp.sign(1.0 - a) ** power * jnp.abs(1.0 - a) ** power)
    safe = jnp.where(evals == 0, 1.0, evals)
    return jnp.where(evals == 0, power * eta, one_minus / safe)


class _Solver:
    """Per-irrep eigendecompositions of the regularised train kernel (lazy, cached on the
    instance: they live as long as the solver, not the process)."""

    def __init__(self, fourier: _Fourier, blocks: jnp.ndarray, reg: float):
        self.f, self.blocks, self.reg = fourier, blocks, reg
        self._eig = {}

    def matrix(self, r: int):
        """The regularised Hermitian block of irrep ``r``, ``(d N, d N)``."""
        k = self.f.matrix(r, self.blocks)
        k = 0.5 * (k + k.conj().T)
        return k + self.reg * jnp.eye(k.shape[0], dtype=k.dtype) if self.reg else k

    def eig(self, r: int):
        """``(eigenvalues, eigenvectors)`` of :meth:`matrix` ``r``, computed once."""
        if r not in self._eig:
            self._eig[r] = jnp.linalg.eigh(self.matrix(r))
        return self._eig[r]

    def lambda_max(self) -> float:
        """Largest eigenvalue of the whole (augmented, regularised) train kernel."""
        return max(float(self.eig(r)[0].max()) for r in range(len(self.f.reps)))

    def check_step(self, eta: float) -> None:
        """ValueError unless gradient descent with step ``eta`` is stable (``eta lambda_max < 2``)."""
        lam = self.lambda_max()
        if not eta * lam < 2.0:
            raise ValueError(f"learning_rate={eta:.6g} is at or above 2 / lambda_max = {2.0 / lam:.6g} of the "
                             f"training kernel: gradient descent diverges; use a smaller learning_rate")

    def cutoff(self) -> float:
        """:func:`inf_cutoff` of the whole (augmented) train kernel: its largest eigenvalue
        over all irreps, its side ``|G| N``."""
        if not hasattr(self, "_cutoff"):
            lam = self.lambda_max()
            self._cutoff = inf_cutoff(lam, self.f.order * self.blocks.shape[1], self.blocks.dtype)
        return self._cutoff

    def apply(self, r: int, vhat, t: float, kind: str, eta: Optional[float] = None):
        """``phi(K^(rho)) vhat``: gradient flow to time ``t``, or with ``eta`` ``t`` steps of
        gradient descent of step ``eta`` (:func:`_phi_steps`)."""
        w, U = self.eig(r)
        cut = self.cutoff() if math.isinf(t) else 0.0
        phi = _phi(w, t, kind, cut) if eta is None else _phi_steps(w, t, eta, kind, cut)
        return U @ (phi[:, None] * (U.conj().T @ vhat))


def max_eigenvalue(arch: Union[ArchLike, Callable], x_train, group: Group, get: str = "ntk",
                   batch_size: int = 0, check_tol: float = 1e-8) -> float:
    """Largest eigenvalue of the orbit-augmented train kernel ``k(X_aug, X_aug)``
    (``x_train (N, ...)`` un-augmented) from the ``|G|`` blocks ``k(X, a X)``: the
    union of the per-irrep blocks' spectra is the augmented matrix's spectrum, so this
    costs ``|G| N^2`` kernel entries and one ``d N x d N`` eigensolve per irrep instead
    of ``(|G| N)^2`` entries and one ``|G| N`` eigensolve. Raises :class:`StructureError`
    as :func:`predict` does."""
    kernel_fn = kernel_of(arch)
    x_train = group.check_input(check_finite("x_train", x_train))
    blocks = checked_train_blocks(kernel_fn, group, x_train, (get,), get, batch_size, check_tol)[get]
    return max_eigenvalue_of_blocks(blocks, irreps(group))


def max_eigenvalue_of_blocks(blocks, reps) -> float:
    """Largest eigenvalue of the orbit-augmented train kernel from its blocks
    ``(|G|, N, N)`` ``[a] = k(X, a X)`` (e.g. :meth:`~ntkequi.kernels.TileStore.train_blocks`)
    and the group's irreps (:func:`ntkequi.groups.irreps`; ``ones((1, 1, 1))``: the plain
    kernel ``blocks[0]``).

    >>> from ntkequi import groups
    >>> b = jnp.asarray([[[2.0]], [[1.0]]])          # k(x, x) = 2, k(x, gx) = 1 under C2
    >>> max_eigenvalue_of_blocks(b, groups.irreps(groups.planar_rotations(2)))   # [[2, 1], [1, 2]]
    3.0
    """
    solver = _Solver(_Fourier(reps), jnp.asarray(blocks), 0.0)
    if solver.f.order != solver.blocks.shape[0]:
        raise ValueError(f"{solver.blocks.shape[0]} blocks for a group of order {solver.f.order}")
    return max(float(jnp.linalg.eigvalsh(solver.matrix(r)).max()) for r in range(len(solver.f.reps)))


def checked_train_blocks(kernel_fn, group, x_train, gets, get, batch_size, check_tol) -> dict:
    """The blocks ``k(X, a X)`` after checking the structure (before computing them for an
    interpolated action; on the blocks themselves for every action)."""
    if not group.exact:
        check_structure(kernel_fn, group, x_train, get=get, tol=check_tol)
    train = kernel_blocks(kernel_fn, group, x_train, None, gets, batch_size)
    check_structure(kernel_fn, group, x_train, train[get], get=get, tol=check_tol)
    return train


def solve_blocks(train: dict, test: dict, y_orbit, t, reps, *, learning_rate: float = 1.0,
                 diag_reg: float = 0.0, get: str = "ntk", nngp_tt=None, steps=None) -> Prediction:
    """The orbit-augmented prediction from precomputed kernel blocks (what
    :class:`~ntkequi.kernels.Predictor` does once it has them; use it with blocks computed
    elsewhere, e.g. saved ones). ``BlockSolve(train, y_orbit, reps, diag_reg=).predict(test, ...)``
    in one call: build a :class:`BlockSolve` to ask several test sets of one training set.

    Args:
        train: ``{kernel: (|G|, N, N)}``, ``[a] = k(X, a X)`` (``get``, and 'nngp' for the
            NTK covariance).
        test: ``{kernel: (|G|, M, N)}``, ``[a] = k(x_test, a X)``.
        y_orbit: targets on the orbit, ``(|G|, N, k)``, ``[a] = rho_out(a) y`` (``group.orbit_out(y)``).
        t: time or times ``(T,)``, ``>= 0`` or ``inf``, multiplied by ``learning_rate`` (gradient
            flow; None with ``steps``).
        reps: the group's unitary irreps (:func:`ntkequi.groups.irreps`); a single
            ``ones((1, 1, 1))`` is plain (unaugmented) kernel regression on ``train[get][0]``.
        diag_reg: relative regulariser (as :func:`~ntkequi.kernels.predict`).
        get: 'ntk' or 'nngp'.
        nngp_tt: the test-test NNGP ``(M, M)``: also return the covariance.
        steps: instead of ``t``, numbers of full-batch gradient-descent steps of size
            ``learning_rate`` on the summed MSE (``(I - eta Theta)^s`` where gradient flow has
            ``exp(-Theta t)``; ``inf``: converged); ValueError if ``learning_rate`` is not below
            ``2 / lambda_max`` of the (regularised) train kernel.

    Returns:
        A :class:`~ntkequi.kernels.Prediction`: ``mean (T, M, k)``, ``cov (T, M, M)`` with ``nngp_tt``
        (``steps`` set, and ``ts = steps * learning_rate``, for a discrete-time prediction).
    """
    t, steps = check_schedule(t, steps)
    return BlockSolve(train, y_orbit, reps, diag_reg=diag_reg, get=get).predict(
        test, t, steps=steps, learning_rate=learning_rate, get=get, nngp_tt=nngp_tt)


def _check_finite_blocks(name: str, blocks: dict) -> None:
    for g, b in blocks.items():
        if not bool(jnp.all(jnp.isfinite(b))):
            raise FloatingPointError(
                f"the {name} {g} kernel has non-finite entries: check the inputs (finite, of a "
                f"sensible scale) and the architecture (weight and bias scales, depth)")


class BlockSolve:
    """The training half of a (plain or orbit-augmented) kernel prediction, built once: the
    train blocks, the targets' group-Fourier components and, on first use, one
    eigendecomposition per irrep of the regularised train kernel; :meth:`predict` then answers
    any test blocks, gradient-flow times and step counts at the cost of the test products only.

    Args:
        train: ``{kernel: (|G|, N, N)}``, ``[a] = k(X, a X)``; more kernels can be added with
            :meth:`add_train`.
        y_orbit: ``(|G|, N, k)`` targets on the orbit (``group.orbit_out(y)``; ``y[None]`` plain).
        reps: the group's unitary irreps (:func:`ntkequi.groups.irreps`; :data:`PLAIN` for
            plain kernel regression on ``train[get][0]``).
        diag_reg: relative regulariser, ``diag_reg * trace(B_0) / N`` on the diagonal.
        get: the kernel the targets are checked against first ('ntk' or 'nngp'; any kernel in
            ``train`` can be asked later).

    >>> import numpy as np
    >>> solve = BlockSolve({"ntk": np.array([[[2.0]]])}, np.array([[[4.0]]]), PLAIN)
    >>> float(solve.predict({"ntk": np.array([[[1.0]]])}, [float("inf")]).mean[0, 0, 0])   # 1 * 2^-1 * 4
    2.0
    """

    def __init__(self, train: dict, y_orbit, reps, *, diag_reg: float = 0.0, get: str = "ntk"):
        self.fourier = _Fourier(reps)
        self.order = self.fourier.order
        self.diag_reg = float(diag_reg)
        if get not in train:
            raise ValueError(f"the train blocks hold {sorted(train)}, not the {get!r} kernel")
        self.train, self.n = {}, int(train[get].shape[1])
        self.add_train(train)
        y_aug = jnp.asarray(y_orbit)                                    # (|G|, N, k)
        if y_aug.ndim != 3 or y_aug.shape[0] != self.order or y_aug.shape[1] != self.n:
            raise ValueError(f"train blocks {train[get].shape} and targets {y_aug.shape} must both "
                             f"lead with the group order {self.order} and have N = {self.n} rows")
        self.k = int(y_aug.shape[-1])
        n_irreps = len(self.fourier.reps)
        self.yhat = {r: self.fourier.forward(r, y_aug) for r in range(n_irreps)}
        ynorm = float(jnp.linalg.norm(y_aug))
        self.active = [r for r in range(n_irreps)
                       if float(jnp.linalg.norm(self.yhat[r])) > 1e-13 * max(ynorm, 1e-300) * self.order]
        self._solvers, self._hat = {}, {}

    def add_train(self, train: dict) -> None:
        """Add train blocks ``{kernel: (|G|, N, N)}`` of further kernels (e.g. the NNGP an NTK
        covariance needs)."""
        for g, b in train.items():
            if b.ndim != 3 or b.shape[0] != self.order or b.shape[1:] != (self.n, self.n):
                raise ValueError(f"train {g} blocks {b.shape} must be (|G|, N, N) = ({self.order}, {self.n}, {self.n})")
        _check_finite_blocks("train", train)
        self.train.update(train)

    def solver(self, get: str, diag_reg: Optional[float] = None) -> "_Solver":
        """The eigendecompositions of the train kernel ``get`` regularised by ``diag_reg`` (default:
        the constructor's), one per irrep, lazy, cached per kernel and regulariser."""
        diag_reg = self.diag_reg if diag_reg is None else float(diag_reg)
        if (get, diag_reg) not in self._solvers:
            b = self.train[get]
            reg = diag_reg * float(jnp.trace(b[0])) / self.n if diag_reg else 0.0
            self._solvers[get, diag_reg] = _Solver(self.fourier, b, reg)
        return self._solvers[get, diag_reg]

    def lambda_max(self, get: str = "ntk", diag_reg: Optional[float] = None) -> float:
        """Largest eigenvalue of the whole (augmented, regularised) train kernel ``get``."""
        return self.solver(get, diag_reg).lambda_max()

    def predict(self, test: dict, t=None, *, steps=None, learning_rate: float = 1.0, get: str = "ntk",
                nngp_tt=None, diag_reg: Optional[float] = None) -> Prediction:
        """Mean (and covariance) at the test points whose blocks are ``test``
        (``{kernel: (|G|, M, N)}``, ``[a] = k(x_test, a X)``); arguments as :func:`solve_blocks`
        (``diag_reg`` default: the constructor's; each value is eigendecomposed once)."""
        t, steps = check_schedule(t, steps)
        ts = (t if steps is None else steps) * learning_rate
        eta = None if steps is None else float(learning_rate)
        points = ts if steps is None else steps                  # what the spectral functions take
        compute_cov = nngp_tt is not None
        fourier, n, k = self.fourier, self.n, self.k
        for g in (get, "nngp") if compute_cov and get == "ntk" else (get,):
            if g not in self.train:
                raise ValueError(f"no train {g} blocks: add them first (BlockSolve.add_train)")
        if test[get].ndim != 3 or test[get].shape[0] != self.order or test[get].shape[2] != n:
            raise ValueError(f"test blocks {test[get].shape} must be (|G|, M, N) with |G| = {self.order}, N = {n}")
        m = test[get].shape[1]
        _check_finite_blocks("test", test)
        solver = self.solver(get, diag_reg)
        n_irreps = len(fourier.reps)
        if eta is not None:
            solver.check_step(eta)

        tget = test[get]
        means, covs = [], []
        if compute_cov:
            tv = jnp.swapaxes(tget, 1, 2)                                    # (|G|, N, M)
            tvhat = {r: fourier.forward(r, tv) for r in range(n_irreps)}
            if get == "ntk":
                if not self._hat:
                    self._hat = {r: fourier.matrix(r, self.train["nngp"]) for r in range(n_irreps)}
                nngp_hat = self._hat
                tn = test["nngp"]                                            # (|G|, M, N)
        for tt in points:
            tt = float(tt)
            z = fourier.inverse({r: solver.apply(r, self.yhat[r], tt, "mean", eta) for r in self.active}, n, k)
            means.append(jnp.einsum("gmn,gnk->mk", tget, z))
            if not compute_cov:
                continue
            if get == "nngp":
                a = fourier.inverse({r: solver.apply(r, tvhat[r], tt, "cov_nngp", eta)
                                     for r in range(n_irreps)}, n, m)         # (|G|, N, M)
                covs.append(nngp_tt - jnp.einsum("gmn,gnl->ml", tget, a))
            else:
                ahat = {r: solver.apply(r, tvhat[r], tt, "mean", eta) for r in range(n_irreps)}
                a = fourier.inverse(ahat, n, m)                              # A^T, (|G|, N, M)
                ka = fourier.inverse({r: nngp_hat[r] @ ahat[r] for r in range(n_irreps)}, n, m)
                term2 = jnp.einsum("gnm,gln->ml", a, tn)
                covs.append(nngp_tt + jnp.einsum("gnm,gnl->ml", a, ka) - term2 - term2.T)
        mean = jnp.stack(means)
        cov = jnp.stack(covs) if compute_cov else None
        for what, v in (("mean", mean), ("covariance", cov)):
            if v is not None and not bool(jnp.all(jnp.isfinite(v))):
                bad = [float(tt) for tt, vi in zip(ts / learning_rate, v) if not bool(jnp.all(jnp.isfinite(vi)))]
                raise FloatingPointError(
                    f"the NTK prediction's {what} is not finite at t = {bad}: the times overflow "
                    f"exp(-lambda t) or the kernel is badly scaled; use smaller times or pass diag_reg > 0")
        return Prediction(ts=ts / learning_rate if steps is None else ts, mean=mean, cov=cov, steps=steps)
