"""Analytic NTK predictions of infinite deep ensembles, plain or orbit-augmented.

Time convention (used everywhere in ntkequi): full-batch gradient descent on the
summed loss ``L = 1/2 ||f(X) - Y||^2`` with learning rate ``eta`` for ``s`` steps is
training time ``t = eta * s``, and the infinite ensemble's mean is

    mu_t(x) = Theta(x, X) Theta(X, X)^-1 (I - exp(-Theta(X, X) t)) Y.

neural-tangents' ``predict`` normalises the loss by the number of training
targets (``y_train.size``), so ``t_nt = t * y_train.size``; the conversion happens
only in :func:`_nt_time` (``y_train.size`` grows by |G| under augmentation).

``diag_reg`` is neural-tangents' relative regulariser: ``diag_reg * trace(K)/n``
is added to the diagonal of the train-train kernel (``trace(K)/n`` is the same
with and without orbit augmentation when the kernel is invariant).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from .arch import ArchSpec
from .groups import Group
from .nt import nt

__all__ = ["Prediction", "KernelTooLargeError", "predict", "augment", "max_learning_rate",
           "kernel_invariance_error", "kernel_memory_bytes", "memory_budget_bytes",
           "check_finite", "check_times"]


class KernelTooLargeError(MemoryError):
    """A kernel matrix (or its intermediate) would not fit in the memory budget."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Mean (and covariance) of the infinite ensemble.

    ts: ``(T,)`` training times (``inf`` allowed).
    mean: ``(T, M, k)``.
    cov: ``(T, M, M)`` covariance over test points (the same for every output
        component), or None.
    """
    ts: np.ndarray
    mean: jnp.ndarray
    cov: Optional[jnp.ndarray] = None

    @property
    def std(self) -> Optional[jnp.ndarray]:
        """``(T, M)`` standard deviation of a single ensemble member's output."""
        if self.cov is None:
            return None
        return jnp.sqrt(jnp.clip(jnp.diagonal(self.cov, axis1=-2, axis2=-1), 0, None))


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------

def check_finite(name: str, x) -> jnp.ndarray:
    """Return ``x`` as an array; raise ValueError naming ``name`` if it has NaN/inf."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.number):
        raise ValueError(f"{name} must be numeric; got dtype {x.dtype}")
    bad = ~jnp.isfinite(x)
    if bool(jnp.any(bad)):
        idx = tuple(int(i) for i in np.argwhere(np.asarray(bad))[0])
        raise ValueError(f"{name} contains {int(bad.sum())} non-finite value(s), "
                         f"first at index {idx}: {x[idx]}")
    return x


def check_times(t) -> np.ndarray:
    """Training times as a 1-d float array; each ``>= 0`` (``inf`` allowed)."""
    ts = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if ts.ndim != 1:
        raise ValueError(f"t must be a scalar or a 1-d sequence of times; got shape {ts.shape}")
    if ts.size == 0:
        raise ValueError("t is empty: give at least one training time")
    if np.any(np.isnan(ts)):
        raise ValueError(f"t contains NaN: {ts.tolist()}")
    if np.any(ts < 0):
        raise ValueError(f"training time t must be >= 0; got {ts[ts < 0].tolist()}")
    return ts


def check_solver_args(get: str, learning_rate: float, diag_reg: float) -> None:
    """ValueError naming a bad ``get``, ``learning_rate`` or ``diag_reg``."""
    if get not in ("ntk", "nngp"):
        raise ValueError(f"get must be 'ntk' or 'nngp'; got {get!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be a positive finite number; got {learning_rate}")
    if not (diag_reg >= 0 and math.isfinite(diag_reg)):
        raise ValueError(f"diag_reg must be >= 0; got {diag_reg}")


def _check_data(x_train, y_train, x_test):
    x_train = check_finite("x_train", x_train)
    y_train = check_finite("y_train", y_train)
    x_test = check_finite("x_test", x_test)
    if x_train.ndim < 2:
        raise ValueError(f"x_train must be a batch (N, ...) of rank >= 2; got shape {x_train.shape}")
    if y_train.ndim != 2:
        raise ValueError(f"y_train must have shape (N, k); got {y_train.shape}")
    if y_train.shape[0] != x_train.shape[0]:
        raise ValueError(f"x_train has {x_train.shape[0]} samples but y_train has {y_train.shape[0]}")
    if x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"x_test per-sample shape {x_test.shape[1:]} differs from x_train's "
                         f"{x_train.shape[1:]}")
    return x_train, y_train, x_test


# ----------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------

def memory_budget_bytes() -> int:
    """Bytes a kernel computation may use: ``NTKEQUI_MAX_KERNEL_BYTES`` if set,
    else half the machine's physical memory."""
    env = os.environ.get("NTKEQUI_MAX_KERNEL_BYTES")
    if env:
        return int(float(env))
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


