"""One architecture description -> a Flax network and its analytic kernels.

``ArchSpec`` is a frozen dataclass (saved beside every result). ``spec.flax()`` is the
Flax module, ``spec.kernel_fn`` ntkequi's own NNGP/NTK recursion of the same network
(:mod:`ntkequi.kernels.recursions`; ReLU and erf), and ``spec.stax()`` /
``spec.kernel_fn_nt`` neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` / kernel, the
reference, all in NTK parameterisation (``y = W_std / sqrt(fan_in) * W x + b_std * b``
with ``W, b ~ N(0, 1)``). All are built by walking the same layer list
(:meth:`ArchSpec.layers`), so they cannot drift apart; ``tests/test_arch.py`` checks that
the Flax network's empirical NTK converges to the analytic one as the width grows, and
``tests/test_fast_kernels.py`` that the two analytic kernels agree to 1e-10.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..kernels.closed_forms import CLOSED_FORMS
from ..kernels.recursions import recursion_kernel_fn
from .conv import conv2d

#: the activations an ArchSpec takes, by the name of their neural-tangents layer (``stax.<name>``)
ACTIVATIONS = {"relu": "Relu", "erf": "Erf", "gelu": "Gelu"}
_ACTIVATION_FNS = {
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A fully-connected (``kind='mlp'``) or convolutional (``kind='cnn'``) network: one
    description yields the Flax network (:meth:`flax`), its neural-tangents layers and
    analytic kernel (:attr:`kernel_fn`), so the two cannot drift apart.

    Attributes:
        kind: 'mlp' or 'cnn'.
        depth: number of hidden layers (Dense or Conv), each followed by the activation.
        width: hidden units (MLP) or channels (CNN); irrelevant to the analytic kernel.
        activation: 'relu', 'erf' or 'gelu'.
        W_std: weight standard deviation (NTK parameterisation).
        b_std: bias standard deviation.
        out_dim: number of outputs k.
        kernel_size: CNN filter size (odd).
        padding: 'SAME' zero padding, or 'CIRCULAR' for periodic lattices.
        readout: CNN readout, 'flatten' (Flatten + Dense) or 'gap' (global average pool + Dense).
        pool: CNN only: a 2x2 average pool with stride 2 after each hidden conv block
            (28 -> 14 -> 7; exact under 90-degree rotations when every pooled size is
            even before pooling). ntkequi's kernel (:attr:`kernel_fn`) then tracks, with a
            flatten readout, only the band of pixel offsets the readout needs; neural-tangents'
            (:attr:`kernel_fn_nt`) the full spatial covariance, pixels squared per pair.

    >>> spec = ArchSpec(kind="cnn", depth=1, width=8, out_dim=10)
    >>> spec.flax().__class__.__name__, callable(spec.kernel_fn)
    ('FlaxNet', True)
    """
    kind: str = "mlp"
    depth: int = 2
    width: int = 512
    activation: str = "relu"
    W_std: float = math.sqrt(2.0)
    b_std: float = 0.05
    out_dim: int = 1
    kernel_size: int = 3
    padding: str = "SAME"
    readout: str = "flatten"
    pool: bool = False

    def __post_init__(self):
        if self.kind not in ("mlp", "cnn"):
            raise ValueError(f"ArchSpec.kind must be 'mlp' or 'cnn'; got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ArchSpec.activation must be one of {sorted(ACTIVATIONS)}; "
                             f"got {self.activation!r}")
        if self.depth < 1 or self.width < 1 or self.out_dim < 1:
            raise ValueError(f"ArchSpec needs depth, width, out_dim >= 1; got "
                             f"depth={self.depth}, width={self.width}, out_dim={self.out_dim}")
        if self.kind == "cnn":
            if self.kernel_size % 2 != 1:
                raise ValueError(f"ArchSpec.kernel_size must be odd (symmetric padding keeps "
                                 f"rotations exact); got {self.kernel_size}")
            if self.padding not in ("SAME", "CIRCULAR"):
                raise ValueError(f"ArchSpec.padding must be 'SAME' or 'CIRCULAR'; got {self.padding!r}")
            if self.readout not in ("flatten", "gap"):
                raise ValueError(f"ArchSpec.readout must be 'flatten' or 'gap'; got {self.readout!r}")
        elif self.pool:
            raise ValueError("ArchSpec.pool is for kind='cnn'")

    def layers(self) -> tuple:
        """The network as a tuple of layer descriptions, the single source for
        both realisations: ('flatten',), ('dense', features), ('conv', features),
        ('act',), ('gap',), ('pool',)."""
        out = []
        if self.kind == "mlp":
            out.append(("flatten",))
            for _ in range(self.depth):
                out += [("dense", self.width), ("act",)]
        else:
            for _ in range(self.depth):
                out += [("conv", self.width), ("act",)] + ([("pool",)] if self.pool else [])
            out.append(("flatten",) if self.readout == "flatten" else ("gap",))
        out.append(("dense", self.out_dim))
        return tuple(out)

    def stax(self):
        """``(init_fn, apply_fn, kernel_fn)`` of neural-tangents stax (imports :mod:`ntkequi.nt`,
        which patches neural-tangents for current JAX)."""
        from ..nt import stax
        k = (self.kernel_size, self.kernel_size)
        build = {
            "flatten": lambda: stax.Flatten(),
            "gap": lambda: stax.GlobalAvgPool(),
            "pool": lambda: stax.AvgPool((2, 2), strides=(2, 2), padding="VALID"),
            "act": lambda: getattr(stax, ACTIVATIONS[self.activation])(),
            "dense": lambda n: stax.Dense(n, self.W_std, self.b_std),
            "conv": lambda n: stax.Conv(n, k, padding=self.padding, W_std=self.W_std,
                                        b_std=self.b_std),
        }
        return stax.serial(*(build[name](*args) for name, *args in self.layers()))

    def flax(self) -> "FlaxNet":
        """The Flax module of this network (NTK parameterisation)."""
        return FlaxNet(self)

    @property
    def kernel_fn(self):
        """The analytic ``kernel_fn(x1, x2=None, get=...)`` of this architecture: ntkequi's
        own recursion (:func:`~ntkequi.kernels.recursions.recursion_kernel_fn`, tiled to a
        memory budget, much faster than neural-tangents' for CNNs) for ReLU and erf; for an
        activation without a closed form (gelu) neural-tangents' kernel, :attr:`kernel_fn_nt`."""
        if self.activation not in CLOSED_FORMS:
            return self.kernel_fn_nt
        return recursion_kernel_fn(self.layers(), self.activation, self.W_std, self.b_std,
                                   self.kernel_size, self.padding)

    @property
    def kernel_fn_nt(self):
        """neural-tangents' analytic ``kernel_fn(x1, x2=None, get=...)`` of this architecture
        (``stax()[2]``): the reference the recursions are tested against."""
        return self.stax()[2]

    def kernel_entries_per_pair(self, event_shape: Optional[tuple] = None) -> int:
        """Floats neural-tangents' kernel (:attr:`kernel_fn_nt`) holds per input pair while computing it
        (one per output for an MLP; one per pixel for a CNN with a flatten readout,
        since only the spatial diagonal is tracked; pixels squared with global
        average pooling)."""
        if self.kind == "mlp" or not event_shape:
            return 1
        spatial = int(math.prod(event_shape[:-1]))
        return spatial if self.readout == "flatten" and not self.pool else spatial * spatial


