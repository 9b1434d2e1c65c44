"""C4 x Z^2 group-convolutional stax layers: exact invariance, kernel recursions, convergence."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups, kernels
from ntkequi.kernels.group_stax import GroupConv, LiftingConv
from ntkequi.nt import nt, stax


def gcnn(width, b_std=0.1):
    return stax.serial(LiftingConv(width, 3, b_std=b_std), stax.Relu(), GroupConv(width, 3, b_std=b_std),
                       stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, b_std=b_std))


def test_finite_network_exactly_c4_invariant(key):
    init, apply, _ = gcnn(6)
    x = jax.random.normal(key, (4, 7, 7, 2))
    g4 = groups.rotations(4, (7, 7))
    _, params = init(jax.random.PRNGKey(1), x.shape)
    out = apply(params, g4.orbit(x).reshape(-1, 7, 7, 2)).reshape(4, 4)
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape), atol=1e-13)
    assert float(jnp.abs(out).max()) > 1e-3


def test_analytic_kernel_invariant_in_each_argument(key):
    kfn = jax.jit(gcnn(1)[2], static_argnums=(2,))
    k1, k2 = jax.random.split(key)
    x1, x2 = jax.random.normal(k1, (3, 4, 4, 1)), jax.random.normal(k2, (2, 4, 4, 1))
    g4 = groups.rotations(4, (4, 4))
    ref = kfn(x1, x2, ("nngp", "ntk"))
    for a, b in ((g4.act(1, x1), x2), (x1, g4.act(3, x2)), (g4.act(2, x1), x2)):
        if True:
            k = kfn(a, b, ("nngp", "ntk"))
            np.testing.assert_allclose(k.ntk, ref.ntk, rtol=1e-12)
            np.testing.assert_allclose(k.nngp, ref.nngp, rtol=1e-12)
    # control: an ordinary CNN's kernel is not invariant in one argument alone
    cnn = stax.serial(stax.Conv(1, (3, 3), padding="SAME", W_std=math.sqrt(2), b_std=0.1), stax.Relu(),
                      stax.GlobalAvgPool(), stax.Dense(1, b_std=0.1))[2]
    assert float(jnp.abs(cnn(g4.act(1, x1), x2, "ntk") - cnn(x1, x2, "ntk")).max()) > 1e-4


def test_lifting_plus_pooling_is_the_two_sided_symmetrized_cnn_kernel(key):
    """Independent check of the lifting recursion: with only a lifting layer and invariant
    mean pooling, f(x) = 1/4 sum_r h(r^-1 x) for the CNN h with the same (shared)
    parameters, so its NTK is the two-sided C4-symmetrized NTK of h (neural-tangents' Conv)."""
    w_std, b_std = 1.3, 0.2
    lift = stax.serial(LiftingConv(1, 3, W_std=w_std, b_std=b_std), stax.Relu(), stax.GlobalAvgPool(),
                       stax.Dense(1, b_std=b_std))[2]
    cnn = stax.serial(stax.Conv(1, (3, 3), padding="SAME", W_std=w_std, b_std=b_std), stax.Relu(),
                      stax.GlobalAvgPool(), stax.Dense(1, b_std=b_std))[2]
    g4 = groups.rotations(4, (5, 5))
    x1, x2 = jax.random.normal(key, (3, 5, 5, 2)), jax.random.normal(jax.random.PRNGKey(5), (2, 5, 5, 2))
    sym = kernels.symmetrize(cnn, g4, two_sided=True)
    for get in ("nngp", "ntk"):
        np.testing.assert_allclose(lift(x1, x2, get), sym(x1, x2, get), rtol=1e-10)


@pytest.mark.slow      # in the suite: tests/test_layers.py's GCNN (the same layers, Flax = stax to 1e-12)
def test_empirical_ntk_of_wide_finite_network_converges_to_analytic(key):
    x = jax.random.normal(key, (2, 4, 4, 1))
    theta = gcnn(1)[2](x, None, "ntk")
    errs = []
    for w in (8, 32, 128):
        init, apply, _ = gcnn(w)
        emp = jax.jit(nt.empirical_ntk_fn(apply, trace_axes=(-1,), vmap_axes=0,
                                          implementation=nt.NtkImplementation.NTK_VECTOR_PRODUCTS))
        e = [float(jnp.linalg.norm(emp(x, None, init(jax.random.PRNGKey(s), x.shape)[1]) - theta)
                   / jnp.linalg.norm(theta)) for s in range(6)]
        errs.append(np.mean(e))
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    assert all(r > 1.4 for r in ratios), (errs, ratios)      # 1/sqrt(width) would be 2 per 4x
    assert errs[-1] < 0.2, errs


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="odd"):
        LiftingConv(4, 2)
    with pytest.raises(ValueError, match=r"GroupConv takes regular C4 feature maps"):
        stax.serial(GroupConv(2), stax.GlobalAvgPool())[2](jnp.ones((2, 5, 5, 1)), None, "ntk")
    with pytest.raises(ValueError, match="LiftingConv takes images"):
        stax.serial(LiftingConv(2), LiftingConv(2))[2](jnp.ones((2, 5, 5, 1)), None, "ntk")


