"""Discrete-time NTK predictions (``predict(..., steps=s, learning_rate=eta)``): the mean and
covariance after s steps of full-batch gradient descent, on the direct and the structured path,
against the linear recursion iterated step by step, and against gradient flow as eta -> 0."""
import jax
import numpy as np
import pytest

from ntkequi import data, groups
from ntkequi.kernels import max_learning_rate, ntk
from ntkequi.nn import ArchSpec

SPEC = ArchSpec(kind="mlp", depth=2, width=1, b_std=0.5)
C4 = groups.planar_rotations(4)


def _problem():
    x = data.wedge_points(jax.random.PRNGKey(0), 5)
    y = np.concatenate([np.asarray(data.radial_target(x)), np.asarray(x[:, :1]) ** 2], axis=1)   # k = 2
    x_test = np.concatenate([np.asarray(data.wedge_points(jax.random.PRNGKey(1), 3)),
                             np.asarray(data.noise_points(jax.random.PRNGKey(2), 3))])
    return np.asarray(x), y, x_test


def _iterate(theta, nngp, n_train, y, eta, steps):
    """Mean and covariance of f_s on all points [X; x_test] from the linear recursion
    f <- f - eta Theta(., X) (f(X) - Y), f_0 ~ N(0, K): f_s = P_s f_0 + c_s, iterated."""
    n_all = theta.shape[0]
    P, c = np.eye(n_all), np.zeros((n_all, y.shape[1]))
    out = {}
    for s in range(max(steps) + 1):
        if s in steps:
            out[s] = (c[n_train:], (P @ nngp @ P.T)[n_train:, n_train:])
        P, c = P - eta * theta[:, :n_train] @ P[:n_train], c - eta * theta[:, :n_train] @ (c[:n_train] - y)
    return out


@pytest.mark.parametrize("path", ["plain", "direct", "structured"])
def test_discrete_prediction_is_the_iterated_linear_recursion(path):
    """mean and covariance after s steps equal the recursion iterated s times, to 1e-10
    relative, for eta at 0.45 and 0.95 of 2 / lambda_max (the second oscillates: 1 - eta l < 0)."""
    x, y, x_test = _problem()
    group = None if path == "plain" else C4
    x_tr, y_tr = (x, y) if group is None else ntk.augment(C4, x, y)
    x_tr, y_tr = np.asarray(x_tr), np.asarray(y_tr)
    pts = np.concatenate([x_tr, x_test])
    theta = np.asarray(SPEC.kernel_fn(pts, None, "ntk"))
    nngp = np.asarray(SPEC.kernel_fn(pts, None, "nngp"))
    steps = [0, 1, 3, 20, 100]
    lam = np.linalg.eigvalsh(theta[:len(x_tr), :len(x_tr)]).max()
    for frac in (0.45, 0.95):
        eta = frac * 2 / lam
        want = _iterate(theta, nngp, len(x_tr), y_tr, eta, steps)
        kw = {} if group is None else {"group": group, "solver": path}
        pred = ntk.predict(SPEC, x, y, x_test, steps=steps, learning_rate=eta, compute_cov=True, **kw)
        np.testing.assert_array_equal(pred.steps, steps)
        np.testing.assert_allclose(pred.ts, np.asarray(steps) * eta)
        for i, s in enumerate(steps):
            mean, cov = want[s]
            scale_m, scale_c = max(np.abs(mean).max(), 1.0), np.abs(cov).max()
            np.testing.assert_allclose(pred.mean[i], mean, rtol=0, atol=1e-10 * scale_m, err_msg=f"{path} s={s}")
            np.testing.assert_allclose(pred.cov[i], cov, rtol=0, atol=1e-10 * scale_c, err_msg=f"{path} s={s}")


def test_discrete_nngp_prediction_is_the_iterated_recursion():
    """get='nngp' (only the readout trained): Theta is the NNGP; the covariance then uses
    (1 - (1 - eta l)^{2s}) / l, checked against the recursion."""
    x, y, x_test = _problem()
    pts = np.concatenate([x, x_test])
    nngp = np.asarray(SPEC.kernel_fn(pts, None, "nngp"))
    eta = 0.7 * 2 / np.linalg.eigvalsh(nngp[:len(x), :len(x)]).max()
    want = _iterate(nngp, nngp, len(x), y, eta, [5, 40])
    pred = ntk.predict(SPEC, x, y, x_test, steps=[5, 40], learning_rate=eta, compute_cov=True, get="nngp")
    for i, s in enumerate((5, 40)):
        np.testing.assert_allclose(pred.mean[i], want[s][0], atol=1e-10 * np.abs(want[s][0]).max())
        np.testing.assert_allclose(pred.cov[i], want[s][1], atol=1e-10 * np.abs(want[s][1]).max())


def test_discrete_time_approaches_gradient_flow_linearly_in_eta():
    """At fixed eta * s = t, the discrete mean approaches the gradient-flow mean as eta -> 0,
    with an error proportional to eta (halving eta halves it, within 10 %); s = inf is the
    converged gradient-flow solution."""
    x, y, x_test = _problem()
    t = 0.5 / np.linalg.eigvalsh(np.asarray(SPEC.kernel_fn(x, None, "ntk"))).min()    # mid-training
    flow = ntk.predict(SPEC, x, y, x_test, t, group=C4, compute_cov=True)
    errs = []
    for k in range(4):
        s = 64 * 2 ** k
        d = ntk.predict(SPEC, x, y, x_test, steps=s, learning_rate=t / s, group=C4, compute_cov=True)
        errs.append(np.abs(d.mean - flow.mean).max() + np.abs(d.cov - flow.cov).max())
    ratios = np.asarray(errs[:-1]) / np.asarray(errs[1:])
    assert np.all(np.abs(ratios - 2) < 0.2), (errs, ratios)
    assert errs[-1] < 1e-2 * np.abs(flow.mean).max()
    lr = 0.5 * max_learning_rate(SPEC, x, C4)
    conv = ntk.predict(SPEC, x, y, x_test, steps=float("inf"), learning_rate=lr, group=C4)
    np.testing.assert_allclose(conv.mean, ntk.predict(SPEC, x, y, x_test, float("inf"), group=C4).mean, atol=1e-10)


def test_bad_discrete_schedules_are_named():
    x, y, x_test = _problem()
    lr = max_learning_rate(SPEC, x, C4)                     # 2 / lambda_max: diverges
    with pytest.raises(ValueError, match="learning_rate=.*2 / lambda_max"):
        ntk.predict(SPEC, x, y, x_test, steps=10, learning_rate=1.01 * lr, group=C4)
    with pytest.raises(ValueError, match="either t .* or steps"):
        ntk.predict(SPEC, x, y, x_test, 1.0, steps=10)
    with pytest.raises(ValueError, match="neither"):
        ntk.predict(SPEC, x, y, x_test)
    with pytest.raises(ValueError, match=r"whole numbers >= 0.*2\.5"):
        ntk.predict(SPEC, x, y, x_test, steps=[1, 2.5], learning_rate=0.1)
    with pytest.raises(ValueError, match="whole numbers"):
        ntk.predict(SPEC, x, y, x_test, steps=-1, learning_rate=0.1)
