"""The predictor object (``kernels.Predictor``): built once from a training set, it answers
any test inputs, gradient-flow times and gradient-descent steps. Checked against an independent
closed form (numpy eigendecomposition of the augmented kernel), against one-shot ``predict``
calls, and for the promise that gives it its reason to exist: the training kernel is computed
once, and its eigendecomposition once per kernel, however many questions are asked."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import data, groups, kernels
from ntkequi.kernels import ntk, structured
from ntkequi.nn import ArchSpec

SPEC = ArchSpec(kind="mlp", depth=2, width=1, b_std=0.4)
C4 = groups.planar_rotations(4)


def _problem():
    x = np.asarray(data.wedge_points(jax.random.PRNGKey(0), 6))
    y = np.concatenate([np.asarray(data.radial_target(x)), x[:, :1] ** 2], axis=1)          # k = 2
    tests = [np.asarray(data.noise_points(jax.random.PRNGKey(i), m)) for i, m in ((1, 5), (2, 3))]
    return x, y, tests


def _closed_form(x_tr, y_tr, x_te, t, reg=0.0, get="ntk"):
    """mu_t and Sigma_t by numpy from the full (augmented) kernels: gradient flow on the summed MSE
    (the mean with the ``get`` kernel; the covariance formula is the NTK's)."""
    th = np.asarray(SPEC.kernel_fn(np.concatenate([x_tr, x_te]), None, get))
    kk = np.asarray(SPEC.kernel_fn(np.concatenate([x_tr, x_te]), None, "nngp"))
    n = len(x_tr)
    a = th[:n, :n] + reg * np.trace(th[:n, :n]) / n * np.eye(n)
    w, u = np.linalg.eigh(a)
    f = (1 - np.exp(-w * t)) / w
    op = th[n:, :n] @ u @ np.diag(f) @ u.T                                  # Theta(x, X) phi_t(Theta)
    mean = op @ y_tr
    cov = (kk[n:, n:] + op @ kk[:n, :n] @ op.T - op @ kk[:n, n:] - kk[n:, :n] @ op.T)
    return mean, cov


@pytest.mark.parametrize("solver", ["direct", "structured"])
def test_predictor_equals_the_closed_form_and_one_shot_predict(solver):
    """One Predictor asked two test sets, at gradient-flow times and at step counts, equals the
    numpy closed form to 1e-10 and the one-shot ``predict`` of each question to 1e-12."""
    x, y, tests = _problem()
    p = kernels.Predictor(SPEC, x, y, group=C4, solver=solver, compute_cov=True, diag_reg=1e-6)
    assert p.solver == solver
    x_aug, y_aug = (np.asarray(v) for v in ntk.augment(C4, x, y))
    eta = 0.4 * p.max_learning_rate()
    for x_te in tests:
        pred = p(x_te, [0.5, 3.0], compute_cov=True)
        for i, t in enumerate((0.5, 3.0)):
            mean, cov = _closed_form(x_aug, y_aug, x_te, t, reg=1e-6)
            np.testing.assert_allclose(pred.mean[i], mean, rtol=0, atol=1e-10 * np.abs(mean).max())
            np.testing.assert_allclose(pred.cov[i], cov, rtol=0, atol=1e-10 * np.abs(cov).max())
        one_shot = kernels.predict(SPEC, x, y, x_te, [0.5, 3.0], group=C4, solver=solver, compute_cov=True,
                                   diag_reg=1e-6)
        np.testing.assert_allclose(pred.mean, one_shot.mean, rtol=0, atol=1e-12 * np.abs(one_shot.mean).max())
        np.testing.assert_allclose(pred.cov, one_shot.cov, rtol=0, atol=1e-12 * np.abs(one_shot.cov).max())
        steps = p(x_te, steps=[0, 7, math.inf], learning_rate=eta)
        once = kernels.predict(SPEC, x, y, x_te, steps=[0, 7, math.inf], learning_rate=eta, group=C4,
                               solver=solver, diag_reg=1e-6)
        np.testing.assert_allclose(steps.mean, once.mean, rtol=0, atol=1e-12 * np.abs(once.mean).max())
        np.testing.assert_array_equal(steps.steps, [0, 7, math.inf])


def test_plain_predictor_and_nngp_answers():
    """Without a group: plain kernel regression (the closed form on the un-augmented set), and
    ``get='nngp'`` asked of an NTK predictor (its NNGP train kernel added on demand)."""
    x, y, tests = _problem()
    p = kernels.Predictor(SPEC, x, y)
    assert p.solver == "direct" and "no group" in p.reason
    mean, _ = _closed_form(x, y, tests[0], 2.0)
    np.testing.assert_allclose(p(tests[0], 2.0).mean[0], mean, rtol=0, atol=1e-10 * np.abs(mean).max())
    nngp = p(tests[1], [1.0, math.inf], get="nngp", compute_cov=True)
    mean, _ = _closed_form(x, y, tests[1], 1.0, get="nngp")                 # independent of the solve
    np.testing.assert_allclose(nngp.mean[0], mean, rtol=0, atol=1e-10 * np.abs(mean).max())
    ref = kernels.predict(SPEC, x, y, tests[1], [1.0, math.inf], get="nngp", compute_cov=True)
    np.testing.assert_allclose(nngp.mean, ref.mean, rtol=0, atol=1e-12 * np.abs(ref.mean).max())
    np.testing.assert_allclose(nngp.cov, ref.cov, rtol=0, atol=1e-12 * np.abs(ref.cov).max())


@pytest.mark.parametrize("solver", ["direct", "structured"])
def test_training_kernel_and_its_eigendecomposition_are_computed_once(solver, monkeypatch):
    """However many questions (test sets, times, steps, covariances, lambda_max), the train kernel
    is computed in one kernel call and each irrep's block is eigendecomposed once."""
    x, y, tests = _problem()
    train_calls, eighs = [], []

    def spy_kernels(fn, x1, x2, gets):
        if x2 is None and x1.shape[0] in (len(x), C4.order * len(x)):
            train_calls.append(gets)
        return original_kernels(fn, x1, x2, gets)

    def spy_blocks(fn, group, x1, x2=None, get=("ntk",), batch_size=0):
        if x2 is None:
            train_calls.append(tuple(get))
        return original_blocks(fn, group, x1, x2, get, batch_size)

    def spy_eigh(a, *args, **kwargs):
        eighs.append(a.shape)
        return original_eigh(a, *args, **kwargs)

    original_kernels, original_blocks, original_eigh = ntk._kernels, structured.kernel_blocks, jnp.linalg.eigh
    monkeypatch.setattr(ntk, "_kernels", spy_kernels)
    monkeypatch.setattr(structured, "kernel_blocks", spy_blocks)
    monkeypatch.setattr(structured.jnp.linalg, "eigh", spy_eigh)
    p = kernels.Predictor(SPEC, x, y, group=C4, solver=solver, compute_cov=True)
    for x_te in tests:
        p(x_te, [0.1, 1.0, math.inf])
        p(x_te, [2.0], compute_cov=True)
        p(x_te, steps=[1, 5], learning_rate=0.3 * p.max_learning_rate(), compute_cov=True)
    assert train_calls == [("nngp", "ntk")]
    n_irreps = 1 if solver == "direct" else len(groups.irreps(C4))
    assert len(eighs) == n_irreps, eighs                      # one per irrep of the NTK, never repeated


def test_covariance_asked_later_adds_the_nngp_train_kernel_once(monkeypatch):
    x, y, tests = _problem()
    calls = []
    original = ntk._kernels
    monkeypatch.setattr(ntk, "_kernels", lambda fn, x1, x2, gets: (calls.append((x1.shape[0], x2 is None, gets))
                                                                     or original(fn, x1, x2, gets)))
    p = kernels.Predictor(SPEC, x, y)                          # mean only: the NTK alone
    p(tests[0], 1.0)
    p(tests[0], 1.0, compute_cov=True)
    p(tests[1], 1.0, compute_cov=True)
    train = [c for c in calls if c[0] == len(x) and c[1]]
    assert train == [(len(x), True, ("ntk",)), (len(x), True, ("nngp",))]


def test_predictor_refuses_bad_questions_by_name():
    x, y, tests = _problem()
    p = kernels.Predictor(SPEC, x, y, group=C4)
    with pytest.raises(ValueError, match="either t"):
        p(tests[0])
    with pytest.raises(ValueError, match="per-sample shape"):
        p(np.ones((3, 5)), 1.0)
    with pytest.raises(ValueError, match="learning_rate=.*2 / lambda_max"):
        p(tests[0], steps=[3], learning_rate=1.01 * p.max_learning_rate())
    with pytest.raises(kernels.KernelTooLargeError, match=r"6 training x 100000 test inputs"):
        kernels.Predictor(SPEC, x, y, group=C4, max_bytes=10_000_000)(np.ones((100_000, 2)), 1.0)
    with pytest.raises(kernels.KernelTooLargeError, match=r"structured C4\(plane\) prediction for 6 training x 50"):
        kernels.Predictor(SPEC, x, y, group=C4, max_bytes=20_000, n_test=50)
