"""The ntk_convergence experiment on a tiny setting: records as the protocol says, resumable,
the figures and the table draw from them, and what must hold at any width does."""
import json

import numpy as np
import pytest

from ntkequi import experiments
from ntkequi.experiments import ntk_convergence as nc
from ntkequi.report import build
from ntkequi.runs import load_run

TINY = nc.ConvergenceConfig(problems=(nc.ProblemConfig("toy", widths=(16, 256), ensemble_size=8, n_train=4, n_eval=3,
                                                       steps=6, record_steps=(0, 6)),), seeds=(0, 1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("ntkc") / "run"
    cfg, out, done = experiments.run_experiment("ntk_convergence", out=out, cfg=TINY, progress=False)
    return cfg, out, done


def test_records_carry_what_a_referee_needs(tiny):
    cfg, out, done = tiny
    recs = nc.rows(done)
    assert len(recs) == 2 * 2 * 2 * 2 * 2          # widths x seeds x models x steps x eval sets
    for r in recs:
        for f in ("dataset", "model", "width", "seed", "step", "t", "bias", "bias_ci", "variance_ratio",
                  "invariance_msq", "predicted_invariance_msq", "relative_bias", "scale", "ntk_train_loss_fraction"):
            assert f in r, f
        assert r["bias_ci"][0] <= r["bias"] <= r["bias_ci"][1] or r["bias"] == 0.0
        assert r["t"] == pytest.approx(r["step"] * done[f"toy_mlp/{r['model']}/w{r['width']}/s{r['seed']}"]["eta"])
    units = [k for k, r in done.items() if r.get("kind") == "unit"]
    assert len(units) == 2 * 2 * 2 and all(done[u]["seconds"] > 0 for u in units)      # each unit's wall time
    # the per-member predictions stay beside the records (float32), so every number can be recomputed
    saved = np.load(out / "ensembles" / "toy_mlp_network_w256_s1" / "predictions_step6.npy")
    assert saved.dtype == np.float32 and saved.shape == (8, 2 * 3 * 8, 1)


def test_what_holds_at_any_width(tiny):
    """At step 0 the network and its linearisation are the same members (same records), and
    the members' mean is zero in expectation at every width, as mu_0 is: the bias interval
    reaches 0. The NTK's own training loss falls with the steps."""
    _, _, done = tiny
    for r in nc.rows(done, step=0, model="network"):
        twin = done[f"toy_mlp/linearised/w{r['width']}/s{r['seed']}/step0/{r['eval_set']}"]
        assert twin["distance_sq"] == r["distance_sq"] and twin["variance_ratio"] == r["variance_ratio"]
        assert r["bias_ci"][0] == 0.0, r
    loss = {r["step"]: r["ntk_train_loss_fraction"] for r in nc.rows(done)}
    assert loss[0] == pytest.approx(1.0) and loss[6] < loss[0]


def test_resume_figures_and_table(tiny, tmp_path):
    cfg, out, done = tiny
    n = len((out / "results.jsonl").read_text().splitlines())
    experiments.run_experiment("ntk_convergence", out=out, cfg=cfg, progress=False)          # nothing to do
    assert len((out / "results.jsonl").read_text().splitlines()) == n
    saved = load_run(out, nc.Config)
    assert saved.config == cfg
    for fig in nc.FIGURES:
        build.save(fig.draw(saved.config, saved.done), tmp_path / fig.name)
        assert (tmp_path / f"{fig.name}.pdf").exists()
    tab = nc.table(saved.config, saved.done)
    assert len(tab.rows) == 2 * 2                  # models x eval sets
    assert "toy_mlp network" in nc.summary(saved.config, saved.done)
    nums = nc.numbers(saved.config, saved.done)     # the README's quoted numbers: the table's row
    row = next(r for r in tab.rows if r[:3] == ["toy mlp", "network", "in distribution"])
    assert nums["convToyBiasMin"] == row[4].value and nums["convToyBiasMax"] == row[5].value
    assert nums["convToyVar"] == row[9].value and nums["convToyLinStep"] == row[3]
    assert nums["convToyVarLo"] <= nums["convToyVar"] <= nums["convToyVarHi"]
    assert json.loads((out / "config.json").read_text())["problems"][0]["dataset"] == "toy"


def test_pooled_bias_and_exponent():
    """Pooling per-seed unbiased b^2: the mean over seeds, an interval from their spread, and
    the log-log slope of b against width."""
    done = {f"u{w}{s}": {"eval_set": "a", "dataset": "d", "model": "network", "width": w, "seed": s, "scale": 2.0,
                         "bias_sq": 4.0 * (1.0 / w) ** 2 * (1 + 0.1 * s), "relative_bias_ci": [0, 1],
                         "distance_sq": 0.5}
            for w in (10, 100) for s in (0, 1, 2)}
    # a diverged unit (its mean 1e10 initial spreads away) is left out of every statistic
    diverged = {"x": {**done["u1000"], "seed": 3, "bias_sq": 4e20, "distance_sq": 4e20}}
    assert nc.diverged_units({**done, **diverged}) == [("d", "network", 100, 3)]
    w, b, lo, hi = nc.pooled_bias({**done, **diverged}, dataset="d")
    np.testing.assert_allclose(b, np.sqrt(np.array([1.1e-2, 1.1e-4])), rtol=1e-12)
    assert np.all(lo < b) and np.all(b < hi)
    assert nc.fit_exponent(w, b) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="eta_lambda"):
        nc.ConvergenceConfig(eta_lambda=1.0)
    with pytest.raises(ValueError, match="record_steps must include 0"):
        nc.ProblemConfig(steps=10, record_steps=(5, 10))


def test_collect_keeps_the_per_member_predictions(tiny, tmp_path, monkeypatch):
    """``ntkequi figures --collect`` copies every unit's per-member predictions into the results
    (all steps while they fit the budget, else each unit's last step), so the records can be
    recomputed from what is committed."""
    _, out, done = tiny
    runs = tmp_path / "runs"
    import shutil
    shutil.copytree(out, runs / "ntk_convergence")
    assert build.collect(runs, tmp_path / "results") == ["ntk_convergence"]
    kept = sorted((tmp_path / "results" / "ntk_convergence" / "ensembles").glob("*/*.npy"))
    assert len(kept) == 8 * 2                                  # 8 units x 2 record steps
    monkeypatch.setattr(nc, "KEEP_BYTES", 1)
    assert sorted(nc.kept_files(runs / "ntk_convergence")) == sorted(
        f"ensembles/{d.name}/predictions_step6.npy" for d in (runs / "ntk_convergence" / "ensembles").iterdir())
    # a record recomputed from the kept predictions
    rec = done["toy_mlp/network/w16/s0/step6/noise"]
    members = np.load(tmp_path / "results" / "ntk_convergence" / "ensembles" / "toy_mlp_network_w16_s0"
                      / "predictions_step6.npy").astype(np.float64)
    noise = members[:, 3 * 8:]                                 # the second set's C8 orbits (after in_distribution)
    assert rec["noise_sq"] == pytest.approx(np.sum(np.var(noise, axis=0, ddof=1)) / 8, rel=1e-9)


def test_member_step_sizes_are_each_members_own_kernel_times_eta():
    """member_step_sizes: eta times the largest eigenvalue of each member's full empirical NTK on
    the training orbit (the members run() draws), equal to the eigenvalues of the kernel written
    out by nn.mlp_empirical_ntk; a problem's own eta_lambda scales them; a bad one is refused."""
    import dataclasses
    import jax
    from ntkequi import ensembles
    from ntkequi.kernels import augment
    from ntkequi.nn import mlp_empirical_ntk
    p = TINY.problems[0]
    sizes = nc.member_step_sizes(TINY, p, 16, 1, members=[0, 3])
    prob = nc.problem(p, TINY.data_seed)
    xs, _ = augment(prob.group, prob.x, prob.y)
    params = ensembles.init_ensemble(nc.spec(p, 16, 1), jax.random.split(jax.random.PRNGKey(1))[0], p.ensemble_size, xs)
    eta = nc.step_size(TINY, p, prob)
    for got, m in zip(sizes, (0, 3)):
        theta = mlp_empirical_ntk(nc.spec(p, 16, 1), jax.tree_util.tree_map(lambda v: v[m], params), xs)[1]
        assert got == pytest.approx(eta * float(np.linalg.eigvalsh(np.asarray(theta))[-1]), rel=1e-5)
    half = nc.member_step_sizes(TINY, dataclasses.replace(p, eta_lambda=0.25), 16, 1, members=[0, 3])
    np.testing.assert_allclose(half, sizes / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="eta_lambda"):
        dataclasses.replace(p, eta_lambda=0.9)


def test_closed_form_linearised_members_equal_the_trained_ones(tiny, tmp_path):
    """closed_form=True computes the linearised members from their own empirical NTKs instead
    of training them: the same members (keys) and the same gradient descent, so the saved
    predictions agree with the trained float32 members to float32 rounding, at every record
    step; it cannot make antithetic pairs."""
    _, out, _ = tiny
    cfg = nc.ConvergenceConfig(problems=TINY.problems, seeds=(1,), models=("linearised",), closed_form=True)
    experiments.run_experiment("ntk_convergence", out=tmp_path / "cf", cfg=cfg, progress=False)
    for w in (16, 256):
        for step in (0, 6):
            name = f"toy_mlp_linearised_w{w}_s1/predictions_step{step}.npy"
            closed, trained = np.load(tmp_path / "cf" / "ensembles" / name), np.load(out / "ensembles" / name)
            assert closed.dtype == np.float32 and closed.shape == trained.shape
            np.testing.assert_allclose(closed, trained, atol=2e-5 * np.abs(trained).max())
    with pytest.raises(ValueError, match="antithetic"):
        nc.ConvergenceConfig(closed_form=True, antithetic=True)
