"""ntkequi's own NNGP/NTK recursions for the networks an ArchSpec describes.

:func:`recursion_kernel_fn` turns a layer list (``ArchSpec.layers()``: dense, conv, act,
2x2 average pool, flatten, global average pool) into ``kernel_fn(x1, x2=None, get=None)``
with neural-tangents' signature, so :func:`~ntkequi.kernels.predict`, the structured
solver, :func:`~ntkequi.kernels.symmetrize` and :func:`~ntkequi.kernels.max_learning_rate`
use it unchanged. ``ArchSpec.kernel_fn`` is this kernel for ReLU and erf networks;
neural-tangents' kernel of the same spec (``ArchSpec.kernel_fn_nt``) stays the reference the
tests compare against, and is what ``ArchSpec.kernel_fn`` returns for activations without a
closed form (gelu).

The recursions (Novak et al. 2019; Arora et al. 2019), NTK parameterisation, per pair of
inputs ``(x, x')`` and per pair of positions ``(p, p')``:

    input:    S(p, p') = x(p) . x'(p') / C,                       T = 0
    conv:     S'(p, p') = W^2 / k^2 sum_d S(p + d, p' + d) + b^2,  T' = W^2 / k^2 sum_d T(p + d, p' + d) + S'
    act:      S' = E[phi(u) phi(v)],                              T' = T E[phi'(u) phi'(v)]
    pool:     S'(P, P') = 1/16 sum_{a, b in {0,1}^2} S(2P + a, 2P' + b)   (and T)
    flatten:  S' = mean_p S(p, p);   gap: S' = mean_{p, p'} S(p, p')   (and T)
    dense:    S' = W^2 S + b^2,      T' = W^2 T + S'

(zero outside the image for SAME padding, indices modulo the size for CIRCULAR; the
expectations are over the centred Gaussian with variances ``S_x(p, p)``, ``S_x'(p', p')`` and
covariance ``S(p, p')``, :mod:`~ntkequi.kernels.closed_forms`). The conv step moves along the
diagonal ``(p + d, p' + d)``; it is separable, one pass of ``k`` shifted adds per spatial
axis.

Two representations of the spatial covariance of a pair:

* **band** (flatten readout): a convolution keeps the offset ``delta = p' - p`` and a 2x2
  pool maps offsets ``|delta| <= 2r + 1`` to ``|Delta| <= r``, so a flatten readout, which needs
  ``delta = 0`` only, needs ``|delta| <= R_l`` at layer ``l`` (``R = 0`` without pooling, 3 at
  the input of two pooled blocks): ``H W (2R + 1)^2`` numbers per pair instead of the
  ``(H W)^2`` neural-tangents tracks once a pooling layer is present;
* **full** (global average pooling, which needs every ``(p, p')``): ``(H W)^2`` per pair.

A network that starts with conv -> act -> 2x2 pool (the OSP table's members, pooled GAP
networks) computes that first block in one step (:func:`_first_block`): the first conv's
covariance is an inner product of ``k x k`` patches, evaluated only for the pixel pairs the
pool reads, then the activation and the pool's sums.

Pairs are computed in square tiles of ``b x b`` input pairs sized to a memory budget
(``block_bytes``), never all pairs at once; ``x2=None`` computes each unordered pair once
(tiles ``I <= J``, mirrored). The variances a pair needs come from one cheaper pass per
input (band with the pooling offsets only).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .closed_forms import CLOSED_FORMS, expectations

__all__ = ["Plan", "recursion_kernel_fn", "RecursionKernelFn", "DEFAULT_BLOCK_BYTES"]

#: default memory for one tile of pairs (all its intermediates)
DEFAULT_BLOCK_BYTES = 8 << 20
#: live arrays of the per-pair size a tile holds at once (S, T, the partner variances, temporaries)
_LIVE_ARRAYS = 6


@dataclasses.dataclass(frozen=True)
class Plan:
    """The recursion of one network on inputs of one shape (hashable: it keys the compile cache).

    Attributes:
        layers: the layer list, as ``ArchSpec.layers()`` (features are irrelevant).
        activation: 'relu' or 'erf'.
        W_std, b_std, kernel_size, padding: as in ArchSpec.
        event_shape: per-input shape, ``(H, W, C)`` for a CNN.
        rep: 'band', 'full' (spatial pair covariance) or 'vector' (an MLP).
        sizes: ``(H, W)`` at the input of each layer (``()`` once flat).
        radii: band half-widths ``(Rh, Rw)`` at the input of each layer, which a flatten readout
            needs (the per-input variance pass uses them too: its activations need offset 0 only).
    """
    layers: tuple
    activation: str
    W_std: float
    b_std: float
    kernel_size: int
    padding: str
    event_shape: tuple
    rep: str
    sizes: tuple
    radii: tuple

    def _floats(self, rep: str) -> int:
        out = 1
        for size, (rh, rw) in zip(self.sizes, self.radii):
            if size:
                h, w = size
                out = max(out, h * w * h * w if rep == "full" else h * w * (2 * rh + 1) * (2 * rw + 1))
        return out

    @property
    def floats_per_pair(self) -> int:
        """Largest number of floats the pair recursion holds per pair of inputs."""
        return 1 if self.rep == "vector" else self._floats(self.rep)

    @property
    def self_rep(self) -> str:
        """Representation of the per-input variance pass: its activations need offset 0 only, so
        the band of the pooling offsets where the pair pass is full, except with CIRCULAR
        padding (whose bands need even sizes at every pool), which keeps the full one."""
        return "band" if self.rep == "full" and self.padding != "CIRCULAR" else self.rep

    @property
    def floats_per_input(self) -> int:
        """The same as :attr:`floats_per_pair` for the per-input variance pass."""
        return 1 if self.rep == "vector" else self._floats(self.self_rep)


def _radii(layers, sizes, final: int):
    """Band half-widths at the input of each layer, walking back from ``final`` at the readout."""
    r = [None] * len(layers)
    cur = (final, final)
    for i in range(len(layers) - 1, -1, -1):
        name = layers[i][0]
        if name in ("flatten", "gap", "dense"):
            cur = (0, 0)
        elif name == "pool":
            cur = (2 * cur[0] + 1, 2 * cur[1] + 1)
        r[i] = cur if sizes[i] else (0, 0)
    return tuple(r)


def make_plan(layers: tuple, activation: str, W_std: float, b_std: float, kernel_size: int,
              padding: str, event_shape: tuple) -> Plan:
    """The :class:`Plan` of ``layers`` on inputs of ``event_shape``; ValueError for an input
    rank the network does not take."""
    layers = tuple((name,) for name, *_ in layers)
    conv = any(name == "conv" for (name,) in layers)
    if conv and len(event_shape) != 3:
        raise ValueError(f"a CNN kernel takes images (N, H, W, C); got inputs of per-sample shape "
                         f"{tuple(event_shape)}")
    sizes, cur = [], tuple(event_shape[:2]) if conv else ()
    pool_odd = False
    for (name,) in layers:
        sizes.append(cur)
        if name == "pool":
            pool_odd = pool_odd or cur[0] % 2 or cur[1] % 2
            cur = (cur[0] // 2, cur[1] // 2)
            if min(cur) < 1:
                raise ValueError(f"2x2 pooling of a {sizes[-1]} feature map leaves nothing; "
                                 f"inputs {tuple(event_shape)} are too small for this network")
        elif name in ("flatten", "gap"):
            cur = ()
    radii = _radii(layers, sizes, 0)
    if not conv:
        rep = "vector"
    elif ("gap",) in layers or (padding == "CIRCULAR" and pool_odd):
        rep = "full"                     # CIRCULAR bands need even sizes at every pool
    else:
        # the band, unless it is wider than the full covariance (many pools: the offsets a
        # flatten readout needs at the input grow as 2^pools)
        band = max((s[0] * s[1] * (2 * r[0] + 1) * (2 * r[1] + 1) for s, r in zip(sizes, radii) if s), default=1)
        full = max((s[0] * s[1]) ** 2 for s in sizes if s)
        rep = "band" if band <= full else "full"
    return Plan(layers=layers, activation=activation, W_std=float(W_std), b_std=float(b_std),
                kernel_size=int(kernel_size), padding=padding, event_shape=tuple(event_shape), rep=rep,
                sizes=tuple(sizes), radii=radii)


# ----------------------------------------------------------------------------
# the recursion on a batch of pairs, leading axis B
# ----------------------------------------------------------------------------

def _shift_pad(a, axis: int, lo: int, hi: int, circular: bool):
    pads = [(0, 0)] * a.ndim
    pads[axis] = (lo, hi)
    return jnp.pad(a, pads, mode="wrap" if circular else "constant")


def _band_gather(v, rh: int, rw: int, circular: bool, fill: float = 0.0):
    """``v (B, H, W, ...)`` -> ``(B, H, W, 2rh+1, 2rw+1, ...)`` with ``[p, d] = v(p + d - r)``
    (``fill`` outside the image, or indices modulo the size). Static slices, no gather
    (XLA:CPU's gather is several times slower)."""
    h, w = v.shape[1:3]
    if rh == rw == 0:
        return v[:, :, :, None, None]
    pads = [(0, 0), (rh, rh), (rw, rw)] + [(0, 0)] * (v.ndim - 3)
    vp = jnp.pad(v, pads, mode="wrap") if circular else jnp.pad(v, pads, constant_values=fill)
    rows = [jnp.stack([vp[:, i:i + h, j:j + w] for j in range(2 * rw + 1)], axis=3)
            for i in range(2 * rh + 1)]
    return jnp.stack(rows, axis=3)


def _band_mask_np(h: int, w: int, rh: int, rw: int, limit=None):
    """``(H, W, 2rh+1, 2rw+1)`` booleans, true where the partner ``p + d - r`` lies in
    ``[0, limit)`` (``limit`` defaults to the image)."""
    lh, lw = limit or (h, w)
    ph = np.arange(h)[:, None] + np.arange(2 * rh + 1)[None, :] - rh
    pw = np.arange(w)[:, None] + np.arange(2 * rw + 1)[None, :] - rw
    mh = (ph >= 0) & (ph < lh)
    mw = (pw >= 0) & (pw < lw)
    return mh[:, None, :, None] & mw[None, :, None, :]


def _band_mask(h: int, w: int, rh: int, rw: int, dtype, limit=None):
    """:func:`_band_mask_np` as an array of ``dtype``."""
    return jnp.asarray(_band_mask_np(h, w, rh, rw, limit), dtype=dtype)


def _conv_axis(a, axes, k: int, circular: bool):
    """Sum of the ``k`` joint shifts ``a[.., p + d, .., p' + d, ..]`` along ``axes`` (one axis
    for a band: the offset is kept; two for the full covariance)."""
    c = k // 2
    for ax in axes:
        a = _shift_pad(a, ax, c, c, circular)
    n = a.shape[axes[0]] - 2 * c
    out = 0.0
    for d in range(k):
        sl = [slice(None)] * a.ndim
        for ax in axes:
            sl[ax] = slice(d, d + n)
        out = out + a[tuple(sl)]
    return out


def _pool_band_axis(a, axis: int, r_out: int):
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


def _materialise(gate, s, t):
    """``(s, t)`` unchanged, through a conditional on the runtime predicate ``gate`` (always
    true): XLA fuses neither into the other's consumers across it. Left to itself XLA:CPU
    fuses each layer into every one of the next layer's fusions and recomputes it there
    (several times slower); ``lax.optimization_barrier`` does not survive its CPU pipeline."""
    return jax.lax.cond(gate, lambda a: a, lambda a: jax.tree_util.tree_map(jnp.negative, a), (s, t))


def _fuses_first_block(plan: Plan) -> bool:
    """Whether the pair pass starts with the fused conv -> act -> 2x2 pool block
    (:func:`_first_block`): a CNN whose first three layers are those, band or full."""
    return plan.rep in ("band", "full") and tuple(n for (n,) in plan.layers[:3]) == ("conv", "act", "pool")


def _patches(x, k: int, circular: bool):
    """``(n, H, W, C)`` -> ``(n, H, W, k^2 C)``: the ``k x k`` neighbourhood of every pixel
    (zeros outside the image, or indices modulo the size)."""
    h, w = x.shape[1:3]
    c = k // 2
    pads = ((0, 0), (c, c), (c, c), (0, 0))
    xp = jnp.pad(x, pads, mode="wrap") if circular else jnp.pad(x, pads)
    return jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(k) for j in range(k)], axis=-1)


