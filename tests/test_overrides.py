"""`ntkequi run NAME --set path=value`: one field of a preset's config changed from the command
line, parsed as the field's type, nested paths included; bad ones refused naming the field;
recorded with the run, and a run directory refuses a resume with other overrides."""
import json
import math

import pytest

from ntkequi import experiments
from ntkequi.cli import main
from ntkequi.experiments import ntk_convergence as nc
from ntkequi.runs import ConfigMismatchError, load_run, with_overrides

SMALL = nc.PRESETS["small"]
ONE = nc.ConvergenceConfig(problems=(nc.ProblemConfig("toy", widths=(8,), ensemble_size=2, n_train=3, n_eval=2,
                                                      steps=2, record_steps=(0, 2)),))
TINY = ["seeds=(0,)", "models=('network',)", "problems.0.widths=(16,)"]


def test_values_take_their_fields_types_and_nested_paths():
    cfg = with_overrides(SMALL, ["seeds=(3, 4)", "eta_lambda=0.25", "problems.1.eta_lambda=None",
                                 "problems.0.eta_lambda=1e-1", "problems.0.widths=(64, 128.0)",
                                 "antithetic=true", "member_dtype=float64", "problems.1.L=6"])
    assert cfg.seeds == (3, 4) and cfg.eta_lambda == 0.25 and cfg.antithetic is True
    assert cfg.member_dtype == "float64" and cfg.problems[1].L == 6 and cfg.problems[1].eta_lambda is None
    assert cfg.problems[0].widths == (64, 128) and all(type(w) is int for w in cfg.problems[0].widths)
    assert cfg.problems[0].eta_lambda == 0.1 and cfg.problems[1:] != SMALL.problems[1:]
    assert with_overrides(SMALL, []) is SMALL
    # the config's checks run once all assignments are in: steps and record_steps change together
    both = with_overrides(SMALL, ["problems.0.steps=5", "problems.0.record_steps=(0, 5)"])
    assert both.problems[0].steps == 5 and both.problems[0].record_steps == (0, 5)
    from ntkequi.experiments import kernel_symmetry as ks
    assert math.isinf(with_overrides(ks.PRESETS["small"], ["time_multiples=(1, 'inf')"]).time_multiples[1])


@pytest.mark.parametrize("assignment,message", [
    ("seeds", "path=value"),
    ("sedes=(0,)", "no field 'sedes'; its fields: problems, seeds"),
    ("problems.5.steps=3", "'5' is not an index of the 2 entries"),
    ("problems.0.steps=many", "expected int, got 'many'"),
    ("seeds=3", "a tuple is expected"),
    ("problems=()", "nested config"),
    ("eta_lambda=0.9", "eta_lambda must be in \\(0, 0.5\\]; got 0.9"),
    ("problems.0.steps=7", "record_steps must include 0 and steps=7"),
])
def test_bad_overrides_name_the_field_and_value(assignment, message):
    with pytest.raises(ValueError, match=message):
        with_overrides(SMALL, [assignment])


def test_a_run_records_its_overrides_and_refuses_a_resume_with_others(tmp_path, capsys):
    out = tmp_path / "run"
    cfg, _, done = experiments.run_experiment("ntk_convergence", out=out, cfg=ONE, progress=False, overrides=TINY,
                                              argv=["ntkequi", "run", "ntk_convergence"])
    assert load_run(out, nc.Config).config == cfg == with_overrides(ONE, TINY)
    assert cfg.problems[0].widths == (16,)
    command = json.loads((out / "command.json").read_text())
    assert command["overrides"] == TINY and command["preset"] == "custom"
    assert len([r for r in done.values() if r.get("kind") == "unit"]) == 1
    with pytest.raises(ConfigMismatchError):
        experiments.run_experiment("ntk_convergence", out=out, cfg=ONE, progress=False,
                                   overrides=TINY[:-1] + ["problems.0.widths=(32,)"])
    # the command line refuses a bad override before any work
    with pytest.raises(SystemExit):
        main(["run", "ntk_convergence", "--out", str(tmp_path / "other"), "--set", "problems.0.widht=3"])
    assert "no field 'widht'" in capsys.readouterr().err and not (tmp_path / "other").exists()
