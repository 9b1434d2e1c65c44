"""The layers an :class:`~ntkequi.nn.ArchSpec` is made of, one object per layer type.

Each layer is a frozen dataclass that owns every view of itself:

* ``flax(x)``: its computation inside a Flax ``nn.compact`` method (:class:`FlaxNet`), NTK
  parameterisation (``y = W_std / sqrt(fan_in) * W x + b_std * b``, ``W, b ~ N(0, 1)``);
* ``stax()``: its neural-tangents layer, the reference (imports :mod:`ntkequi.nt`);
* ``out_size(size)`` and ``in_radius(r)``: its shape rule (the spatial size ``(H, W)`` after
  it, ``()`` once flat) and its band rule (the pixel-offset half-widths ``(rh, rw)`` its input
  needs for its output to have ``r``; :mod:`~ntkequi.kernels.spatial`);
* ``kernel(ps, s, t, i)``: its step of the NNGP/NTK recursion: ``(S, T)`` at its input to
  ``(S, T)`` at its output for a batch of input pairs, the state laid out by the pass ``ps``
  (:mod:`ntkequi.kernels.recursions`, which walks the layers and owns only the pass: the
  inputs' covariance, the tiling and the optional fused conv -> act -> pool first block).

:class:`FlaxNet` (a network), :func:`stax_serial` (neural-tangents' network and kernel) and
:func:`~ntkequi.kernels.recursions.recursion_kernel_fn` (ntkequi's kernel) iterate over the
same tuple of layers, so they cannot drift apart; ``tests/test_layers.py`` checks every type in
:data:`LAYER_TYPES` in all three views. Adding a layer type means a class here (and its entry in
:data:`LAYER_TYPES`) and a case in that test.

The per-layer recursions (Novak et al. 2019; Arora et al. 2019), per pair of inputs and per
pair of positions ``(p, p')``:

    dense:    S' = W^2 S + b^2,                                   T' = W^2 T + S'
    conv:     S'(p, p') = W^2 / k^2 sum_d S(p + d, p' + d) + b^2,  T' = W^2 / k^2 sum_d T(p + d, p' + d) + S'
    act:      S' = E[phi(u) phi(v)],                              T' = T E[phi'(u) phi'(v)]
    pool:     S'(P, P') = 1/16 sum_{a, b in {0,1}^2} S(2P + a, 2P' + b)   (and T)
    flatten:  S' = mean_p S(p, p);   gap: S' = mean_{p, p'} S(p, p')   (and T)
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..kernels.closed_forms import CLOSED_FORMS, expectations
from ..kernels.spatial import N_ROT, band_gather, band_mask, conv_axis, pool_band_axis, rotated_stencil
from .conv import conv2d

__all__ = ["Layer", "Dense", "Conv", "Activation", "AvgPool2", "Flatten", "GlobalAvgPool", "LiftingConv",
           "GroupConv", "LAYER_TYPES",
           "ACTIVATIONS", "FlaxNet", "stax_serial", "avg_pool2", "dense_product"]

#: the activations an :class:`Activation` takes, by the name of their neural-tangents layer (``stax.<name>``)
ACTIVATIONS = {"relu": "Relu", "erf": "Erf", "gelu": "Gelu"}
_ACTIVATION_FNS = {
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


class Layer:
    """The interface every layer type implements (see the module doc). The defaults are those
    of a layer that keeps the spatial size and the band (an activation)."""
    #: short name, used in reprs and by the fused first block's pattern (conv, act, pool)
    kind: ClassVar[str] = ""
    #: the layer needs images ``(N, H, W, C)`` at the network's input (a convolution)
    needs_image: ClassVar[bool] = False
    #: the layer needs the full spatial covariance, every ``(p, p')`` (global average pooling)
    needs_full: ClassVar[bool] = False
    #: the layer has trainable parameters (a kernel and a bias)
    has_params: ClassVar[bool] = False

    def flax(self, x):
        """Its output on ``x``, called inside a Flax ``nn.compact`` method."""
        raise NotImplementedError

    def stax(self):
        """Its neural-tangents ``(init_fn, apply_fn, kernel_fn)`` layer."""
        raise NotImplementedError

    def out_size(self, size: tuple) -> tuple:
        """The spatial size ``(H, W)`` after the layer (``()``: flat) from the size before it."""
        return size

    def in_radius(self, r: tuple) -> tuple:
        """Band half-widths ``(rh, rw)`` its input needs for its output to hold ``r``."""
        return r

    def out_grouped(self, grouped: bool) -> bool:
        """Whether its output is a regular C4 feature map ``(N, 4, H, W, C)``, from whether its
        input is one; ValueError for an input it does not take."""
        return grouped

    def stax_grouped(self):
        """Its neural-tangents layer on regular C4 feature maps (the rotation axis is one more
        spatial axis there); the same as :meth:`stax` unless it pools space."""
        return self.stax()

    def drops_odd_edge(self, size: tuple) -> bool:
        """Whether the layer drops a trailing row or column of a ``size`` map (a pool of an odd
        size: CIRCULAR bands then cannot represent it)."""
        return False

    @property
    def closed_form(self) -> bool:
        """Whether ntkequi's recursion has this layer's kernel step in closed form."""
        return True

    def analytic(self) -> "Layer":
        """The layer with what the analytic kernel does not depend on (the width) removed: the
        recursion's cache key."""
        return self

    def kernel(self, ps, s, t, i: int):
        """``(S, T)`` at the output from ``(S, T)`` at the input (``T`` None before the first
        parameterised layer or without the NTK), for layer ``i`` of the pass ``ps``."""
        raise NotImplementedError