def kernel_memory_bytes(n_train: int, n_test: int, itemsize: int, per_pair: int = 1,
                        batch_size: int = 0, compute_cov: bool = False) -> int:
    """Estimated peak bytes of a prediction: the stored kernels (train-train NNGP
    and NTK, test-train, test-test if ``compute_cov``, plus the
    eigendecomposition), and the per-batch intermediate of the kernel computation
    (``per_pair`` floats per input pair, a few arrays at a time)."""
    stored = (3 * n_train * n_train + 2 * n_test * n_train
              + (n_test * n_test if compute_cov else 0)) * itemsize
    b1 = batch_size if batch_size else max(n_train, n_test)
    b2 = batch_size if batch_size else max(n_train, n_test)
    intermediate = 4 * b1 * b2 * per_pair * itemsize
    return int(stored + intermediate)


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.1f} {unit}"
        b /= 1024


# ----------------------------------------------------------------------------
# augmentation and prediction
# ----------------------------------------------------------------------------

def augment(group: Group, x, y):
    """Full-orbit augmentation: ``(|G| N, ...)`` inputs ``g x_i`` and ``(|G| N, k)``
    targets ``rho_out(g) y_i``, ordered group-major (all of g=0, then g=1, ...)."""
    x = group.check_input(x)
    xo = group.orbit(x)
    yo = group.orbit_out(y)
    return xo.reshape((-1,) + x.shape[1:]), yo.reshape((-1,) + yo.shape[2:])


@functools.lru_cache(maxsize=64)
def _spec_kernel(spec: ArchSpec) -> Callable:
    return spec.kernel_fn


def kernel_of(arch: Union[ArchSpec, Callable]) -> Callable:
    """The kernel_fn of an ArchSpec (one object per spec, so that its jitted form is
    compiled once per shape), or ``arch`` itself if it is a kernel_fn."""
    return _spec_kernel(arch) if isinstance(arch, ArchSpec) else arch


@functools.lru_cache(maxsize=64)
def jit_kernel(kernel_fn: Callable) -> Callable:
    """``jax.jit`` of a kernel_fn (static ``get``), cached per kernel_fn object: fusing
    the elementwise recursion is several times faster than eager evaluation on large
    blocks (``python benchmarks/run.py``)."""
    return jax.jit(kernel_fn, static_argnums=(2,))


def _nt_time(t: np.ndarray, y_size: int) -> np.ndarray:
    """ntkequi time (summed loss) -> neural-tangents time (loss / y_train.size)."""
    return t * y_size


def _divisor_batch(n_values: Sequence[int], requested: int) -> int:
    g = 0
    for n in n_values:
        g = math.gcd(g, n)
    for b in range(min(requested, g), 0, -1):
        if g % b == 0:
            return b
    return 1