def _by_pool_cell(a, hc: int, wc: int):
    """``(n, H, W, ...)`` -> ``(n, H/2, W/2, 2, 2, ...)`` over the pooled ``hc x wc`` crop:
    ``[P, a] = a(2P + a)``."""
    n, rest = a.shape[0], a.shape[3:]
    a = a[:, :hc, :wc].reshape((n, hc // 2, 2, wc // 2, 2) + rest)
    return jnp.moveaxis(a, 2, 3)


def _first_block(plan: Plan, xa, xb, qa, qb, same, need_ntk: bool, gate=None):
    """``(S, T)`` at the output of a network's first conv -> act -> 2x2 pool block for a tile
    of ``t1 x t2`` input pairs, laid out as the pair pass's state there (``(t1 t2, ...)``, pair
    ``(i, j)`` at ``i t2 + j``).

    The first conv's covariance is an inner product of ``k x k`` patches, evaluated for
    exactly the entries the pool reads: pixels ``p = 2P + a`` of input ``i`` with partners
    ``p' = 2P' + b`` of input ``j``, ``P' - P`` in the pooled band (band) or anywhere (full). So
    the activation runs on ``16 (H/2)(W/2)(2r + 1)^2`` entries per pair instead of the
    ``H W (4r + 3)^2`` of the band before the pool, with no stencil passes. The entries are laid
    out as (rows of input ``i``, columns of input ``j``[, pooled pixel ``P``]), so that every
    operand of the one expression that evaluates them is a contiguous row or column
    (XLA:CPU vectorises that, and not the strided reads of a many-axis broadcast).

    Args:
        plan: a plan that :func:`_fuses_first_block`.
        xa, xb: input tiles ``(t1, H, W, C)``, ``(t2, H, W, C)``.
        qa, qb: their pre-activation variances at the first activation, ``(t, H, W)``.
        same: None, or ``(t1 t2,)`` booleans marking pairs of an input with itself (a
            diagonal tile of a symmetric kernel: ``t1 = t2``, pair ``(i, i)``).
        need_ntk: also return T (else None).
        gate: the runtime-true predicate of :func:`_materialise`.
    """
    circular = plan.padding == "CIRCULAR"
    k, c = plan.kernel_size, xa.shape[-1]
    t1, t2 = xa.shape[0], xb.shape[0]
    (h, w) = plan.sizes[0]
    hc, wc = 2 * (h // 2), 2 * (w // 2)
    h2, w2 = hc // 2, wc // 2
    scale = plan.W_std ** 2 / (k * k * c)

    def cells(a):
        """``(t, H, W, ...)`` -> ``(2, 2, t, ..., H2, W2)``: ``[x, y, i, .., P, Q]`` = pixel ``(2P + x, 2Q + y)``."""
        a = _by_pool_cell(a, hc, wc)                          # (t, H2, W2, 2, 2, ...)
        return jnp.moveaxis(a, (3, 4, 1, 2), (0, 1, -2, -1))

    def roots(q):
        r = jnp.sqrt(q)
        return r, jnp.where(r > 0, 1.0 / jnp.where(r > 0, r, 1.0), 0.0)

    pa, pb = cells(_patches(xa, k, circular)), cells(_patches(xb, k, circular))   # (2, 2, t, D, H2, W2)
    qa, qb = cells(qa), cells(qb)                                                  # (2, 2, t, H2, W2)
    d = pa.shape[3]
    va = [pa[:, :, :, m] for m in range(d)] + list((qa,) + roots(qa))
    vb = [pb[:, :, :, m] for m in range(d)] + list((qb,) + roots(qb))
    diag_tile = None if same is None else same.reshape(t1, t2)[0, 0]
    if plan.rep == "band":
        # rows (x, y, i), columns (u, v, j, Dh, Dw), pooled pixel (P, Q) innermost; partner
        # P' = P + Dh - r (zero patches outside the image, dropped by the mask)
        rh, rw = plan.radii[3]
        nd = (2 * rh + 1) * (2 * rw + 1)

        def band(v, fill):
            v = jnp.moveaxis(v, (-2, -1), (1, 2))            # (2, H2, W2, 2, t, ...)
            v = _band_gather(v, rh, rw, circular, fill)       # (2, H2, W2, Dh, Dw, 2, t, ...)
            return jnp.moveaxis(v, (1, 2, 3, 4), (-2, -1, -4, -3))   # (2, 2, t, ..., Dh, Dw, H2, W2)

        va = [v.reshape(4 * t1, 1, h2 * w2) for v in va]
        vb = [band(v, 0.0 if m < d else 1.0).reshape(1, 4 * t2 * nd, h2 * w2) for m, v in enumerate(vb)]
        exact = None
        if same is not None:
            centre = np.full((4 * t2, nd), -1)
            centre[:, nd // 2] = np.arange(4 * t2)
            exact = diag_tile & (np.arange(4 * t1)[:, None, None] == centre.reshape(1, -1, 1))
    else:
        # rows (x, y, i, P, Q), columns (u, v, j, R, S)
        va = [v.reshape(-1, 1) for v in va]
        vb = [v.reshape(1, -1) for v in vb]
        exact = None
        if same is not None:
            exact = diag_tile & np.eye(va[0].shape[0], dtype=bool)
    if gate is not None:       # contiguous before the expression that broadcasts them
        va, vb = _materialise(gate, va, vb)
    if plan.rep == "band":
        s1 = va[0] * vb[0]
        for m in range(1, d):                                 # the k x k C patch products
            s1 = s1 + va[m] * vb[m]
    else:
        s1 = jnp.concatenate(va[:d], axis=1) @ jnp.concatenate(vb[:d], axis=0)
    s1 = scale * s1 + plan.b_std ** 2
    (qa, ra, ia), (qb, rb, ib) = va[d:], vb[d:]
    if exact is not None:
        s1 = jnp.where(exact, qa, s1)
    kk, kdot = expectations(plan.activation, s1, qa, qb, need_dot=need_ntk,
                            roots=(ra, rb, ia, ib), exact=exact)
    # S and T (after the first conv T is its S) as one complex array: XLA:CPU evaluates an
    # elementwise expression once per output it feeds (and slowly inside a reduction), so
    # the activation is evaluated into one array and the pool adds its 16 slices
    z = jax.lax.complex(kk, s1 * kdot) if need_ntk else kk
    # (slices of its leading two axes, which the activation's array keeps: a reshape there
    # would cost XLA:CPU an index computation per entry)
    nr, nc = z.shape[0] // 4, z.shape[1] // 4
    acc = None
    for a in range(4):
        for b in range(4):
            part = z[a * nr:(a + 1) * nr, b * nc:(b + 1) * nc]
            acc = part if acc is None else acc + part
    out = (jnp.real(acc), jnp.imag(acc)) if need_ntk else (acc,)
    res = []
    for a in out:
        a = a / 16
        if plan.rep == "band":                      # (i, j, Dh, Dw, P, Q) -> (i, j, P, Q, Dh, Dw)
            a = a.reshape(t1, t2, 2 * rh + 1, 2 * rw + 1, h2, w2)
            if not circular:
                a = a * np.moveaxis(_band_mask_np(h2, w2, rh, rw), (0, 1), (2, 3))
            a = jnp.transpose(a, (0, 1, 4, 5, 2, 3))
        else:                                       # (i, P, Q, j, R, S) -> (i, j, P, Q, R, S)
            a = jnp.transpose(a.reshape(t1, h2, w2, t2, h2, w2), (0, 3, 1, 2, 4, 5))
        res.append(a.reshape((t1 * t2,) + a.shape[2:]))
    return res[0], (res[1] if need_ntk else None)


class _Pass:
    """One forward pass of a :class:`Plan` over a batch of pairs (or of inputs with
    themselves: ``self_mode``)."""

    def __init__(self, plan: Plan, need_ntk: bool, self_mode: bool, gate=None):
        self.p, self.need_ntk, self.self_mode, self.gate = plan, need_ntk, self_mode, gate
        self.circular = plan.padding == "CIRCULAR"
        self.rep = plan.self_rep if self_mode else plan.rep
        self.radii = plan.radii

    # -- the state: S, T of shape (B,) + spatial; spatial = (H, W, Dh, Dw) | (H, W, H, W) | ()

    def initial(self, xa, xb):
        p = self.p
        if self.rep == "vector" or not p.sizes[0]:
            xa, xb = xa.reshape(xa.shape[0], -1), xb.reshape(xb.shape[0], -1)
            return jnp.sum(xa * xb, axis=-1) / xa.shape[-1], None
        # products summed over channels by broadcasting, not einsum: XLA:CPU turns a
        # dot_general with per-pixel batch dimensions into one tiny matmul per pixel
        c = xa.shape[-1]
        if self.rep == "full":
            return jnp.sum(xa[:, :, :, None, None, :] * xb[:, None, None, :, :, :], axis=-1) / c, None
        rh, rw = self.radii[0]
        band = _band_gather(xb, rh, rw, self.circular)                     # (B, H, W, Dh, Dw, C)
        return jnp.sum(xa[:, :, :, None, None, :] * band, axis=-1) / c, None

    def variances(self, s):
        """``(B, H, W)`` (or ``(B,)``) diagonal ``S(p, p)`` of a state (in self mode: the variances)."""
        if s.ndim == 1:
            return s
        if self.rep == "full":
            return jnp.einsum("bhwhw->bhw", s)
        rh, rw = (s.shape[3] - 1) // 2, (s.shape[4] - 1) // 2
        return s[:, :, :, rh, rw]

    def mask(self, s, i):
        if self.rep != "band" or self.circular or s.ndim == 1:
            return s
        (h, w), (rh, rw) = self.p.sizes[i], self.radii[i]
        if rh == rw == 0:                 # the offset 0 only: every partner is inside the image
            return s
        return s * _band_mask(h, w, rh, rw, s.dtype)

    def conv(self, s, t, i):
        p = self.p
        k = p.kernel_size
        scale = p.W_std ** 2 / (k * k)
        axes = [(1, 3), (2, 4)] if self.rep == "full" else [(1,), (2,)]
        lin = lambda a: _conv_axis(_conv_axis(a, axes[0], k, self.circular), axes[1], k, self.circular)
        s_new = self.mask(scale * lin(s) + p.b_std ** 2, i)
        t_new = None
        if self.need_ntk:
            t_new = s_new if t is None else self.mask(scale * lin(t), i) + s_new
        return s_new, t_new

    def dense(self, s, t):
        p = self.p
        s_new = p.W_std ** 2 * s + p.b_std ** 2
        t_new = None if not self.need_ntk else (s_new if t is None else p.W_std ** 2 * t + s_new)
        return s_new, t_new

    def _diagonal(self, s, i):
        """Indicator of the entries ``p = p'`` of a state."""
        if s.ndim == 1:
            return np.ones((), bool)
        if self.rep == "full":
            h, w = s.shape[1:3]
            return np.eye(h * w, dtype=bool).reshape(h, w, h, w)
        rh, rw = self.radii[i]
        d = np.zeros(s.shape[1:], bool)
        d[:, :, rh, rw] = True
        return d

    def act(self, s, t, qa, qb, i, same=None):
        if same is not None:
            # a pair of an input with itself: S(p, p) is its variance, exactly (then
            # s / sqrt(q q) is exactly 1; one rounding error there would become a 1e-8
            # relative error through the square root of the ReLU kernel)
            exact = same.reshape((-1,) + (1,) * (s.ndim - 1)) & self._diagonal(s, i)
            qd = qa if s.ndim == 1 else qa.reshape(qa.shape + (1,) * (s.ndim - 3))
            s = jnp.where(exact, qd, s)
        need_dot = self.need_ntk and t is not None
        if s.ndim == 1:
            q1, q2 = qa, qb
        elif self.rep == "full":
            q1, q2 = qa[:, :, :, None, None], qb[:, None, None, :, :]
        else:
            rh, rw = self.radii[i]
            q1 = qa[:, :, :, None, None]
            q2 = _band_gather(qb, rh, rw, self.circular, fill=1.0)
        k, kdot = expectations(self.p.activation, s, q1, q2, need_dot=need_dot)
        k = self.mask(k, i)
        if need_dot:
            t = self.mask(t * kdot, i)
        return k, t

    def pool(self, a, i):
        if a is None:
            return None
        (h, w), (rh, rw) = self.p.sizes[i], self.radii[i]
        hc, wc = 2 * (h // 2), 2 * (w // 2)
        if self.rep == "full":
            a = a[:, :hc, :wc, :hc, :wc]
            b = a.shape[0]
            return a.reshape(b, hc // 2, 2, wc // 2, 2, hc // 2, 2, wc // 2, 2).mean(axis=(2, 4, 6, 8))
        if (hc, wc) != (h, w):      # odd size (SAME only): drop partners in the cropped row/column
            a = a * _band_mask(h, w, rh, rw, a.dtype, limit=(hc, wc))
        a = a[:, :hc, :wc]
        return _pool_band_axis(_pool_band_axis(a, 1, (rh - 1) // 2), 2, (rw - 1) // 2)

    def readout(self, a, name):
        if a is None or a.ndim == 1:
            return a
        if name == "gap":
            return a.mean(axis=tuple(range(1, a.ndim)))
        return self.variances(a).mean(axis=(1, 2))        # flatten: the diagonal p = p'


    def run(self, xa, xb, qa=None, qb=None, same=None, start=0, state=None):
        """``(S, T, variances)``: the output NNGP and NTK ``(B,)`` (T None without NTK) and,
        in self mode, the pre-activation variances at every activation. ``state``: ``(S, T)``
        at the input of layer ``start`` instead of the inputs' covariance."""
        s, t = self.initial(xa, xb) if state is None else state
        qs = []
        n_act = sum(name == "act" for (name,) in self.p.layers[:start])
        for i, (name,) in enumerate(self.p.layers):
            if i < start:
                continue
            if self.gate is not None and i:
                s, t = _materialise(self.gate, s, t)
            if name == "conv":
                s, t = self.conv(s, t, i)
            elif name == "dense":
                s, t = self.dense(s, t)
            elif name == "act":
                if self.self_mode:
                    q = self.variances(s)
                    qs.append(q)
                    s, t = self.act(s, t, q, q, i)
                else:
                    s, t = self.act(s, t, qa[n_act], qb[n_act], i, same)
                n_act += 1
            elif name == "pool":
                s, t = self.pool(s, i), self.pool(t, i)
            elif name in ("flatten", "gap"):
                s, t = self.readout(s, name), self.readout(t, name)
        return s, t, qs


# ----------------------------------------------------------------------------
# tiling
# ----------------------------------------------------------------------------

def _tile_shape(plan: Plan, itemsize: int, block_bytes: int, n1: int, n2: int) -> tuple:
    """``(t1, t2)``: the most input pairs per tile within ``block_bytes``, near-square, and
    splitting ``n1``, ``n2`` into nearly equal tiles (little padding)."""
    per_pair = plan.floats_per_pair * itemsize * _LIVE_ARRAYS
    pairs = max(1, block_bytes // per_pair)
    b = max(1, math.isqrt(pairs))
    t1 = min(n1, b)
    t2 = min(n2, max(b, pairs // t1))
    t1 = -(-n1 // -(-n1 // t1))             # equalise the tiles
    t2 = -(-n2 // -(-n2 // t2))
    return t1, t2


def _pad_rows(x, n: int):
    return x if x.shape[0] == n else jnp.concatenate([x, jnp.zeros((n - x.shape[0],) + x.shape[1:], x.dtype)])


@functools.partial(jax.jit, static_argnames=("plan", "chunk"))
def _input_variances(plan: Plan, x, chunk: int, gate=True):
    """Pre-activation variances of every input at every activation, in chunks of ``chunk``."""
    n = x.shape[0]
    m = -(-n // chunk)
    xp = _pad_rows(x, m * chunk).reshape((m, chunk) + x.shape[1:])
    ps = _Pass(plan, need_ntk=False, self_mode=True, gate=gate)
    qs = jax.lax.map(lambda xc: ps.run(xc, xc)[2], xp)
    return [q.reshape((m * chunk,) + q.shape[2:])[:n] for q in qs]


@functools.partial(jax.jit, static_argnames=("plan", "need_ntk", "tile", "symmetric"))
def _pair_kernels(plan: Plan, x1, x2, q1, q2, need_ntk: bool, tile: tuple, symmetric: bool, gate=True):
    """``(nngp, ntk)`` of shape ``(N1, N2)`` by tiles of ``t1 x t2`` pairs (square for
    ``symmetric``: only tiles ``I <= J`` are computed and mirrored)."""
    n1, n2 = x1.shape[0], x2.shape[0]
    t1, t2 = tile
    m1, m2 = -(-n1 // t1), -(-n2 // t2)
    x1p, x2p = _pad_rows(x1, m1 * t1), _pad_rows(x2, m2 * t2)
    q1p = [_pad_rows(q, m1 * t1) for q in q1]
    q2p = [_pad_rows(q, m2 * t2) for q in q2]
    if symmetric:
        ij = np.array([(i, j) for i in range(m1) for j in range(i, m2)], dtype=np.int32)
    else:
        ij = np.array([(i, j) for i in range(m1) for j in range(m2)], dtype=np.int32)
    ps = _Pass(plan, need_ntk=need_ntk, self_mode=False, gate=gate)

    def rows(a, i, n):
        return jax.lax.dynamic_slice_in_dim(a, i * n, n)

    def pair(a, b):
        return jnp.repeat(a, t2, axis=0), jnp.tile(b, (t1,) + (1,) * (b.ndim - 1))

    fused = _fuses_first_block(plan)

    def one(idx):
        i, j = idx[0], idx[1]
        xa_t, xb_t = rows(x1p, i, t1), rows(x2p, j, t2)
        qa_t, qb_t = [rows(q, i, t1) for q in q1p], [rows(q, j, t2) for q in q2p]
        qa, qb = (zip(*[pair(a, b) for a, b in zip(qa_t, qb_t)]) if q1p else ((), ()))
        same = None
        if symmetric:
            r = jnp.arange(t1)
            same = ((i == j) & (r[:, None] == r[None, :])).reshape(-1)
        if fused:
            state = _first_block(plan, xa_t, xb_t, qa_t[0], qb_t[0], same, need_ntk, gate)
            s, t, _ = ps.run(None, None, qa, qb, same, start=3, state=state)
        else:
            xa, xb = pair(xa_t, xb_t)
            s, t, _ = ps.run(xa, xb, qa, qb, same)
        s = s.reshape(t1, t2)
        t = s if t is None else t.reshape(t1, t2)
        return s, t

    s_tiles, t_tiles = jax.lax.map(one, jnp.asarray(ij))

    def assemble(tiles):
        if symmetric:                   # diagonal tiles: (i, j) and (j, i) to the same rounding
            diag = (ij[:, 0] == ij[:, 1])[:, None, None]
            tiles = jnp.where(diag, 0.5 * (tiles + jnp.swapaxes(tiles, 1, 2)), tiles)
        out = jnp.zeros((m1, m2, t1, t2), tiles.dtype).at[ij[:, 0], ij[:, 1]].set(tiles)
        if symmetric:
            out = out.at[ij[:, 1], ij[:, 0]].set(jnp.swapaxes(tiles, 1, 2))
        return jnp.swapaxes(out, 1, 2).reshape(m1 * t1, m2 * t2)[:n1, :n2]

    return assemble(s_tiles), (assemble(t_tiles) if need_ntk else None)


# ----------------------------------------------------------------------------
# the kernel_fn
# ----------------------------------------------------------------------------

def _canonical_get(get):
    if get is None:
        return ("nngp", "ntk"), False
    if isinstance(get, str):
        gets = (get,)
        single = True
    else:
        gets, single = tuple(get), False
    bad = [g for g in gets if g not in ("nngp", "ntk")]
    if bad or not gets:
        raise ValueError(f"get must be 'nngp', 'ntk', a tuple of them or None; got {get!r}")
    return gets, single


class RecursionKernelFn:
    """``kernel_fn(x1, x2=None, get=None)`` of a layer list (see the module doc); callable
    like a neural-tangents kernel_fn (a namedtuple for a tuple ``get`` or None, an array
    ``(N1, N2)`` for a single name), jit-traceable, and hashable by its layers.

    Attributes:
        block_bytes: memory for one tile of pairs.
    """

    def __init__(self, layers: tuple, activation: str, W_std: float, b_std: float,
                 kernel_size: int = 3, padding: str = "SAME", block_bytes: int = DEFAULT_BLOCK_BYTES):
        if activation not in CLOSED_FORMS:
            raise ValueError(f"activation {activation!r} has no closed form here ({CLOSED_FORMS}); "
                             f"use neural-tangents' kernel (ArchSpec.kernel_fn_nt)")
        if not block_bytes > 0:
            raise ValueError(f"block_bytes must be positive; got {block_bytes}")
        self.layers = tuple((name,) for name, *_ in layers)
        self.activation, self.W_std, self.b_std = activation, float(W_std), float(b_std)
        self.kernel_size, self.padding, self.block_bytes = int(kernel_size), padding, int(block_bytes)
        self.__doc__ = RecursionKernelFn.__call__.__doc__

    def _key(self):
        return (self.layers, self.activation, self.W_std, self.b_std, self.kernel_size, self.padding,
                self.block_bytes)

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, RecursionKernelFn) and self._key() == other._key()

    def __repr__(self):
        return (f"RecursionKernelFn({self.activation}, {len(self.layers)} layers, W_std={self.W_std:g}, "
                f"b_std={self.b_std:g}, k={self.kernel_size}, {self.padding})")

    def plan(self, event_shape: tuple) -> Plan:
        """The :class:`Plan` on inputs of per-sample shape ``event_shape``."""
        return make_plan(self.layers, self.activation, self.W_std, self.b_std, self.kernel_size,
                         self.padding, tuple(event_shape))

    def floats_per_pair(self, event_shape: tuple) -> int:
        """Floats held per input pair while a tile is computed (see :class:`Plan`)."""
        return self.plan(event_shape).floats_per_pair

    def intermediate_bytes(self, event_shape: tuple, itemsize: int, pairs: Optional[int] = None) -> int:
        """Peak bytes of the per-pair intermediates for ``pairs`` input pairs at most (one
        tile: ``block_bytes``, or less when fewer pairs are asked for; at least one pair),
        which ``predict``'s memory guard adds to the stored kernels."""
        one = self.floats_per_pair(event_shape) * itemsize * _LIVE_ARRAYS
        tile = self.block_bytes if pairs is None else min(self.block_bytes, int(pairs) * one)
        return int(max(tile, one))

    def with_block_bytes(self, block_bytes: int) -> "RecursionKernelFn":
        """The same kernel computed in tiles of at most ``block_bytes``."""
        return RecursionKernelFn(self.layers, self.activation, self.W_std, self.b_std, self.kernel_size,
                                 self.padding, int(block_bytes))

    def __call__(self, x1, x2=None, get=None, **kwargs):
        """NNGP and/or NTK between ``x1 (N1, ...)`` and ``x2 (N2, ...)`` (``x2=None``: ``x1``).

        Args:
            x1: inputs ``(N1, ...)`` (images ``(N, H, W, C)`` for a CNN).
            x2: inputs ``(N2, ...)`` of the same per-sample shape, or None.
            get: 'nngp', 'ntk', a tuple of them, or None (both).

        Returns:
            ``(N1, N2)`` array for a single name, else a namedtuple with fields ``get``.
        """
        if kwargs:
            raise TypeError(f"this kernel_fn takes no keyword arguments; got {sorted(kwargs)}")
        gets, single = _canonical_get(get)
        x1 = jnp.asarray(x1)
        if not jnp.issubdtype(x1.dtype, jnp.floating):
            x1 = x1.astype(jnp.result_type(float))
        if x1.ndim < 2:
            raise ValueError(f"x1 must be a batch (N, ...); got shape {x1.shape}")
        symmetric = x2 is None
        x2 = x1 if symmetric else jnp.asarray(x2, dtype=x1.dtype)
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(f"x2 per-sample shape {x2.shape[1:]} differs from x1's {x1.shape[1:]}")
        plan = self.plan(x1.shape[1:])
        itemsize = jnp.dtype(x1.dtype).itemsize
        need_ntk = "ntk" in gets
        n1, n2 = x1.shape[0], x2.shape[0]
        tile = _tile_shape(plan, itemsize, self.block_bytes, n1, n2)
        if symmetric:
            tile = (min(tile),) * 2
        chunk = max(1, min(x1.shape[0], self.block_bytes // max(1, itemsize * _LIVE_ARRAYS * plan.floats_per_input)))
        # true for finite inputs, and a runtime value even under an outer jit (see _materialise)
        gate = jnp.all(jnp.isfinite(x1[:1]))
        q1 = _input_variances(plan, x1, chunk, gate)
        q2 = q1 if symmetric else _input_variances(plan, x2, min(chunk, x2.shape[0]), gate)
        nngp, ntk = _pair_kernels(plan, x1, x2, q1, q2, need_ntk, tile, symmetric, gate)
        values = {"nngp": nngp, "ntk": ntk}
        if single:
            return values[gets[0]]
        return _kernel_tuple(gets)(*(values[g] for g in gets))


@functools.lru_cache(maxsize=None)
def _kernel_tuple(gets: tuple):
    return collections.namedtuple("Kernel", gets)


def recursion_kernel_fn(layers: tuple, activation: str, W_std: float, b_std: float, kernel_size: int = 3,
                        padding: str = "SAME", block_bytes: int = DEFAULT_BLOCK_BYTES) -> RecursionKernelFn:
    """ntkequi's analytic ``kernel_fn(x1, x2=None, get=None)`` of a layer list.

    Args:
        layers: ``ArchSpec.layers()``: tuples ('dense', n), ('conv', n), ('act',), ('pool',),
            ('flatten',), ('gap',).
        activation: 'relu' or 'erf' (closed forms; others: neural-tangents' kernel).
        W_std: weight standard deviation (NTK parameterisation).
        b_std: bias standard deviation.
        kernel_size: odd filter size of the convolutions.
        padding: 'SAME' (zeros) or 'CIRCULAR'.
        block_bytes: memory for one tile of input pairs.

    Returns:
        A :class:`RecursionKernelFn`.

    >>> import numpy as np
    >>> layers = (("conv", 8), ("act",), ("pool",), ("flatten",), ("dense", 1))
    >>> kfn = recursion_kernel_fn(layers, "relu", W_std=2 ** 0.5, b_std=0.1)
    >>> x = np.random.default_rng(0).normal(size=(3, 6, 6, 1))
    >>> k = kfn(x, None, "ntk")
    >>> k.shape, bool(np.allclose(k, k.T))
    ((3, 3), True)
    """
    return RecursionKernelFn(layers, activation, W_std, b_std, kernel_size, padding, block_bytes)
