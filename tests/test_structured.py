"""Group-structured NTK solves agree with the direct orbit-augmented solve.

Tolerance: 1e-7 relative in float64, with the regulariser diag_reg = 1e-4 (relative to
the mean kernel diagonal) stated in each call; the direct path's own rounding on
these kernels is 1e-9..1e-8 at worst.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups, kernels
from ntkequi.kernels import ntk, structured
from ntkequi.nn import ArchSpec

TOL = 1e-7
TS = [0.5, 5.0, math.inf]


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def _planar_dihedral(n):
    rots = [np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            for a in 2 * np.pi * np.arange(n) / n]
    s = np.diag([1.0, -1.0])
    mats = np.stack(rots + [r @ s for r in rots])
    mats[0] = np.eye(2)
    return groups.MatrixGroup(f"D{n}(plane)", mats)


def _data(shape, k, n=10, m=5):
    x = jax.random.normal(jax.random.PRNGKey(0), (n,) + shape)
    y = jax.random.normal(jax.random.PRNGKey(1), (n, k))
    xt = jax.random.normal(jax.random.PRNGKey(2), (m,) + shape)
    return x, y, xt


CASES = {
    "C4-images-cnn": (ArchSpec(kind="cnn", depth=1, width=8), lambda: groups.rotations(4, (5, 5)), (5, 5, 1), 2),
    "D4-images-cnn": (ArchSpec(kind="cnn", depth=1, width=8), lambda: groups.dihedral(4, (5, 5)), (5, 5, 1), 2),
    "T4x4-lattice-mlp": (ArchSpec(kind="mlp", depth=2), lambda: groups.lattice_translations(4), (4, 4, 1), 1),
    "T5-cyclic-circular-cnn": (ArchSpec(kind="cnn", depth=1, padding="CIRCULAR"),
                               lambda: groups.GatherGroup.from_permutations(
                                   "T5(rows)", [np.roll(np.arange(25).reshape(5, 5), a, axis=0).ravel()
                                                for a in range(5)], (5, 5)), (5, 5, 1), 1),
    "C8-points-mlp": (ArchSpec(kind="mlp", depth=2, b_std=0.5), lambda: groups.planar_rotations(8), (2,), 1),
    "C8-points-vector-targets": (ArchSpec(kind="mlp", depth=2, b_std=0.5, out_dim=2),
                                 lambda: groups.planar_rotations(8, out="standard"), (2,), 2),
    "D3-points-mlp": (ArchSpec(kind="mlp", depth=2, b_std=0.5), lambda: _planar_dihedral(3), (2,), 1),
}


SLOW = {"T5-cyclic-circular-cnn", "D3-points-mlp"}   # same code paths as C4 / D4; ~25 s


@pytest.mark.parametrize("name", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                  for c in CASES])
def test_structured_mean_equals_direct(name):
    arch, make_group, shape, k = CASES[name]
    g = make_group()
    x, y, xt = _data(shape, k)
    direct = ntk.predict(arch, x, y, xt, TS, group=g, diag_reg=1e-4, solver="direct")
    fast = ntk.predict(arch, x, y, xt, TS, group=g, diag_reg=1e-4, solver="structured")
    np.testing.assert_array_equal(fast.ts, direct.ts)
    for i, t in enumerate(TS):
        assert _rel(fast.mean[i], direct.mean[i]) < TOL, (name, t)


# C4-images-cnn (14 s) takes the cyclic path that the mean test covers: run with -m slow
@pytest.mark.parametrize("name,get", [pytest.param("C4-images-cnn", "ntk", marks=pytest.mark.slow),
                                      ("D4-images-cnn", "nngp"),
                                      ("C8-points-vector-targets", "ntk")])
def test_structured_covariance_equals_direct(name, get):
    arch, make_group, shape, k = CASES[name]
    g = make_group()
    x, y, xt = _data(shape, k)
    direct = ntk.predict(arch, x, y, xt, TS, group=g, diag_reg=1e-4, compute_cov=True, get=get, solver="direct")
    fast = ntk.predict(arch, x, y, xt, TS, group=g, diag_reg=1e-4, compute_cov=True, get=get, solver="structured")
    for i in range(len(TS)):
        assert _rel(fast.mean[i], direct.mean[i]) < TOL
        assert _rel(fast.cov[i], direct.cov[i]) < TOL


def test_irreps_complete_and_multiplicative():
    """Irreps from the Cayley table: homomorphisms, unitary, irreducible, sum d^2 = |G|;
    the dimensions are the known ones (D4: four 1-d and one 2-d; D3 = S3: 1, 1, 2)."""
    for g, dims in [(groups.rotations(4, (3, 3)), [1, 1, 1, 1]),
                    (groups.dihedral(4, (3, 3)), [1, 1, 1, 1, 2]),
                    (_planar_dihedral(3), [1, 1, 2]),
                    (groups.lattice_translations(3), [1] * 9)]:
        reps = groups.irreps(g)
        assert sorted(r.shape[1] for r in reps) == dims
        assert groups.reps._check_irreps(reps, g.table) == ""
        np.testing.assert_allclose(reps[0][:, 0, 0], 1.0)
        # Schur orthogonality of characters
        chi = np.stack([np.trace(r, axis1=1, axis2=2) for r in reps])
        np.testing.assert_allclose(chi.conj() @ chi.T / g.order, np.eye(len(reps)), atol=1e-10)


def test_invariant_targets_need_only_the_trivial_block():
    """For invariant targets the mean uses only sum_a B_a, an N x N solve: the trivial
    irrep's block equals |G| times the one-sided symmetrized kernel."""
    arch, make_group, shape, _ = CASES["C4-images-cnn"]
    g = make_group()
    x, _, _ = _data(shape, 1)
    blocks = structured.kernel_blocks(arch.kernel_fn, g, x)["ntk"]
    four = structured._Fourier(groups.irreps(g))
    triv = four.matrix(0, blocks)
    assert not jnp.iscomplexobj(triv) and triv.shape == (10, 10)
    kg = kernels.symmetrize(arch.kernel_fn, g)(x, None, "ntk")
    assert _rel(triv, g.order * kg) < 1e-12


