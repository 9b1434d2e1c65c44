"""The experiment runner and the sweep machinery on tiny settings (the real runs: ntkequi run NAME)."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import cli, data, experiments
from ntkequi.experiments import sweep
from ntkequi.report import build
from ntkequi.runs import load_run


def test_ising_energy_hand_cases():
    up = jnp.ones((1, 4, 4, 1))
    checker = jnp.asarray((-1.0) ** np.add.outer(np.arange(4), np.arange(4)))[None, :, :, None]
    np.testing.assert_allclose(data.ising_energy(jnp.concatenate([up, checker])), [[-2.0], [2.0]])
    s = data.ising_configurations(jnp.array([0, 1], dtype=jnp.uint32), 5, 4)
    assert s.shape == (5, 4, 4, 1) and set(np.unique(s)) <= {-1.0, 1.0}


# ising and fmnist_ntk use the same sweep machinery as toy_ensembles (~30-40 s each):
# run with -m slow
@pytest.mark.parametrize("name", [pytest.param("ising", marks=pytest.mark.slow), "toy_ensembles",
                                  pytest.param("fmnist_ntk", marks=pytest.mark.slow)])
def test_sweep_runs_resumes_and_reports(name, tmp_path, request, monkeypatch):
    mod = experiments.get(name)
    tiny = sweep.SweepConfig(widths=(8,), ensemble_sizes=(1, 2), steps=4, record_steps=(0, 4))
    cfg = mod.Config(sweep=tiny)
    data_dir = None
    if name == "fmnist_ntk":       # real images: the offline data, a few of them
        data_dir = request.getfixturevalue("data_dir")
        cfg = mod.Config(n_train=6, n_eval=2, depth=2, pool=True, sweep=tiny)     # the cpu preset's network
    out = tmp_path / name
    cfg, out, done = experiments.run_experiment(name, out=out, cfg=cfg, data_dir=data_dir, progress=False,
                                                argv=["ntkequi", "run", name])
    assert set(done) == {f"{m}/width8" for m in sweep.MODES}
    saved = load_run(out, mod.Config)
    assert saved.config == cfg                                  # read back as the same dataclass
    for fig in mod.FIGURES:                                     # the figures draw from what was saved
        build.save(fig.draw(saved.config, saved.done), tmp_path / "fig" / fig.name)
        assert (tmp_path / "fig" / f"{fig.name}.pdf").exists()
    rec = done["orbit/width8"]["noise"][-1]
    # M = 1: the disjoint groups of one member are the members, so the spread is the members' std
    assert rec["ensemble_std"][0] == pytest.approx(rec["members_std"], rel=1e-12)
    assert rec["ntk"] < 1e-6 and len(rec["ensemble"]) == 2       # augmented NTK is invariant
    assert done["none/width8"]["noise"][-1]["ntk"] > 1e-3
    n = len((out / "results.jsonl").read_text().splitlines())
    experiments.run_experiment(name, out=out, cfg=cfg, data_dir=data_dir, progress=False)   # resume: nothing to do
    assert len((out / "results.jsonl").read_text().splitlines()) == n
    assert "orbit" in mod.summary(cfg, done)
    assert json.loads((out / "config.json").read_text())["sweep"]["steps"] == 4
    assert json.loads((out / "command.json").read_text())["preset"] == "custom"


def test_sweep_predicts_once_per_augmentation_for_all_widths(tmp_path, monkeypatch):
    """The analytic kernel does not depend on the width: one training solve (Predictor) per mode,
    the same mu_t in every width's record."""
    calls = []
    real = sweep.Predictor
    monkeypatch.setattr(sweep, "Predictor", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = experiments.get("toy_ensembles").Config(sweep=sweep.SweepConfig(
        widths=(4, 8), ensemble_sizes=(1,), steps=2, record_steps=(0, 2)))
    _, _, done = experiments.run_experiment("toy_ensembles", out=tmp_path / "t", cfg=cfg, progress=False)
    assert len(calls) == len(sweep.MODES)
    for mode in sweep.MODES:
        a, b = done[f"{mode}/width4"], done[f"{mode}/width8"]
        assert a["times"] == b["times"]
        for s in a["eval_sets"]:
            assert a[s][-1]["ntk"] == b[s][-1]["ntk"] and a[s][-1]["predicted_msq"] == b[s][-1]["predicted_msq"]
            assert a[s][-1]["members"] != b[s][-1]["members"]          # the finite networks do differ


def test_runner_switches_float64_on_from_the_config(tmp_path):
    import jax
    jax.config.update("jax_enable_x64", False)
    try:
        cfg = experiments.get("toy_ensembles").Config(sweep=sweep.SweepConfig(
            widths=(4,), ensemble_sizes=(1,), steps=1, record_steps=(1,)))
        experiments.run_experiment("toy_ensembles", out=tmp_path / "t", cfg=cfg, progress=False)
        assert jax.config.jax_enable_x64
        assert json.loads((tmp_path / "t" / "versions.json").read_text())["x64"] is True
    finally:
        jax.config.update("jax_enable_x64", True)


def test_runner_and_cli_reject_unknown_names_and_presets(tmp_path, capsys):
    with pytest.raises(KeyError, match="unknown experiment 'nope'; known: demo, toy_ensembles"):
        experiments.run_experiment("nope")
    with pytest.raises(KeyError, match="has no preset 'huge'; presets: small, paper"):
        experiments.run_experiment("toy_ensembles", "huge")
    with pytest.raises(TypeError, match="cfg must be a toy_ensembles.Config"):
        experiments.run_experiment("toy_ensembles", cfg=experiments.get("demo").Config())
    for argv, msg in ((["run", "nope"], "invalid choice: 'nope'"),
                      (["run", "demo", "--preset", "huge"], "has no preset 'huge'"),
                      (["demo", "--group-order", "0"], "--group-order must be >= 1; got 0"),
                      (["demo", "--n-train", "x"], "--n-train must be an integer; got 'x'")):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert msg in capsys.readouterr().err
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in experiments.NAMES) and "fmnist_osp_table" in out


def test_command_records_the_script_as_given_and_hides_data_paths(tmp_path, monkeypatch):
    from ntkequi.runs import write_command
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    rec = lambda argv: json.loads(write_command(tmp_path, "small", argv).read_text())["command"]  # noqa: E731
    assert rec([str(tmp_path / "mine" / "run_it.py"), "--data-dir", "/secret/data"]) == \
        "python mine/run_it.py --data-dir DIR"
    assert rec(["/elsewhere/script.py", "--data-dir=/x"]) == "python /elsewhere/script.py --data-dir=DIR"
    assert rec(["/usr/bin/ntkequi", "run", "demo"]) == "ntkequi run demo"


def test_numbers_name_every_group_order():
    """Macro names spell any group order (LaTeX names hold no digits), none is dropped."""
    from ntkequi.experiments import fmnist_osp_table as osp
    cfg = osp.TableConfig(groups=(4, 12), seeds=(0,), models=("gcnn",))
    done = {f"gcnn/C{n}/seed0": {"noise": {"osp": float(n)}} for n in (4, 12)}
    nums = osp.numbers(cfg, done)
    assert nums["ospGcnnFour"] == 4.0 and nums["ospGcnnTwelve"] == 12.0