def _bias_step(ps, s_new, t, t_lin):
    """The NTK update of a parameterised layer: ``T' = lin(T) + S'`` (``S'`` alone before any)."""
    if not ps.need_ntk:
        return None
    return s_new if t is None else t_lin(t) + s_new


# ---------------------------------------------------------------- Flax modules


class _NTKDense(nn.Module):
    features: int
    W_std: float
    b_std: float

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", nn.initializers.normal(1.0), (x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.normal(1.0), (self.features,))
        return self.W_std / math.sqrt(x.shape[-1]) * dense_product(x, w) + self.b_std * b


def _transposed_gradient(fan_in: int, features: int) -> bool:
    """Whether :func:`dense_product` takes its transposed form: a readout-shaped kernel
    (a few outputs, many inputs) on XLA:CPU."""
    return jax.default_backend() == "cpu" and 1 < features and 8 * features <= fan_in


def dense_product(x, w):
    """``x @ w`` for ``x (..., fan_in)`` and ``w (fan_in, features)``, written so that XLA:CPU
    computes the kernel's gradient quickly.

    The gradient of ``x @ w`` for ``w`` is a product of the (many) inputs' activations and
    output errors summed over the batch, ``(fan_in, features)``. With a few outputs and many
    inputs (a readout: ``1 < features`` and ``8 * features <= fan_in``), XLA:CPU computes that
    product several times slower in ``(fan_in, features)`` layout than in ``(features, fan_in)``
    and simplifies any transpose into the product; here the kernel enters the network
    transposed behind an optimisation barrier, so the gradient is computed as
    ``(features, fan_in)`` and transposed afterwards (``python benchmarks/convergence_members.py``
    measures both forms of the step). The value, and every derivative, are those of ``x @ w``
    to rounding; forward mode (``jax.jvp``) and ``jax.vmap`` work as for ``x @ w``. Elsewhere
    (other shapes, accelerators) it is ``x @ w``.

    Args:
        x: ``(..., fan_in)`` inputs.
        w: ``(fan_in, features)`` kernel.

    Returns:
        ``(..., features)``.

    >>> x, w = jnp.ones((4, 64)), jnp.ones((64, 2))
    >>> bool(jnp.allclose(dense_product(x, w), x @ w))
    True
    """
    if not _transposed_gradient(w.shape[0], w.shape[1]):
        return x @ w
    wt = jax.lax.optimization_barrier(w.T)
    return jax.lax.dot_general(x, wt, (((x.ndim - 1,), (1,)), ((), ())))


