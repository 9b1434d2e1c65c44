"""What every analytic predictor shares: the :class:`Prediction` type, input checks, the
memory guard, and the cached (jitted) kernel of an ArchSpec. Private to
:mod:`ntkequi.kernels`; :mod:`~ntkequi.kernels.ntk` and :mod:`~ntkequi.kernels.structured`
both import it and not each other's internals."""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import warnings
from typing import Callable, Optional, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._validate import check_finite, check_steps, check_times

__all__ = ["Prediction", "KernelTooLargeError", "check_finite", "check_times", "check_schedule", "check_solver_args",
           "check_data", "memory_budget_bytes", "device_memory_bytes", "budget_source", "MemoryBudget", "kernel_memory_bytes", "fmt_bytes", "kernel_of",
           "jit_kernel", "nt_time", "divisor_batch", "check_solver", "fall_back_to_direct", "is_spec",
           "intermediate_bytes", "tiles_itself", "ArchLike"]


class KernelTooLargeError(MemoryError):
    """A kernel matrix (or its intermediate) would not fit in the memory budget."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Mean (and covariance) of the infinite ensemble.

    ts: ``(T,)`` training times (``inf`` allowed; ``steps * learning_rate`` for discrete steps).
    mean: ``(T, M, k)``.
    cov: ``(T, M, M)`` covariance over test points (the same for every output
        component), or None.
    steps: ``(T,)`` gradient-descent step counts of a discrete-time prediction, else None
        (gradient flow).
    """
    ts: np.ndarray
    mean: jnp.ndarray
    cov: Optional[jnp.ndarray] = None
    steps: Optional[np.ndarray] = None

    @property
    def std(self) -> Optional[jnp.ndarray]:
        """``(T, M)`` standard deviation of a single ensemble member's output."""
        if self.cov is None:
            return None
        return jnp.sqrt(jnp.clip(jnp.diagonal(self.cov, axis1=-2, axis2=-1), 0, None))


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------

def check_solver_args(get: str, learning_rate: float, diag_reg: float, batch_size: int = 0) -> None:
    """ValueError naming a bad ``get``, ``learning_rate``, ``diag_reg`` or ``batch_size``."""
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 0:
        raise ValueError(f"batch_size must be an integer >= 0 (0: no batching); got {batch_size!r}")
    for name, v in (("learning_rate", learning_rate), ("diag_reg", diag_reg)):
        try:
            if isinstance(v, (str, bool)) or np.ndim(v) != 0:
                raise TypeError
            float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number; got {v!r}") from None
    if get not in ("ntk", "nngp"):
        raise ValueError(f"get must be 'ntk' or 'nngp'; got {get!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be a positive finite number; got {learning_rate}")
    if not (diag_reg >= 0 and math.isfinite(diag_reg)):
        raise ValueError(f"diag_reg must be >= 0; got {diag_reg}")


def check_schedule(t, steps):
    """``(times, steps)`` of a prediction: gradient flow at times ``t`` (``steps`` None), or
    full-batch gradient descent after ``steps`` steps (``t`` None); each a 1-d float array
    (:func:`check_times`, :func:`check_steps`), the other None.

    Raises:
        ValueError: both or neither given, or bad values (named).
    """
    if (t is None) == (steps is None):
        raise ValueError("give either t (gradient-flow times) or steps (numbers of gradient-descent steps of "
                         f"size learning_rate), not {'both' if t is not None else 'neither'}")
    return (check_times(t), None) if steps is None else (None, check_steps(steps))


def check_data(x_train, y_train, x_test):
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

def device_memory_bytes(devices=None) -> Optional[int]:
    """The memory of the smallest of ``devices`` (default: the local devices) as the runtime
    reports it (``device.memory_stats()['bytes_limit']``: a GPU's or TPU's own memory), or
    None where it reports none (CPU devices share the host's memory).

    >>> class Gpu:
    ...     def memory_stats(self): return {"bytes_limit": 80 << 30}
    >>> device_memory_bytes([Gpu(), Gpu()]) == 80 << 30
    True
    """
    import jax
    sizes = []
    for d in (jax.local_devices() if devices is None else devices):
        try:
            stats = d.memory_stats()
        except Exception:  # noqa: BLE001 - backends without memory statistics (XLA:CPU)
            stats = None
        if not stats or "bytes_limit" not in stats:
            return None
        sizes.append(int(stats["bytes_limit"]))
    return min(sizes) if sizes else None


