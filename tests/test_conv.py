"""The convolution formulations of ntkequi.nn.conv compute the same function (and
gradient), and the networks give the same outputs with each."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi.nn import ArchSpec, GCNNSpec
from ntkequi.nn.conv import conv2d, conv_impl_for, im2col, using_conv_impl


@pytest.mark.parametrize("impl", ["im2col", "shifts"])
@pytest.mark.parametrize("k,padding", [(3, "SAME"), (5, "SAME"), (2, "SAME"), (4, "SAME"), (3, "VALID")])
def test_formulation_equals_xla_convolution(k, padding, impl):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 9, 8, 2), jnp.float64)    # conftest: x64 on
    w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 2, 5), jnp.float64)
    a, b = conv2d(x, w, padding, impl=impl), conv2d(x, w, padding, impl="xla")
    assert a.shape == b.shape and a.dtype == jnp.float64
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    loss = lambda impl: (lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, padding, impl=impl))))
    ga, gb = jax.grad(loss(impl), (0, 1))(x, w), jax.grad(loss("xla"), (0, 1))(x, w)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-11)


def test_patch_order_is_the_filter_reshape():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    p = im2col(x, 3, "VALID")
    assert p.shape == (1, 2, 2, 9)
    np.testing.assert_array_equal(p[0, 0, 0], [0, 1, 2, 4, 5, 6, 8, 9, 10])
    x2 = jnp.concatenate([x, 100 + x], axis=-1)          # two channels: channel-major patches
    np.testing.assert_array_equal(im2col(x2, 3, "VALID")[0, 1, 0],
                                  [4, 5, 6, 8, 9, 10, 12, 13, 14, 104, 105, 106, 108, 109, 110, 112, 113, 114])


def test_networks_agree_under_either_formulation():
    x = jax.random.uniform(jax.random.PRNGKey(2), (4, 28, 28, 1))
    for spec in (ArchSpec(kind="cnn", depth=2, width=8, out_dim=10, pool=True),
                 GCNNSpec(n=4, depth=2, channels=(2, 3, 4), kernel_size=5, out_dim=10, pool=True, head=8)):
        net = spec.flax()
        params = net.init(jax.random.PRNGKey(0), x[:1])
        outs = {}
        for impl in ("xla", "im2col", "shifts"):
            with using_conv_impl(impl):
                assert conv_impl_for() == impl
                outs[impl] = jax.jit(net.apply)(params, x)
        np.testing.assert_allclose(outs["im2col"], outs["xla"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(outs["shifts"], outs["xla"], rtol=1e-4, atol=1e-4)
    assert conv_impl_for() == "xla"


def test_bad_convolution_arguments_are_named():
    x = jnp.zeros((1, 5, 5, 2))
    with pytest.raises(ValueError, match="impl must be one of"):
        conv2d(x, jnp.zeros((3, 3, 2, 1)), impl="fft")
    with pytest.raises(ValueError, match="impl must be one of"):
        with using_conv_impl("winograd"):
            pass
    with pytest.raises(ValueError, match=r"C_in=2"):
        conv2d(x, jnp.zeros((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="padding must be"):
        conv2d(x, jnp.zeros((3, 3, 2, 1)), "FULL", impl="im2col")
    for impl in ("im2col", "shifts"):
        with pytest.raises(ValueError, match="does not fit"):
            conv2d(x, jnp.zeros((7, 7, 2, 1)), "VALID", impl=impl)
    with pytest.raises(ValueError, match="padding must be"):
        conv2d(x, jnp.zeros((3, 3, 2, 1)), "FULL", impl="shifts")