def predict(arch: Union[ArchSpec, Callable], x_train, y_train, x_test, t, *,
            group: Optional[Group] = None, learning_rate: float = 1.0,
            diag_reg: float = 0.0, compute_cov: bool = False, get: str = "ntk",
            batch_size: int = 0, max_bytes: Optional[int] = None,
            solver: str = "direct") -> Prediction:
    """Mean (and covariance) of the infinite ensemble trained by gradient flow.

    arch: an :class:`ArchSpec` or a neural-tangents ``kernel_fn``.
    x_train ``(N, ...)``, y_train ``(N, k)``, x_test ``(M, ...)``.
    t: time or times ``(T,)`` in ntkequi units (see module doc), ``>= 0``,
        ``inf`` for the converged predictor; multiplied by ``learning_rate``.
    group: if given, train on the full orbit (``|G| N`` samples, targets
        transformed by the group's output representation).
    get: 'ntk' (gradient descent on all layers) or 'nngp' (last layer only).
    batch_size: compute kernels in blocks of this many rows with ``nt.batch``
        (bounds the intermediate memory; adjusted down to divide the sizes).
    max_bytes: memory budget (default :func:`memory_budget_bytes`).
    solver: with a group, 'direct' builds the ``|G| N x |G| N`` orbit kernel;
        'structured' uses the group-structured solve of :mod:`ntkequi.structured`
        (``|G|`` blocks of ``N x N``; raises ``StructureError`` if the action is
        inexact or the kernel not invariant); 'auto' tries 'structured' and falls
        back to 'direct' with a warning naming the reason.

    Returns a :class:`Prediction` with ``mean (T, M, k)`` and ``cov (T, M, M)``.
    """
    if solver not in ("direct", "structured", "auto"):
        raise ValueError(f"solver must be 'direct', 'structured' or 'auto'; got {solver!r}")
    if solver != "direct":
        if group is None:
            raise ValueError(f"solver={solver!r} needs a group (it solves the orbit-augmented problem)")
        from . import structured
        kwargs = dict(group=group, learning_rate=learning_rate, diag_reg=diag_reg,
                      compute_cov=compute_cov, get=get, batch_size=batch_size, max_bytes=max_bytes)
        try:
            return structured.predict(arch, x_train, y_train, x_test, t, **kwargs)
        except structured.StructureError as e:
            if solver == "structured":
                raise
            warnings.warn(f"structured solve not possible, using the direct path: {e}", stacklevel=2)
    check_solver_args(get, learning_rate, diag_reg)
    ts = check_times(t) * learning_rate
    x_train, y_train, x_test = _check_data(x_train, y_train, x_test)
    if group is not None:
        group.check_input(x_train)
        group.check_input(x_test)
        x_train, y_train = augment(group, x_train, y_train)

    kernel_fn = arch.kernel_fn if isinstance(arch, ArchSpec) else arch
    per_pair = arch.kernel_entries_per_pair(tuple(x_train.shape[1:])) if isinstance(arch, ArchSpec) else 1
    n, m = x_train.shape[0], x_test.shape[0]
    itemsize = jnp.dtype(x_train.dtype).itemsize
    need = kernel_memory_bytes(n, m, itemsize, per_pair, batch_size, compute_cov)
    budget = memory_budget_bytes() if max_bytes is None else max_bytes
    if need > budget:
        stored = kernel_memory_bytes(n, m, itemsize, per_pair, 1, compute_cov)
        hint = (f"pass batch_size (e.g. batch_size=64) to compute the kernel in blocks "
                f"(needs about {_fmt_bytes(stored)})" if stored <= budget else
                f"the stored {n}x{n} train kernel alone needs {_fmt_bytes(stored)}: use fewer "
                f"training samples" + (" or a smaller group" if group is not None else ""))
        raise KernelTooLargeError(
            f"kernel for {n} training x {m} test inputs needs about {_fmt_bytes(need)} "
            f"(budget {_fmt_bytes(budget)}, set NTKEQUI_MAX_KERNEL_BYTES to change); {hint}")
    if batch_size:
        bs = _divisor_batch([n, m], batch_size)
        kernel_fn = nt.batch(kernel_fn, batch_size=bs, device_count=0)

    predict_fn = nt.predict.gradient_descent_mse_ensemble(
        kernel_fn, x_train, y_train, learning_rate=1.0, diag_reg=diag_reg)
    finite = np.isfinite(ts)
    means, covs = [None] * len(ts), [None] * len(ts)

    def _store(idx, out, leading):
        mean, cov = out if compute_cov else (out, None)
        if not leading:
            mean, cov = mean[None], (None if cov is None else cov[None])
        for j, i in enumerate(idx):
            means[i] = mean[j if leading else 0]
            covs[i] = None if cov is None else cov[j if leading else 0]

    if finite.any():
        idx = np.flatnonzero(finite)
        t_nt = jnp.asarray(_nt_time(ts[idx], y_train.size), dtype=x_train.dtype)
        _store(idx, predict_fn(t_nt, x_test, get, compute_cov=compute_cov), True)
    if (~finite).any():
        _store(np.flatnonzero(~finite), predict_fn(None, x_test, get, compute_cov=compute_cov), False)
    mean = jnp.stack(means)
    cov = jnp.stack(covs) if compute_cov else None
    return Prediction(ts=ts / learning_rate, mean=mean, cov=cov)


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


def max_learning_rate(arch: Union[ArchSpec, Callable], x_train, group: Optional[Group] = None,
                      solver: str = "auto") -> float:
    """Largest stable learning rate ``2 / lambda_max(Theta(X, X))`` of full-batch
    gradient descent on the summed MSE loss in the infinite-width limit (``X``
    orbit-augmented if ``group`` is given; that multiplies lambda_max by up to |G|).
    Discrete steps follow the gradient flow mu_t only for learning rates well
    below this (``eta * lambda_max << 1``). With a group, 'structured' takes lambda_max
    from the |G| kernel blocks (:func:`ntkequi.structured.max_eigenvalue`: exact groups,
    invariant kernels), 'direct' from the full ``|G| N x |G| N`` orbit kernel, and 'auto'
    (default) the former for an exact group once the orbit has more than
    ``STRUCTURED_MIN_POINTS`` points (below that the direct eigensolve is cheaper than
    the blocks' compilation), falling back to 'direct' where the structure check fails."""
    if solver not in ("direct", "structured", "auto"):
        raise ValueError(f"solver must be 'direct', 'structured' or 'auto'; got {solver!r}")
    x_train = check_finite("x_train", x_train)
    large = group is not None and group.order * x_train.shape[0] > STRUCTURED_MIN_POINTS
    if group is not None and (solver == "structured" or (solver == "auto" and group.exact and large)):
        from . import structured
        try:
            return 2.0 / structured.max_eigenvalue(arch, x_train, group)
        except structured.StructureError:
            if solver == "structured":
                raise
    if group is not None:
        x_train = group.orbit(group.check_input(x_train)).reshape((-1,) + x_train.shape[1:])
    kernel_fn = arch.kernel_fn if isinstance(arch, ArchSpec) else arch
    theta = kernel_fn(x_train, None, "ntk")
    return float(nt.predict.max_learning_rate(theta, y_train_size=1))