def test_group_stax_and_the_gcnn_baseline_compute_one_c4_group_convolution():
    """The same C4 regular group convolution is written twice: as a neural-tangents layer
    (layout (N, 4, H, W, C), filters turned by jnp.rot90, NTK parameterisation) and in the
    Flax baseline (layout (N, H, W, 4, C), filters turned by the image action of
    groups.rotations). With the same weights, lifting -> ReLU -> group conv agree to rounding
    (up to the NTK scale factors), so the two can never drift apart."""
    from ntkequi.nn.conv import conv2d
    from ntkequi.nn.gcnn import group_conv_filters, lifting_filters
    k, c_in, c = 3, 2, 3
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 7, c_in))
    w1 = jax.random.normal(jax.random.PRNGKey(1), (k, k, c_in, c))
    w2 = jax.random.normal(jax.random.PRNGKey(2), (k, k, 4, c, c))
    zeros = jnp.zeros((c,))
    _, lift, _ = LiftingConv(c, k, W_std=1.0, b_std=0.0)
    _, gconv, _ = GroupConv(c, k, W_std=1.0, b_std=0.0)
    f_stax = lift((w1, zeros), x) * np.sqrt(k * k * c_in)                      # (N, 4, H, W, C)
    f_gcnn = conv2d(x, lifting_filters(w1, 4)).reshape(2, 7, 7, 4, c)          # (N, H, W, 4, C)
    np.testing.assert_allclose(jnp.moveaxis(f_stax, 1, 3), f_gcnn, rtol=1e-12, atol=1e-12)
    h_stax = gconv((w2, zeros), jax.nn.relu(f_stax)) * np.sqrt(k * k * 4 * c)
    h_gcnn = conv2d(jax.nn.relu(f_gcnn).reshape(2, 7, 7, 4 * c), group_conv_filters(w2, 4)).reshape(2, 7, 7, 4, c)
    np.testing.assert_allclose(jnp.moveaxis(h_stax, 1, 3), h_gcnn, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("group_in", [False, True])
def test_stencil_by_rotation_difference_equals_the_sum_over_all_block_pairs(group_in):
    """The (r, r') blocks of the group-conv covariance map, computed as 4 stencils indexed by
    r' - r, against the direct sum over all 16 block pairs and all filter taps."""
    from ntkequi.kernels.group_stax import _shifted_sum, tap_offsets
    k, h, w = 3, 5, 4
    shape = (2, 4, h, w, 4, h, w) if group_in else (2, h, w, h, w)
    a = np.random.default_rng(0).normal(size=shape)
    pos, c = tap_offsets(k), k // 2
    pads = [(0, 0)] + ([(0, 0), (c, c), (c, c)] * 2 if group_in else [(c, c)] * 4)
    ap = np.pad(a, pads)
    want = np.zeros((2, 4, h, w, 4, h, w))
    for r in range(4):
        for r2 in range(4):
            for t in range(k * k):
                (di, dj), (ei, ej) = pos[r, t], pos[r2, t]
                si, sj = slice(c + di, c + di + h), slice(c + dj, c + dj + w)
                ti, tj = slice(c + ei, c + ei + h), slice(c + ej, c + ej + w)
                if group_in:
                    for j in range(4):
                        want[:, r, :, :, r2] += ap[:, (j + r) % 4, si, sj, (j + r2) % 4, ti, tj] / (4 * k * k)
                else:
                    want[:, r, :, :, r2] += ap[:, si, sj, ti, tj] / (k * k)
    np.testing.assert_allclose(np.asarray(_shifted_sum(jnp.asarray(a), k, group_in)), want, rtol=1e-12, atol=1e-13)
