"""gcnn_correspondence on a few real 14x14 images: the GCNN's and the augmented CNN's analytic
means are one prediction (to float64 rounding, every step and evaluation set), both ensembles
are recorded against their own network's prediction, a rerun computes nothing, and a pair that
breaks the correspondence is refused."""
import dataclasses
import json

import pytest

from ntkequi import experiments
from ntkequi.experiments import gcnn_correspondence as exp
from ntkequi.experiments.ntk_convergence import ConvergenceConfig, ProblemConfig


@pytest.fixture(scope="module")
def ran(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("gc") / "run"
    cfg, out, done = experiments.run_experiment(exp.NAME, out=out, data_dir=data_dir, progress=False)
    return cfg, out, done


def test_analytic_means_are_one_prediction_and_ensembles_are_recorded(ran):
    cfg, out, done = ran
    corr = [r for r in done.values() if r.get("kind") == "correspondence"]
    assert len(corr) == 3 * len(cfg.problems[0].record_steps)
    assert all(r["max_rel_diff"] < 1e-12 and r["eta_cnn"] == pytest.approx(r["eta_gcnn"], rel=1e-12) for r in corr)
    assert max(r["cov_max_rel_diff"] for r in corr) > 1e-4          # the covariances are not the same
    steps = [r for r in done.values() if "eval_set" in r]
    for net, widths in zip(exp.NETWORKS, (cfg.problems[0].widths, cfg.problems[1].widths)):
        mine = [r for r in steps if r["dataset"] == f"fmnist_{net}"]
        assert {r["width"] for r in mine} == set(widths)
        assert all(0 < r["variance_ratio"] < 10 and r["relative_bias_ci"][0] >= 0 for r in mine)
    assert "GCNN against augmented CNN" in exp.summary(cfg, done)
    exp.figure(cfg, done)
    lines = (out / "results.jsonl").read_text().splitlines()
    experiments.run_experiment(exp.NAME, out=out, data_dir=None, progress=False)       # nothing left to do
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert json.loads((out / "config.json").read_text())["problems"][1]["kind"] == "gcnn"


def test_a_pair_that_breaks_the_correspondence_is_refused():
    small = exp.PRESETS["small"]
    cnn, gcnn = small.problems
    odd = dataclasses.replace(small, problems=(dataclasses.replace(cnn, depth=2), dataclasses.replace(gcnn, depth=2)))
    with pytest.raises(ValueError, match="block 2 pools a 7x7 map"):
        exp.check_pair(odd)
    with pytest.raises(ValueError, match=r"must share \['n_train'\]"):
        exp.check_pair(dataclasses.replace(small, problems=(cnn, dataclasses.replace(gcnn, n_train=9))))
    with pytest.raises(ValueError, match="must be the pair"):
        exp.check_pair(ConvergenceConfig(problems=(ProblemConfig("fmnist", "cnn"), gcnn)))
