"""toy_heatmaps on a tiny grid: records per mode, the orbit-trained NTK mean invariant on
the whole square, resume without retraining, the figure from saved results."""
import pytest

from ntkequi import experiments
from ntkequi.experiments import toy_heatmaps as exp
from ntkequi.report import build
from ntkequi.runs import load_run

CFG = exp.Config(width=16, ensemble_size=4, record_steps=(0, 1, 20), grid=7)


def test_runs_resumes_and_draws(tmp_path):
    out = tmp_path / "heat"
    cfg, out, done = experiments.run_experiment(exp.NAME, out=out, cfg=CFG, progress=False)
    assert set(done) == set(exp.MODES)
    for mode in exp.MODES:
        steps = done[mode]["per_step"]
        assert [r["step"] for r in steps] == [0, 1, 20] and len(steps[-1]["mean"]) == 49
    assert done["orbit"]["per_step"][-1]["invariance"]["ntk"] < 1e-10
    assert done["none"]["per_step"][-1]["invariance"]["ntk"] > 1e-3
    assert done["orbit"]["per_step"][-1]["invariance"]["member"] > 1e-3      # no single member is invariant
    lines = (out / "results.jsonl").read_text().splitlines()
    experiments.run_experiment(exp.NAME, out=out, cfg=CFG, progress=False)
    assert (out / "results.jsonl").read_text().splitlines() == lines
    saved = load_run(out, exp.Config)
    assert saved.config == CFG
    build.save(exp.FIGURES[0].draw(saved.config, saved.done), tmp_path / "fig" / exp.NAME)
    assert "orbit" in exp.summary(CFG, done) and exp.numbers(CFG, done)["heatM"] == "4"


@pytest.mark.parametrize("bad, match", [(dict(grid=2), "grid >= 3"), (dict(record_steps=(3, 1)), "ascending"),
                                        (dict(ensemble_size=0), "ensemble_size")])
def test_bad_configs_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        exp.Config(**bad)
