"""Matrix-valued kernels: each one's defining property on random inputs, regression, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi.experiments import force_fields as ff
from ntkequi import groups
from ntkequi.kernels import matrix as mk
def _orthogonal(key, n, reflect):
    """Haar rotations ``(n, 3, 3)``; with ``reflect``, times -1 (improper: det -1)."""
    r = groups.random_rotations3d(key, n)
    return -r if reflect else r


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
def test_covariant_pair_kernel_closed_form_equals_the_integral_over_rotations(sigma):
    rs = jax.random.normal(jax.random.PRNGKey(0), (6, 3))
    quad = mk.so3_quadrature(28)
    for r, r2 in zip(rs[:3], rs[3:]):
        closed = mk.covariant_pair_kernel(r, r2, sigma)
        numeric = mk.covariant_pair_kernel_quadrature(r, r2, sigma, rotations=quad)
        scale = float(jnp.abs(closed).max())
        assert scale > 1e-6                                   # not trivially zero
        assert float(jnp.abs(closed - numeric).max()) < 1e-9 * scale


def test_covariant_pair_kernel_small_argument_series_is_continuous():
    r = jnp.array([1e-2, 0.0, 0.0])
    for g in (0.99e-2, 1.01e-2):          # around the switch between series and closed form
        r2 = jnp.array([0.0, 2 * g / 1e-2, 0.0])       # g = |r||r2| / (2 sigma^2), sigma = 1
        k = mk.covariant_pair_kernel(r, r2, 1.0)
        np.testing.assert_allclose(k, mk.covariant_pair_kernel_quadrature(r, r2, 1.0, n=16), rtol=1e-8, atol=1e-16)


@pytest.mark.parametrize("reflect", [False, True])
def test_covariant_pair_kernel_rotates_with_both_arguments(reflect):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    S, S2 = _orthogonal(k1, 5, reflect), _orthogonal(k2, 5, not reflect)
    rs = 1.5 * jax.random.normal(k3, (10, 3))
    for i in range(5):
        r, r2 = rs[i], rs[5 + i]
        lhs = mk.covariant_pair_kernel(S[i] @ r, S2[i] @ r2, 1.2)
        rhs = S[i] @ mk.covariant_pair_kernel(r, r2, 1.2) @ S2[i].T
        np.testing.assert_allclose(lhs, rhs, atol=1e-14)
    # the quadrature (an SO(3) integral) has the property for rotations
    R = groups.random_rotations3d(k1, 2)
    q = mk.so3_quadrature(24)
    np.testing.assert_allclose(mk.covariant_pair_kernel_quadrature(R[0] @ rs[0], R[1] @ rs[1], 1.0, rotations=q),
                               R[0] @ mk.covariant_pair_kernel_quadrature(rs[0], rs[1], 1.0, rotations=q) @ R[1].T,
                               atol=1e-10)


def test_regression_with_the_covariant_kernel_predicts_a_covariant_field():
    """Pair forces F(r) = g(|r|) rhat learned with the covariant kernel: f(S r) = S f(r) for
    every rotation and reflection S, though the training pairs were not rotated."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(5), 3)
    r = 1.5 * jax.random.normal(k1, (20, 3))
    n = jnp.linalg.norm(r, axis=-1, keepdims=True)
    y = (jnp.exp(-n) * (1 - n)) * r / n                       # a radial pair force
    model = mk.fit(lambda a, b: mk.covariant_pair_kernel(a, b, 1.5), r, y, reg=1e-6)
    re = 1.5 * jax.random.normal(k2, (6, 3))
    pred = model.predict(re)
    assert float(jnp.abs(pred).max()) > 1e-3
    # covariance forces a single pair's field to be radial, as the target is
    scale = float(jnp.abs(pred).max())
    assert float(jnp.abs(jnp.cross(pred, re / jnp.linalg.norm(re, axis=-1, keepdims=True))).max()) < 1e-9 * scale
    for S in jnp.concatenate([_orthogonal(k3, 3, False), _orthogonal(k3, 3, True)]):
        np.testing.assert_allclose(model.predict(re @ S.T), pred @ S.T, atol=1e-9 * scale)


def _jacobians(model, x):
    return jax.vmap(jax.jacfwd(lambda p: model.predict(p[None])[0]))(x)


