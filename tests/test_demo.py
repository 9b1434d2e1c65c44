import json
import math

import pytest

from ntkequi import cli
from ntkequi.experiments import demo
from ntkequi.nn import ArchSpec
from ntkequi.runs import ConfigMismatchError, RunDir, load_run

SMALL = demo.DemoConfig(arch=ArchSpec(kind="mlp", depth=1, b_std=1.0), group_order=4,
                        n_train=12, n_eval=6, times=(0.1, 10.0, math.inf), circle_points=13)


def test_demo_writes_results_and_shows_emergent_invariance(tmp_path):
    out = tmp_path / "demo"
    assert cli.run_and_report("demo", out=out, cfg=SMALL, progress=False, argv=["ntkequi", "demo"]) == 0
    done = load_run(out, demo.Config).done
    for name in ("config.json", "versions.json", "results.jsonl", "command.json", "demo.png", "demo.pdf"):
        assert (out / name).stat().st_size > 0, name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["group_order"] == 4 and cfg["arch"]["kind"] == "mlp"
    versions = json.loads((out / "versions.json").read_text())
    assert versions["neural-tangents"] == "0.6.5" and versions["jax"]
    for s in demo.EVAL_SETS:
        assert max(done[f"augmented/{s}"]["invariance_rel"]) < 1e-10
        assert min(done[f"plain/{s}"]["invariance_rel"]) > 1e-2
    table = demo.summary(SMALL, done)
    assert "inf" in table and len(table.splitlines()) == 3 + len(SMALL.times)


def test_demo_resumes_without_recomputing(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    demo.run(SMALL, out, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    # interrupted run: drop the last two records and leave a torn line
    (out / "results.jsonl").write_text("\n".join(lines[:-2]) + "\n{\"key\": \"plain/ci")
    calls = []
    real = demo.Predictor.__call__                       # every prediction is a Predictor's answer
    monkeypatch.setattr(demo.Predictor, "__call__", lambda *a, **k: calls.append(1) or real(*a, **k))
    done = demo.run(SMALL, out, progress=False)
    assert len(calls) == 2 and len(done) == len(lines)
    calls.clear()
    demo.run(SMALL, out, progress=False)
    assert calls == []


def test_a_different_config_is_not_mixed_into_old_results(tmp_path):
    RunDir(tmp_path, SMALL)
    other = demo.DemoConfig(group_order=6)
    with pytest.raises(ConfigMismatchError, match="group_order"):
        RunDir(tmp_path, other)
    RunDir(tmp_path, other, overwrite=True)


def test_overwrite_reaches_the_run_directory(tmp_path):
    """``ntkequi demo --overwrite`` / ``ntkequi run NAME --overwrite`` replace results of another config."""
    out = tmp_path / "demo"
    RunDir(out, demo.DemoConfig(group_order=6)).record("stale/x", value=1)
    with pytest.raises(ConfigMismatchError, match="group_order"):
        cli.run_and_report("demo", out=out, cfg=SMALL, progress=False)
    assert cli.run_and_report("demo", out=out, cfg=SMALL, progress=False, overwrite=True) == 0
    assert "stale/x" not in load_run(out, demo.Config).done


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--group-order", "0"])
    assert "--group-order must be >= 1" in capsys.readouterr().err