def memory_budget_bytes(devices=None) -> int:
    """Bytes a kernel computation may use per device: ``NTKEQUI_MAX_KERNEL_BYTES`` if set; else,
    on devices with their own memory (GPU, TPU), three quarters of the smallest one's
    (:func:`device_memory_bytes`); else half the machine's physical memory."""
    env = os.environ.get("NTKEQUI_MAX_KERNEL_BYTES")
    if env:
        return int(float(env))
    own = device_memory_bytes(devices)
    if own is not None:
        return int(0.75 * own)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


def budget_source(devices=None) -> str:
    """Where :func:`memory_budget_bytes` took its number from, for messages: the variable, the
    device's own memory (named, with its size), or the host's memory."""
    if os.environ.get("NTKEQUI_MAX_KERNEL_BYTES"):
        return "NTKEQUI_MAX_KERNEL_BYTES"
    own = device_memory_bytes(devices)
    if own is not None:
        import jax
        return f"3/4 of each {jax.local_devices()[0].device_kind} device's {fmt_bytes(own)}"
    return "half the host's memory (CPU devices share it)"


@dataclasses.dataclass(frozen=True)
class MemoryBudget:
    """The bytes a kernel computation may use, and the one way a computation is refused
    (:class:`KernelTooLargeError`, before anything is computed, with advice).

    max_bytes: the budget per device; None: :func:`memory_budget_bytes` (``NTKEQUI_MAX_KERNEL_BYTES``,
    else 3/4 of an accelerator's own memory, else half the physical memory).

    >>> budget = MemoryBudget(10_000)
    >>> budget.largest_batch(lambda b: 8 * b * b, n_max=100)      # 8 b^2 <= 10 000
    32
    >>> budget.require(20_000, "a kernel", "use fewer inputs")
    Traceback (most recent call last):
    ...
    ntkequi.kernels._common.KernelTooLargeError: a kernel needs about 19.5 KiB per device (budget 9.8 KiB per device: the max_bytes given; set NTKEQUI_MAX_KERNEL_BYTES to change): use fewer inputs
    """
    max_bytes: Optional[int] = None

    @property
    def bytes(self) -> int:
        """The budget in bytes."""
        return memory_budget_bytes() if self.max_bytes is None else int(self.max_bytes)

    def fits(self, need: int) -> bool:
        """Whether ``need`` bytes fit."""
        return need <= self.bytes

    def largest_batch(self, need_at: Callable[[int], int], n_max: int) -> int:
        """The largest power-of-two batch size ``b`` with ``need_at(b)`` within the budget (0: none)."""
        return fitting_batch_size(lambda b: self.fits(need_at(b)), n_max)

    def require(self, need: int, what: str, advice: str) -> None:
        """Raise :class:`KernelTooLargeError` ("``what`` needs about ...: ``advice``") unless
        ``need`` bytes fit."""
        if not self.fits(need):
            source = "the max_bytes given" if self.max_bytes is not None else budget_source()
            raise KernelTooLargeError(
                f"{what} needs about {fmt_bytes(need)} per device (budget {fmt_bytes(self.bytes)} per device: "
                f"{source}; set NTKEQUI_MAX_KERNEL_BYTES to change): {advice}")


def kernel_memory_bytes(n_train: int, n_test: int, itemsize: int, per_pair: int = 1,
                        batch_size: int = 0, compute_cov: bool = False,
                        intermediate: Optional[int] = None) -> int:
    """Estimated peak bytes of a prediction: the stored kernels (train-train NNGP
    and NTK, test-train, test-test if ``compute_cov``, plus the
    eigendecomposition), and the per-batch intermediate of the kernel computation
    (``per_pair`` floats per input pair, a few arrays at a time; or ``intermediate``
    bytes where the kernel_fn declares them, :func:`intermediate_bytes`)."""
    stored = (3 * n_train * n_train + 2 * n_test * n_train
              + (n_test * n_test if compute_cov else 0)) * itemsize
    if intermediate is None:
        b1 = batch_size if batch_size else max(n_train, n_test)
        b2 = batch_size if batch_size else max(n_train, n_test)
        intermediate = 4 * b1 * b2 * per_pair * itemsize
    return int(stored + intermediate)


def fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.1f} {unit}"
        b /= 1024


# ----------------------------------------------------------------------------

