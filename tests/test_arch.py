"""One ArchSpec, two realisations: the Flax network and the stax kernel agree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi.nn import ArchSpec, empirical_ntk, empirical_ntk_errors


def _flax_params_as_stax(spec, flax_params):
    """Flax parameters in stax's layout (one entry per layer, () for parameter-free ones)."""
    p = flax_params["params"]
    names = iter(p)            # creation order = layer order
    out = []
    for name, *_ in spec.layers():
        if name in ("dense", "conv"):
            q = p[next(names)]
            b = q["bias"].reshape((1,) * (q["kernel"].ndim - 1) + (-1,))
            out.append((q["kernel"], b))
        else:
            out.append(())
    return out


@pytest.mark.parametrize("spec,shape", [
    (ArchSpec(kind="mlp", depth=2, width=16, b_std=0.3, activation="gelu"), (3, 4)),
    (ArchSpec(kind="cnn", depth=2, width=4, padding="CIRCULAR", activation="erf"), (2, 5, 5, 2)),
    (ArchSpec(kind="cnn", depth=1, width=4, readout="gap", out_dim=3), (2, 6, 6, 1)),
    (ArchSpec(kind="cnn", depth=2, width=3, pool=True, out_dim=2), (2, 8, 8, 1)),
])
def test_flax_network_computes_the_stax_network(spec, shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    net = spec.flax()
    params = net.init(jax.random.PRNGKey(1), x)
    _, apply_fn, _ = spec.stax()
    out = net.apply(params, x)
    assert out.shape == (shape[0], spec.out_dim)
    np.testing.assert_allclose(out, apply_fn(_flax_params_as_stax(spec, params), x), rtol=1e-12, atol=1e-12)


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
