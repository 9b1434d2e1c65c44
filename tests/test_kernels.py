"""Symmetrized kernels and their exact relation to orbit-augmented regression / gradient flow."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import data, groups, kernels
from ntkequi.kernels import ntk
from ntkequi.nn import ArchSpec
from ntkequi.groups import GroupError


@kernels.from_function
def anisotropic_rbf(x1, x2):
    """exp(-(dx^2 + 4 dy^2)): not invariant under rotations of the plane."""
    d = x1[:, None, :] - x2[None, :, :]
    return jnp.exp(-(d[..., 0] ** 2 + 4.0 * d[..., 1] ** 2))


def _rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("diag_reg", [0.0, 1e-3])
def test_augmented_mlp_ntk_equals_symmetrized_at_all_times(diag_reg):
    """Planar C8, ReLU MLP NTK (invariant under orthogonal maps): the augmented mu_t is
    the symmetrized mu at |G| t, with the regulariser divided by |G|, t finite and inf."""
    g8 = groups.planar_rotations(8)
    x = data.wedge_points(jax.random.PRNGKey(0), 10)
    y = data.radial_target(x)
    x_test = jnp.concatenate([data.noise_points(jax.random.PRNGKey(1), 5), data.wedge_points(jax.random.PRNGKey(2), 5)])
    arch = ArchSpec(kind="mlp", depth=2, b_std=0.3)
    ts = [0.1, 2.0, 50.0, math.inf]
    aug = ntk.predict(arch, x, y, x_test, ts, group=g8, diag_reg=diag_reg)
    p = kernels.augmented_as_symmetrized(arch, g8, x, ts, diag_reg=diag_reg)
    assert p.kernel_invariance < 1e-12
    np.testing.assert_allclose(p.t[:3], 8 * np.asarray(ts[:3]))
    sym = ntk.predict(p.kernel_fn, x, y, x_test, p.t, diag_reg=p.diag_reg)
    assert _rel(sym.mean, aug.mean) < 1e-8
    # without the |G| time factor they differ: the factor is not a convention we can drop
    wrong = ntk.predict(p.kernel_fn, x, y, x_test, ts[:3], diag_reg=p.diag_reg)
    assert _rel(wrong.mean, aug.mean[:3]) > 1e-2


def test_augmented_cnn_ntk_equals_symmetrized_for_exact_c4_images():
    g4 = groups.rotations(4, (6, 6))
    kx, ky, kt = jax.random.split(jax.random.PRNGKey(3), 3)
    x = jax.random.normal(kx, (6, 6, 6, 1))
    y = jax.random.normal(ky, (6, 2))
    x_test = jax.random.normal(kt, (4, 6, 6, 1))
    arch = ArchSpec(kind="cnn", depth=1, width=8, out_dim=2)
    aug = ntk.predict(arch, x, y, x_test, [1.0, math.inf], group=g4, diag_reg=1e-4)
    p = kernels.augmented_as_symmetrized(arch, g4, x, [1.0, math.inf], diag_reg=1e-4)
    sym = ntk.predict(p.kernel_fn, x, y, x_test, p.t, diag_reg=p.diag_reg)
    assert _rel(sym.mean, aug.mean) < 1e-8


def test_relation_fails_measurably_for_a_non_invariant_kernel_and_is_refused():
    g8 = groups.planar_rotations(8)
    x = data.wedge_points(jax.random.PRNGKey(0), 8)
    y = data.radial_target(x)
    x_test = data.noise_points(jax.random.PRNGKey(1), 6, scale=1.0)
    with pytest.raises(GroupError, match="not invariant under the simultaneous action"):
        kernels.augmented_as_symmetrized(anisotropic_rbf, g8, x, [1.0], diag_reg=1e-3)
    p = kernels.augmented_as_symmetrized(anisotropic_rbf, g8, x, [1.0, math.inf], diag_reg=1e-3, check=False)
    assert p.kernel_invariance > 1e-2
    aug = ntk.predict(anisotropic_rbf, x, y, x_test, [1.0, math.inf], group=g8, diag_reg=1e-3, solver="direct")
    sym = ntk.predict(p.kernel_fn, x, y, x_test, p.t, diag_reg=p.diag_reg)
    assert _rel(sym.mean, aug.mean) > 1e-3
    # an interpolated (inexact) group is refused too
    with pytest.raises(GroupError, match="not exact"):
        kernels.augmented_as_symmetrized(ArchSpec(kind="cnn", depth=1), groups.rotations(8, (6, 6)),
                                         jnp.ones((2, 6, 6, 1)), [1.0])


def test_symmetrized_kernel_invariance_one_and_two_sided(key):
    g8 = groups.planar_rotations(4)
    x1 = data.noise_points(key, 5, scale=1.0)
    x2 = data.noise_points(jax.random.PRNGKey(7), 4, scale=1.0)
    mlp = ArchSpec(kind="mlp", depth=2).kernel_fn
    for base, invariant in ((mlp, True), (anisotropic_rbf, False)):
        one = kernels.symmetrize(base, g8)
        two = kernels.symmetrize(base, g8, two_sided=True)
        k1, k2 = one(x1, x2, "ntk"), two(x1, x2, "ntk")
        for g in (1, 3):
            # one-sided: invariant in the second argument always
            np.testing.assert_allclose(one(x1, g8.act(g, x2), "ntk"), k1, atol=1e-12)
            # two-sided: invariant in both arguments always
            np.testing.assert_allclose(two(g8.act(g, x1), x2, "ntk"), k2, atol=1e-12)
        if invariant:     # then both agree and one-sided is invariant in the first argument too
            np.testing.assert_allclose(k1, k2, atol=1e-12)
            np.testing.assert_allclose(one(g8.act(3, x1), x2, "ntk"), k1, atol=1e-12)
        else:
            assert _rel(one(g8.act(1, x1), x2, "ntk"), k1) > 1e-3


def test_symmetrized_kernel_blocks_shapes_and_errors(key):
    g4 = groups.rotations(4, (5, 5))
    x = jax.random.normal(key, (7, 5, 5, 1))
    kfn = kernels.symmetrize(ArchSpec(kind="cnn", depth=1).kernel_fn, g4)
    full = kfn(x, None, "ntk")
    np.testing.assert_allclose(kernels.symmetrize(ArchSpec(kind="cnn", depth=1).kernel_fn, g4, batch_size=3)(
        x, None, "ntk"), full, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(full, full.T, atol=1e-12)
    both = kfn(x, x[:2], ("nngp", "ntk"))
    np.testing.assert_allclose(both.ntk, full[:, :2], rtol=1e-9)
    with pytest.raises(GroupError, match="per-sample shape"):
        kfn(jnp.ones((2, 4, 4, 1)))
    with pytest.raises(GroupError, match=r"per-sample shape \(2,\); got \(3,\)"):
        kernels.symmetrize(anisotropic_rbf, groups.planar_rotations(4))(jnp.ones((3, 3)))
