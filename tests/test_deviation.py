"""metrics.ensemble_deviation on synthetic Gaussian members drawn from N(mu + b, c Sigma) with
known b and c: the bias estimate is unbiased, its interval covers the truth at about its level,
the variance ratio and calibration recover c, antithetic pair means cancel what they share."""
import numpy as np
import pytest

from ntkequi import metrics


def _sigma(n, rng):
    a = rng.standard_normal((n, n))
    return a @ a.T / n + 0.1 * np.eye(n)


def _draw(rng, m, mu, sigma, bias, c):
    n, k = mu.shape
    chol = np.linalg.cholesky(c * sigma)
    return mu + bias + np.einsum("nj,mjk->mnk", chol, rng.standard_normal((m, n, k)))


@pytest.mark.parametrize("bias_size,c", [(0.0, 1.0), (0.3, 1.0), (0.3, 2.0), (0.0, 0.5)])
def test_bias_and_variance_ratio_recover_the_truth(bias_size, c):
    """Over 200 ensembles of 16 members (8 points, 2 outputs): the mean of b^2 is within 3
    standard errors of ||b||^2 (unbiased), the 90 % bootstrap interval of b covers the true b
    in at least 85 % of them (measured 95-99 %: conservative), the variance
    ratio averages c within 5 % and its interval covers c, and with no bias the calibration statistic averages c."""
    rng = np.random.default_rng(1)
    n, k, m = 8, 2, 16
    sigma = _sigma(n, rng)
    mu = rng.standard_normal((n, k))
    bias = bias_size * rng.standard_normal((n, k))
    true_b2 = float(np.sum(bias ** 2))
    est = [metrics.ensemble_deviation(_draw(rng, m, mu, sigma, bias, c), mu, sigma, n_boot=400, seed=i)
           for i in range(200)]
    b2 = np.array([d.bias_sq for d in est])
    assert abs(b2.mean() - true_b2) < 3 * b2.std() / np.sqrt(len(b2)), (b2.mean(), true_b2)
    if true_b2 > 0:
        cover = np.mean([d.bias_ci[0] <= np.sqrt(true_b2) <= d.bias_ci[1] for d in est])
        assert cover >= 0.85, cover
    else:
        assert np.mean([d.bias_ci[0] == 0.0 for d in est]) >= 0.85      # the interval reaches 0
    ratio = np.mean([d.variance_ratio for d in est])
    assert abs(ratio - c) < 0.05 * c, ratio
    # its interval is centred on it (a resample's variance is centred on (M-1)/M of it,
    # corrected) and covers c in at least 80 % of the ensembles (measured 86 %; 77 % and 0.94 uncorrected)
    centre = np.mean([(d.variance_ratio_ci[0] + d.variance_ratio_ci[1]) / 2 / d.variance_ratio for d in est])
    assert abs(centre - 1) < 0.02, centre
    cover = np.mean([d.variance_ratio_ci[0] <= c <= d.variance_ratio_ci[1] for d in est])
    assert cover >= 0.8, cover
    calib = np.mean([d.calibration for d in est])
    if true_b2 == 0:
        assert abs(calib - c) < 0.05 * c, calib
    else:
        assert calib > c
    d = est[0]
    assert d.units == m and d.directions == n and d.level == 0.9
    assert d.scale == pytest.approx(np.sqrt(k * np.trace(sigma)))
    assert d.relative_bias == pytest.approx(d.bias / d.scale)
    rec = d.as_record()
    assert rec["bias_ci"] == list(d.bias_ci) and rec["relative_bias"] == d.relative_bias


def test_the_noise_term_is_what_m_members_must_show():
    """Pure noise: M * distance^2 is flat in M at tr(k Sigma) (averaged), and the bias
    estimate removes it: |b^2| is far below the distance for every M."""
    rng = np.random.default_rng(2)
    sigma, mu = _sigma(6, rng), np.zeros((6, 1))
    for m in (4, 16, 64):
        d = [metrics.ensemble_deviation(_draw(rng, m, mu, sigma, 0.0, 1.0), mu, sigma, n_boot=50)
             for _ in range(100)]
        md2 = m * np.mean([x.distance_sq for x in d])
        assert abs(md2 / np.trace(sigma) - 1) < 0.2, (m, md2)
        assert abs(np.mean([x.bias_sq for x in d])) < 0.2 * np.mean([x.distance_sq for x in d])


def test_antithetic_pairs_are_the_units():
    """Pairs (u, 2 mu + 2 b - u) share everything but the sign of their noise: their pair means
    are mu + b exactly, so b^2 is ||b||^2 with no noise; the variance ratio uses one member of
    each pair (c), not the pair means (0)."""
    rng = np.random.default_rng(3)
    sigma, mu = _sigma(5, rng), rng.standard_normal((5, 2))
    bias = 0.2 * rng.standard_normal((5, 2))
    first = _draw(rng, 8, mu, sigma, bias, 1.5)
    second = 2 * (mu + bias) - first
    members = np.stack([first, second], axis=1).reshape(16, 5, 2)           # (u0, u0'), (u1, u1'), ...
    d = metrics.ensemble_deviation(members, mu, sigma, pairs=True)
    assert d.units == 8 and d.noise_sq == pytest.approx(0.0, abs=1e-20)
    assert d.bias_sq == pytest.approx(np.sum(bias ** 2), rel=1e-10)
    assert d.bias_ci[0] == pytest.approx(d.bias_ci[1], rel=1e-10)
    assert 0.5 < d.variance_ratio < 4.0


def test_bad_deviation_input_is_named():
    mu, sigma = np.zeros((3, 1)), np.eye(3)
    with pytest.raises(ValueError, match="same n and k"):
        metrics.ensemble_deviation(np.zeros((4, 3, 2)), mu, sigma)
    with pytest.raises(ValueError, match="at least 2 members"):
        metrics.ensemble_deviation(np.zeros((1, 3, 1)), mu, sigma)
    with pytest.raises(ValueError, match="even number of members"):
        metrics.ensemble_deviation(np.zeros((5, 3, 1)), mu, sigma, pairs=True)
    with pytest.raises(ValueError, match="members has non-finite"):
        metrics.ensemble_deviation(np.full((4, 3, 1), np.nan), mu, sigma)
    with pytest.raises(ValueError, match="no spread"):
        metrics.ensemble_deviation(np.zeros((4, 3, 1)), mu, 0 * sigma)
    with pytest.raises(ValueError, match="scale must be > 0"):
        metrics.ensemble_deviation(np.zeros((4, 3, 1)), mu, sigma, scale=0.0)