def test_inexact_group_and_non_invariant_kernel_are_refused():
    x, y, xt = _data((5, 5, 1), 1)
    arch = ArchSpec(kind="cnn", depth=1)
    with pytest.raises(structured.StructureError, match="inexactly"):
        ntk.predict(arch, x, y, xt, 1.0, group=groups.rotations(8, (5, 5)), solver="structured")

    @kernels.from_function
    def anisotropic(x1, x2):
        d = x1[:, None, :] - x2[None, :, :]
        return jnp.exp(-(d[..., 0] ** 2 + 4.0 * d[..., 1] ** 2))

    g8 = groups.planar_rotations(8)
    xp, yp, xtp = _data((2,), 1)
    with pytest.raises(structured.StructureError, match="not invariant.*relative error"):
        ntk.predict(anisotropic, xp, yp, xtp, 1.0, group=g8, solver="structured")
    with pytest.warns(UserWarning, match="using the direct path"):
        auto = ntk.predict(anisotropic, xp, yp, xtp, 1.0, group=g8, diag_reg=1e-4, solver="auto")
    direct = ntk.predict(anisotropic, xp, yp, xtp, 1.0, group=g8, diag_reg=1e-4, solver="direct")
    np.testing.assert_array_equal(auto.mean, direct.mean)


def test_bad_arguments_give_clear_errors():
    x, y, xt = _data((2,), 1)
    arch = ArchSpec(kind="mlp", depth=1)
    with pytest.raises(ValueError, match="needs a group"):
        ntk.predict(arch, x, y, xt, 1.0, solver="structured")
    with pytest.raises(ValueError, match="solver must be"):
        ntk.predict(arch, x, y, xt, 1.0, solver="fft")
    with pytest.raises(kernels.KernelTooLargeError, match="structured C8"):
        ntk.predict(arch, x, y, xt, 1.0, group=groups.planar_rotations(8), solver="structured",
                    max_bytes=1000)
    with pytest.raises(ValueError, match="y_train"):
        ntk.predict(arch, x, y[:3], xt, 1.0, group=groups.planar_rotations(8), solver="structured")


def test_largest_eigenvalue_from_blocks_equals_the_orbit_kernels():
    """max_learning_rate from the |G| blocks (one eigensolve per irrep) equals the one from
    the full orbit kernel, for image rotations (CNN; real 1-d irreps) and the icosahedral
    group (irreps of dimension 1, 3, 3, 4, 5); an interpolated group is refused by
    'structured' and left to the direct path by 'auto'."""
    cases = [(groups.rotations(4, (5, 5)), ArchSpec(kind="cnn", depth=1, width=4), (4, 5, 5, 1)),
             (groups.rotations3d("I"), ArchSpec(kind="mlp", depth=1), (3, 2, 3))]
    for g, arch, shape in cases:
        x = jax.random.normal(jax.random.PRNGKey(0), shape)
        direct = ntk.max_learning_rate(arch, x, g, solver="direct")
        assert ntk.max_learning_rate(arch, x, g, solver="structured") == pytest.approx(direct, rel=1e-10), g.name
    c8 = groups.rotations(8, (5, 5))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 5, 1))
    mlp = ArchSpec(kind="mlp", depth=1)
    with pytest.raises(structured.StructureError):
        ntk.max_learning_rate(mlp, x, c8, solver="structured")
    assert ntk.max_learning_rate(mlp, x, c8) == ntk.max_learning_rate(mlp, x, c8, solver="direct")
    with pytest.raises(ValueError, match="solver must be"):
        ntk.max_learning_rate(mlp, x, c8, solver="fast")


