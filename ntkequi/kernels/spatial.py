"""The spatial covariance of a pair of inputs, as the kernel recursions hold it: shifts, bands
of pixel offsets and their masks, the conv stencil and the 2x2 pool of a band.

A **band** ``(B, H, W, 2rh + 1, 2rw + 1, ...)`` holds ``S(p, p + d - r)``: the covariance of
pixel ``p`` with the partners at offsets ``|d - r| <= r`` (zero, or the wrapped pixel, outside
the image). The **full** covariance ``(B, H, W, H, W)`` holds every pair. The layer kernel steps
(:mod:`ntkequi.nn.layers`) and the fused first block (:mod:`~ntkequi.kernels.recursions`) are
written with these; every one is static slicing and adds (XLA:CPU's gather is several times
slower).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["shift_pad", "band_gather", "band_mask_np", "band_mask", "conv_axis", "pool_band_axis"]


def shift_pad(a, axis: int, lo: int, hi: int, circular: bool):
    """``a`` padded by ``lo``, ``hi`` entries along ``axis`` (zeros, or wrapped if ``circular``)."""
    pads = [(0, 0)] * a.ndim
    pads[axis] = (lo, hi)
    return jnp.pad(a, pads, mode="wrap" if circular else "constant")


def band_gather(v, rh: int, rw: int, circular: bool, fill: float = 0.0):
    """``v (B, H, W, ...)`` -> ``(B, H, W, 2rh+1, 2rw+1, ...)`` with ``[p, d] = v(p + d - r)``
    (``fill`` outside the image, or indices modulo the size).

    >>> v = jnp.arange(3.0).reshape(1, 3, 1)
    >>> band_gather(v, 1, 0, circular=False)[0, :, 0, :, 0].tolist()
    [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 0.0]]
    """
    h, w = v.shape[1:3]
    if rh == rw == 0:
        return v[:, :, :, None, None]
    pads = [(0, 0), (rh, rh), (rw, rw)] + [(0, 0)] * (v.ndim - 3)
    vp = jnp.pad(v, pads, mode="wrap") if circular else jnp.pad(v, pads, constant_values=fill)
    rows = [jnp.stack([vp[:, i:i + h, j:j + w] for j in range(2 * rw + 1)], axis=3)
            for i in range(2 * rh + 1)]
    return jnp.stack(rows, axis=3)


def band_mask_np(h: int, w: int, rh: int, rw: int, limit=None):
    """``(H, W, 2rh+1, 2rw+1)`` booleans, true where the partner ``p + d - r`` lies in
    ``[0, limit)`` (``limit`` defaults to the image)."""
    lh, lw = limit or (h, w)
    ph = np.arange(h)[:, None] + np.arange(2 * rh + 1)[None, :] - rh
    pw = np.arange(w)[:, None] + np.arange(2 * rw + 1)[None, :] - rw
    mh = (ph >= 0) & (ph < lh)
    mw = (pw >= 0) & (pw < lw)
    return mh[:, None, :, None] & mw[None, :, None, :]


def band_mask(h: int, w: int, rh: int, rw: int, dtype, limit=None):
    """:func:`band_mask_np` as an array of ``dtype``."""
    return jnp.asarray(band_mask_np(h, w, rh, rw, limit), dtype=dtype)


def conv_axis(a, axes, k: int, circular: bool):
    """Sum of the ``k`` joint shifts ``a[.., p + d, .., p' + d, ..]`` along ``axes`` (one axis
    for a band: the offset is kept; two for the full covariance)."""
    c = k // 2
    for ax in axes:
        a = shift_pad(a, ax, c, c, circular)
    n = a.shape[axes[0]] - 2 * c
    out = 0.0
    for d in range(k):
        sl = [slice(None)] * a.ndim
        for ax in axes:
            sl[ax] = slice(d, d + n)
        out = out + a[tuple(sl)]
    return out


def pool_band_axis(a, axis: int, r_out: int):
    """2x2 pooling of a band along one spatial ``axis`` (1 or 2; its offset axis is ``axis + 2``):
    ``[P, Delta] = 1/4 sum_{x, y in {0, 1}} a[2P + x, 2 Delta + y - x]`` (offsets ``|Delta| <= r_out``
    from ``|delta| <= 2 r_out + 1``)."""
    acc = 0.0
    for x in (0, 1):
        for y in (0, 1):
            st = 1 + y - x
            sl = [slice(None)] * a.ndim
            sl[axis] = slice(x, None, 2)
            sl[axis + 2] = slice(st, st + 4 * r_out + 1, 2)
            acc = acc + a[tuple(sl)]
    return acc / 4
