"""ntkequi's own NNGP/NTK recursions for the networks an ArchSpec describes.

:func:`recursion_kernel_fn` turns a tuple of layers (``ArchSpec.layers()``, the objects of
:mod:`ntkequi.nn.layers`: dense, conv, activation, 2x2 average pool, flatten, global average
pool) into ``kernel_fn(x1, x2=None, get=None)`` with neural-tangents' signature, so
:func:`~ntkequi.kernels.predict`, the structured solver, :func:`~ntkequi.kernels.symmetrize`
and :func:`~ntkequi.kernels.max_learning_rate` use it unchanged. ``ArchSpec.kernel_fn`` is this
kernel for ReLU and erf networks; neural-tangents' kernel of the same spec
(``ArchSpec.kernel_fn_nt``) stays the reference the tests compare against, and is what
``ArchSpec.kernel_fn`` returns for activations without a closed form (gelu).

Each layer owns its step of the recursion (``layer.kernel``; the formulas are in
:mod:`ntkequi.nn.layers`), its shape rule and its band rule; this module owns the pass that
walks them: the inputs' covariance ``S(p, p') = x(p) . x'(p') / C`` (``T = 0``), the state's
layout and masks, the per-input variance pass, the tiling and the fused first block. The layers
are duck-typed here (this module imports no layer), so ntkequi.kernels does not depend on
ntkequi.nn. (Zero outside the image for SAME padding, indices modulo the size for CIRCULAR;
the expectations are over the centred Gaussian with variances ``S_x(p, p)``, ``S_x'(p', p')``
and covariance ``S(p, p')``, :mod:`~ntkequi.kernels.closed_forms`. The conv step moves along
the diagonal ``(p + d, p' + d)``; it is separable, one pass of ``k`` shifted adds per spatial
axis.)

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
(tiles ``I <= J``, mirrored). With several local devices the tiles are spread evenly over them
(``jax.shard_map`` over a one-axis mesh, :func:`kernel_mesh`) and the kernels come back sharded
by rows. The variances a pair needs come from one cheaper pass per
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
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .closed_forms import expectations
from .spatial import N_ROT, band_gather, band_mask, band_mask_np, rotation_maps

__all__ = ["Plan", "recursion_kernel_fn", "RecursionKernelFn", "DEFAULT_BLOCK_BYTES", "kernel_mesh",
           "default_block_bytes"]

#: default memory for one tile of pairs (all its intermediates) on a CPU (cache-sized)
DEFAULT_BLOCK_BYTES = 8 << 20
#: on a device with its own memory, the share of it one tile may use
DEVICE_BLOCK_FRACTION = 1 / 32


def default_block_bytes(devices=None) -> int:
    """Memory for one tile of pairs on ``devices`` (default: the local devices):
    :data:`DEFAULT_BLOCK_BYTES` on CPUs, :data:`DEVICE_BLOCK_FRACTION` of the smallest device's
    own memory on GPUs and TPUs (larger tiles keep an accelerator busy), never less than the
    CPU default."""
    from ._common import device_memory_bytes
    own = device_memory_bytes(devices)
    return DEFAULT_BLOCK_BYTES if own is None else max(DEFAULT_BLOCK_BYTES, int(own * DEVICE_BLOCK_FRACTION))
#: live arrays of the per-pair size a tile holds at once (S, T, the partner variances, temporaries)
_LIVE_ARRAYS = 6


@dataclasses.dataclass(frozen=True)
class Plan:
    """The recursion of one network on inputs of one shape (hashable: it keys the compile cache).

    Attributes:
        layers: the layers (``layer.analytic()``: without the width, irrelevant to the kernel).
        event_shape: per-input shape, ``(H, W, C)`` for a CNN.
        rep: 'band', 'full' (spatial pair covariance) or 'vector' (an MLP).
        sizes: ``(H, W)`` at the input of each layer (``()`` once flat).
        radii: band half-widths ``(Rh, Rw)`` at the input of each layer, which a flatten readout
            needs (the per-input variance pass uses them too: its activations need offset 0 only).
        groups: whether the input of each layer is a regular C4 feature map (after a lifting
            convolution): the pair state then holds 4 blocks per pair, ``m = r' - r`` (the
            covariance of rotation channels r and r' depends on their difference only).
    """
    layers: tuple
    event_shape: tuple
    rep: str
    sizes: tuple
    radii: tuple
    groups: tuple = ()

    @property
    def padding(self) -> str:
        """The convolutions' padding, 'SAME' or 'CIRCULAR' (one for all; 'SAME' without any)."""
        return _padding(self.layers)

    def _floats(self, rep: str, blocks: int = N_ROT) -> int:
        out = 1
        for size, (rh, rw), grouped in zip(self.sizes, self.radii, self.groups or (False,) * len(self.sizes)):
            if size:
                h, w = size
                n = h * w * h * w if rep == "full" else h * w * (2 * rh + 1) * (2 * rw + 1)
                out = max(out, n * (blocks if grouped else 1))
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
        return 1 if self.rep == "vector" else self._floats(self.self_rep, blocks=1)