def _empirical_ntk_fn(spec: "ArchSpec"):
    """``(jitted fn(x, key) -> (N, N) empirical NTK at the parameters drawn with key)``:
    ``Theta = J J^T`` (``J = d f(x) / d params``) by NTK-vector products, one ``vjp`` then one
    ``jvp`` per output entry, mapped over the entries; averaged over the k outputs (the trace
    over the output axis divided by k, as neural-tangents' ``empirical_ntk_fn(trace_axes=(-1,))``)."""
    net = spec.flax()

    def ntk(x, key):
        params = net.init(key, x)
        f = lambda p: net.apply(p, x)                                  # noqa: E731  (N, k)
        out, vjp = jax.vjp(f, params)
        n, k = out.shape
        column = lambda ct: jax.jvp(f, (params,), vjp(ct))[1]          # noqa: E731  J J^T ct
        cols = jax.lax.map(column, jnp.eye(n * k, dtype=out.dtype).reshape(n * k, n, k))
        return jnp.einsum("aibi->ab", cols.reshape(n, k, n, k)) / k
    return jax.jit(ntk)


def empirical_ntk(spec: "ArchSpec", x, key) -> jnp.ndarray:
    """The empirical NTK ``(N, N)`` of ``spec.flax()`` at the parameters drawn with
    ``key``, on inputs ``x`` ``(N, ...)`` (trace over the outputs, as the analytic
    ``spec.kernel_fn(x, None, 'ntk')``)."""
    return _empirical_ntk_fn(spec)(x, key)


def empirical_ntk_errors(spec: "ArchSpec", x, widths, seeds: int, seed0: int = 0):
    """Relative Frobenius distance ``||Theta_emp - Theta|| / ||Theta||`` of the empirical
    NTK of ``spec`` at each width (``spec.width`` replaced) from the analytic one, for
    ``seeds`` random initialisations (keys ``seed0 .. seed0 + seeds - 1``):
    ``(len(widths), seeds)`` numpy array. At the NTK's 1/sqrt(width) rate, 4x the width
    halves it."""
    import numpy as np
    theta = spec.kernel_fn(x, None, "ntk")
    norm = jnp.linalg.norm(theta)
    out = np.zeros((len(widths), seeds))
    for i, w in enumerate(widths):
        fn = _empirical_ntk_fn(dataclasses.replace(spec, width=int(w)))     # traced once per width
        for s in range(seeds):
            out[i, s] = float(jnp.linalg.norm(fn(x, jax.random.PRNGKey(seed0 + s)) - theta) / norm)
    return out


def avg_pool2(x):
    """2x2 average pool, stride 2, VALID (odd trailing rows/columns dropped): ``(N, H, W, C)``
    -> ``(N, H // 2, W // 2, C)``."""
    n, h, w, c = x.shape
    x = x[:, :h - h % 2, :w - w % 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class _NTKDense(nn.Module):
    features: int
    W_std: float
    b_std: float

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", nn.initializers.normal(1.0), (x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.normal(1.0), (self.features,))
        return self.W_std / math.sqrt(x.shape[-1]) * (x @ w) + self.b_std * b


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


class FlaxNet(nn.Module):
    """Flax realisation of an :class:`ArchSpec`: inputs ``(N, ...)`` -> ``(N, out_dim)``."""
    spec: ArchSpec

    @nn.compact
    def __call__(self, x):
        s = self.spec
        for name, *args in s.layers():
            if name == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif name == "gap":
                x = x.mean(axis=tuple(range(1, x.ndim - 1)))
            elif name == "pool":
                x = avg_pool2(x)
            elif name == "act":
                x = _ACTIVATION_FNS[s.activation](x)
            elif name == "dense":
                x = _NTKDense(args[0], s.W_std, s.b_std)(x)
            elif name == "conv":
                x = _NTKConv(args[0], s.kernel_size, s.padding, s.W_std, s.b_std)(x)
        return x
