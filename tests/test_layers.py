"""Every layer type in its three views: the Flax network, neural-tangents' layers and ntkequi's
kernel recursion, all built from one tuple of layer objects (ntkequi.nn.layers).

For each network below (together they use every type in LAYER_TYPES, and every padding, pooling
of odd and even maps, both representations of the recursion and its fused first block):
- the Flax network computes neural-tangents' network (same parameters) to 1e-12;
- the recursion equals neural-tangents' analytic NNGP and NTK to 1e-10 (float64);
- the Flax network's empirical NTK approaches the recursion's NTK as the width grows.
"""
import dataclasses

import jax
import numpy as np
import pytest

from ntkequi.kernels.recursions import RecursionKernelFn, recursion_kernel_fn
from ntkequi.nn import ArchSpec, empirical_ntk
from ntkequi.nn.layers import (LAYER_TYPES, Activation, AvgPool2, Conv, Dense, FlaxNet, Flatten, GlobalAvgPool,
                               GroupConv, LiftingConv, stax_serial)


def _nets(w):
    """name -> (layers at hidden width w, input shape)."""
    relu, erf = Activation("relu"), Activation("erf")
    return {
        # an MLP on a non-flat input, two activations, different scales per layer
        "mlp": ((Flatten(), Dense(w, 1.5, 0.3), relu, Dense(w, 1.2, 0.1), erf, Dense(2, 1.0, 0.2)), (3, 2, 3)),
        # conv -> act -> pool first (the fused first block), two channels, band representation
        "cnn_pool": ((Conv(w, 3, "SAME", 1.4, 0.1), relu, AvgPool2(), Conv(w, 3, "SAME", 1.3, 0.2), erf,
                      AvgPool2(), Flatten(), Dense(1, 1.1, 0.1)), (3, 4, 4, 2)),
        # a 5x5 kernel, a pool of an odd (5x5) map, no pool at the end
        "cnn_odd": ((Conv(w, 5, "SAME", 1.2, 0.0), relu, AvgPool2(), Conv(w, 3, "SAME", 1.4, 0.1), relu,
                     Flatten(), Dense(1, 1.0, 0.0)), (3, 5, 5, 1)),
        # circular padding, pool, then global average pooling (the full covariance), 3 outputs
        "cnn_gap": ((Conv(w, 3, "CIRCULAR", 1.3, 0.2), erf, AvgPool2(), Conv(w, 3, "CIRCULAR", 1.5, 0.1), relu,
                     GlobalAvgPool(), Dense(3, 1.0, 0.3)), (3, 4, 4, 1)),
        # C4 lifting, pool of regular feature maps, group convolution, invariant pooling (full)
        "gcnn_gap": ((LiftingConv(w, 3, 1.4, 0.1), relu, AvgPool2(), GroupConv(w, 3, 1.3, 0.2), erf,
                      GlobalAvgPool(), Dense(2, 1.0, 0.1)), (3, 6, 6, 2)),
        # a conv before the lifting, a flatten readout of regular feature maps (the band)
        "gcnn_band": ((Conv(w, 3, "SAME", 1.2, 0.1), erf, LiftingConv(w, 3, 1.4, 0.0), relu,
                       GroupConv(w, 3, 1.3, 0.1), relu, Flatten(), Dense(1, 1.0, 0.1)), (3, 9, 9, 1)),
    }


NAMES = tuple(_nets(4))


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _flax_params_as_stax(layers, flax_params):
    """Flax parameters in stax's layout (one entry per layer, () for parameter-free ones)."""
    p = flax_params["params"]
    names = iter(p)            # creation order = layer order
    out = []
    for layer in layers:
        if layer.has_params:
            q = p[next(names)]
            b = q["bias"].reshape((1,) * (q["kernel"].ndim - 1) + (-1,))
            out.append((q["kernel"], b))
        else:
            out.append(())
    return out


def test_the_networks_cover_every_layer_type():
    used = {type(layer) for layers, _ in _nets(4).values() for layer in layers}
    assert used == set(LAYER_TYPES)


@pytest.mark.parametrize("layers,shape", [
    *(_nets(5)[name] for name in NAMES),
    (ArchSpec(kind="mlp", depth=2, width=16, b_std=0.3, activation="gelu").layers(), (3, 4)),
], ids=[*NAMES, "gelu"])
def test_flax_network_computes_the_neural_tangents_network(layers, shape):
    x = _inputs(shape)
    net = FlaxNet(layers)
    params = net.init(jax.random.PRNGKey(1), x)
    _, apply_fn, _ = stax_serial(layers)
    out = net.apply(params, x)
    assert out.shape == (shape[0], layers[-1].features)
    np.testing.assert_allclose(out, apply_fn(_flax_params_as_stax(layers, params), x), rtol=1e-12, atol=1e-12)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", NAMES)