def _padding(layers) -> str:
    pads = {layer.padding for layer in layers if hasattr(layer, "padding")}
    if len(pads) > 1:
        raise ValueError(f"the recursion takes one padding for all convolutions; got {sorted(pads)}")
    return pads.pop() if pads else "SAME"


def _radii(layers, sizes, final: int):
    """Band half-widths at the input of each layer, walking back from ``final`` at the readout
    (each layer's ``in_radius`` rule)."""
    r = [None] * len(layers)
    cur = (final, final)
    for i in range(len(layers) - 1, -1, -1):
        cur = layers[i].in_radius(cur)
        r[i] = cur if sizes[i] else (0, 0)
    return tuple(r)


def make_plan(layers: tuple, event_shape: tuple) -> Plan:
    """The :class:`Plan` of ``layers`` on inputs of ``event_shape``; ValueError for an input
    rank the network does not take."""
    layers = tuple(layer.analytic() for layer in layers)
    padding = _padding(layers)
    image = any(layer.needs_image for layer in layers)
    if image and len(event_shape) != 3:
        raise ValueError(f"a CNN kernel takes images (N, H, W, C); got inputs of per-sample shape "
                         f"{tuple(event_shape)}")
    sizes, cur = [], tuple(event_shape[:2]) if image else ()
    groups, grouped = [], False
    drops_odd = False
    for layer in layers:
        sizes.append(cur)
        groups.append(grouped)
        grouped = layer.out_grouped(grouped)
        if grouped and cur and cur[0] != cur[1]:
            raise ValueError(f"{layer.kind!r}: C4 rotations act exactly on square pixel grids only; got "
                             f"{cur[0]}x{cur[1]} feature maps (inputs of per-sample shape {tuple(event_shape)}); "
                             f"C8/C16 rotate images by interpolation (ntkequi.groups.rotations, the finite "
                             f"GCNN of ntkequi.nn.gcnn), which no exact kernel has")
        if cur:
            drops_odd = drops_odd or layer.drops_odd_edge(cur)
            try:
                cur = layer.out_size(cur)
            except ValueError as e:
                raise ValueError(f"{e} (inputs of per-sample shape {tuple(event_shape)})") from None
    radii = _radii(layers, sizes, 0)
    if not image:
        rep = "vector"
    elif any(layer.needs_full for layer in layers) or (padding == "CIRCULAR" and drops_odd):
        rep = "full"                     # CIRCULAR bands need even sizes at every pool
    else:
        # the band, unless it is wider than the full covariance (many pools: the offsets a
        # flatten readout needs at the input grow as 2^pools)
        band = max((s[0] * s[1] * (2 * r[0] + 1) * (2 * r[1] + 1) for s, r in zip(sizes, radii) if s), default=1)
        full = max((s[0] * s[1]) ** 2 for s in sizes if s)
        rep = "band" if band <= full else "full"
    return Plan(layers=layers, event_shape=tuple(event_shape), rep=rep, sizes=tuple(sizes), radii=radii,
                groups=tuple(groups))


# ----------------------------------------------------------------------------
# the recursion on a batch of pairs, leading axis B
# ----------------------------------------------------------------------------

def _materialise(gate, s, t):
    """``(s, t)`` unchanged, through a conditional on the runtime predicate ``gate`` (always
    true): XLA fuses neither into the other's consumers across it. Left to itself XLA:CPU
    fuses each layer into every one of the next layer's fusions and recomputes it there
    (several times slower); ``lax.optimization_barrier`` does not survive its CPU pipeline."""
    return jax.lax.cond(gate, lambda a: a, lambda a: jax.tree_util.tree_map(jnp.negative, a), (s, t))


def _fuses_first_block(plan: Plan) -> bool:
    """Whether the pair pass starts with the fused conv (or C4 lifting conv) -> act -> 2x2 pool
    block (:func:`_first_block`): a CNN whose first three layers are those, band or full."""
    return (plan.rep in ("band", "full")
            and tuple(layer.kind for layer in plan.layers[:3]) in (("conv", "act", "pool"), ("lift", "act", "pool")))


