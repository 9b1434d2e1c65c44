"""The controls of ensembles.train that separate the sources of deviation from the NTK:
linearised members (only the finite-width kernel differs) and antithetic pairs (the initial
function cancels in a pair's mean)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import data, ensembles, groups
from ntkequi.kernels import max_learning_rate
from ntkequi.nn import ArchSpec

C4 = groups.planar_rotations(4)
SPEC = ArchSpec(kind="mlp", depth=2, width=48, b_std=0.5)


def _problem():
    x = data.wedge_points(jax.random.PRNGKey(0), 6)
    x_eval = data.noise_points(jax.random.PRNGKey(1), 5)
    return x, data.radial_target(x), x_eval


def _flat_jacobian(spec, params, x):
    """(N, P): the Jacobian of the scalar output on x w.r.t. all parameters of one member."""
    apply = spec.flax().apply
    jac = jax.jacobian(lambda p: apply(p, x)[:, 0])(params)
    return jnp.concatenate([j.reshape(x.shape[0], -1) for j in jax.tree_util.tree_leaves(jac)], axis=1)


def test_antithetic_pairs_share_the_empirical_ntk_and_have_opposite_initial_outputs():
    x, _, x_eval = _problem()
    pts = jnp.concatenate([x, x_eval])
    for spec in (SPEC, ArchSpec(kind="cnn", depth=2, width=6, pool=True)):
        xs = pts if spec.kind == "mlp" else jax.random.normal(jax.random.PRNGKey(3), (5, 8, 8, 1))
        params = ensembles.antithetic_members(ensembles.init_ensemble(spec, jax.random.PRNGKey(0), 2, xs), spec)
        member = lambda i: jax.tree_util.tree_map(lambda v: v[i], params)   # noqa: E731
        for i in (0, 2):
            a, b = member(i), member(i + 1)
            fa, fb = spec.flax().apply(a, xs), spec.flax().apply(b, xs)
            np.testing.assert_array_equal(fa, -fb)
            ja, jb = _flat_jacobian(spec, a, xs), _flat_jacobian(spec, b, xs)
            ta, tb = ja @ ja.T, jb @ jb.T
            np.testing.assert_allclose(ta, tb, rtol=0, atol=1e-12 * float(jnp.abs(ta).max()))
            assert float(jnp.abs(fa).max()) > 0.1
        assert float(jnp.abs(spec.flax().apply(member(0), xs) - spec.flax().apply(member(2), xs)).max()) > 0.1
    with pytest.raises(ValueError, match="even"):
        ensembles.TrainConfig(ensemble_size=3, antithetic=True)


def test_linearised_members_follow_the_discrete_formula_with_their_own_empirical_ntk():
    """Full-batch gradient descent of a linearised member is the linear recursion
    f <- f - eta Theta_hat(., X)(f(X) - Y) with the member's empirical NTK at initialisation:
    its recorded predictions match it to 1e-9 (float64); an antithetic pair's mean is then
    Theta_hat(x, X) Theta_hat^-1 (I - (I - eta Theta_hat)^s) Y exactly (no initial function);
    the network itself (not linearised) does drift from it."""
    x, y, x_eval = _problem()
    xs, ys = ensembles.training_set(C4, ensembles.TrainConfig(augmentation="orbit"), x, y)
    lr = 0.4 * max_learning_rate(SPEC, x, C4)
    steps = (0, 7, 30)
    cfg = ensembles.TrainConfig(ensemble_size=2, steps=30, learning_rate=lr, augmentation="orbit",
                                record_steps=steps, dtype="float64", model="linearised", antithetic=True)
    res = ensembles.train(SPEC, cfg, ensembles.TrainingData(x, y, x_eval, C4), progress=False)
    w0 = jax.tree_util.tree_map(lambda v: v[0], res.params[1])
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(res.params[1])[0],     # w0 stayed where it was
                                  jax.tree_util.tree_leaves(ensembles.antithetic_members(ensembles.init_ensemble(
                                      SPEC, jax.random.split(jax.random.PRNGKey(0))[0], 1, xs, np.float64),
                                      SPEC))[0])
    pts = jnp.concatenate([xs, x_eval])
    jac = _flat_jacobian(SPEC, w0, pts)
    theta = np.asarray(jac @ jac.T)
    lam = np.linalg.eigvalsh(theta[:len(xs), :len(xs)]).max()
    assert lr * lam < 2                               # the empirical kernel is stable at this step too
    f = np.asarray(SPEC.flax().apply(w0, pts))
    n = len(xs)
    pair_mean = np.zeros_like(f)
    for s in range(max(steps) + 1):
        if s in steps:
            i = steps.index(s)
            np.testing.assert_allclose(res.members[i, 0], f[n:], rtol=0, atol=1e-9 * np.abs(f).max())
            np.testing.assert_allclose(res.members[i].mean(0), pair_mean[n:], rtol=0,
                                       atol=1e-9 * np.abs(f).max() + 1e-12)
        f = f - lr * theta[:, :n] @ (f[:n] - np.asarray(ys))
        pair_mean = pair_mean - lr * theta[:, :n] @ (pair_mean[:n] - np.asarray(ys))
    net = ensembles.train(SPEC, dataclasses.replace(cfg, model="network"), ensembles.TrainingData(x, y, x_eval, C4),
                          progress=False)
    np.testing.assert_allclose(net.members[0], res.members[0], atol=1e-12)          # same initialisation
    assert np.abs(net.members[-1, 0] - res.members[-1, 0]).max() > 1e-6            # the network's kernel moves


def test_linearised_ensemble_in_closed_form_equals_training_the_linearised_members():
    """ensembles.linearised_ensemble (each member's layer-wise empirical NTK, then the closed
    form of gradient descent) gives what training the linearised members gives, to 1e-9
    (float64), at every recorded step; mlp_empirical_ntk equals neural-tangents'
    empirical_ntk_fn(trace_axes=()) to 1e-12."""
    from ntkequi.nn import mlp_empirical_ntk
    from ntkequi.nt import nt
    x, y, x_eval = _problem()
    y2 = jnp.concatenate([y, -2 * y], axis=1)                       # two outputs: the (c, c') blocks matter
    spec = dataclasses.replace(SPEC, out_dim=2)
    lr = 0.4 * max_learning_rate(spec, x, C4)
    steps = (0, 5, 25)
    cfg = ensembles.TrainConfig(ensemble_size=3, steps=25, learning_rate=lr, augmentation="orbit",
                                record_steps=steps, dtype="float64", model="linearised", seed=4)
    res = ensembles.train(spec, cfg, ensembles.TrainingData(x, y2, x_eval, C4), progress=False)
    xs, ys = ensembles.training_set(C4, cfg, x, y2)
    w0 = res.params[1]
    closed = ensembles.linearised_ensemble(spec, w0, xs, ys, x_eval, steps, lr)
    np.testing.assert_allclose(closed, res.members, rtol=0, atol=1e-9 * np.abs(res.members).max())
    one = jax.tree_util.tree_map(lambda v: v[0], w0)
    pts = jnp.concatenate([xs, x_eval])
    f0, theta = mlp_empirical_ntk(spec, one, pts)
    ref = nt.empirical_ntk_fn(lambda p, z: spec.flax().apply(p, z), trace_axes=())(pts, None, one)
    ref = jnp.transpose(ref, (0, 2, 1, 3)).reshape(theta.shape)
    np.testing.assert_allclose(theta, ref, rtol=0, atol=1e-12 * float(jnp.abs(ref).max()))
    assert float(jnp.abs(theta.reshape(len(pts), 2, len(pts), 2)[:, 0, :, 1]).max()) > 1e-3   # not block diagonal
    with pytest.raises(ValueError, match="MLP"):
        mlp_empirical_ntk(ArchSpec(kind="cnn", depth=1, width=4), None, pts)