class ArchLike(Protocol):
    """What the predictors take besides a kernel_fn: an architecture description with a
    ``kernel_fn`` (an :class:`~ntkequi.nn.ArchSpec`; :mod:`ntkequi.kernels` does not import
    :mod:`ntkequi.nn`, which builds its kernels from here)."""
    kernel_fn: Callable


def is_spec(arch) -> bool:
    """Whether ``arch`` is an architecture description (an :class:`~ntkequi.nn.ArchSpec` or
    anything else with a ``kernel_fn`` attribute that is not itself a kernel_fn)."""
    return not callable(arch) and hasattr(arch, "kernel_fn")


@functools.lru_cache(maxsize=64)
def _spec_kernel(spec) -> Callable:
    return spec.kernel_fn


def kernel_of(arch) -> Callable:
    """The kernel_fn of an ArchSpec (one object per spec, so that its jitted form is
    compiled once per shape), or ``arch`` itself if it is a kernel_fn."""
    if is_spec(arch):
        return _spec_kernel(arch)
    if not callable(arch):
        raise TypeError(f"arch must be an ArchSpec or a kernel_fn(x1, x2, get); got {type(arch).__name__}")
    return arch


def intermediate_bytes(kernel_fn: Callable, event_shape: tuple, itemsize: int,
                       pairs: Optional[int] = None) -> Optional[int]:
    """Peak bytes of the per-pair intermediates a kernel_fn declares for ``pairs`` input pairs
    at a time (``kernel_fn.intermediate_bytes(event_shape, itemsize, pairs)``, e.g. ntkequi's
    recursion kernels, which compute pairs in tiles sized to a budget), or None if it
    declares none."""
    fn = getattr(kernel_fn, "intermediate_bytes", None)
    return None if fn is None else int(fn(tuple(event_shape), int(itemsize), pairs))


#: floats per input pair assumed for a kernel_fn that declares nothing (a scalar kernel
#: whose recursion holds one number per pair, e.g. an MLP's); declare more with
#: :func:`with_pair_cost`
DEFAULT_FLOATS_PER_PAIR = 1


class PairCost:
    """A kernel_fn with a declared memory cost per input pair (see :func:`with_pair_cost`);
    calls go to the wrapped kernel_fn unchanged."""

    def __init__(self, kernel_fn: Callable, floats_per_pair):
        if isinstance(kernel_fn, PairCost):
            kernel_fn = kernel_fn.kernel_fn
        self.kernel_fn, self.floats_per_pair = kernel_fn, floats_per_pair
        self.__doc__ = getattr(kernel_fn, "__doc__", None)

    def __call__(self, x1, x2=None, get=None, **kwargs):
        return self.kernel_fn(x1, x2, get, **kwargs)

    def floats(self, event_shape: tuple) -> int:
        """Floats held per input pair for inputs of per-sample shape ``event_shape``."""
        f = self.floats_per_pair
        n = int(f(tuple(event_shape)) if callable(f) else f)
        if n < 1:
            raise ValueError(f"floats_per_pair must be >= 1; got {n} for inputs of shape {tuple(event_shape)}")
        return n

    def intermediate_bytes(self, event_shape: tuple, itemsize: int, pairs: Optional[int] = None) -> int:
        """Peak bytes of the intermediates for ``pairs`` input pairs at a time (a few arrays
        of :meth:`floats` numbers per pair, as :func:`kernel_memory_bytes` assumes)."""
        return 4 * int(pairs or 1) * self.floats(event_shape) * int(itemsize)


def with_pair_cost(kernel_fn: Callable, floats_per_pair) -> PairCost:
    """``kernel_fn`` declaring how many floats its computation holds per input pair, so
    that :func:`~ntkequi.kernels.predict` refuses a call that would not fit in memory
    (:class:`KernelTooLargeError`, with a ``batch_size`` that fits) instead of running out
    of it. A kernel_fn that declares nothing is assumed to hold
    :data:`DEFAULT_FLOATS_PER_PAIR` per pair.

    Args:
        kernel_fn: ``kernel_fn(x1, x2=None, get=...)``.
        floats_per_pair: an int, or ``f(event_shape) -> int`` (e.g. ``(4 H W)^2`` for a
            C4 group-conv kernel on ``H x W`` images, which holds the covariance of every
            pair of (rotation, pixel)).

    Returns:
        A callable with the same signature and an ``intermediate_bytes`` declaration.

    >>> import numpy as np
    >>> k = with_pair_cost(lambda x1, x2=None, get="ntk": x1 @ (x1 if x2 is None else x2).T, 50)
    >>> k.intermediate_bytes((3,), 8, pairs=10), k(np.ones((2, 3))).shape
    (16000, (2, 2))
    """
    return PairCost(kernel_fn, floats_per_pair)