@pytest.mark.parametrize("dim", [2, 3])
def test_curl_free_and_divergence_free_fields_have_zero_curl_and_divergence(dim):
    kx, ky, ke = jax.random.split(jax.random.PRNGKey(dim), 3)
    x = jax.random.uniform(kx, (15, dim), minval=-2, maxval=2)
    y = jax.random.normal(ky, (15, dim))
    xe = jax.random.uniform(ke, (25, dim), minval=-3, maxval=3)
    cf = mk.fit(lambda a, b: mk.curl_free_kernel(a, b, 0.8), x, y, reg=1e-6)
    df = mk.fit(lambda a, b: mk.div_free_kernel(a, b, 0.8), x, y, reg=1e-6)
    np.testing.assert_allclose(cf.predict(x), y, atol=1e-3)            # it fits the data
    J = _jacobians(cf, xe)                                              # J[i, a, b] = d f_a / d x_b
    scale = float(jnp.abs(J).max())
    assert scale > 1e-2
    assert float(jnp.abs(J - J.transpose(0, 2, 1)).max()) < 1e-12 * scale * 100      # curl = antisym. part
    Jd = _jacobians(df, xe)
    assert float(jnp.abs(jnp.trace(Jd, axis1=1, axis2=2)).max()) < 1e-12 * float(jnp.abs(Jd).max()) * 100
    # a generic field (independent Gaussian kernels) has neither property
    ind = mk.fit(lambda a, b: mk.rbf(a, b, 0.8) * jnp.eye(dim), x, y, reg=1e-6)
    Ji = _jacobians(ind, xe)
    assert float(jnp.abs(Ji - Ji.transpose(0, 2, 1)).max()) > 1e-2


def test_curl_free_kernel_is_the_negative_rbf_hessian_in_closed_form():
    a, b, s = jnp.array([0.3, -1.0, 0.2]), jnp.array([-0.5, 0.4, 1.0]), 0.9
    d = a - b
    phi = jnp.exp(-d @ d / (2 * s ** 2))
    expected = phi * (jnp.eye(3) / s ** 2 - jnp.outer(d, d) / s ** 4)
    np.testing.assert_allclose(mk.curl_free_kernel(a, b, s), expected, rtol=1e-12)
    np.testing.assert_allclose(mk.div_free_kernel(a, b, s), -expected + jnp.trace(expected) * jnp.eye(3), rtol=1e-12)


@pytest.mark.parametrize("feat", ["identity", "seed"])
def test_hessian_kernel_includes_the_feature_jacobian_and_forces_are_minus_grad_energy(feat):
    A = jnp.eye(2) if feat == "identity" else jnp.array([[2.0, 2.0], [1.0, -1.0]])
    q = mk.linear_features(A)
    s = 1.3
    k = lambda u, v: mk.rbf(u, v, s)
    K = mk.hessian_kernel(k, q)
    r, r2 = jnp.array([0.4, -0.7]), jnp.array([-0.2, 0.5])
    d = q(r) - q(r2)
    kk = jnp.exp(-d @ d / (2 * s ** 2))
    inner = kk * (jnp.eye(2) / s ** 2 - jnp.outer(d, d) / s ** 4)          # d_q d_q' k
    np.testing.assert_allclose(K(r, r2), A.T @ inner @ A, rtol=1e-12)
    # regression: learned forces are exactly -grad of the learned energy
    kx, kf = jax.random.split(jax.random.PRNGKey(7))
    x = jax.random.uniform(kx, (12, 2), minval=-2, maxval=2)
    f = jax.random.normal(kf, (12, 2))
    model = mk.fit(K, x, f, reg=1e-6, energy_kernel=mk.energy_force_kernel(k, q))
    xe = jax.random.uniform(kf, (20, 2), minval=-3, maxval=3)
    grad_e = jax.vmap(jax.grad(lambda p: model.energy(p[None])[0]))(xe)
    np.testing.assert_allclose(model.predict(xe), -grad_e, atol=1e-10 * float(jnp.abs(grad_e).max()) + 1e-14)
    assert float(jnp.abs(ff.curl(model, xe)).max()) < 1e-10


def test_gp_posterior_covariance_equals_the_dense_formula():
    kern = lambda a, b: mk.curl_free_kernel(a, b, 1.1)
    kx, ky = jax.random.split(jax.random.PRNGKey(3))
    x = jax.random.normal(kx, (8, 2))
    y = jax.random.normal(ky, (8, 2))
    xe = jax.random.normal(ky, (5, 2)) * 2
    reg = 1e-3
    m = mk.fit(kern, x, y, reg=reg)
    Kxx = np.asarray(mk.gram(kern, x, x)) + reg * np.eye(16)
    Kex = np.asarray(mk.gram(kern, xe, x))
    Kee = np.asarray(mk.gram(kern, xe, xe))
    mean = Kex @ np.linalg.solve(Kxx, np.asarray(y).reshape(-1))
    cov = Kee - Kex @ np.linalg.solve(Kxx, Kex.T)
    np.testing.assert_allclose(m.predict(xe).reshape(-1), mean, rtol=1e-9, atol=1e-12)
    blocks = np.stack([cov[2 * i:2 * i + 2, 2 * i:2 * i + 2] for i in range(5)])
    np.testing.assert_allclose(m.covariance(xe), blocks, rtol=1e-8, atol=1e-12)
    # posterior variance vanishes at (noise-free) training points and stays below the prior elsewhere
    m0 = mk.fit(kern, x, y, reg=1e-10)
    assert float(jnp.abs(m0.covariance(x[:3])).max()) < 1e-6
    assert bool(jnp.all(jnp.linalg.eigvalsh(m.covariance(xe)) > -1e-10))


