"""The molecule-like toy: S_n on pairwise distances, and symmetrized vs augmented vs plain kernels."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from ntkequi import groups
from ntkequi.experiments import molecules as mo
def test_relabelling_atoms_is_the_group_acting_on_distances():
    g = groups.pair_permutations(4)
    rep = groups.check_group(g)
    assert g.order == 24 and rep.exact and rep.composition_error == 0.0
    x = mo.configurations(jax.random.PRNGKey(0), 3, 4)
    orbit = g.orbit(mo.distances(x))                        # (24, 3, 6, 1)
    hits = set()
    for perm in itertools.permutations(range(4)):
        d = mo.distances(x[:, list(perm)])
        match = [k for k in range(24) if float(jnp.abs(orbit[k] - d).max()) == 0.0]
        assert len(match) == 1, perm
        hits.add(match[0])
    assert hits == set(range(24))                           # one-to-one


def test_distances_and_energy_are_isometry_and_relabelling_invariant():
    x = mo.configurations(jax.random.PRNGKey(1), 5, 4)
    R = -groups.random_rotations3d(jax.random.PRNGKey(2), 1)[0]        # a reflection
    moved = x @ R.T + jnp.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(mo.distances(moved), mo.distances(x), atol=1e-12)
    e = mo.energy(mo.distances(x))
    np.testing.assert_allclose(mo.energy(mo.distances(x[:, [3, 1, 0, 2]])), e, rtol=1e-13)
    assert float(jnp.std(e)) > 1e-2


def test_symmetrized_kernel_equals_orbit_augmentation_and_is_invariant():
    g = groups.pair_permutations(4)
    xs = mo.distances(mo.configurations(jax.random.PRNGKey(3), 16, 4))
    x, y, xe = xs[:10], mo.energy(xs[:10]), xs[10:]
    xo = g.orbit(xe).reshape((-1,) + xe.shape[1:])
    preds = {m: mo.fit(m, g, 1.0, x, y)(xo, 1e-6).reshape(24, 6) for m in mo.MODELS}
    np.testing.assert_allclose(preds["symmetrized"], preds["augmented"], rtol=1e-8, atol=1e-10)
    inv = {m: float(jnp.abs(p - p[0]).max() / jnp.abs(p[0]).max()) for m, p in preds.items()}
    assert inv["symmetrized"] < 1e-8 and inv["augmented"] < 1e-8 and inv["sorted"] < 1e-12
    assert inv["plain"] > 1e-3, inv
