"""E2CNN-style group CNN and learned canonicalization: exact C4 invariance, measured C8/C16."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkequi import groups, metrics
from ntkequi.experiments.baseline_invariance import invariance_report, orbit_logits
from ntkequi.nn import ArchSpec, CanonSpec, GCNNSpec, filter_bank


def test_filter_bank_rotates_like_the_image_group(key):
    w = jax.random.normal(key, (5, 5, 2, 3))
    bank = filter_bank(w, 4)
    for r in range(4):
        np.testing.assert_array_equal(bank[r], np.rot90(np.asarray(w), r, axes=(0, 1)))
    g = groups.rotations(4, (5, 5))
    np.testing.assert_array_equal(bank[1][..., 0, 0], g.act(1, w[None, ..., 0, :1])[0, ..., 0])


def test_gcnn_features_equivariant_and_output_exactly_c4_invariant(key):
    spec = GCNNSpec(n=4, depth=1, channels=3, kernel_size=5, out_dim=4, pool=True)
    x = jax.random.uniform(key, (3, 28, 28, 1))
    net = spec.flax()
    params = net.init(jax.random.PRNGKey(1), x)
    g4 = groups.rotations(4, (28, 28))
    feats = net.apply(params, x, features_only=True)                  # (N, 14, 14, 4, C)
    for g in range(4):
        fg = net.apply(params, g4.act(g, x), features_only=True)
        # the map of g x at rotation r is the map of x at r - g, rotated in space by g
        expected = jnp.rot90(jnp.roll(feats, g, axis=3), g, axes=(1, 2))
        np.testing.assert_allclose(fg, expected, atol=1e-12)
    f = orbit_logits(spec, params, x, g4)
    assert metrics.equivariance_error(f, g4).relative < 1e-12
    assert metrics.orbit_same_predictions(f, g4) == (4.0, 0.0)


def test_gcnn_with_per_layer_channels_and_a_head_is_exactly_c4_invariant(key):
    spec = GCNNSpec(n=4, depth=2, channels=(2, 3, 5), kernel_size=3, out_dim=4, pool=True, head=6)
    x = jax.random.uniform(key, (3, 28, 28, 1))
    net = spec.flax()
    params = net.init(jax.random.PRNGKey(1), x)
    assert net.apply(params, x, features_only=True).shape == (3, 7, 7, 4, 5)
    assert params["params"]["gconv1"].shape == (3, 3, 4, 3, 5)
    assert params["params"]["head"]["kernel"].shape == (spec.invariant_features, 6)
    g4 = groups.rotations(4, (28, 28))
    f = orbit_logits(spec, params, x, g4)
    assert metrics.equivariance_error(f, g4).relative < 1e-12


def test_gcnn_ring_pooling_is_exactly_c4_invariant_and_keeps_the_radial_layout(key):
    """rings=3: rings * channels invariant features, exact C4 invariance; the ring weights
    average (sum to one per ring) and every 90-degree rotation maps each ring onto itself."""
    from ntkequi.nn.gcnn import ring_means
    spec = GCNNSpec(n=4, depth=2, channels=(2, 3, 5), kernel_size=3, out_dim=4, pool=True, head=6, rings=3)
    assert spec.invariant_features == 15
    x = jax.random.uniform(key, (3, 28, 28, 1))
    params = spec.flax().init(jax.random.PRNGKey(1), x)
    assert params["params"]["head"]["kernel"].shape == (15, 6)
    g4 = groups.rotations(4, (28, 28))
    assert metrics.equivariance_error(orbit_logits(spec, params, x, g4), g4).relative < 1e-12
    rm = ring_means(7, 7, 3)
    np.testing.assert_allclose(rm.sum(axis=(0, 1)), 1.0)
    for r in range(3):                                  # every 90-degree rotation keeps each ring
        np.testing.assert_array_equal(np.rot90(rm[..., r]), rm[..., r])
    with pytest.raises(ValueError, match="rings=40 leaves a ring of an 7x7"):
        ring_means(7, 7, 40)
    with pytest.raises(ValueError, match="rings >= 0"):
        GCNNSpec(rings=-1)


@pytest.mark.parametrize("kw, match", [({"depth": 2, "channels": (4, 8)}, "depth \\+ 1 = 3"),
                                       ({"channels": (4, 0)}, "channels must be >= 1"),
                                       ({"head": -1}, "head, rings >= 0")])
def test_gcnn_spec_rejects_bad_sizes(kw, match):
    with pytest.raises(ValueError, match=match):
        GCNNSpec(**kw)


def test_plain_cnn_is_not_invariant(key):
    """Control: the ensemble members' CNN is not C4-invariant at initialisation."""
    spec = ArchSpec(kind="cnn", depth=2, width=8, out_dim=4, pool=True)
    x = jax.random.uniform(key, (4, 28, 28, 1))
    g4 = groups.rotations(4, (28, 28))
    params = spec.flax().init(jax.random.PRNGKey(1), x)
    assert metrics.equivariance_error(orbit_logits(spec, params, x, g4), g4).relative > 1e-2


def test_canonicalization_exactly_c4_invariant_and_orientation_equivariant(key):
    spec = CanonSpec(canonicalizer=GCNNSpec(n=4, depth=1, channels=3, kernel_size=5, out_dim=1),
                     classifier=ArchSpec(kind="cnn", depth=1, width=4, out_dim=5, pool=True))
    x = jax.random.uniform(key, (5, 28, 28, 1))
    net = spec.flax()
    params = net.init(jax.random.PRNGKey(2), x)
    g4 = groups.rotations(4, (28, 28))
    r0 = net.apply(params, x, return_orientation=True)[1]
    for g in range(4):
        out, r = net.apply(params, g4.act(g, x), return_orientation=True)
        np.testing.assert_array_equal(r, (r0 + g) % 4)
        np.testing.assert_allclose(out, net.apply(params, x), atol=1e-12)


def test_canonicalizer_gets_gradients_through_the_straight_through_choice(key):
    spec = CanonSpec(canonicalizer=GCNNSpec(n=4, depth=0, channels=2, kernel_size=3, out_dim=1),
                     classifier=ArchSpec(kind="cnn", depth=1, width=4, out_dim=3, pool=True))
    x = jax.random.uniform(key, (6, 28, 28, 1))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    net = spec.flax()
    params = net.init(jax.random.PRNGKey(3), x)
    grads = jax.grad(lambda p: optax.softmax_cross_entropy(net.apply(p, x), y).mean())(params)
    lift = grads["params"]["canonicalizer"]["lift"]
    assert float(jnp.abs(lift).max()) > 0


@pytest.mark.parametrize("n", [8, pytest.param(16, marks=pytest.mark.slow)])
def test_c8_c16_invariance_error_is_measured_and_moderate(n):
    """Interpolated rotations: not exact, but far below a plain CNN's error (printed with -s)."""
    rep = invariance_report(n, jax.random.PRNGKey(0), n_inputs=2, channels=2, kernel_size=3)
    for (name, kind), r in rep.items():
        print(f"C{n} {name} {kind}: invariance error {r['invariance_error']:.2e}, OSP {r['osp']:.2f}")
    gcnn = rep[("gcnn", "smooth")]["invariance_error"]
    assert 1e-6 < gcnn < 0.2
    assert 1e-6 < rep[("canonicalization", "smooth")]["invariance_error"] < 1.0
