"""C4 x Z^2 group-convolutional layers as neural-tangents stax layers.

``LiftingConv`` maps images ``(N, H, W, C)`` to regular feature maps
``(N, 4, H, W, C')`` (axis 1: the rotation r); ``GroupConv`` maps regular feature
maps to regular feature maps. The group axis is treated by neural-tangents as one
more spatial axis, so ``stax.Relu`` (elementwise) and ``stax.GlobalAvgPool`` (mean over
rotations and positions: invariant pooling) compose with them in ``stax.serial``, and
one description gives the finite network (``init_fn``, ``apply_fn``, NTK
parameterisation) and its infinite-width NNGP/NTK (``kernel_fn``).

Finite layers (filters rotated by ``np.rot90``, exactly as :mod:`ntkequi.nn.gcnn`):

    lifting:  z_r(p) = W_std / sqrt(k^2 C) sum_t w[t] . x(p + pos_r(t))           + b_std b
    group:    z_r(p) = W_std / sqrt(4 k^2 C) sum_{t,h} w[t, h - r] . f_h(p + pos_r(t)) + b_std b

where ``pos_r(t)`` is the offset of filter tap t after rotating the k x k filter by
r quarter turns. Infinite width (covariances per channel; zero padding):

    lifting:  S'[r,p; r',p'] = W_std^2 / k^2     sum_t   S[p + pos_r(t); p' + pos_r'(t)] + b_std^2
    group:    S'[r,p; r',p'] = W_std^2 / (4 k^2) sum_t,j S[j+r, p + pos_r(t); j+r', p' + pos_r'(t)] + b_std^2
    NTK:      T' = W_std^2 L(T) + S'   (L the same linear map without the bias)

These are derived here from the layer definitions (cf. Misof, Kessel, Gerken 2025);
they need the full spatial covariance, ``(4 H W)^2`` numbers per pair of inputs, so
they are meant for small images (tested on 5x5 to 8x8).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._compat import stax_layer_api
from ._common import with_pair_cost
from .spatial import N_ROT, rotation_maps

Bool, Diagonal, layer, requires, utils = stax_layer_api()

__all__ = ["LiftingConv", "GroupConv", "tap_offsets", "serial", "pair_floats"]



def tap_offsets(k: int) -> np.ndarray:
    """``(4, k*k, 2)``: offset ``(di, dj)`` from the filter centre of tap t (row-major
    index in the unrotated filter) in the filter rotated by ``np.rot90(w, r)``."""
    idx = np.arange(k * k).reshape(k, k)
    pos = np.zeros((N_ROT, k * k, 2), dtype=int)
    for r in range(N_ROT):
        rot = np.rot90(idx, r)
        for i in range(k):
            for j in range(k):
                pos[r, rot[i, j]] = (i - k // 2, j - k // 2)
    return pos


def _conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _check_k(k):
    if k % 2 != 1:
        raise ValueError(f"filter size must be odd (rotations about the filter centre); got {k}")


def _shifted_sum(a, k, group_in: bool):
    """The linear map L of the module docstring on an unzipped covariance ``a``:
    ``(..., [4,] H, W, [4,] H, W)`` -> ``(..., 4, H, W, 4, H, W)`` (without W_std^2, bias).

    With ``d = pos_r(t)`` running over the filter grid and ``pos_r'(t) = M_m d`` for
    ``m = r' - r``, the (r, r') block depends on m only (after the shift ``j -> j - r`` of the
    group sum): ``W_m(p, p') = 1/k^2 sum_d V_m(p + d, p' + M_m d)`` with ``V_m = S`` (lifting) or
    ``V_m = 1/4 sum_j S[j, ., j + m, .]`` (group conv). So 4 stencils of k^2 shifted slices
    instead of 16, and ``L[r, r'] = W_{r' - r}``."""
    maps = rotation_maps(k)
    c = k // 2
    h, w = a.shape[-2], a.shape[-1]
    offsets = [(di, dj) for di in range(-c, c + 1) for dj in range(-c, c + 1)]
    lead = a.ndim - (6 if group_in else 4)
    ws = []
    for m in range(N_ROT):
        if group_in:
            v = sum(a[..., j, :, :, (j + m) % N_ROT, :, :] for j in range(N_ROT)) / N_ROT
        else:
            v = a
        vp = jnp.pad(v, [(0, 0)] * lead + [(c, c)] * 4)
        acc = 0.0
        for di, dj in offsets:
            ei, ej = maps[m] @ np.array([di, dj])
            acc = acc + vp[..., c + di:c + di + h, c + dj:c + dj + w, c + ei:c + ei + h, c + ej:c + ej + w]
        ws.append(acc / (k * k))
    rows = [jnp.stack([ws[(r2 - r) % N_ROT] for r2 in range(N_ROT)], axis=-3) for r in range(N_ROT)]
    return jnp.stack(rows, axis=-6)                                    # (..., 4_r, H, W, 4_r2, H, W)


def _map_kernel(k, ksize, W_std, b_std, group_in: bool, out_chan: int):
    def lin(mat, n_batch):
        if mat is None:
            return None
        a = utils.unzip_axes(mat, n_batch)
        return utils.zip_axes(_shifted_sum(a, ksize, group_in), n_batch)

    nb_cov = 1 if k.diagonal_batch else 2
    cov1 = W_std ** 2 * lin(k.cov1, nb_cov) + b_std ** 2
    cov2 = None if k.cov2 is None else W_std ** 2 * lin(k.cov2, nb_cov) + b_std ** 2
    nngp = W_std ** 2 * lin(k.nngp, 2) + b_std ** 2
    ntk = None
    if k.ntk is not None:
        # the input layer's NTK is 0 (a scalar): then T' = S'
        ntk = nngp if (k.is_input or jnp.ndim(k.ntk) == 0) else W_std ** 2 * lin(k.ntk, 2) + nngp
    n1, n2 = k.shape1[0], k.shape2[0]
    h, w = k.shape1[-3], k.shape1[-2]
    return k.replace(cov1=cov1, cov2=cov2, nngp=nngp, ntk=ntk, is_gaussian=True, is_input=False,
                     shape1=(n1, N_ROT, h, w, out_chan), shape2=(n2, N_ROT, h, w, out_chan),
                     batch_axis=0, channel_axis=4)


@layer
def LiftingConv(out_chan: int, filter_size: int = 3, W_std: float = math.sqrt(2.0), b_std: float = 0.0):
    """Lifting convolution, images ``(N, H, W, C)`` -> ``(N, 4, H, W, out_chan)``: the
    filter applied in its 4 rotations (SAME zero padding; NTK parameterisation)."""
    _check_k(filter_size)

    def init_fn(rng, input_shape):
        n, h, w, c = input_shape
        k1, k2 = jax.random.split(rng)
        params = (jax.random.normal(k1, (filter_size, filter_size, c, out_chan)),
                  jax.random.normal(k2, (out_chan,)))
        return (n, N_ROT, h, w, out_chan), params

    def apply_fn(params, x, **kwargs):
        wt, b = params
        scale = W_std / math.sqrt(filter_size ** 2 * x.shape[-1])
        out = jnp.stack([_conv(x, jnp.rot90(wt, r, axes=(0, 1)).astype(x.dtype)) for r in range(N_ROT)], axis=1)
        return scale * out + b_std * b

    @requires(batch_axis=0, channel_axis=-1, diagonal_spatial=Diagonal(input=Bool.NO, output=Bool.NO))
    def kernel_fn(k, **kwargs):
        if len(k.shape1) != 4:
            raise ValueError(f"LiftingConv takes images (N, H, W, C); got inputs of shape {k.shape1}")
        return _map_kernel(k, filter_size, W_std, b_std, False, out_chan)

    return init_fn, apply_fn, kernel_fn


@layer
def GroupConv(out_chan: int, filter_size: int = 3, W_std: float = math.sqrt(2.0), b_std: float = 0.0):
    """C4 group convolution, ``(N, 4, H, W, C)`` -> ``(N, 4, H, W, out_chan)``: for output
    rotation r the filter is rotated by r in space and shifted by r along the group axis."""
    _check_k(filter_size)

    def init_fn(rng, input_shape):
        n, g, h, w, c = input_shape
        if g != N_ROT:
            raise ValueError(f"GroupConv takes regular C4 feature maps (N, 4, H, W, C); got {input_shape}")
        k1, k2 = jax.random.split(rng)
        params = (jax.random.normal(k1, (filter_size, filter_size, N_ROT, c, out_chan)),
                  jax.random.normal(k2, (out_chan,)))
        return (n, N_ROT, h, w, out_chan), params

    def apply_fn(params, f, **kwargs):
        wt, b = params
        n, g, h, w, c = f.shape
        flat = jnp.moveaxis(f, 1, 3).reshape(n, h, w, g * c)          # channel index h * C + c
        outs = []
        for r in range(N_ROT):
            filt = jnp.rot90(jnp.roll(wt, r, axis=2), r, axes=(0, 1))   # [.., h, ..] = w[.., h - r, ..]
            outs.append(_conv(flat, filt.reshape(filter_size, filter_size, g * c, out_chan).astype(f.dtype)))
        scale = W_std / math.sqrt(filter_size ** 2 * g * c)
        return scale * jnp.stack(outs, axis=1) + b_std * b

    @requires(batch_axis=0, channel_axis=-1, diagonal_spatial=Diagonal(input=Bool.NO, output=Bool.NO))
    def kernel_fn(k, **kwargs):
        if len(k.shape1) != 5 or k.shape1[1] != N_ROT:
            raise ValueError(f"GroupConv takes regular C4 feature maps (N, 4, H, W, C); got {k.shape1}")
        return _map_kernel(k, filter_size, W_std, b_std, True, out_chan)

    return init_fn, apply_fn, kernel_fn


def pair_floats(event_shape: tuple) -> int:
    """Floats a C4 group-conv kernel holds per pair of ``(H, W, C)`` inputs: the covariance
    of every pair of (rotation, pixel), ``(4 H W)^2``."""
    h, w = int(event_shape[0]), int(event_shape[1])
    return (N_ROT * h * w) ** 2


def serial(*layers):
    """``stax.serial(*layers)`` for a network that starts with a :func:`LiftingConv`:
    ``(init_fn, apply_fn, kernel_fn)`` whose kernel_fn declares :func:`pair_floats` per
    input pair (:func:`ntkequi.kernels.with_pair_cost`), so that ``predict`` refuses a
    call that would not fit in memory."""
    from ..nt import stax
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    return init_fn, apply_fn, with_pair_cost(kernel_fn, pair_floats)
