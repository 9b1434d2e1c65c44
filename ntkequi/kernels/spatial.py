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

__all__ = ["shift_pad", "band_gather", "band_mask_np", "band_mask", "conv_axis", "pool_band_axis", "N_ROT",
           "rotation_maps", "rotated_stencil"]

#: the order of the rotation group of the pixel grid (C4: quarter turns)
N_ROT = 4


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


def rotation_maps(k: int) -> np.ndarray:
    """``(4, 2, 2)`` integer matrices ``M_m``: a filter tap at offset ``d`` from the centre of a
    ``k x k`` filter sits at ``M_m d`` once the filter is turned by ``np.rot90(w, m)`` (a quarter
    turn counterclockwise per ``m``). Checked on the taps themselves.

    >>> rotation_maps(3)[1].tolist()
    [[0, -1], [1, 0]]
    """
    if k % 2 != 1:
        raise ValueError(f"filter size must be odd (rotations about the filter centre); got {k}")
    c = k // 2
    idx = np.arange(k * k).reshape(k, k)
    offsets = np.stack(np.meshgrid(np.arange(k) - c, np.arange(k) - c, indexing="ij"), -1).reshape(-1, 2)
    maps = []
    for m in range(N_ROT):
        turned = np.rot90(idx, m)
        where = np.zeros((k * k, 2), int)                       # tap t's offset in the turned filter
        for i in range(k):
            for j in range(k):
                where[turned[i, j]] = (i - c, j - c)
        mat = np.linalg.matrix_power(np.array([[0, -1], [1, 0]]), m)
        assert np.array_equal(where, offsets @ mat.T), m
        maps.append(mat)
    return np.stack(maps)


def rotated_stencil(a, k: int, m: int, full: bool, circular: bool, r_out=None):
    """The kernel map of a convolution whose two filters are the same filter turned ``m``
    quarter turns apart: ``sum_d a(p + d, p' + M_m d)`` over the ``k x k`` offsets ``d``
    (:func:`rotation_maps`; ``m = 0`` is the plain convolution's joint shift).

    Separable like the plain one: each column of ``M_m`` has one entry, ``+-1``, so component
    ``c`` of ``d`` moves position axis ``c`` by ``d_c`` and one partner axis by ``+-d_c``: two
    passes of ``k`` shifted slices instead of ``k^2``.

    Args:
        a: ``(B, H, W, H, W)`` (``full``) or a band ``(B, H, W, 2Rh + 1, 2Rw + 1)`` holding
            ``a(p, p + delta)``.
        k: the filter size (odd); m: the rotation between the two filters.
        full: the representation of ``a``.
        circular: indices modulo the size (else zero outside the image).
        r_out: band only: the output's half-widths ``(rh, rw)``, at most ``R - 2 (k // 2)``
            (the offset moves by ``(M_m - I) d``, up to ``2 (k // 2)`` per axis).

    Returns:
        The same representation, a band of half-widths ``r_out``.

    >>> a = jnp.zeros((1, 3, 3, 3, 3)).at[0, 1, 2, 0, 1].set(1.0)   # pixel (1, 2) with partner (0, 1)
    >>> out = rotated_stencil(a, 3, 1, full=True, circular=False)
    >>> float(out[0, 1, 1, 1, 0])                                  # d = (0, 1) turns to M_1 d = (-1, 0)
    1.0
    """
    c = k // 2
    mat = rotation_maps(k)[m % N_ROT]
    size = a.shape[1:3]
    if not full:
        rad = ((a.shape[3] - 1) // 2, (a.shape[4] - 1) // 2)
        if r_out[0] > rad[0] - 2 * c or r_out[1] > rad[1] - 2 * c:
            raise ValueError(f"a band of half-widths {rad} gives at most {(rad[0] - 2 * c, rad[1] - 2 * c)} "
                             f"after a turned {k}x{k} stencil; asked {tuple(r_out)}")
    for comp in range(2):                      # one pass per component of the tap offset d
        row = int(np.flatnonzero(mat[:, comp])[0])
        sign = int(mat[row, comp])             # d_comp moves the partner's axis ``row`` by sign d_comp
        pos = 1 + comp
        a = shift_pad(a, pos, c, c, circular)
        if full:
            a = shift_pad(a, 3 + row, c, c, circular)
            moves = {pos: (1, size[comp]), 3 + row: (sign, size[row])}          # axis: (step, length)
        else:                                  # offset = partner - position
            coef = [0, 0]
            coef[comp] -= 1
            coef[row] += sign
            rad = ((a.shape[3] - 1) // 2, (a.shape[4] - 1) // 2)
            new = [rad[i] - abs(coef[i]) * c for i in range(2)]
            moves = {pos: (1, size[comp])}
            starts = {3 + i: (rad[i] - new[i] - c * coef[i], coef[i], 2 * new[i] + 1) for i in range(2)}
        out = 0.0
        for d in range(-c, c + 1):
            sl = [slice(None)] * a.ndim
            for ax, (step, n) in moves.items():
                sl[ax] = slice(c + step * d, c + step * d + n)
            if not full:
                for ax, (st, co, n) in starts.items():
                    sl[ax] = slice(st + c * co + co * d, st + c * co + co * d + n)
            out = out + a[tuple(sl)]
        a = out
    if not full:                               # the plain (m = 0) pass keeps the offsets: crop
        rad = ((a.shape[3] - 1) // 2, (a.shape[4] - 1) // 2)
        a = a[:, :, :, rad[0] - r_out[0]:rad[0] + r_out[0] + 1, rad[1] - r_out[1]:rad[1] + r_out[1] + 1]
    return a
