import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups as G
def _imgs(n=3, h=6, c=2, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, h, h, c))


EXACT = [
    G.rotations(1, (6, 6)), G.rotations(2, (6, 6)), G.rotations(4, (6, 6)), G.rotations(4, (5, 5)),
    G.dihedral(1, (6, 6)), G.dihedral(2, (6, 6)), G.dihedral(4, (5, 5)),
    G.lattice_translations(4), G.lattice_rotations(5),
    G.planar_rotations(3), G.planar_rotations(8, "standard"),
]


@pytest.mark.parametrize("group", EXACT, ids=lambda g: g.name)
def test_exact_groups_pass_check(group):
    rep = G.check_group(group)
    assert rep.exact and rep.order == group.order
    assert max(rep.identity_error, rep.composition_error, rep.inverse_error,
               rep.orthogonality_error, rep.closure_error) < 1e-12


def test_orders():
    assert [g.order for g in EXACT] == [1, 2, 4, 4, 2, 4, 8, 16, 4, 3, 8]


def test_rotations_match_numpy_rot90_and_dihedral_has_mirrors():
    x = _imgs()
    c4 = G.rotations(4, (6, 6))
    for k in range(4):
        np.testing.assert_array_equal(c4.act(k, x), np.rot90(np.asarray(x), k, axes=(1, 2)))
    d4 = G.dihedral(4, (6, 6))
    orbit = np.asarray(d4.orbit(x))
    np.testing.assert_array_equal(orbit[4], np.asarray(x)[:, :, ::-1])   # the mirror s
    expected = {np.rot90(np.asarray(x)[:, :, ::-1] if m else np.asarray(x), k, axes=(1, 2)).tobytes()
                for k in range(4) for m in (0, 1)}
    assert {o.tobytes() for o in orbit} == expected


def test_lattice_translations_are_rolls():
    x = _imgs(2, 4, 1)
    t = G.lattice_translations(4)
    np.testing.assert_array_equal(t.act(1 * 4 + 3, x), np.roll(np.asarray(x), (1, 3), axis=(1, 2)))


def test_interpolated_rotations_report_inexactness():
    for n in (8, 16):
        g = G.rotations(n, (28, 28))
        assert not g.exact
        rep = G.check_group(g)
        assert rep.closure_error > 1e-3        # g^n x != x after n interpolations
        assert rep.orthogonality_error > 1e-4
        # multiples of 90 degrees are the exact permutations
        x = _imgs(2, 28, 1)
        np.testing.assert_array_equal(g.act(n // 4, x), np.rot90(np.asarray(x), 1, axes=(1, 2)))


def test_interpolated_rotation_direction_and_accuracy():
    """Two 45-degree steps of a smooth image are close to one exact 90-degree rotation,
    and a single step matches a direct 45-degree interpolation of the analytic image."""
    h = 28
    yy, xx = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(h) - (h - 1) / 2, indexing="ij")

    def blob(cx, cy):   # Gaussian centred at (x right, y up)
        return np.exp(-((xx - cx) ** 2 + (-yy - cy) ** 2) / 8.0)[None, :, :, None]

    g = G.rotations(8, (h, h))
    x = jnp.asarray(blob(6.0, 0.0))
    a = math.pi / 4
    expected = blob(6 * math.cos(a), 6 * math.sin(a))    # counter-clockwise by 45 degrees
    got = np.asarray(g.act(1, x))
    assert np.abs(got - expected).max() < 0.05
    twice = np.asarray(g.act(1, g.act(1, x)))
    # two bilinear steps blur a peak of height 1 by about 0.08
    np.testing.assert_allclose(twice, np.asarray(g.act(2, x)), atol=0.1)


def test_not_a_group_action_is_rejected():
    # a transposition and a 3-cycle of sites do not close under composition with only 3 elements
    perms = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [1, 2, 0, 3]])
    with pytest.raises(G.GroupError, match="closure fails"):
        G.GatherGroup.from_permutations("bad", perms, (2, 2))
    with pytest.raises(G.GroupError, match="identity"):
        G.GatherGroup.from_permutations("bad", perms[[1, 0]], (2, 2))
    with pytest.raises(G.GroupError, match="not a permutation"):
        G.GatherGroup.from_permutations("bad", np.array([[0, 1, 2, 3], [0, 0, 1, 2]]), (2, 2))
    rot30 = np.array([[math.cos(0.5), -math.sin(0.5)], [math.sin(0.5), math.cos(0.5)]])
    with pytest.raises(G.GroupError, match="closure fails"):
        G.MatrixGroup("bad", np.stack([np.eye(2), rot30]))


def test_check_group_names_a_broken_action():
    g = G.rotations(4, (4, 4))
    broken = G.GatherGroup("broken", g.index.copy(), g.weight.copy(), g.table, True, (4, 4))
    broken.weight[1] *= 1.5        # element 1 scales the image: not orthogonal / not a group action
    with pytest.raises(G.GroupError, match="broken"):
        G.check_group(broken)


def test_bad_shapes_are_named():
    c4 = G.rotations(4, (6, 6))
    with pytest.raises(G.GroupError, match=r"got shape \(3, 6, 6\)"):
        c4.act(1, jnp.ones((3, 6, 6)))
    with pytest.raises(G.GroupError, match="axis 1 is 5"):
        c4.orbit(jnp.ones((3, 5, 5, 1)))
    with pytest.raises(G.GroupError, match="square"):
        G.rotations(4, (6, 5))
    with pytest.raises(G.GroupError, match="n in"):
        G.dihedral(8, (6, 6))
    with pytest.raises(G.GroupError, match="k=3"):
        G.planar_rotations(4, "standard").act_out(1, jnp.ones((2, 3)))


def test_orbit_shapes_and_equivariant_output_rep():
    g = G.planar_rotations(6, "standard")
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 2))
    assert g.orbit(x).shape == (6, 5, 2)
    np.testing.assert_allclose(g.orbit_out(x), g.orbit(x), atol=1e-15)   # standard rep = input action
    for a in range(6):
        assert int(g.compose(a, g.inverse(a))) == 0


def test_act_works_under_jit_and_vmap():
    c4 = G.rotations(4, (6, 6))
    x = _imgs()
    out = jax.jit(jax.vmap(lambda k: c4.act(k, x)))(jnp.arange(4))
    np.testing.assert_array_equal(out, c4.orbit(x))