def test_solver_eigendecompositions_live_as_long_as_the_solver():
    """The per-irrep eigendecompositions are cached on the solver, computed once, and freed
    with it (a class-level lru_cache once kept every solver's blocks alive for the process)."""
    import gc
    import weakref

    from ntkequi.kernels.structured import _Fourier, _Solver
    g = groups.rotations(4, (3, 3))
    blocks = jnp.stack([jnp.eye(5) * (4 - a) for a in range(4)])
    solver = _Solver(_Fourier(groups.irreps(g)), blocks, 0.1)
    first = solver.eig(1)
    assert solver.eig(1) is first                          # cached
    ref = weakref.ref(solver)
    del solver, first
    gc.collect()
    assert ref() is None


def test_predict_and_max_learning_rate_share_one_solver_rule(monkeypatch):
    """'structured' without a group is an error for both; 'auto' without a group is the
    direct path for both; a failed structure check under 'auto' warns in both."""
    arch = ArchSpec(kind="mlp", depth=1)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    y = x[:, :1]
    with pytest.raises(ValueError, match="solver='structured' needs a group"):
        ntk.predict(arch, x, y, x, 1.0, solver="structured")
    with pytest.raises(ValueError, match="solver='structured' needs a group"):
        ntk.max_learning_rate(arch, x, solver="structured")
    np.testing.assert_array_equal(ntk.predict(arch, x, y, x, 1.0, solver="auto").mean,
                                  ntk.predict(arch, x, y, x, 1.0, solver="direct").mean)
    assert ntk.max_learning_rate(arch, x, solver="auto") == ntk.max_learning_rate(arch, x, solver="direct")
    # an anisotropic kernel is not C8-invariant: 'auto' falls back, with a warning, in both
    aniso = kernels.from_function(lambda a, b: jnp.exp(-((a[:, None, 0] - b[None, :, 0]) ** 2)
                                                       - 0.1 * (a[:, None, 1] - b[None, :, 1]) ** 2))
    g8 = groups.planar_rotations(8)
    monkeypatch.setattr(ntk, "STRUCTURED_MIN_POINTS", 16)        # 'auto' tries the structured eigensolve
    with pytest.warns(UserWarning, match="using the direct path"):
        ntk.predict(aniso, x, y, x, 1.0, group=g8, diag_reg=1e-4, solver="auto")
    with pytest.warns(UserWarning, match="using the direct path"):
        ntk.max_learning_rate(aniso, x, g8, solver="auto")


def test_default_solver_is_auto_structured_for_exact_groups_and_logged_fallback_for_inexact(caplog):
    import logging
    import warnings

    arch = ArchSpec(kind="mlp", depth=2, b_std=0.3)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    y = jnp.linspace(-1, 1, 6)[:, None]
    g4 = groups.planar_rotations(4)
    assert ntk.Predictor(arch, x, y, group=g4).solver == "structured"
    default = ntk.predict(arch, x, y, x, [1.0, float("inf")], group=g4)
    direct = ntk.predict(arch, x, y, x, [1.0, float("inf")], group=g4, solver="direct")
    np.testing.assert_allclose(default.mean, direct.mean, rtol=1e-8, atol=1e-10)
    # an inexact action: the direct path, with the reason logged and no warning
    img = jax.random.normal(jax.random.PRNGKey(1), (3, 9, 9, 1))
    g8 = groups.rotations(8, shape=(9, 9))
    assert not g8.exact
    with caplog.at_level(logging.INFO, logger="ntkequi.kernels"), warnings.catch_warnings():
        warnings.simplefilter("error")
        p = ntk.Predictor(ArchSpec(kind="cnn", depth=1), img, jnp.ones((3, 1)), group=g8)
    assert p.solver == "direct" and "acts inexactly" in p.reason
    assert any("acts inexactly" in r.getMessage() for r in caplog.records)


def test_symmetric_kernel_blocks_computes_half_and_mirrors():
    arch = ArchSpec(kind="cnn", depth=1, readout="gap")
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 6, 1))
    g4 = groups.rotations(4, shape=(6, 6))
    half = structured.kernel_blocks(arch.kernel_fn, g4, x, None, ("ntk",))["ntk"]
    full = structured.kernel_blocks(arch.kernel_fn, g4, x, x, ("ntk",))["ntk"]
    np.testing.assert_allclose(half, full, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(half[3], half[1].T)     # B_{a^-1} = B_a^T, a = quarter turn
