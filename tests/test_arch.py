"""One ArchSpec, two realisations: the Flax network's empirical NTK approaches the analytic kernel.

(The Flax network computing neural-tangents' network, layer type by layer type: tests/test_layers.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi.nn import ArchSpec, empirical_ntk, empirical_ntk_errors


@pytest.mark.parametrize("spec,shape,widths,seeds", [
    (ArchSpec(kind="mlp", depth=2, b_std=0.3), (5, 3), (128, 512, 2048), 12),
    (ArchSpec(kind="cnn", depth=1, padding="CIRCULAR"), (4, 4, 4, 1), (32, 128, 512), 8),
])
def test_empirical_ntk_of_flax_network_converges_to_analytic(spec, shape, widths, seeds):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    errs = empirical_ntk_errors(spec, x, widths, seeds).mean(axis=1)
    # width x4 -> error / 2 at the 1/sqrt(width) rate
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    assert all(1.4 < r < 3.0 for r in ratios), (errs, ratios)
    assert errs[-1] < 0.1, errs


def test_empirical_ntk_at_a_given_key_is_the_jacobian_gram_matrix():
    """Independent check of ``empirical_ntk``: J J^T from explicit parameter Jacobians."""
    spec = ArchSpec(kind="mlp", depth=1, width=7, b_std=0.4)
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 3))
    key = jax.random.PRNGKey(5)
    net = spec.flax()
    params = net.init(key, x)
    jac = jax.jacobian(lambda p: net.apply(p, x)[:, 0])(params)
    J = jnp.concatenate([j.reshape(4, -1) for j in jax.tree_util.tree_leaves(jac)], axis=1)
    np.testing.assert_allclose(empirical_ntk(spec, x, key), J @ J.T, rtol=1e-10, atol=1e-12)