def test_bad_input_gets_a_clear_error():
    kern = lambda a, b: mk.curl_free_kernel(a, b, 1.0)
    x = jnp.ones((4, 2)) * jnp.arange(4.0)[:, None]
    y = jnp.zeros((4, 2))
    with pytest.raises(mk.KernelInputError, match="non-finite"):
        mk.fit(kern, x.at[1, 0].set(jnp.nan), y)
    with pytest.raises(mk.KernelInputError, match="components per point"):
        mk.fit(kern, x, jnp.zeros((4, 3)))
    with pytest.raises(mk.KernelInputError, match=r"y must be \(N, d\) with N = 4"):
        mk.fit(kern, x, jnp.zeros((5, 2)))
    with pytest.raises(mk.KernelInputError, match="singular"):
        mk.fit(kern, jnp.concatenate([x, x[:1]]), jnp.zeros((5, 2)), reg=0.0)
    m = mk.fit(kern, x, y, reg=1e-6)
    with pytest.raises(mk.KernelInputError, match="dimension 3"):
        m.predict(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="without energy_kernel"):
        m.energy(x)


def test_brownian_dynamics_samples_the_harmonic_boltzmann_distribution():
    """Overdamped Langevin at kT = 1 in V = k |r|^2 / 2 has stationary variance 1/k per axis."""
    jax.config.update("jax_enable_x64", True)
    k = 2.0
    traj = ff.brownian(jax.random.PRNGKey(0), jnp.zeros((512, 2)), lambda r: -k * r, steps=3000, dt=1e-3,
                       every=100, burn=1000)
    assert traj.shape == (20, 512, 2)
    var = float(jnp.var(traj))
    # Euler-Maruyama's stationary variance is 1 / (k (1 - k dt / 2)); 10k correlated samples
    assert abs(var - 1 / (k * (1 - k * 1e-3 / 2))) < 0.03, var


def test_seed_potential_and_force():
    r = jnp.array([[0.0, 0.0], [4.0, 6.0]])
    np.testing.assert_allclose(ff.potential(r), [(-4) * (-2) * 2 * 3 / 50 + np.sin(-90.0) / 25, 36 / 20], atol=1e-12)
    # the force is minus the finite-difference gradient
    h = 1e-6
    p = jnp.array([1.3, -0.4])
    fd = -jnp.array([(ff.potential(p + h * e) - ff.potential(p - h * e)) / (2 * h) for e in jnp.eye(2)])
    np.testing.assert_allclose(ff.true_force(p[None])[0], fd, rtol=1e-6)
    # exp(-V) on the histogram grid is a normalised distribution
    b = ff.boltzmann(10)
    assert b.shape == (10, 10) and abs(b.sum() - 1) < 1e-12


@pytest.mark.slow        # ~1 min: the experiment end to end on a tiny setting
def test_force_field_experiment_runs_resumes_and_reports(tmp_path):
    from ntkequi.report import build as figures
    cfg = ff.ForceConfig(n_trains=(10, 30), seeds=2, n_val=50, n_test=100, pool_walkers=40, pool_burn=500,
                         pool_snapshots=10, pool_every=50, bd_n_train=30, bd_walkers=32, bd_steps=600, bd_burn=100,
                         sigmas=(2.0, 4.0), regs=(1e-2, 1e-1))
    done = ff.run(cfg, tmp_path / "ff", progress=False)
    assert {"bd/true", "bd/independent", "bd/conserving", "fields"} <= set(done)
    cons = [r for k, r in done.items() if k.startswith("curve/conserving")]
    assert all(r["curl_mean_abs"] < 1e-9 for r in cons) and all("energy_rmse" in r for r in cons)
    n = len((tmp_path / "ff" / "results.jsonl").read_text().splitlines())
    ff.run(cfg, tmp_path / "ff", progress=False)
    assert len((tmp_path / "ff" / "results.jsonl").read_text().splitlines()) == n
    figures.save(ff.figure(cfg, done), tmp_path / "fig")
    assert "conserving" in ff.summary(cfg, done)
