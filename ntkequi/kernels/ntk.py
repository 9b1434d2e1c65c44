"""Analytic NTK predictions of infinite deep ensembles, plain or orbit-augmented.

Time convention (used everywhere in ntkequi): full-batch gradient descent on the
summed loss ``L = 1/2 ||f(X) - Y||^2`` with learning rate ``eta`` for ``s`` steps is
training time ``t = eta * s``, and the infinite ensemble's mean is

    mu_t(x) = Theta(x, X) Theta(X, X)^-1 (I - exp(-Theta(X, X) t)) Y.

neural-tangents' ``predict`` normalises the loss by the number of training
targets (``y_train.size``), so ``t_nt = t * y_train.size`` (``_common.nt_time``; ``y_train.size``
grows by |G| under augmentation); ntkequi's own solve (:func:`ntkequi.kernels.solve_blocks`,
the trivial group on the direct path) uses ``t`` and is tested against neural-tangents'.

``t = inf`` is the limit of gradient flow, also for a singular train kernel (repeated
training points, e.g. inputs fixed by a group element): the minimum-norm solution, with
eigenvalues at or below ``n * eps * lambda_max`` (``n`` the size of the augmented train
kernel, ``eps`` its dtype's machine epsilon; numpy's ``matrix_rank`` tolerance) treated as
zero, the same on the direct and the structured path (:func:`ntkequi.kernels.structured.inf_cutoff`).

``diag_reg`` is neural-tangents' relative regulariser: ``diag_reg * trace(K)/n``
is added to the diagonal of the train-train kernel (``trace(K)/n`` is the same
with and without orbit augmentation when the kernel is invariant).
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Union

import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ..groups import Group, irreps
from . import structured
from ._common import (
    DEFAULT_FLOATS_PER_PAIR,
    ArchLike,
    MemoryBudget,
    Prediction,
    check_data,
    check_finite,
    check_solver,
    check_schedule,
    check_solver_args,
    divisor_batch,
    fall_back_to_direct,
    fmt_bytes,
    intermediate_bytes,
    intermediate_estimate,
    is_spec,
    jit_kernel,
    kernel_memory_bytes,
    kernel_of,
    tiles_itself,
)

__all__ = ["predict", "Predictor", "augment", "max_learning_rate", "kernel_invariance_error", "STRUCTURED_MIN_POINTS"]


def augment(group: Group, x, y):
    """Full-orbit augmentation: ``(|G| N, ...)`` inputs ``g x_i`` and ``(|G| N, k)``
    targets ``rho_out(g) y_i``, ordered group-major (all of g=0, then g=1, ...)."""
    x = group.check_input(x)
    xo = group.orbit(x)
    yo = group.orbit_out(y)
    return xo.reshape((-1,) + x.shape[1:]), yo.reshape((-1,) + yo.shape[2:])



def predict(arch: Union[ArchLike, Callable], x_train, y_train, x_test, t=None, *,
            group: Optional[Group] = None, learning_rate: float = 1.0,
            diag_reg: float = 0.0, compute_cov: bool = False, get: str = "ntk",
            batch_size: int = 0, max_bytes: Optional[int] = None,
            solver: str = "auto", steps=None) -> Prediction:
    """Mean (and covariance) of the infinite ensemble trained by gradient flow, or by
    ``steps`` steps of full-batch gradient descent: ``Predictor(arch, x_train, y_train, ...)(x_test, t)``
    in one call. Build a :class:`Predictor` to ask several test sets, times or step sizes of one
    training set: it computes the training kernel and its eigendecomposition once.

    Args:
        arch: an :class:`~ntkequi.nn.ArchSpec` or a neural-tangents ``kernel_fn``.
        x_train: training inputs ``(N, ...)``.
        y_train: training targets ``(N, k)``.
        x_test: test inputs ``(M, ...)``.
        t: time or times ``(T,)`` in ntkequi units (see the module doc), ``>= 0``,
            ``inf`` for the converged predictor; multiplied by ``learning_rate``.
            None when ``steps`` is given.
        group: if given, train on the full orbit (``|G| N`` samples, targets
            transformed by the group's output representation).
        learning_rate: multiplies ``t``; with ``steps``, the gradient-descent step size.
        diag_reg: neural-tangents' relative regulariser (see the module doc).
        compute_cov: also return the covariance over test points.
        get: 'ntk' (gradient descent on all layers) or 'nngp' (last layer only).
        batch_size: compute kernels in blocks of this many rows with ``nt.batch``
            (bounds the intermediate memory; adjusted down to divide the sizes).
        max_bytes: memory budget (default :func:`~ntkequi.kernels.memory_budget_bytes`).
        solver: with a group, 'direct' builds the ``|G| N x |G| N`` orbit kernel;
            'structured' uses the group-structured solve of :mod:`ntkequi.kernels.structured`
            (``|G|`` blocks of ``N x N``); 'auto' (default) uses 'structured' where its
            structure check passes and 'direct' otherwise, naming the reason (logged for an
            inexact group, a warning for a kernel that is not invariant); without a group: 'direct'.
        steps: instead of ``t``: step count(s) ``(T,)`` (whole numbers ``>= 0``, ``inf``) of
            full-batch gradient descent with step size ``learning_rate`` on the summed MSE, the
            discrete-time prediction (``(I - eta Theta)^s`` where gradient flow has
            ``exp(-eta Theta t)``; derived in docs/guide.md, ntk_convergence section), which is what
            ``ensembles.train`` with ``optimizer='gd'`` does; it approaches gradient flow at
            ``t = s * learning_rate`` as ``learning_rate -> 0``. ``learning_rate`` must be below
            ``2 / lambda_max`` (:func:`max_learning_rate`).

    Returns:
        A :class:`~ntkequi.kernels.Prediction` with ``mean (T, M, k)`` and, with
        ``compute_cov``, ``cov (T, M, M)``; for ``steps``, ``.steps`` and ``.ts = steps * learning_rate``.

    Raises:
        ValueError: bad shapes, non-finite data, negative or NaN times, unknown ``get`` or ``solver``,
            both or neither of ``t`` and ``steps``, an unstable ``learning_rate`` with ``steps``.
        KernelTooLargeError: the kernels would not fit in ``max_bytes`` (the message names
            a ``batch_size`` that fits, if one does).
        StructureError: ``solver='structured'`` with an inexact action or a non-invariant kernel.

    Example: with the C4 orbit, the converged mean is invariant on any input.

    >>> import jax; jax.config.update("jax_enable_x64", True)
    >>> from ntkequi import data, groups, metrics
    >>> from ntkequi.nn import ArchSpec
    >>> c4 = groups.planar_rotations(4)
    >>> x = data.wedge_points(jax.random.PRNGKey(0), 6)
    >>> x_test = c4.orbit(data.noise_points(jax.random.PRNGKey(1), 3)).reshape(-1, 2)
    >>> mu = predict(ArchSpec(kind="mlp", depth=2), x, data.radial_target(x), x_test, [1.0, float("inf")], group=c4)
    >>> mu.mean.shape
    (2, 12, 1)
    >>> err = metrics.equivariance_error(metrics.orbit_predictions(mu.mean[-1], c4), c4).relative
    >>> bool(err < 1e-10)
    True
    """
    check_solver(solver, group)
    check_solver_args(get, learning_rate, diag_reg, batch_size)
    check_schedule(t, steps)
    x_train, y_train, x_test = check_data(x_train, y_train, x_test)
    if group is not None:
        group.check_input(x_test)
    pred = Predictor(arch, x_train, y_train, group=group, solver=solver, get=get, compute_cov=compute_cov,
                     diag_reg=diag_reg, batch_size=batch_size, max_bytes=max_bytes, n_test=x_test.shape[0])
    return pred(x_test, t, steps=steps, learning_rate=learning_rate, compute_cov=compute_cov)


class Predictor:
    """The infinite ensemble trained on one training set, asked for any test inputs, gradient-flow
    times and numbers of gradient-descent steps (neural-tangents' ``gradient_descent_mse_ensemble``
    shape): built once, it computes the training kernel once (the ``|G| N x |G| N`` orbit kernel on
    the direct path, ``|G|`` blocks ``N x N`` on the structured one) and, on the first question,
    its eigendecomposition (:class:`~ntkequi.kernels.structured.BlockSolve`); each call computes
    only the kernels of its test inputs.

    Args:
        arch: an :class:`~ntkequi.nn.ArchSpec` or a kernel_fn ``(x1, x2, get)``.
        x_train: ``(N, ...)`` training inputs (un-augmented).
        y_train: ``(N, k)`` targets.
        group: if given, train on the full orbit (``|G| N`` samples, targets transformed by the
            group's output representation).
        solver: 'direct', 'structured' or 'auto' (:func:`predict`); the path taken is
            :attr:`solver`, and why, :attr:`reason` (logged to ``ntkequi.kernels`` at INFO).
        get: the kernel asked by default: 'ntk' (all layers trained) or 'nngp' (last layer).
        compute_cov: compute the train kernels the covariance needs now (the NNGP besides the
            NTK), in the same kernel call; otherwise the first call that asks for a covariance
            computes them then.
        diag_reg: relative regulariser (see the module doc).
        batch_size: compute kernels in blocks of this many rows (bounds the intermediates).
        max_bytes: memory budget (:class:`~ntkequi.kernels.MemoryBudget`; each call is checked).
        n_test: the largest test set to be asked, checked against the budget before the training
            kernel is computed (each call is checked again with its own size).
        check_tol: tolerance of the structure check (:func:`~ntkequi.kernels.check_structure`).

    Raises:
        as :func:`predict`, at construction for the training set and at each call for the test set.

    >>> import jax; jax.config.update("jax_enable_x64", True)
    >>> from ntkequi import data, groups
    >>> from ntkequi.nn import ArchSpec
    >>> x = data.wedge_points(jax.random.PRNGKey(0), 6)
    >>> mu = Predictor(ArchSpec(kind="mlp", depth=2), x, data.radial_target(x), group=groups.planar_rotations(4))
    >>> mu.solver
    'structured'
    >>> eta = mu.max_learning_rate() / 100                     # small steps: near gradient flow
    >>> flow = mu(x, [100 * eta, float("inf")])                # gradient flow to t = 100 eta, and converged
    >>> gd = mu(x, steps=[100], learning_rate=eta)             # 100 steps of size eta
    >>> flow.mean.shape, bool(abs(gd.mean[0] - flow.mean[0]).max() < 0.02 * abs(flow.mean[0]).max())
    ((2, 6, 1), True)
    """

    def __init__(self, arch: Union[ArchLike, Callable], x_train, y_train, *, group: Optional[Group] = None,
                 solver: str = "auto", get: str = "ntk", compute_cov: bool = False, diag_reg: float = 0.0,
                 batch_size: int = 0, max_bytes: Optional[int] = None, n_test: int = 0,
                 check_tol: float = 1e-8):
        check_solver(solver, group)
        check_solver_args(get, 1.0, diag_reg, batch_size)
        x_train, y_train, _ = check_data(x_train, y_train, x_train[:1])
        if group is not None:
            group.check_input(x_train)
        self.kernel_fn, self.group, self.get = kernel_of(arch), group, get
        self.batch_size, self.budget = int(batch_size), MemoryBudget(max_bytes)
        self.x_train, self.y_train = x_train, y_train
        self._event = tuple(x_train.shape[1:])
        self._itemsize = jnp.dtype(x_train.dtype).itemsize
        self._per_pair = arch.kernel_entries_per_pair(self._event) if is_spec(arch) else DEFAULT_FLOATS_PER_PAIR
        gets = structured.kernels_needed(get, compute_cov)
        self.solver, self.reason, train = "direct", "no group: plain kernel regression", None
        if group is not None and solver != "direct":
            if group.exact:
                self._require(n_test, compute_cov, "structured")
            try:
                train = structured.checked_train_blocks(self.kernel_fn, group, x_train, gets, get, batch_size,
                                                         check_tol)
                self.solver = "structured"
                self.reason = f"{group.name} acts exactly and the kernel is invariant: |G| = {group.order} blocks"
            except structured.StructureError as e:
                fall_back_to_direct(solver, e, "solve", group)
                self.reason = f"structured solve not possible: {e}"
        elif group is not None:
            self.reason = "solver='direct'"
        if self.solver == "structured":
            reps, y_orbit = irreps(group), group.orbit_out(y_train)
            self._x_ref = x_train
        else:
            self._x_ref, y_aug = (x_train, y_train) if group is None else augment(group, x_train, y_train)
            self._require(n_test, compute_cov, "direct")
            train = {g: v[None] for g, v in _kernels(self._fn(0), self._x_ref, None, gets).items()}
            reps, y_orbit = structured.PLAIN, y_aug[None]
        logging.getLogger("ntkequi.kernels").info("Predictor: %s solve (%s)", self.solver, self.reason)
        self.blocks = structured.BlockSolve(train, y_orbit, reps, diag_reg=diag_reg, get=get)

    # -- memory and kernels -----------------------------------------------------

    def _need(self, b: int, m: int, compute_cov: bool, path: str) -> int:
        """Estimated peak bytes with kernel batches of ``b`` rows (0: none) and ``m`` test inputs."""
        n, fn, gets = self._x_ref_len(path), self.kernel_fn, structured.kernels_needed(self.get, compute_cov)
        if path == "structured":
            pairs = b * b if b else self.group.order * max(n, m) * n          # k(x, orbit of X) in one call
            return (structured.structured_memory_bytes(self.group.order, n, m, self._itemsize, len(gets), compute_cov)
                    + intermediate_estimate(fn, self._event, self._itemsize, pairs, self._per_pair))
        inter = intermediate_estimate(fn, self._event, self._itemsize, (b or max(n, m)) ** 2, self._per_pair)
        return kernel_memory_bytes(n, m, self._itemsize, self._per_pair, b, compute_cov, inter)

    def _x_ref_len(self, path: str) -> int:
        n = self.x_train.shape[0]
        return n * self.group.order if (path == "direct" and self.group is not None) else n

    def _require(self, m: int, compute_cov: bool, path: str) -> None:
        """KernelTooLargeError, with a ``batch_size`` that fits if one does, unless ``m`` test inputs fit."""
        n = self._x_ref_len(path)
        need = self._need(self.batch_size, m, compute_cov, path)
        if self.budget.fits(need):
            return
        if path == "structured":
            fits = self.budget.largest_batch(lambda b: self._need(b, m, compute_cov, path), self.group.order * max(n, m))
            advice = (f"pass batch_size={fits} (or smaller) to compute the kernel blocks in batches" if fits
                      else "use fewer training or test samples")
            what = f"structured {self.group.name} prediction for {self.x_train.shape[0]} training x {m} test inputs"
        else:
            stored = self._need(1, m, compute_cov, path)
            fits = self.budget.largest_batch(lambda b: self._need(b, m, compute_cov, path), max(n, m))
            advice = (f"pass batch_size={max(fits, 1)} (or smaller) to compute the kernel in blocks "
                      f"(needs about {fmt_bytes(stored)} at batch_size=1)" if self.budget.fits(stored) else
                      f"the stored {n}x{n} train kernel alone needs {fmt_bytes(stored)}: use fewer "
                      f"training samples" + (" or a smaller group" if self.group is not None else ""))
            what = f"kernel for {n} training x {m} test inputs"
        self.budget.require(need, what, advice)

    def _fn(self, m: int) -> Callable:
        """The kernel_fn, batched as ``batch_size`` asks for a call against ``m`` test inputs (0: train)."""
        fn, b = self.kernel_fn, self.batch_size
        if not b:
            return fn
        if tiles_itself(fn):
            return fn.with_block_bytes(intermediate_bytes(fn, self._event, self._itemsize, b * b))
        from ..nt import nt                # a neural-tangents kernel: batched by neural-tangents
        n = self._x_ref.shape[0]
        return nt.batch(fn, batch_size=divisor_batch([n, m] if m else [n], b), device_count=0)

    def _add_train(self, gets: tuple) -> None:
        """Compute train kernels not yet held (e.g. the NNGP a first covariance needs)."""
        missing = tuple(g for g in gets if g not in self.blocks.train)
        if not missing:
            return
        logging.getLogger("ntkequi.kernels").info("Predictor: computing the train %s kernel (pass compute_cov=True "
                                                  "at construction to compute it with the others)", missing)
        if self.solver == "structured":
            self.blocks.add_train(structured.kernel_blocks(self.kernel_fn, self.group, self.x_train, None, missing,
                                                           self.batch_size))
        else:
            self.blocks.add_train({g: v[None] for g, v in _kernels(self._fn(0), self._x_ref, None, missing).items()})

    # -- questions ----------------------------------------------------------------

    def __call__(self, x_test, t=None, *, steps=None, learning_rate: float = 1.0, compute_cov: bool = False,
                 get: Optional[str] = None, diag_reg: Optional[float] = None) -> Prediction:
        """Mean (and covariance) at ``x_test`` ``(M, ...)`` after gradient flow to times ``t``, or
        after ``steps`` gradient-descent steps of size ``learning_rate``; arguments and result as
        :func:`predict` (``get`` and ``diag_reg`` default to the constructor's; another ``diag_reg``
        reuses the train kernel and is eigendecomposed once)."""
        get = self.get if get is None else get
        check_solver_args(get, learning_rate, 0.0 if diag_reg is None else diag_reg)
        check_schedule(t, steps)
        _, _, x_test = check_data(self.x_train, self.y_train, x_test)
        if self.group is not None:
            self.group.check_input(x_test)
        m = x_test.shape[0]
        self._require(m, compute_cov, self.solver)
        gets = structured.kernels_needed(get, compute_cov)
        self._add_train(gets)
        if self.solver == "structured":
            test = structured.kernel_blocks(self.kernel_fn, self.group, x_test, self.x_train, gets, self.batch_size)
        else:
            test = {g: v[None] for g, v in _kernels(self._fn(m), x_test, self._x_ref, gets).items()}
        nngp_tt = None
        if compute_cov:
            nngp_tt = (self.kernel_fn(x_test, None, "nngp") if self.solver == "structured"
                       else _kernels(self._fn(m), x_test, None, ("nngp",))["nngp"])
        return self.blocks.predict(test, t, steps=steps, learning_rate=learning_rate, get=get, nngp_tt=nngp_tt,
                                   diag_reg=diag_reg)

    def lambda_max(self, get: Optional[str] = None, diag_reg: Optional[float] = None) -> float:
        """Largest eigenvalue of the (augmented, regularised) train kernel."""
        get = self.get if get is None else get
        self._add_train((get,))
        return self.blocks.lambda_max(get, diag_reg)

    def max_learning_rate(self, get: Optional[str] = None, diag_reg: Optional[float] = None) -> float:
        """``2 / lambda_max``: the largest stable gradient-descent step on the summed MSE."""
        return 2.0 / self.lambda_max(get, diag_reg)


def _kernels(kernel_fn: Callable, x1, x2, gets: tuple) -> dict:
    """``{g: k_g(x1, x2)}``: one call for all of ``gets``, for kernel_fns that return a
    Kernel-like object (neural-tangents', ntkequi's), or one call per kernel for those that
    return a bare array for a string ``get`` (a user's own)."""
    if len(gets) == 1:
        out = kernel_fn(x1, x2, gets[0])
        return {gets[0]: jnp.asarray(getattr(out, gets[0], out))}
    out = kernel_fn(x1, x2, tuple(gets))
    if all(hasattr(out, g) for g in gets):
        return {g: jnp.asarray(getattr(out, g)) for g in gets}
    return _kernels(kernel_fn, x1, x2, gets[:1]) | _kernels(kernel_fn, x1, x2, gets[1:])


def kernel_invariance_error(kernel_fn: Callable, group: Group, x1, x2=None,
                            get: str = "ntk") -> np.ndarray:
    """Relative error ``||K(g x1, g x2) - K(x1, x2)|| / ||K(x1, x2)||`` for every g.

    Zero (to rounding) when the kernel is invariant under the simultaneous action
    (MLPs under orthogonal actions, CNNs under pixel permutations by rotation);
    measurably non-zero for interpolated rotations. Returns ``(|G|,)``."""
    x1 = group.check_input(check_finite("x1", x1))
    o1 = group.orbit(x1)
    o2 = [None] * group.order if x2 is None else group.orbit(group.check_input(check_finite("x2", x2)))
    if x2 is not None:
        # |G| calls of one shape: compiled once. Not for x2=None: there the eager path keeps
        # nt's precise diagonal, which XLA's fused multiply-adds undo under jit (~1e-10)
        kernel_fn = jit_kernel(kernel_fn)
    ref = kernel_fn(x1, o2[0], get)
    errs = [float(jnp.linalg.norm(kernel_fn(o1[g], o2[g], get) - ref) / jnp.linalg.norm(ref))
            for g in range(group.order)]
    return np.asarray(errs)


#: orbit size above which ``max_learning_rate(solver='auto')`` uses the group-structured eigensolve
STRUCTURED_MIN_POINTS = 2048


def max_learning_rate(arch: Union[ArchLike, Callable], x_train, group: Optional[Group] = None,
                      solver: str = "auto") -> float:
    """Largest stable learning rate ``2 / lambda_max(Theta(X, X))`` of full-batch
    gradient descent on the summed MSE loss in the infinite-width limit (``X``
    orbit-augmented if ``group`` is given; that multiplies lambda_max by up to |G|).
    Discrete steps follow the gradient flow mu_t only for learning rates well
    below this (``eta * lambda_max << 1``). With a group, 'structured' takes lambda_max
    from the |G| kernel blocks (:func:`ntkequi.kernels.structured.max_eigenvalue`: exact groups,
    invariant kernels), 'direct' from the full ``|G| N x |G| N`` orbit kernel, and 'auto'
    (default) the former for an exact group once the orbit has more than
    ``STRUCTURED_MIN_POINTS`` points (below that the direct eigensolve is cheaper than
    the blocks' compilation), falling back to 'direct' where the structure check fails."""
    check_solver(solver, group)
    x_train = check_finite("x_train", x_train)
    large = group is not None and group.order * x_train.shape[0] > STRUCTURED_MIN_POINTS
    if group is not None and (solver == "structured" or (solver == "auto" and group.exact and large)):
        try:
            return 2.0 / structured.max_eigenvalue(arch, x_train, group)
        except structured.StructureError as e:
            fall_back_to_direct(solver, e, "eigensolve", group)
    if group is not None:
        x_train = group.orbit(group.check_input(x_train)).reshape((-1,) + x_train.shape[1:])
    theta = np.asarray(kernel_of(arch)(x_train, None, "ntk"))
    n = theta.shape[0]
    lam = scipy.linalg.eigvalsh(theta, subset_by_index=(n - 1, n - 1))[-1]
    return float(2.0 / (lam + 1e-12))        # + 1e-12: neural-tangents' guard, kept so results regenerate
