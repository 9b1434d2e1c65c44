"""E2CNN-style group-equivariant CNN for the rotation group C_n acting on images.

Regular-representation feature maps ``(N, H, W, n, C)`` (one channel block per
rotation). Layers:

* lifting convolution: the filter ``psi (k, k, C_in, C)`` is rotated by every
  element r (``out[:, :, :, r] = x * (r . psi)``, cross-correlation);
* group convolution: ``psi (k, k, n, C_in, C)``; for output rotation r the filter
  is ``(r . psi)(delta, h - r)``: rotated in space and cyclically shifted along the
  group axis;
* invariant pooling: mean over space, max over the group axis (or, with ``rings``, max over
  the group axis, then the mean over each of ``rings`` rings about the image centre, which
  rotations map onto themselves), then a Dense readout.

Filters are rotated with the same :func:`ntkequi.groups.rotations` action as the
images: exact pixel permutations for multiples of 90 degrees (so the network is
exactly C4-invariant, also with 2x2 average pooling on 28 -> 14 -> 7 grids), bilinear
interpolation for the other angles of C8 / C16 (as E2CNN interpolates rotated
filters), which leaves a measurable invariance error.

Convention (what makes it equivariant): with ``(g x)(p) = x(g^-1 p)`` the lifted map
of ``g x`` at rotation r equals the lifted map of x at ``g^-1 r``, rotated in space;
the group convolution keeps that property, and the final pooling removes it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..groups import rotations
from .layers import avg_pool2
from .conv import conv2d


@dataclasses.dataclass(frozen=True)
class GCNNSpec:
    """C_n group CNN: a lifting layer then ``depth`` group convolutions, each followed
    by ReLU (and a 2x2 average pool if ``pool``); invariant pooling; a readout of
    ``head`` hidden ReLU units (0: none) and a Dense output layer.

    rings: 0 pools the last feature map over all of space (``channels`` invariant
        features); ``rings > 0`` keeps where a feature is by its distance from the centre:
        max over rotations at each pixel, then the mean over each of ``rings`` equal-width
        rings (``rings * channels`` invariant features).

    channels: channels per rotation of each regular feature map (``n * channels``
        feature maps), one int for every layer or a tuple of ``depth + 1`` (the lifting
        layer's first). The last layer's count is the number of invariant features the
        readout sees. :func:`channels_for` keeps the parameter count of the group
        convolutions roughly fixed across n.

    >>> GCNNSpec(n=8, depth=2, channels=(8, 16, 32), head=64).invariant_features
    32
    >>> GCNNSpec(n=8, depth=2, channels=(8, 16, 32), head=64, rings=4).invariant_features
    128
    """
    n: int = 4
    depth: int = 1
    channels: Union[int, tuple] = 8
    kernel_size: int = 5
    out_dim: int = 10
    pool: bool = True
    head: int = 0
    rings: int = 0

    def __post_init__(self):
        if self.n < 1 or self.depth < 0 or self.out_dim < 1 or self.head < 0 or self.rings < 0:
            raise ValueError(f"GCNNSpec needs n, out_dim >= 1 and depth, head, rings >= 0; got {self}")
        if isinstance(self.channels, (tuple, list)):
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
            if len(self.channels) != self.depth + 1:
                raise ValueError(f"GCNNSpec.channels {self.channels} must have depth + 1 = {self.depth + 1} "
                                 f"entries (lifting layer, then each group convolution)")
        if min(self.layer_channels) < 1:
            raise ValueError(f"GCNNSpec.channels must be >= 1; got {self.channels}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"GCNNSpec.kernel_size must be odd (rotations about the filter centre); "
                             f"got {self.kernel_size}")

    @property
    def layer_channels(self) -> tuple:
        """Channels per rotation of the lifting layer and of each group convolution."""
        c = self.channels
        return c if isinstance(c, tuple) else (int(c),) * (self.depth + 1)

    @property
    def invariant_features(self) -> int:
        """Width of the invariant feature vector the readout sees (the last layer's channels,
        times ``rings`` if ``rings``)."""
        return self.layer_channels[-1] * max(1, self.rings)

    def flax(self) -> "GroupConvNet":
        """The Flax module of this spec."""
        return GroupConvNet(self)


def channels_for(n: int, c4_channels):
    """Channels per rotation so that group-conv parameters (``n * c^2``) match C4 with
    ``c4_channels``: ``round(c4_channels * sqrt(4 / n))``, at least 2 (elementwise for a
    tuple of per-layer channels).

    >>> channels_for(16, 8), channels_for(16, (16, 32))
    (4, (8, 16))
    """
    if isinstance(c4_channels, (tuple, list)):
        return tuple(channels_for(n, c) for c in c4_channels)
    return max(2, int(round(c4_channels * math.sqrt(4.0 / n))))


def filter_bank(w, n: int):
    """All C_n rotations of filters ``w (k, k, ...)``: ``(n, k, k, ...)``, element r =
    rotation by ``2 pi r / n`` counter-clockwise (exact for multiples of 90 degrees)."""
    k = w.shape[0]
    flat = w.reshape(1, k, k, -1)
    return rotations(n, (k, k)).orbit(flat)[:, 0].reshape((n,) + w.shape)


def lifting_filters(w, n: int):
    """``w (k, k, C_in, C)`` -> the lifting conv's filter ``(k, k, C_in, n * C)``,
    output channel ``r * C + c``."""
    bank = filter_bank(w, n)                                   # (n, k, k, Ci, C)
    k, ci, c = w.shape[0], w.shape[2], w.shape[3]
    return bank.transpose(1, 2, 3, 0, 4).reshape(k, k, ci, n * c)


def group_conv_filters(w, n: int):
    """``w (k, k, n, C_in, C)`` -> the group conv's filter ``(k, k, n * C_in, n * C)``:
    input channel ``h * C_in + i``, output channel ``r * C + c``, value
    ``(r . w)[delta, (h - r) mod n, i, c]``."""
    bank = filter_bank(w, n)                                   # (r, k, k, h, Ci, C)
    shifted = jax.vmap(lambda b, r: jnp.roll(b, r, axis=2))(bank, jnp.arange(n))
    k, ci, c = w.shape[0], w.shape[3], w.shape[4]
    return shifted.transpose(1, 2, 3, 4, 0, 5).reshape(k, k, n * ci, n * c)


def ring_means(h: int, w: int, rings: int) -> np.ndarray:
    """``(h, w, rings)`` weights averaging an ``h x w`` map over ``rings`` equal-width rings
    about its centre (distance ``d`` to ring ``floor(rings d / d_max)``, the corners in the
    last). A rotation about the centre by a multiple of 90 degrees maps every ring onto itself.

    >>> ring_means(3, 3, 2)[..., 0]
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]])

    Raises:
        ValueError: if a ring holds no pixel (``rings`` too large for the map).
    """
    i, j = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    d = np.hypot(i, j)
    idx = np.minimum((rings * d / max(d.max(), 1e-12)).astype(int), rings - 1)
    onehot = (idx[..., None] == np.arange(rings)).astype(np.float64)
    counts = onehot.sum(axis=(0, 1))
    if (counts == 0).any():
        raise ValueError(f"rings={rings} leaves a ring of an {h}x{w} feature map empty; use fewer rings")
    return onehot / counts


def _he(fan_in):
    return nn.initializers.normal(math.sqrt(2.0 / fan_in))


class GroupConvNet(nn.Module):
    """Flax module of a :class:`GCNNSpec`: images ``(N, H, W, C)`` -> ``(N, out_dim)``
    (or, with ``features_only=True``, the last regular feature map ``(N, H', W', n, C)``)."""
    spec: GCNNSpec

    @nn.compact
    def __call__(self, x, features_only: bool = False):
        s, n, k = self.spec, self.spec.n, self.spec.kernel_size
        chans = s.layer_channels
        ch = chans[0]
        w = self.param("lift", _he(k * k * x.shape[-1]), (k, k, x.shape[-1], ch))
        b = self.param("lift_bias", nn.initializers.zeros, (ch,))
        y = conv2d(x, lifting_filters(w, n))
        y = y.reshape(y.shape[:3] + (n, ch)) + b
        for i in range(s.depth):
            y = jax.nn.relu(y)
            if s.pool:
                y = avg_pool2(y.reshape(y.shape[:3] + (n * ch,))).reshape(
                    (y.shape[0], y.shape[1] // 2, y.shape[2] // 2, n, ch))
            out = chans[i + 1]
            w = self.param(f"gconv{i}", _he(k * k * n * ch), (k, k, n, ch, out))
            b = self.param(f"gconv{i}_bias", nn.initializers.zeros, (out,))
            y = conv2d(y.reshape(y.shape[:3] + (n * ch,)), group_conv_filters(w, n))
            y = y.reshape(y.shape[:3] + (n, out)) + b
            ch = out
        y = jax.nn.relu(y)
        if features_only:
            return y
        if s.rings:                                              # (N, rings * ch): invariant
            rm = jnp.asarray(ring_means(y.shape[1], y.shape[2], s.rings), y.dtype)
            pooled = jnp.einsum("bhwc,hwr->brc", y.max(axis=3), rm).reshape(y.shape[0], -1)
        else:
            pooled = y.mean(axis=(1, 2)).max(axis=1)             # (N, ch): invariant
        if s.head:
            pooled = jax.nn.relu(nn.Dense(s.head, name="head")(pooled))
        return nn.Dense(s.out_dim)(pooled)