def test_recursion_equals_neural_tangents_kernel(name):
    layers, shape = _nets(8)[name]
    assert jax.config.jax_enable_x64
    x1, x2 = _inputs(shape, 0), _inputs((2,) + shape[1:], 1)
    ours, ref = recursion_kernel_fn(layers), stax_serial(layers)[2]
    # the reference GCNN layers (kernels.group_stax) take 20-30 s to compile per call: the full GCNN
    # is compared on x2 only; the band one (its kernel is the plain CNN's: the flatten readout reads
    # rotation block 0) against ntkequi's CNN kernel in tests/test_gcnn_kernels.py
    modes = {"gcnn_band": (), "gcnn_gap": (x2,)}.get(name, (None, x2))
    for b in modes:
        k, r = ours(x1, b, ("nngp", "ntk")), ref(x1, b, ("nngp", "ntk"))
        for g in ("nngp", "ntk"):
            assert _rel(getattr(k, g), getattr(r, g)) < 1e-10, (name, g, b is None)


def test_a_layer_without_closed_form_is_refused_by_the_recursion():
    layers = ArchSpec(kind="mlp", depth=1, activation="gelu").layers()
    with pytest.raises(ValueError, match="no closed-form kernel"):
        recursion_kernel_fn(layers)
    assert not isinstance(ArchSpec(kind="mlp", depth=1, activation="gelu").kernel_fn, RecursionKernelFn)


@pytest.mark.parametrize("name,widths", [("mlp", (32, 512)), ("cnn_pool", (8, 128)), ("cnn_odd", (8, 128)),
                                         ("cnn_gap", (8, 128)), ("gcnn_gap", (4, 64))])
def test_empirical_ntk_approaches_the_recursion_as_width_grows(name, widths):
    layers, shape = _nets(8)[name]
    x = _inputs(shape)
    theta = np.asarray(recursion_kernel_fn(layers)(x, None, "ntk"))
    seeds = 4
    errs = []
    for w in widths:
        net = FlaxNet(_nets(w)[name][0])
        e = [np.linalg.norm(np.asarray(empirical_ntk(net, x, jax.random.PRNGKey(s))) - theta) for s in range(seeds)]
        errs.append(np.mean(e) / np.linalg.norm(theta))
    # 16x the width: the 1/sqrt(width) rate gives 4x less (measured, three groups of 4 seeds: 3.4-7.8x); asked: 2x
    assert errs[0] / errs[1] > 2.0, (name, errs)
    assert errs[1] < 0.25, (name, errs)


def test_layer_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="odd.*got 4"):
        Conv(8, 4, "SAME", 1.0, 0.0)
    with pytest.raises(ValueError, match="'VALID'"):
        Conv(8, 3, "VALID", 1.0, 0.0)
    with pytest.raises(ValueError, match="'tanh'"):
        Activation("tanh")
    with pytest.raises(ValueError, match="too small"):
        recursion_kernel_fn((Conv(None, 3, "SAME", 1.0, 0.0), AvgPool2(), AvgPool2(), Flatten(),
                             Dense(1, 1.0, 0.0)))(np.zeros((2, 3, 3, 1)), None, "ntk")


def test_analytic_key_drops_the_width_only():
    a, b = Dense(16, 1.5, 0.1), Dense(1024, 1.5, 0.1)
    assert a != b and a.analytic() == b.analytic()
    assert Dense(16, 1.5, 0.1).analytic() != Dense(16, 1.4, 0.1).analytic()
    c = dataclasses.replace(Conv(8, 3, "SAME", 1.0, 0.0), features=64)
    assert c.analytic() == Conv(8, 3, "SAME", 1.0, 0.0).analytic()


def test_dense_product_is_the_plain_product_and_takes_its_transposed_form_for_readouts():
    """``dense_product`` (every dense layer's ``x @ w``): value, gradients, forward-mode and
    vmapped gradients equal the plain product's to float64 rounding; on a CPU a readout-shaped
    kernel (few outputs, many inputs) enters behind an optimisation barrier (the transposed
    form whose kernel gradient XLA computes fast), other shapes do not."""
    import jax.numpy as jnp
    from ntkequi.nn.layers import dense_product
    rng = np.random.default_rng(0)
    for shape in [(64, 3), (3, 64), (64, 1), (5, 5)]:
        x = jnp.asarray(rng.normal(size=(4, 7, shape[0])))
        w = jnp.asarray(rng.normal(size=shape))
        ours = lambda x, w: jnp.sum(jnp.sin(dense_product(x, w)))     # noqa: E731
        plain = lambda x, w: jnp.sum(jnp.sin(x @ w))                  # noqa: E731
        np.testing.assert_allclose(dense_product(x, w), x @ w, rtol=1e-13, atol=1e-13)
        for a, b in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(plain, (0, 1))(x, w)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jax.jvp(lambda v: dense_product(x, v), (w,), (w + 1,))[1],
                                   jax.jvp(lambda v: x @ v, (w,), (w + 1,))[1], rtol=1e-12, atol=1e-12)
        ws = jnp.stack([w, 2 * w])
        np.testing.assert_allclose(jax.vmap(lambda v: jax.grad(ours, 1)(x, v))(ws),
                                   jax.vmap(lambda v: jax.grad(plain, 1)(x, v))(ws), rtol=1e-12, atol=1e-12)
        barrier = "optimization_barrier" in str(jax.make_jaxpr(jax.grad(ours, 1))(x, w))
        assert barrier == (jax.default_backend() == "cpu" and shape == (64, 3)), shape
