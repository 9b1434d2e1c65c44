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

from typing import Callable, Optional, Union

import jax.numpy as jnp
import numpy as np

from ..groups import Group
from ..nt import nt
from . import structured
from ._common import (
    DEFAULT_FLOATS_PER_PAIR,
    ArchLike,
    KernelTooLargeError,
    Prediction,
    check_data,
    check_finite,
    check_solver,
    check_schedule,
    check_solver_args,
    divisor_batch,
    fall_back_to_direct,
    fitting_batch_size,
    fmt_bytes,
    intermediate_bytes,
    intermediate_estimate,
    is_spec,
    jit_kernel,
    kernel_memory_bytes,
    kernel_of,
    memory_budget_bytes,
    tiles_itself,
)

__all__ = ["predict", "augment", "max_learning_rate", "kernel_invariance_error", "STRUCTURED_MIN_POINTS"]


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
    ``steps`` steps of full-batch gradient descent.

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
    if solver != "direct" and group is not None:
        kwargs = dict(group=group, learning_rate=learning_rate, diag_reg=diag_reg, steps=steps,
                      compute_cov=compute_cov, get=get, batch_size=batch_size, max_bytes=max_bytes)
        try:
            return structured.predict(arch, x_train, y_train, x_test, t, **kwargs)
        except structured.StructureError as e:
            fall_back_to_direct(solver, e, "solve", group)
    check_solver_args(get, learning_rate, diag_reg, batch_size)
    check_schedule(t, steps)
    x_train, y_train, x_test = check_data(x_train, y_train, x_test)
    if group is not None:
        group.check_input(x_train)
        group.check_input(x_test)
        x_train, y_train = augment(group, x_train, y_train)

    kernel_fn = kernel_of(arch)
    event = tuple(x_train.shape[1:])
    per_pair = arch.kernel_entries_per_pair(event) if is_spec(arch) else DEFAULT_FLOATS_PER_PAIR
    n, m = x_train.shape[0], x_test.shape[0]
    itemsize = jnp.dtype(x_train.dtype).itemsize

    def need_at(b: int) -> int:            # estimated peak bytes with batch_size b (0: none)
        inter = intermediate_estimate(kernel_fn, event, itemsize, (b or max(n, m)) ** 2, per_pair)
        return kernel_memory_bytes(n, m, itemsize, per_pair, b, compute_cov, inter)

    declared = intermediate_bytes(kernel_fn, event, itemsize, (batch_size or max(n, m)) ** 2)
    need = need_at(batch_size)
    budget = memory_budget_bytes() if max_bytes is None else max_bytes
    if need > budget:
        stored = need_at(1)
        fits = fitting_batch_size(lambda b: need_at(b) <= budget, max(n, m))
        hint = (f"pass batch_size={max(fits, 1)} (or smaller) to compute the kernel in blocks "
                f"(needs about {fmt_bytes(stored)} at batch_size=1)" if stored <= budget else
                f"the stored {n}x{n} train kernel alone needs {fmt_bytes(stored)}: use fewer "
                f"training samples" + (" or a smaller group" if group is not None else ""))
        raise KernelTooLargeError(
            f"kernel for {n} training x {m} test inputs needs about {fmt_bytes(need)} "
            f"(budget {fmt_bytes(budget)}, set NTKEQUI_MAX_KERNEL_BYTES to change); {hint}")
    if batch_size and tiles_itself(kernel_fn):
        kernel_fn = kernel_fn.with_block_bytes(declared)         # tiles of batch_size^2 pairs
    elif batch_size:
        bs = divisor_batch([n, m], batch_size)
        kernel_fn = nt.batch(kernel_fn, batch_size=bs, device_count=0)

    # the plain solve is the structured one for the trivial group: one eigendecomposition of
    # the (augmented) train kernel, the same spectral functions and the same t = inf cutoff
    gets = structured.kernels_needed(get, compute_cov)
    train = {g: v[None] for g, v in _kernels(kernel_fn, x_train, None, gets).items()}
    test = {g: v[None] for g, v in _kernels(kernel_fn, x_test, x_train, gets).items()}
    nngp_tt = _kernels(kernel_fn, x_test, None, ("nngp",))["nngp"] if compute_cov else None
    return structured.solve_blocks(train, test, y_train[None], t, structured.PLAIN, learning_rate=learning_rate,
                                   diag_reg=diag_reg, get=get, nngp_tt=nngp_tt, steps=steps)


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
    theta = kernel_of(arch)(x_train, None, "ntk")
    return float(nt.predict.max_learning_rate(theta, y_train_size=1))
