"""Input checks shared across the library: finite numeric arrays and training times.
Each raises ``ValueError`` naming the argument and the offending value."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["check_finite", "check_times", "check_steps", "check_member_dtype"]

MEMBER_DTYPES = ("float32", "float64")


def check_finite(name: str, x, allow_empty: bool = False) -> jnp.ndarray:
    """Return ``x`` as an array; raise ValueError naming ``name`` if it is not a real
    numeric array (strings, objects, booleans, complex numbers), is empty (unless
    ``allow_empty``), or has NaN/inf."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:        # ragged nested sequences
            raise ValueError(f"{name} must be a real numeric array; got {type(x).__name__} ({e})") from None
        dtype = x.dtype
    if np.dtype(dtype).kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array; got dtype {dtype}")
    if not allow_empty and 0 in tuple(x.shape):
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): give at least one sample")
    x = jnp.asarray(x)
    bad = ~jnp.isfinite(x)
    if bool(jnp.any(bad)):
        idx = tuple(int(i) for i in np.argwhere(np.asarray(bad))[0])
        raise ValueError(f"{name} contains {int(bad.sum())} non-finite value(s), "
                         f"first at index {idx}: {x[idx]}")
    return x


def check_times(t) -> np.ndarray:
    """Training times as a 1-d float array; each ``>= 0`` (``inf`` allowed)."""
    try:
        ts = np.atleast_1d(np.asarray(t, dtype=np.float64))
    except (ValueError, TypeError):
        raise ValueError(f"t must be a time or a sequence of times (numbers >= 0, inf allowed); got {t!r}") from None
    if ts.ndim != 1:
        raise ValueError(f"t must be a scalar or a 1-d sequence of times; got shape {ts.shape}")
    if ts.size == 0:
        raise ValueError("t is empty: give at least one training time")
    if np.any(np.isnan(ts)):
        raise ValueError(f"t contains NaN: {ts.tolist()}")
    if np.any(ts < 0):
        raise ValueError(f"training time t must be >= 0; got {ts[ts < 0].tolist()}")
    return ts


def check_steps(steps) -> np.ndarray:
    """Numbers of gradient-descent steps as a 1-d float array: whole numbers ``>= 0``
    (``inf`` allowed: converged).

    >>> check_steps([0, 10, float("inf")]).tolist()
    [0.0, 10.0, inf]
    """
    try:
        ss = np.atleast_1d(np.asarray(steps, dtype=np.float64))
    except (ValueError, TypeError):
        raise ValueError(f"steps must be a step count or a sequence of them (whole numbers >= 0, inf "
                         f"allowed); got {steps!r}") from None
    if ss.ndim != 1 or ss.size == 0:
        raise ValueError(f"steps must be a non-empty scalar or 1-d sequence of step counts; got {steps!r}")
    fin = ss[np.isfinite(ss)]
    if np.any(np.isnan(ss)) or np.any(ss < 0) or np.any(fin != np.round(fin)):
        raise ValueError(f"steps must be whole numbers >= 0 (or inf); got {ss.tolist()}")
    return ss


def check_member_dtype(name: str, value) -> None:
    """ValueError naming ``name`` unless ``value`` is 'float32' or 'float64' (the precisions
    finite ensemble members train in)."""
    if value not in MEMBER_DTYPES:
        raise ValueError(f"{name} must be one of {MEMBER_DTYPES}; got {value!r}")