class _NTKConv(nn.Module):
    features: int
    kernel_size: int
    padding: str
    W_std: float
    b_std: float

    @nn.compact
    def __call__(self, x):
        k, c = self.kernel_size, x.shape[-1]
        w = self.param("kernel", nn.initializers.normal(1.0), (k, k, c, self.features))
        b = self.param("bias", nn.initializers.normal(1.0), (self.features,))
        if self.padding == "CIRCULAR":
            p = k // 2
            x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="wrap")
            pad = "VALID"
        else:
            pad = "SAME"
        y = conv2d(x, w, pad)
        return self.W_std / math.sqrt(k * k * c) * y + self.b_std * b


def avg_pool2(x):
    """2x2 average pool, stride 2, VALID (odd trailing rows/columns dropped): ``(..., H, W, C)``
    -> ``(..., H // 2, W // 2, C)`` (images ``(N, H, W, C)`` or regular feature maps
    ``(N, 4, H, W, C)``)."""
    *lead, h, w, c = x.shape
    x = x[..., :h - h % 2, :w - w % 2, :]
    return x.reshape(*lead, h // 2, 2, w // 2, 2, c).mean(axis=(-4, -2))


class _NTKLift(nn.Module):
    features: int
    kernel_size: int
    W_std: float
    b_std: float

    @nn.compact
    def __call__(self, x):
        k, c = self.kernel_size, x.shape[-1]
        w = self.param("kernel", nn.initializers.normal(1.0), (k, k, c, self.features))
        b = self.param("bias", nn.initializers.normal(1.0), (self.features,))
        y = jnp.stack([conv2d(x, jnp.rot90(w, r, axes=(0, 1)), "SAME") for r in range(N_ROT)], axis=1)
        return self.W_std / math.sqrt(k * k * c) * y + self.b_std * b


class _NTKGroupConv(nn.Module):
    features: int
    kernel_size: int
    W_std: float
    b_std: float

    @nn.compact
    def __call__(self, f):
        k, (n, g, h, w_, c) = self.kernel_size, f.shape
        w = self.param("kernel", nn.initializers.normal(1.0), (k, k, g, c, self.features))
        b = self.param("bias", nn.initializers.normal(1.0), (self.features,))
        flat = jnp.moveaxis(f, 1, 3).reshape(n, h, w_, g * c)            # channel index h * C + c
        # output rotation r: the filter turned by r in space and shifted by r along the group axis
        y = jnp.stack([conv2d(flat, jnp.rot90(jnp.roll(w, r, axis=2), r, axes=(0, 1)).reshape(k, k, g * c, -1),
                              "SAME") for r in range(N_ROT)], axis=1)
        return self.W_std / math.sqrt(k * k * g * c) * y + self.b_std * b


# ---------------------------------------------------------------- the layer types


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """Fully connected, ``features`` outputs (None in a kernel's key: irrelevant to it)."""
    features: Optional[int]
    W_std: float
    b_std: float
    kind: ClassVar[str] = "dense"
    has_params: ClassVar[bool] = True

    def flax(self, x):
        return _NTKDense(self.features, self.W_std, self.b_std)(x)

    def stax(self):
        from ..nt import stax
        return stax.Dense(self.features, self.W_std, self.b_std)

    def in_radius(self, r):
        return (0, 0)

    def out_grouped(self, grouped):
        if grouped:
            raise ValueError("Dense takes flat features; put Flatten or GlobalAvgPool before it")
        return False

    def analytic(self):
        return dataclasses.replace(self, features=None, W_std=float(self.W_std), b_std=float(self.b_std))

    def kernel(self, ps, s, t, i):
        s_new = self.W_std ** 2 * s + self.b_std ** 2
        return s_new, _bias_step(ps, s_new, t, lambda a: self.W_std ** 2 * a)


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
    """2-D convolution, ``kernel_size x kernel_size`` (odd), stride 1, 'SAME' (zero) or
    'CIRCULAR' padding, ``features`` output channels."""
    features: Optional[int]
    kernel_size: int
    padding: str
    W_std: float
    b_std: float
    kind: ClassVar[str] = "conv"
    needs_image: ClassVar[bool] = True
    has_params: ClassVar[bool] = True

    def __post_init__(self):
        if self.kernel_size % 2 != 1:
            raise ValueError(f"Conv.kernel_size must be odd (symmetric padding keeps rotations exact); "
                             f"got {self.kernel_size}")
        if self.padding not in ("SAME", "CIRCULAR"):
            raise ValueError(f"Conv.padding must be 'SAME' or 'CIRCULAR'; got {self.padding!r}")

    def flax(self, x):
        return _NTKConv(self.features, self.kernel_size, self.padding, self.W_std, self.b_std)(x)

    def out_grouped(self, grouped):
        if grouped:
            raise ValueError("Conv takes images (N, H, W, C); on regular C4 feature maps use GroupConv")
        return False

    def stax(self):
        from ..nt import stax
        k = (self.kernel_size, self.kernel_size)
        return stax.Conv(self.features, k, padding=self.padding, W_std=self.W_std, b_std=self.b_std)

    def analytic(self):
        return dataclasses.replace(self, features=None, kernel_size=int(self.kernel_size),
                                   W_std=float(self.W_std), b_std=float(self.b_std))

    def kernel(self, ps, s, t, i):
        k = self.kernel_size
        circular = self.padding == "CIRCULAR"
        scale = self.W_std ** 2 / (k * k)
        axes = [(1, 3), (2, 4)] if ps.rep == "full" else [(1,), (2,)]

        def lin(a):
            return conv_axis(conv_axis(a, axes[0], k, circular), axes[1], k, circular)
        s_new = ps.mask(scale * lin(s) + self.b_std ** 2, i)
        return s_new, _bias_step(ps, s_new, t, lambda a: ps.mask(scale * lin(a), i))


@dataclasses.dataclass(frozen=True)
class Activation(Layer):
    """Elementwise nonlinearity, by name: 'relu', 'erf' (closed-form kernels) or 'gelu' (none:
    neural-tangents' kernel)."""
    name: str
    kind: ClassVar[str] = "act"

    def __post_init__(self):
        if self.name not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {self.name!r}")

    def flax(self, x):
        return _ACTIVATION_FNS[self.name](x)

    def stax(self):
        from ..nt import stax
        return getattr(stax, ACTIVATIONS[self.name])()

    @property
    def closed_form(self):
        return self.name in CLOSED_FORMS

    def kernel(self, ps, s, t, i):
        qa, qb, same = ps.activation_inputs(s, i)
        if same is not None:
            # a pair of an input with itself: S(p, p) is its variance, exactly (then
            # s / sqrt(q q) is exactly 1; one rounding error there would become a 1e-8
            # relative error through the square root of the ReLU kernel)
            exact = same.reshape((-1,) + (1,) * (s.ndim - 1)) & ps.diagonal(s, i)
            qd = qa if s.ndim == 1 else qa.reshape(qa.shape + (1,) * (s.ndim - 3))
            s = jnp.where(exact, qd, s)
        need_dot = ps.need_ntk and t is not None
        if s.ndim == 1:
            q1, q2 = qa, qb
        elif ps.rep == "full":
            q1, q2 = qa[:, :, :, None, None], qb[:, None, None, :, :]
        else:
            rh, rw = ps.radii[i]
            q1 = qa[:, :, :, None, None]
            q2 = band_gather(qb, rh, rw, ps.circular, fill=1.0)
        k, kdot = expectations(self.name, s, q1, q2, need_dot=need_dot)
        k = ps.mask(k, i)
        if need_dot:
            t = ps.mask(t * kdot, i)
        return k, t


@dataclasses.dataclass(frozen=True)
class AvgPool2(Layer):
    """2x2 average pooling, stride 2, VALID (an odd trailing row or column dropped)."""
    kind: ClassVar[str] = "pool"

    def flax(self, x):
        return avg_pool2(x)

    def stax(self):
        from ..nt import stax
        return stax.AvgPool((2, 2), strides=(2, 2), padding="VALID")

    def stax_grouped(self):
        from ..nt import stax
        return stax.AvgPool((1, 2, 2), strides=(1, 2, 2), padding="VALID")

    def out_size(self, size):
        out = (size[0] // 2, size[1] // 2)
        if min(out) < 1:
            raise ValueError(f"2x2 pooling of a {size} feature map leaves nothing; the inputs are too "
                             f"small for this network")
        return out

    def in_radius(self, r):
        return (2 * r[0] + 1, 2 * r[1] + 1)

    def drops_odd_edge(self, size):
        return bool(size[0] % 2 or size[1] % 2)

    def _pool(self, ps, a, i):
        if a is None:
            return None
        (h, w), (rh, rw) = ps.p.sizes[i], ps.radii[i]
        hc, wc = 2 * (h // 2), 2 * (w // 2)
        if ps.rep == "full":
            a = a[:, :hc, :wc, :hc, :wc]
            b = a.shape[0]
            return a.reshape(b, hc // 2, 2, wc // 2, 2, hc // 2, 2, wc // 2, 2).mean(axis=(2, 4, 6, 8))
        if (hc, wc) != (h, w):      # odd size (SAME only): drop partners in the cropped row/column
            a = a * band_mask(h, w, rh, rw, a.dtype, limit=(hc, wc))
        a = a[:, :hc, :wc]
        return pool_band_axis(pool_band_axis(a, 1, (rh - 1) // 2), 2, (rw - 1) // 2)

    def kernel(self, ps, s, t, i):
        return self._pool(ps, s, i), self._pool(ps, t, i)


class _Readout(Layer):
    """A layer to flat features (shape ``()``, no band needed after it): neural-tangents'
    layer ``stax.<_stax_name>``; its kernel step reduces each input pair's spatial state
    with ``_reduce`` (already flat states pass through)."""
    _stax_name: ClassVar[str] = ""

    def stax(self):
        from ..nt import stax
        return getattr(stax, self._stax_name)()

    def out_size(self, size):
        return ()

    def in_radius(self, r):
        return (0, 0)

    def out_grouped(self, grouped):
        return False

    def _reduce(self, ps, a, i):
        raise NotImplementedError

    def kernel(self, ps, s, t, i):
        def one(a):
            return a if a is None or a.ndim == 1 else self._reduce(ps, a, i)
        return one(s), one(t)


@dataclasses.dataclass(frozen=True)
class Flatten(_Readout):
    """Flatten to a vector (an MLP's input; a CNN's readout: the kernel keeps the diagonal
    ``p = p'`` only, the mean over pixels)."""
    kind: ClassVar[str] = "flatten"
    _stax_name: ClassVar[str] = "Flatten"

    def flax(self, x):
        return x.reshape(x.shape[0], -1)

    def _reduce(self, ps, a, i):
        return ps.variances(ps.by_block(a, i)[:, 0]).mean(axis=(1, 2))      # rotation channels: r = r'


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(_Readout):
    """Mean over the spatial axes (the kernel: the mean over every pair of positions)."""
    kind: ClassVar[str] = "gap"
    needs_full: ClassVar[bool] = True
    _stax_name: ClassVar[str] = "GlobalAvgPool"

    def flax(self, x):
        return x.mean(axis=tuple(range(1, x.ndim - 1)))

    def _reduce(self, ps, a, i):
        a = ps.by_block(a, i)                  # the mean over rotation pairs is the mean over blocks m
        return a.mean(axis=tuple(range(1, a.ndim)))


@dataclasses.dataclass(frozen=True)
class _Turned(Layer):
    """A convolution whose filter is applied in its 4 quarter turns (a C4 lifting or group
    convolution, zero padding), ``features`` output channels per rotation; its kernel step maps
    each rotation block ``m = r' - r`` by the stencil of two filters ``m`` turns apart
    (:func:`~ntkequi.kernels.spatial.rotated_stencil`)."""
    features: Optional[int]
    kernel_size: int
    W_std: float
    b_std: float
    needs_image: ClassVar[bool] = True
    has_params: ClassVar[bool] = True
    padding: ClassVar[str] = "SAME"
    _module: ClassVar[type] = None          # its Flax module
    _stax_name: ClassVar[str] = ""          # its layer in kernels.group_stax

    def __post_init__(self):
        if self.kernel_size % 2 != 1:
            raise ValueError(f"{type(self).__name__}.kernel_size must be odd (filters turn about their centre "
                             f"pixel); got {self.kernel_size}")

    def flax(self, x):
        return self._module(self.features, self.kernel_size, self.W_std, self.b_std)(x)

    def stax(self):
        from ..kernels import group_stax
        return getattr(group_stax, self._stax_name)(self.features, self.kernel_size, self.W_std, self.b_std)

    def in_radius(self, r):
        c = self.kernel_size // 2
        return (r[0] + 2 * c, r[1] + 2 * c)

    def analytic(self):
        return dataclasses.replace(self, features=None, kernel_size=int(self.kernel_size),
                                   W_std=float(self.W_std), b_std=float(self.b_std))

    def _blocks(self, ps, a, i):
        """The input's blocks ``(B, G, ...)`` the stencil of block ``m`` reads (one for all m
        from images; block ``m`` from a regular feature map)."""
        raise NotImplementedError

    def kernel(self, ps, s, t, i):
        k = self.kernel_size
        full = ps.rep == "full"
        scale = self.W_std ** 2 / (k * k)
        r_out = None if full else ps.radii[i + 1]

        def lin(a):
            blocks = self._blocks(ps, a, i)
            out = jnp.stack([rotated_stencil(blocks[:, min(m, blocks.shape[1] - 1)], k, m, full, ps.circular, r_out)
                             for m in range(ps.blocks)], axis=1)
            return out.reshape((-1,) + out.shape[2:])
        s_new = ps.mask(scale * lin(s) + self.b_std ** 2, i + 1)
        return s_new, _bias_step(ps, s_new, t, lambda a: ps.mask(scale * lin(a), i + 1))


@dataclasses.dataclass(frozen=True)
class LiftingConv(_Turned):
    """C4 lifting convolution, images ``(N, H, W, C)`` (square) -> regular feature maps
    ``(N, 4, H, W, features)``: the ``kernel_size x kernel_size`` filter applied in its 4
    quarter turns (``np.rot90``), zero padding. Kernel: ``S'_m(p, p') = W^2 / k^2 sum_d
    S(p + d, p' + M_m d) + b^2`` for the rotation blocks ``m = r' - r``."""
    kind: ClassVar[str] = "lift"
    _module: ClassVar[type] = _NTKLift
    _stax_name: ClassVar[str] = "LiftingConv"

    def out_grouped(self, grouped):
        if grouped:
            raise ValueError("LiftingConv takes images (N, H, W, C); on regular C4 feature maps use GroupConv")
        return True

    def _blocks(self, ps, a, i):
        return a[:, None]


@dataclasses.dataclass(frozen=True)
class GroupConv(_Turned):
    """C4 group convolution, regular feature maps ``(N, 4, H, W, C)`` -> ``(N, 4, H, W,
    features)``: for output rotation r the filter ``(k, k, 4, C, features)`` is turned by r in
    space and shifted by r along the rotation axis. Kernel: block ``m`` from the input's block
    ``m``, ``S'_m(p, p') = W^2 / k^2 sum_d S_m(p + d, p' + M_m d) + b^2``."""
    kind: ClassVar[str] = "gconv"
    _module: ClassVar[type] = _NTKGroupConv
    _stax_name: ClassVar[str] = "GroupConv"

    def out_grouped(self, grouped):
        if not grouped:
            raise ValueError("GroupConv takes regular C4 feature maps (N, 4, H, W, C); put a LiftingConv first")
        return True

    def _blocks(self, ps, a, i):
        return ps.by_block(a, i)


#: every layer type, which tests/test_layers.py checks in all three views
LAYER_TYPES = (Dense, Conv, Activation, AvgPool2, Flatten, GlobalAvgPool, LiftingConv, GroupConv)


# ---------------------------------------------------------------- networks of layers


class FlaxNet(nn.Module):
    """The Flax network of a tuple of layers: inputs ``(N, ...)`` -> the last layer's outputs.

    >>> net = FlaxNet((Flatten(), Dense(4, 1.0, 0.0), Activation("relu"), Dense(2, 1.0, 0.0)))
    >>> x = jnp.ones((3, 5))
    >>> net.apply(net.init(jax.random.PRNGKey(0), x), x).shape
    (3, 2)
    """
    layers: tuple

    @nn.compact
    def __call__(self, x):
        for layer in self.layers:
            x = layer.flax(x)
        return x


def stax_serial(layers: tuple):
    """neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` of a tuple of layers (imports
    :mod:`ntkequi.nt`, which patches neural-tangents for current JAX)."""
    from ..nt import stax
    views, grouped = [], False
    for layer in layers:
        views.append(layer.stax_grouped() if grouped else layer.stax())
        grouped = layer.out_grouped(grouped)
    return stax.serial(*views)