def _turned_taps(k: int, c: int, m: int) -> np.ndarray:
    """Index permutation of a ``k x k x c`` patch (tap-major, as :func:`_patches` lays it out):
    entry ``[t, ch]`` of the patch turned by ``m`` quarter turns is entry ``[t', ch]`` of the
    original, ``t'`` the tap at ``M_m d_t`` (:func:`~ntkequi.kernels.spatial.rotation_maps`)."""
    mat = rotation_maps(k)[m]
    r = k // 2
    out = []
    for i in range(k):
        for j in range(k):
            u, v = mat @ np.array([i - r, j - r])
            out += [((u + r) * k + (v + r)) * c + ch for ch in range(c)]
    return np.asarray(out)


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
    """``(S, T)`` at the output of a network's first conv (or C4 lifting conv: 4 rotation
    blocks, each patch paired with the partner's turned patch) -> act -> 2x2 pool block for a tile
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
    conv, act = plan.layers[:2]
    circular = conv.padding == "CIRCULAR"
    k, c = conv.kernel_size, xa.shape[-1]
    t1, t2 = xa.shape[0], xb.shape[0]
    (h, w) = plan.sizes[0]
    hc, wc = 2 * (h // 2), 2 * (w // 2)
    h2, w2 = hc // 2, wc // 2
    scale = conv.W_std ** 2 / (k * k * c)

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
            v = band_gather(v, rh, rw, circular, fill)        # (2, H2, W2, Dh, Dw, 2, t, ...)
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
    (qa, ra, ia), (qb, rb, ib) = va[d:], vb[d:]
    # a lifting convolution: rotation block m pairs each patch with the partner's patch turned by m
    perms = ([_turned_taps(k, c, m) for m in range(N_ROT)] if conv.kind == "lift" else [np.arange(d)])
    blocks = [_first_block_pool(plan, va[:d], [vb[int(j)] for j in perm], (qa, ra, ia), (qb, rb, ib),
                                exact if m == 0 else None, scale, conv.b_std, act.name, need_ntk, (t1, t2))
              for m, perm in enumerate(perms)]
    if len(blocks) == 1:
        return blocks[0]
    stack = lambda parts: jnp.stack(parts, axis=1).reshape((-1,) + parts[0].shape[1:])   # noqa: E731
    return stack([b[0] for b in blocks]), (stack([b[1] for b in blocks]) if need_ntk else None)


def _first_block_pool(plan: Plan, va, vb, roots_a, roots_b, exact, scale, b_std, act_name, need_ntk, tiles):
    """One rotation block of :func:`_first_block` from its patch rows ``va`` and (turned) patch
    columns ``vb``: the conv's covariance, the activation and the 2x2 pool's sums, laid out as
    the pair pass's state."""
    t1, t2 = tiles
    circular = plan.padding == "CIRCULAR"
    (h, w) = plan.sizes[0]
    h2, w2 = h // 2, w // 2
    if plan.rep == "band":
        rh, rw = plan.radii[3]
        s1 = va[0] * vb[0]
        for m in range(1, len(va)):                           # the k x k C patch products
            s1 = s1 + va[m] * vb[m]
    else:
        s1 = jnp.concatenate(va, axis=1) @ jnp.concatenate(vb, axis=0)
    s1 = scale * s1 + b_std ** 2
    (qa, ra, ia), (qb, rb, ib) = roots_a, roots_b
    if exact is not None:
        s1 = jnp.where(exact, qa, s1)
    kk, kdot = expectations(act_name, s1, qa, qb, need_dot=need_ntk,
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
                a = a * np.moveaxis(band_mask_np(h2, w2, rh, rw), (0, 1), (2, 3))
            a = jnp.transpose(a, (0, 1, 4, 5, 2, 3))
        else:                                       # (i, P, Q, j, R, S) -> (i, j, P, Q, R, S)
            a = jnp.transpose(a.reshape(t1, h2, w2, t2, h2, w2), (0, 3, 1, 2, 4, 5))
        res.append(a.reshape((t1 * t2,) + a.shape[2:]))
    return res[0], (res[1] if need_ntk else None)


class _Pass:
    """One forward pass of a :class:`Plan` over a batch of pairs (or of inputs with
    themselves: ``self_mode``). The layers' kernel steps (``layer.kernel(ps, s, t, i)``) read
    the state's layout from it: ``rep``, ``radii``, ``circular``, ``need_ntk``, ``blocks``,
    :meth:`mask`, :meth:`variances`, :meth:`diagonal`, :meth:`by_block` and
    :meth:`activation_inputs`.

    On regular C4 feature maps (``plan.groups``) the state holds ``blocks`` rotation blocks
    ``m = r' - r`` per pair, folded into the leading axis (``b * blocks + m``): 4 in the pair
    pass, 1 (``m = 0``, all the variances need) in the per-input pass."""

    def __init__(self, plan: Plan, need_ntk: bool, self_mode: bool, gate=None):
        self.p, self.need_ntk, self.self_mode, self.gate = plan, need_ntk, self_mode, gate
        self.circular = plan.padding == "CIRCULAR"
        self.rep = plan.self_rep if self_mode else plan.rep
        self.radii = plan.radii
        self.blocks = 1 if self_mode else N_ROT

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
        band = band_gather(xb, rh, rw, self.circular)                      # (B, H, W, Dh, Dw, C)
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
        """The state ``s`` at layer ``i`` with the band's partners outside the image zeroed."""
        if self.rep != "band" or self.circular or s.ndim == 1:
            return s
        (h, w), (rh, rw) = self.p.sizes[i], self.radii[i]
        if rh == rw == 0:                 # the offset 0 only: every partner is inside the image
            return s
        return s * band_mask(h, w, rh, rw, s.dtype)

    def diagonal(self, s, i):
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

    def by_block(self, a, i):
        """``a`` ``(B [* blocks], ...)`` at the input of layer ``i`` as ``(B, blocks, ...)``
        (``blocks = 1`` on plain feature maps)."""
        g = self.blocks if self.p.groups and self.p.groups[i] else 1
        return a.reshape((a.shape[0] // g, g) + a.shape[1:])

    def activation_inputs(self, s, i):
        """``(qa, qb, same)`` for the activation at layer ``i``: the pre-activation variances of the
        pair's two inputs (in self mode those of ``s`` itself, recorded) and the marker of
        pairs of an input with itself (None in self mode), repeated over the rotation blocks of
        a regular feature map (the variances are block 0's; only block 0 pairs a channel with
        itself)."""
        if self.self_mode:
            q = self.variances(s)
            self._qs.append(q)
            return q, q, None
        n = self._n_act
        self._n_act += 1
        qa, qb, same = self._qa[n], self._qb[n], self._same
        if self.p.groups and self.p.groups[i]:
            g = self.blocks
            qa, qb = jnp.repeat(qa, g, axis=0), jnp.repeat(qb, g, axis=0)
            if same is not None:
                same = (same[:, None] & (jnp.arange(g) == 0)[None, :]).reshape(-1)
        return qa, qb, same

    def run(self, xa, xb, qa=None, qb=None, same=None, start=0, state=None):
        """``(S, T, variances)``: the output NNGP and NTK ``(B,)`` (T None without NTK) and,
        in self mode, the pre-activation variances at every activation. ``state``: ``(S, T)``
        at the input of layer ``start`` instead of the inputs' covariance; ``qa``, ``qb``: the
        variances at the activations from layer ``start`` on."""
        s, t = self.initial(xa, xb) if state is None else state
        self._qs, self._qa, self._qb, self._same = [], qa, qb, same
        self._n_act = 0
        for i, layer in enumerate(self.p.layers):
            if i < start:
                continue
            if self.gate is not None and i:
                s, t = _materialise(self.gate, s, t)
            s, t = layer.kernel(self, s, t, i)
        return s, t, self._qs


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


@functools.partial(jax.jit, static_argnames=("plan", "need_ntk", "tile", "symmetric", "mesh"))
def _pair_kernels(plan: Plan, x1, x2, q1, q2, need_ntk: bool, tile: tuple, symmetric: bool, gate=True, mesh=None):
    """``(nngp, ntk)`` of shape ``(N1, N2)`` by tiles of ``t1 x t2`` pairs (square for
    ``symmetric``: only tiles ``I <= J`` are computed and mirrored). With a one-axis ``mesh``
    of several devices the tiles are spread evenly over its devices (``jax.shard_map``) and the
    kernels come back sharded over them by rows."""
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
    fused = _fuses_first_block(plan)

    def rows(a, i, n):
        return jax.lax.dynamic_slice_in_dim(a, i * n, n)

    def pair(a, b):
        return jnp.repeat(a, t2, axis=0), jnp.tile(b, (t1,) + (1,) * (b.ndim - 1))

    def tiles_of(idx, x1p, x2p, q1p, q2p, gate):
        """The tiles ``idx (n, 2)``: ``(s, t)``, each ``(n, t1, t2)``."""
        ps = _Pass(plan, need_ntk=need_ntk, self_mode=False, gate=gate)

        def one(ij_):
            i, j = ij_[0], ij_[1]
            xa_t, xb_t = rows(x1p, i, t1), rows(x2p, j, t2)
            qa_t, qb_t = [rows(q, i, t1) for q in q1p], [rows(q, j, t2) for q in q2p]
            qa, qb = (zip(*[pair(a, b) for a, b in zip(qa_t, qb_t)]) if q1p else ((), ()))
            same = None
            if symmetric:
                r = jnp.arange(t1)
                same = ((i == j) & (r[:, None] == r[None, :])).reshape(-1)
            if fused:
                state = _first_block(plan, xa_t, xb_t, qa_t[0], qb_t[0], same, need_ntk, gate)
                s, t, _ = ps.run(None, None, qa[1:], qb[1:], same, start=3, state=state)
            else:
                xa, xb = pair(xa_t, xb_t)
                s, t, _ = ps.run(xa, xb, qa, qb, same)
            s = s.reshape(t1, t2)
            t = s if t is None else t.reshape(t1, t2)
            return s, t
        return jax.lax.map(one, idx)

    args = (x1p, x2p, q1p, q2p, jnp.asarray(gate))
    if mesh is None:
        s_tiles, t_tiles = tiles_of(jnp.asarray(ij), *args)
    else:                               # an equal share of the tiles per device, in order
        axis = mesh.axis_names[0]
        extra = (-len(ij)) % mesh.size
        spread = np.concatenate([ij, np.repeat(ij[:1], extra, axis=0)])          # padding tiles, dropped
        rep = PartitionSpec()
        s_tiles, t_tiles = jax.shard_map(tiles_of, mesh=mesh, in_specs=(PartitionSpec(axis),) + (rep,) * 5,
                                         out_specs=PartitionSpec(axis))(jnp.asarray(spread), *args)
        # every device gets all tiles (one all-gather), then keeps its rows of the assembled kernel
        s_tiles, t_tiles = (jax.lax.with_sharding_constraint(a[:len(ij)], NamedSharding(mesh, rep))
                            for a in (s_tiles, t_tiles))

    def assemble(tiles):
        if symmetric:                   # diagonal tiles: (i, j) and (j, i) to the same rounding
            diag = (ij[:, 0] == ij[:, 1])[:, None, None]
            tiles = jnp.where(diag, 0.5 * (tiles + jnp.swapaxes(tiles, 1, 2)), tiles)
        out = jnp.zeros((m1, m2, t1, t2), tiles.dtype).at[ij[:, 0], ij[:, 1]].set(tiles)
        if symmetric:
            out = out.at[ij[:, 1], ij[:, 0]].set(jnp.swapaxes(tiles, 1, 2))
        out = jnp.swapaxes(out, 1, 2).reshape(m1 * t1, m2 * t2)[:n1, :n2]
        if mesh is not None:
            out = jax.lax.with_sharding_constraint(out, _row_sharding(mesh, n1))
        return out

    return assemble(s_tiles), (assemble(t_tiles) if need_ntk else None)


def _row_sharding(mesh: Mesh, n: int) -> NamedSharding:
    """Rows over the mesh's devices where ``n`` splits evenly, else replicated on each."""
    spec = PartitionSpec(mesh.axis_names[0], None) if n % mesh.size == 0 else PartitionSpec()
    return NamedSharding(mesh, spec)


def kernel_mesh(devices=None) -> Optional[Mesh]:
    """The one-axis device mesh ``('tiles',)`` a kernel spreads its tiles over, or None for one
    device (the single-device path, unchanged).

    Args:
        devices: None (every local device), a count ``n`` (the first ``n`` local devices), or a
            sequence of devices.

    Returns:
        A :class:`jax.sharding.Mesh`, or None when it would hold one device.

    >>> kernel_mesh(1) is None
    True
    """
    local = jax.local_devices()
    if devices is None:
        chosen = local
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(f"devices must be between 1 and the {len(local)} local device(s); got {devices}")
        chosen = local[:int(devices)]
    else:
        chosen = list(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise ValueError(f"devices must be None, a count or a non-empty sequence of jax devices; got {devices!r}")
    if len(chosen) == 1:
        return None
    return Mesh(np.array(chosen), ("tiles",))


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
    """``kernel_fn(x1, x2=None, get=None)`` of a tuple of layers (see the module doc); callable
    like a neural-tangents kernel_fn (a namedtuple for a tuple ``get`` or None, an array
    ``(N1, N2)`` for a single name), jit-traceable, and hashable by its layers.

    Attributes:
        layers: the layers without their widths (``layer.analytic()``).
        block_bytes: memory for one tile of pairs (None: :func:`default_block_bytes`).
        devices: the devices the tiles are spread over (:func:`kernel_mesh`: None, every local
            device; a count; or a tuple of devices). With several, the kernels come back as
            ``jax.Array`` sharded by rows over them (replicated where the rows do not split
            evenly); with one, the single-device computation.
    """

    def __init__(self, layers: tuple, block_bytes: Optional[int] = None, devices=None):
        layers = tuple(layers)
        bad = [layer for layer in layers if not layer.closed_form]
        if bad:
            raise ValueError(f"{bad[0]!r} has no closed-form kernel here; use neural-tangents' kernel "
                             f"(ArchSpec.kernel_fn_nt, or ntkequi.nn.layers.stax_serial(layers)[2])")
        if block_bytes is None:
            block_bytes = default_block_bytes(None if devices is None or isinstance(devices, (int, np.integer))
                                              else devices)
        if not block_bytes > 0:
            raise ValueError(f"block_bytes must be positive; got {block_bytes}")
        _padding(layers)
        self.layers = tuple(layer.analytic() for layer in layers)
        self.block_bytes = int(block_bytes)
        kernel_mesh(devices)                            # a bad choice is refused here, by name
        self.devices = tuple(devices) if isinstance(devices, (list, tuple)) else devices
        self.__doc__ = RecursionKernelFn.__call__.__doc__

    def _key(self):
        return (self.layers, self.block_bytes, self.devices)

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, RecursionKernelFn) and self._key() == other._key()

    def __repr__(self):
        return f"RecursionKernelFn({', '.join(layer.kind for layer in self.layers)})"

    def plan(self, event_shape: tuple) -> Plan:
        """The :class:`Plan` on inputs of per-sample shape ``event_shape``."""
        return make_plan(self.layers, tuple(event_shape))

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
        return RecursionKernelFn(self.layers, int(block_bytes), self.devices)

    def with_devices(self, devices) -> "RecursionKernelFn":
        """The same kernel with its tiles spread over ``devices`` (see :func:`kernel_mesh`;
        1: the single-device path)."""
        return RecursionKernelFn(self.layers, self.block_bytes, devices)

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
        nngp, ntk = _pair_kernels(plan, x1, x2, q1, q2, need_ntk, tile, symmetric, gate, kernel_mesh(self.devices))
        values = {"nngp": nngp, "ntk": ntk}
        if single:
            return values[gets[0]]
        return _kernel_tuple(gets)(*(values[g] for g in gets))


@functools.lru_cache(maxsize=None)
def _kernel_tuple(gets: tuple):
    return collections.namedtuple("Kernel", gets)


def recursion_kernel_fn(layers: tuple, block_bytes: Optional[int] = None, devices=None) -> RecursionKernelFn:
    """ntkequi's analytic ``kernel_fn(x1, x2=None, get=None)`` of a tuple of layers.

    Args:
        layers: layer objects (:mod:`ntkequi.nn.layers`; ``ArchSpec.layers()``), every
            activation with a closed form (relu, erf).
        block_bytes: memory for one tile of input pairs (None: :func:`default_block_bytes`, which
            follows the devices' own memory).
        devices: the devices its tiles are spread over (None: every local device; see
            :func:`kernel_mesh`).

    Returns:
        A :class:`RecursionKernelFn`.

    >>> import numpy as np
    >>> from ntkequi.nn.layers import Activation, AvgPool2, Conv, Dense, Flatten
    >>> w, b = 2 ** 0.5, 0.1
    >>> layers = (Conv(8, 3, "SAME", w, b), Activation("relu"), AvgPool2(), Flatten(), Dense(1, w, b))
    >>> kfn = recursion_kernel_fn(layers)
    >>> x = np.random.default_rng(0).normal(size=(3, 6, 6, 1))
    >>> k = kfn(x, None, "ntk")
    >>> k.shape, bool(np.allclose(k, k.T))
    ((3, 3), True)
    """
    return RecursionKernelFn(layers, block_bytes, devices)
