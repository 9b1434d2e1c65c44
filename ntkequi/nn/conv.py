"""Stride-1 2-d convolutions of NHWC images with HWIO filters, in three formulations that
compute the same function: XLA's convolution; im2col (the ``k x k`` patches of the
padded input, extracted by ``jax.lax.conv_general_dilated_patches``, then one matmul with
the filter reshaped to ``(C_in k k, C_out)``); and 'shifts', the sum over the ``k^2`` filter
taps of a shifted slice of the padded input times that tap's ``(C_in, C_out)`` matrix (slices,
pads and matmuls only, also in its gradient).

Both networks of :mod:`ntkequi.nn` call :func:`conv2d`, so the formulation never changes a
network's parameters or its function (only rounding). XLA's convolution is the default and
the fastest in float32 training steps (``python benchmarks/ensemble_formulations.py``,
benchmarks/RESULTS.md): the transpose of ``conv_general_dilated_patches``, which the
gradient of every layer after the first needs, is itself a convolution with ``C_in k k``
output channels, so im2col loses. In float64, XLA:CPU runs no convolution well: it calls
Eigen's convolution only for float16 and float32 and emits others as plain loop nests; 'shifts'
then has no convolution at all and is faster than XLA's convolution, still slower than float32
(``python benchmarks/member_precision.py``, benchmarks/RESULTS.md).
:func:`using_conv_impl` switches it, for such comparisons.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import jax
import jax.numpy as jnp

__all__ = ["conv2d", "im2col", "conv_impl_for", "using_conv_impl", "CONV_IMPLS"]

CONV_IMPLS = ("xla", "im2col", "shifts")
_OVERRIDE: list = []


def conv_impl_for() -> str:
    """The formulation :func:`conv2d` uses: the innermost :func:`using_conv_impl`, else
    'xla' (see the module doc)."""
    return _OVERRIDE[-1] if _OVERRIDE else "xla"


@contextlib.contextmanager
def using_conv_impl(impl: str):
    """Within the block, networks traced call :func:`conv2d` with ``impl`` (for
    benchmarks and tests that compare the two; it acts when a function is traced, so
    jit inside the block).

    >>> with using_conv_impl("xla"):
    ...     conv_impl_for()
    'xla'
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"impl must be one of {CONV_IMPLS}; got {impl!r}")
    _OVERRIDE.append(impl)
    try:
        yield
    finally:
        _OVERRIDE.pop()


def _check_padding(padding: str) -> None:
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID'; got {padding!r}")


def im2col(x, k: int, padding: str = "SAME"):
    """``x (N, H, W, C)`` -> patches ``(N, H', W', C k k)``, channel ``c k k + i k + j`` the
    input channel ``c`` at offset ``(i, j)`` of the ``k x k`` window (the order of
    ``jax.lax.conv_general_dilated_patches``; an HWIO filter transposed to ``(C, k, k,
    C_out)`` and reshaped to ``(C k k, C_out)`` matches it); ``H' = H`` for 'SAME',
    ``H - k + 1`` for 'VALID'.

    >>> im2col(jnp.arange(9.0).reshape(1, 3, 3, 1), 3)[0, 1, 1].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    """
    _check_padding(padding)
    if padding == "VALID" and (x.shape[1] < k or x.shape[2] < k):
        raise ValueError(f"a {k}x{k} window does not fit a {x.shape[1]}x{x.shape[2]} image with {padding!r}")
    return jax.lax.conv_general_dilated_patches(x, (k, k), (1, 1), padding,
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv2d(x, w, padding: str = "SAME", impl: Optional[str] = None):
    """Stride-1 convolution (cross-correlation, as ``lax.conv_general_dilated``) of
    ``x (N, H, W, C_in)`` with ``w (k, k, C_in, C_out)`` -> ``(N, H', W', C_out)``.

    Args:
        x: images, NHWC; w: filter, HWIO (square, cast to ``x``'s dtype).
        padding: 'SAME' or 'VALID'.
        impl: 'xla', 'im2col' or 'shifts' (None: :func:`conv_impl_for`).

    Returns:
        The feature map ``(N, H', W', C_out)``.

    >>> x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 3))
    >>> w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 4))
    >>> bool(jnp.allclose(conv2d(x, w, impl="im2col"), conv2d(x, w, impl="xla"), atol=1e-4))
    True
    >>> bool(jnp.allclose(conv2d(x, w, "VALID", impl="shifts"), conv2d(x, w, "VALID", impl="xla"), atol=1e-4))
    True
    """
    impl = impl or conv_impl_for()
    if impl not in CONV_IMPLS:
        raise ValueError(f"impl must be one of {CONV_IMPLS}; got {impl!r}")
    if w.ndim != 4 or w.shape[0] != w.shape[1] or w.shape[2] != x.shape[-1]:
        raise ValueError(f"filter must be (k, k, C_in={x.shape[-1]}, C_out); got {w.shape}")
    w = w.astype(x.dtype)
    if impl == "xla":
        return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    k, c_in, c_out = w.shape[0], w.shape[2], w.shape[3]
    if impl == "shifts":
        _check_padding(padding)
        if padding == "SAME":
            lo = (k - 1) // 2
            x = jnp.pad(x, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
        ho, wo = x.shape[1] - k + 1, x.shape[2] - k + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"a {k}x{k} window does not fit a {x.shape[1]}x{x.shape[2]} image with {padding!r}")
        taps = [x[:, i:i + ho, j:j + wo, :] @ w[i, j] for i in range(k) for j in range(k)]
        return sum(taps[1:], taps[0])
    return im2col(x, k, padding) @ jnp.transpose(w, (2, 0, 1, 3)).reshape(c_in * k * k, c_out)
