"""One architecture description -> a Flax network and its analytic kernels.

``ArchSpec`` is a frozen dataclass (saved beside every result). Its :meth:`ArchSpec.layers`
is a tuple of layer objects (:mod:`ntkequi.nn.layers`), each owning its Flax computation, its
neural-tangents layer and its step of the kernel recursion; ``spec.flax()`` is the Flax
network of those layers, ``spec.kernel_fn`` ntkequi's own NNGP/NTK recursion over them
(:mod:`ntkequi.kernels.recursions`; ReLU and erf), and ``spec.stax()`` / ``spec.kernel_fn_nt``
neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` / kernel, the reference, all in NTK
parameterisation (``y = W_std / sqrt(fan_in) * W x + b_std * b`` with ``W, b ~ N(0, 1)``).
All are built from the same layer tuple, so they cannot drift apart; ``tests/test_layers.py``
checks every layer type in the three views.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp

from ..kernels.recursions import recursion_kernel_fn
from .layers import (ACTIVATIONS, Activation, AvgPool2, Conv, Dense, FlaxNet, Flatten, GlobalAvgPool, GroupConv,
                     LiftingConv, stax_serial)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A fully-connected (``kind='mlp'``), convolutional (``kind='cnn'``) or C4
    group-convolutional (``kind='gcnn'``) network: one description yields the Flax network
    (:meth:`flax`), its neural-tangents layers and analytic kernel (:attr:`kernel_fn`), so the
    two cannot drift apart.

    Attributes:
        kind: 'mlp', 'cnn' or 'gcnn' (a lifting convolution, then ``depth - 1`` group
            convolutions (:class:`~ntkequi.nn.layers.LiftingConv`,
            :class:`~ntkequi.nn.layers.GroupConv`; square images, zero padding); with
            ``readout='gap'`` the mean over rotations and positions, so the network and its
            kernel are invariant under quarter turns of the image).
        depth: number of hidden layers (Dense, Conv or group conv), each followed by the activation.
        width: hidden units (MLP) or channels (CNN; per rotation for the GCNN); irrelevant to the
            analytic kernel.
        activation: 'relu', 'erf' or 'gelu'.
        W_std: weight standard deviation (NTK parameterisation).
        b_std: bias standard deviation.
        out_dim: number of outputs k.
        kernel_size: CNN filter size (odd).
        padding: 'SAME' zero padding, or 'CIRCULAR' for periodic lattices.
        readout: CNN readout, 'flatten' (Flatten + Dense) or 'gap' (global average pool + Dense).
        pool: CNN and GCNN only: a 2x2 average pool with stride 2 after each hidden conv block
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
        if self.kind not in ("mlp", "cnn", "gcnn"):
            raise ValueError(f"ArchSpec.kind must be 'mlp', 'cnn' or 'gcnn'; got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ArchSpec.activation must be one of {sorted(ACTIVATIONS)}; "
                             f"got {self.activation!r}")
        if self.depth < 1 or self.width < 1 or self.out_dim < 1:
            raise ValueError(f"ArchSpec needs depth, width, out_dim >= 1; got "
                             f"depth={self.depth}, width={self.width}, out_dim={self.out_dim}")
        if self.kind in ("cnn", "gcnn"):
            if self.kind == "gcnn" and self.padding != "SAME":
                raise ValueError(f"ArchSpec.padding must be 'SAME' for kind='gcnn' (zero padding: the "
                                 f"rotations of a square image map it onto itself); got {self.padding!r}")
            if self.kernel_size % 2 != 1:
                raise ValueError(f"ArchSpec.kernel_size must be odd (symmetric padding keeps "
                                 f"rotations exact); got {self.kernel_size}")
            if self.padding not in ("SAME", "CIRCULAR"):
                raise ValueError(f"ArchSpec.padding must be 'SAME' or 'CIRCULAR'; got {self.padding!r}")
            if self.readout not in ("flatten", "gap"):
                raise ValueError(f"ArchSpec.readout must be 'flatten' or 'gap'; got {self.readout!r}")
        elif self.pool:
            raise ValueError("ArchSpec.pool is for kind='cnn' or 'gcnn'")

    def layers(self) -> tuple:
        """The network as a tuple of layer objects (:mod:`ntkequi.nn.layers`), the single source
        of the Flax network, the neural-tangents layers and the kernel recursion.

        >>> [layer.kind for layer in ArchSpec(kind="cnn", depth=1, pool=True).layers()]
        ['conv', 'act', 'pool', 'flatten', 'dense']
        """
        act = Activation(self.activation)
        out = []
        if self.kind == "mlp":
            out.append(Flatten())
            for _ in range(self.depth):
                out += [Dense(self.width, self.W_std, self.b_std), act]
        else:
            conv = Conv(self.width, self.kernel_size, self.padding, self.W_std, self.b_std)
            convs = [conv] * self.depth
            if self.kind == "gcnn":
                convs = ([LiftingConv(self.width, self.kernel_size, self.W_std, self.b_std)]
                         + [GroupConv(self.width, self.kernel_size, self.W_std, self.b_std)] * (self.depth - 1))
            for c in convs:
                out += [c, act] + ([AvgPool2()] if self.pool else [])
            out.append(Flatten() if self.readout == "flatten" else GlobalAvgPool())
        out.append(Dense(self.out_dim, self.W_std, self.b_std))
        return tuple(out)

    def stax(self):
        """``(init_fn, apply_fn, kernel_fn)`` of neural-tangents stax (imports :mod:`ntkequi.nt`,
        which patches neural-tangents for current JAX)."""
        return stax_serial(self.layers())

    def flax(self) -> FlaxNet:
        """The Flax module of this network (NTK parameterisation)."""
        return FlaxNet(self.layers())

    @property
    def kernel_fn(self):
        """The analytic ``kernel_fn(x1, x2=None, get=...)`` of this architecture: ntkequi's
        own recursion (:func:`~ntkequi.kernels.recursions.recursion_kernel_fn`, tiled to a
        memory budget, much faster than neural-tangents' for CNNs) for ReLU and erf; for an
        activation without a closed form (gelu) neural-tangents' kernel, :attr:`kernel_fn_nt`."""
        layers = self.layers()
        if not all(layer.closed_form for layer in layers):
            return self.kernel_fn_nt
        return recursion_kernel_fn(layers)

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
        if self.kind == "gcnn":                 # group_stax: every pair of (rotation, pixel)
            return (4 * spatial) ** 2
        return spatial if self.readout == "flatten" and not self.pool else spatial * spatial


def _empirical_ntk_fn(net):
    """``(jitted fn(x, key) -> (N, N) empirical NTK at the parameters drawn with key)`` of the
    Flax module ``net``: ``Theta = J J^T`` (``J = d f(x) / d params``) by NTK-vector products,
    one ``vjp`` then one ``jvp`` per output entry, mapped over the entries; averaged over the k
    outputs (the trace over the output axis divided by k, as neural-tangents'
    ``empirical_ntk_fn(trace_axes=(-1,))``)."""

    def ntk(x, key):
        params = net.init(key, x)
        f = lambda p: net.apply(p, x)                                  # noqa: E731  (N, k)
        out, vjp = jax.vjp(f, params)
        n, k = out.shape
        column = lambda ct: jax.jvp(f, (params,), vjp(ct))[1]          # noqa: E731  J J^T ct
        cols = jax.lax.map(column, jnp.eye(n * k, dtype=out.dtype).reshape(n * k, n, k))
        return jnp.einsum("aibi->ab", cols.reshape(n, k, n, k)) / k
    return jax.jit(ntk)


def empirical_ntk(model, x, key) -> jnp.ndarray:
    """The empirical NTK of a network at the parameters drawn with ``key``.

    Args:
        model: an :class:`ArchSpec` (its ``flax()`` network) or a Flax module whose outputs
            are ``(N, k)``, e.g. a :class:`~ntkequi.nn.layers.FlaxNet` of layers.
        x: inputs ``(N, ...)``.
        key: the PRNG key of the parameters (``model.init(key, x)``).

    Returns:
        ``(N, N)``: the trace over the outputs divided by ``k``, as the analytic
        ``spec.kernel_fn(x, None, 'ntk')``.
    """
    return _empirical_ntk_fn(model.flax() if isinstance(model, ArchSpec) else model)(x, key)


def empirical_ntk_lambda_max(model, params, x, iters: int = 200, rtol: float = 1e-7) -> float:
    """The largest eigenvalue of a network's full empirical NTK ``J J^T`` (``J = d f(x) / d params``
    over all ``N k`` outputs) at ``params``, by power iteration on NTK-vector products (one
    ``jax.vjp`` and one ``jax.jvp`` per iteration; no kernel is formed). Full-batch gradient
    descent on the summed MSE of the network's linearisation is stable where ``eta`` times it is
    below 2. (JAX's ``jax.experimental.sparse.linalg.lobpcg_standard`` gives the same value, to
    1e-7 on the FashionMNIST CNN's members, but took about 10x longer there and needs ``N k`` above
    five times its block size.)

    Args:
        model: an :class:`ArchSpec` (its ``flax()`` network) or a Flax module with ``(N, k)`` outputs.
        params: the parameters (``model.init``).
        x: inputs ``(N, ...)``.
        iters: at most this many iterations; rtol: stop when the Rayleigh quotient changes by less.

    Returns:
        The Rayleigh quotient at the last iterate (from below, converging to ``lambda_max``).

    >>> spec = ArchSpec(kind="mlp", depth=1, width=16, out_dim=2)
    >>> x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    >>> p = spec.flax().init(jax.random.PRNGKey(0), x)
    >>> lam = empirical_ntk_lambda_max(spec, p, x)
    >>> bool(abs(lam - jnp.linalg.eigvalsh(mlp_empirical_ntk(spec, p, x)[1])[-1]) < 1e-5 * lam)
    True
    """
    net = model.flax() if isinstance(model, ArchSpec) else model
    f = lambda q: net.apply(q, x)                                  # noqa: E731
    out, vjp = jax.vjp(f, params)
    jtj = jax.jit(lambda v: jax.jvp(f, (params,), vjp(v))[1])     # J J^T v
    v = jnp.ones_like(out) + 0.01 * jax.random.normal(jax.random.PRNGKey(0), out.shape, out.dtype)
    v, lam = v / jnp.linalg.norm(v), 0.0
    for _ in range(iters):
        w = jtj(v)
        new = float(jnp.vdot(v, w))
        v = w / jnp.linalg.norm(w)
        if abs(new - lam) <= rtol * abs(new):
            return new
        lam = new
    return lam


def mlp_empirical_ntk(spec: "ArchSpec", params, x, gram_dtype=None):
    """The initial outputs and the full empirical NTK, output by output, of one MLP member.

    Written out layer by layer (no Jacobian is formed), so it stays cheap at widths where
    ``empirical_ntk`` and neural-tangents' ``empirical_ntk_fn`` need ``N k`` Jacobian products
    or the Jacobian itself: with ``h_l`` the pre-activations of Dense layer ``l`` (input
    ``a_{l-1}``, fan-in ``d_l``) and ``delta_l[x, c] = d f_c(x) / d h_l`` (the identity for the
    readout; ``delta_l = (W_std / sqrt(d_{l+1})) delta_{l+1} W_{l+1}^T * act'(h_l)`` below it),

        Theta[(x, c), (x', c')] = sum_l ((W_std^2 / d_l) a_{l-1}(x).a_{l-1}(x') + b_std^2)
                                        * delta_l[x, c].delta_l[x', c'].

    Cost ``O(depth (N k)^2 width)``; a test checks it against neural-tangents'
    ``empirical_ntk_fn(trace_axes=())``.

    Args:
        spec: an MLP :class:`ArchSpec`.
        params: one member's parameters (``spec.flax().init``).
        x: inputs ``(N, ...)`` (flattened, as the MLP does).
        gram_dtype: dtype of the ``delta`` Gram products, the cost's bulk (None: the
            parameters'); the sum is returned in the parameters' dtype.

    Returns:
        ``(f0, theta)``: ``f0`` ``(N, k)`` (equal to ``spec.flax().apply(params, x)``) and
        ``theta`` ``(N k, N k)``, rows and columns ordered ``(x, c)`` (``f0.reshape(-1)``'s order).

    >>> spec = ArchSpec(kind="mlp", depth=1, width=16, out_dim=2)
    >>> x = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
    >>> f0, theta = mlp_empirical_ntk(spec, spec.flax().init(jax.random.PRNGKey(0), x), x)
    >>> f0.shape, theta.shape, bool(jnp.allclose(theta, theta.T, atol=1e-5))
    ((3, 2), (6, 6), True)
    """
    if spec.kind != "mlp":
        raise ValueError(f"mlp_empirical_ntk needs an MLP spec; got kind={spec.kind!r}")
    layers = [params["params"][f"_NTKDense_{i}"] for i in range(spec.depth + 1)]
    act = Activation(spec.activation).flax
    a = x.reshape(x.shape[0], -1)
    inputs, pre = [], []
    for i, layer in enumerate(layers):
        inputs.append(a)
        h = spec.W_std / math.sqrt(a.shape[1]) * a @ layer["kernel"] + spec.b_std * layer["bias"]
        pre.append(h)
        a = act(h) if i < spec.depth else h
    f0 = a
    n, k = f0.shape
    dtype = f0.dtype
    gram_dtype = dtype if gram_dtype is None else gram_dtype
    theta = jnp.zeros((n * k, n * k), dtype)
    delta = None                                                   # (N, k, width) below the readout
    for i in reversed(range(len(layers))):
        d_in = inputs[i].shape[1]
        in_gram = spec.W_std ** 2 / d_in * inputs[i] @ inputs[i].T + spec.b_std ** 2
        if delta is None:                                          # the readout: delta = identity
            theta = theta + jnp.kron(in_gram, jnp.eye(k, dtype=dtype))
        else:
            flat = delta.reshape(n * k, -1).astype(gram_dtype)
            theta = theta + jnp.repeat(jnp.repeat(in_gram, k, 0), k, 1) * (flat @ flat.T).astype(dtype)
        if i > 0:                                                  # delta of the layer below
            w = layers[i]["kernel"]
            back = (jnp.broadcast_to(w.T, (n, k, w.shape[0])) if delta is None
                    else jnp.einsum("xcm,jm->xcj", delta, w))
            slope = jax.vmap(jax.vmap(jax.grad(act)))(pre[i - 1])
            delta = spec.W_std / math.sqrt(d_in) * back * slope[:, None, :]
    return f0, theta


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
        fn = _empirical_ntk_fn(dataclasses.replace(spec, width=int(w)).flax())     # traced once per width
        for s in range(seeds):
            out[i, s] = float(jnp.linalg.norm(fn(x, jax.random.PRNGKey(seed0 + s)) - theta) / norm)
    return out
