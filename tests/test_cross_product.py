"""Finite rotation groups of R^3 and emergent equivariance for vector targets (a x b)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi.experiments import cross_product as cp
from ntkequi import groups, metrics
from ntkequi.report import build as figures
from ntkequi.kernels import ntk
from ntkequi.groups import GroupError


def _element_orders(g):
    orders = []
    for a in range(g.order):
        k, h = 1, a
        while h != 0:
            h = int(g.table[a, h])
            k += 1
        orders.append(k)
    return np.bincount(orders)


@pytest.mark.parametrize("name,order,counts", [
    ("T", 12, {1: 1, 2: 3, 3: 8}),
    ("O", 24, {1: 1, 2: 9, 3: 8, 4: 6}),
    ("I", 60, {1: 1, 2: 15, 3: 20, 5: 24}),
    ("C6", 6, {1: 1, 2: 1, 3: 2, 6: 2}),
    ("D4", 8, {1: 1, 2: 5, 4: 2}),
])
def test_finite_rotation_groups(name, order, counts):
    """Exact rotations (orthogonal, det +1), closed (Cayley table derived and validated),
    a group action on pairs of vectors, and the known numbers of elements of each order."""
    g = groups.rotations3d(name)
    assert g.order == order and g.exact and g.event_shape == (None, 3)
    m = g.mats
    np.testing.assert_allclose(np.einsum("aji,ajk->aik", m, m), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)
    rep = groups.check_group(g)
    assert rep.composition_error < 1e-12 and rep.out_rep_error < 1e-12
    got = _element_orders(g)
    assert {k: int(v) for k, v in enumerate(got) if v} == counts
    assert len(groups.irreps(g)) == {"T": 4, "O": 5, "I": 5, "C6": 6, "D4": 5}[name]


def test_rotation_group_errors_and_haar_samples():
    with pytest.raises(GroupError, match="unknown finite rotation group"):
        groups.rotations3d("X7")
    with pytest.raises(GroupError, match="closure fails"):
        groups.VectorGroup("not a group", np.stack([np.eye(3), groups.points._axis_rotation((0, 0, 1), 1.0)]))
    r = groups.random_rotations3d(jax.random.PRNGKey(0), 200)
    np.testing.assert_allclose(jnp.einsum("aji,ajk->aik", r, r), jnp.broadcast_to(jnp.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(jnp.linalg.det(r), 1.0, atol=1e-12)
    # Haar: E[R] = 0 (a fixed-axis or biased sampler would not average out)
    assert float(jnp.abs(r.mean(0)).max()) < 0.15


def test_transform_error_is_generic():
    """Zero for the (exactly equivariant) cross product under random rotations, order 1
    for a non-equivariant function; invariance with out_mats=None."""
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 2, 3))
    rots = groups.random_rotations3d(jax.random.PRNGKey(1), 5)
    xr = jnp.einsum("rij,nvj->rnvi", rots, x)
    f = jax.vmap(cp.cross)
    assert metrics.transform_error(f(xr), cp.cross(x), rots).relative < 1e-14
    g = lambda z: z[..., 0, :] * jnp.array([1.0, 2.0, 3.0])  # noqa: E731
    assert metrics.transform_error(g(xr), g(x), rots).relative > 0.1
    norm = lambda z: jnp.linalg.norm(z, axis=-1)  # noqa: E731
    assert metrics.transform_error(norm(xr), norm(x)).relative < 1e-14
    with pytest.raises(ValueError, match="f_transformed"):
        metrics.transform_error(f(xr)[:, :3], cp.cross(x), rots)


def test_augmented_ntk_mean_is_equivariant_and_so3_error_falls_with_group_order():
    """Analytic NTK mean with full-orbit augmentation (structured solve; the direct path
    for T as a cross-check): equivariant under the augmentation group to <= 1e-6 relative
    on and off the data at finite t and t = inf, and its error under random SO(3)
    rotations falls as the group gets finer: I (60) < O (24) < T (12) < no augmentation."""
    cfg = cp.CrossProductConfig(n_train=6, n_eval=4, n_so3_eval=6)
    x, y, evals, rots = cp.problem(cfg)
    arch = cp.spec(cfg)
    so3 = {}
    for name in ("T", "O", "I"):
        g = groups.rotations3d(name)
        x_eval, index = cp._eval_inputs(g, evals, rots)
        mean = ntk.predict(arch, x, y, x_eval, [1.0, math.inf], group=g, diag_reg=1e-8,
                           solver="structured").mean
        if name == "T":
            direct = ntk.predict(arch, x, y, x_eval, [1.0, math.inf], group=g, diag_reg=1e-8).mean
            assert float(jnp.linalg.norm(direct - mean) / jnp.linalg.norm(direct)) < 1e-7
        for i in range(2):
            err = cp._errors(mean[i], g, index, rots)
            for s in cp.EVAL_SETS:
                assert err[s]["group"] < 1e-6, (name, s, err[s])
        so3[name] = cp._errors(mean[1], g, index, rots)["flipped"]["so3"]
    x_eval, index = cp._eval_inputs(None, evals, rots)
    plain = ntk.predict(arch, x, y, x_eval, math.inf, diag_reg=1e-8).mean[0]
    so3["none"] = cp._errors(plain, None, index, rots)["flipped"]["so3"]
    assert so3["I"] < so3["O"] < so3["T"] < so3["none"], so3


@pytest.mark.slow
def test_cross_product_experiment_runs_and_resumes(tmp_path):
    cfg = cp.CrossProductConfig(n_train=6, n_eval=4, n_so3_eval=3, so3_augment=8, ensemble_width=32,
                                ensemble_sizes=(1, 2), ensemble_times=(1.0,), time_multiples=(1.0, math.inf),
                                ensemble_augmentations=("none", "T", "so3"))
    done = cp.run(cfg, tmp_path, progress=False)
    assert set(done) >= {"none", "C4", "T", "O", "I", "so3", "ensemble_none", "ensemble_T", "ensemble_so3"}
    for aug in ("C4", "T", "O", "I"):
        assert max(p[s]["group"] for p in done[aug]["per_time"] for s in cp.EVAL_SETS) < 1e-6
    again = cp.run(cfg, tmp_path, progress=False)
    assert again == done
    assert "| I | 60 |" in cp.summary(cfg, done)
    figures.save(cp.figure(cfg, done), tmp_path / "f")
    assert (tmp_path / "f.png").stat().st_size > 10_000