def intermediate_estimate(kernel_fn: Callable, event_shape: tuple, itemsize: int, pairs: int,
                          floats_per_pair: int = DEFAULT_FLOATS_PER_PAIR) -> int:
    """Peak bytes of a kernel_fn's intermediates for ``pairs`` input pairs at a time: what
    it declares (:func:`intermediate_bytes`: ntkequi's recursion kernels, :func:`with_pair_cost`),
    else a few arrays of ``floats_per_pair`` numbers per pair (as :func:`kernel_memory_bytes`)."""
    declared = intermediate_bytes(kernel_fn, event_shape, itemsize, pairs)
    return declared if declared is not None else 4 * int(pairs or 1) * int(floats_per_pair) * int(itemsize)


def fitting_batch_size(fits: Callable[[int], bool], n_max: int) -> int:
    """The largest ``batch_size`` (a power of two, at most the next one above ``n_max``) for
    which ``fits(batch_size)``; 0 if none does."""
    b = 1 << max(int(n_max), 1).bit_length()
    while b >= 1 and not fits(b):
        b //= 2
    return b


def tiles_itself(kernel_fn: Callable) -> bool:
    """Whether a kernel_fn bounds its own memory (declares :func:`intermediate_bytes` and takes
    ``with_block_bytes``), so that wrapping it in ``nt.batch`` would only add overhead."""
    return hasattr(kernel_fn, "intermediate_bytes") and hasattr(kernel_fn, "with_block_bytes")


@functools.lru_cache(maxsize=64)
def jit_kernel(kernel_fn: Callable) -> Callable:
    """``jax.jit`` of a kernel_fn (static ``get``), cached per kernel_fn object: fusing
    the elementwise recursion is several times faster than eager evaluation on large
    blocks (``python benchmarks/run.py``)."""
    return jax.jit(kernel_fn, static_argnums=(2,))


def nt_time(t: np.ndarray, y_size: int) -> np.ndarray:
    """ntkequi time (summed loss) -> neural-tangents time (loss / y_train.size)."""
    return t * y_size


def divisor_batch(n_values: Sequence[int], requested: int) -> int:
    g = 0
    for n in n_values:
        g = math.gcd(g, n)
    for b in range(min(requested, g), 0, -1):
        if g % b == 0:
            return b
    return 1


SOLVERS = ("direct", "structured", "auto")


def check_group_type(group, allow_none: bool = False) -> None:
    """TypeError naming ``group`` unless it is an ntkequi group (or None, if allowed)."""
    from ..groups import Group
    if group is None and allow_none:
        return
    if not isinstance(group, Group):
        raise TypeError(f"group must be an ntkequi group (e.g. ntkequi.groups.rotations(4, shape)); "
                        f"got {group!r} ({type(group).__name__})")


def check_solver(solver: str, group) -> None:
    """The one rule for ``solver`` in :func:`~ntkequi.kernels.predict` and
    :func:`~ntkequi.kernels.max_learning_rate`: one of :data:`SOLVERS`; 'structured'
    needs a group (it solves the orbit-augmented problem); 'auto' without a group is the
    direct path (there is no orbit to exploit)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be 'direct', 'structured' or 'auto'; got {solver!r}")
    check_group_type(group, allow_none=True)
    if solver == "structured" and group is None:
        raise ValueError("solver='structured' needs a group (it solves the orbit-augmented problem)")


def fall_back_to_direct(solver: str, error: Exception, what: str, group=None) -> None:
    """After a failed structure check: re-raise for ``solver='structured'``; for 'auto',
    log the reason (logger ``ntkequi.kernels``, INFO) where the group acts inexactly (the
    expected case: interpolated rotations have no block structure), else warn (an exact group
    with a kernel that is not invariant is worth knowing about); then ``what`` uses the
    direct path."""
    if solver == "structured":
        raise error
    if group is not None and not group.exact:
        logging.getLogger("ntkequi.kernels").info("structured %s not possible, using the direct path: %s",
                                                  what, error)
        return
    warnings.warn(f"structured {what} not possible, using the direct path: {error}", stacklevel=3)
