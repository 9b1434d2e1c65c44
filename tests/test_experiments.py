"""The experiment scripts' machinery on tiny settings (the real runs are in experiments/)."""
import importlib.util
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import data, ensemble_sweep, figures

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ising_energy_hand_cases():
    up = jnp.ones((1, 4, 4, 1))
    checker = jnp.asarray((-1.0) ** np.add.outer(np.arange(4), np.arange(4)))[None, :, :, None]
    np.testing.assert_allclose(data.ising_energy(jnp.concatenate([up, checker])), [[-2.0], [2.0]])
    s = data.ising_configurations(jnp.array([0, 1], dtype=jnp.uint32), 5, 4)
    assert s.shape == (5, 4, 4, 1) and set(np.unique(s)) <= {-1.0, 1.0}


# ising and fmnist_ntk use the same ensemble_sweep machinery as toy_ensembles (~30-40 s each):
# run with -m slow
@pytest.mark.parametrize("script", [pytest.param("ising", marks=pytest.mark.slow), "toy_ensembles",
                                    pytest.param("fmnist_ntk", marks=pytest.mark.slow)])
def test_sweep_runs_resumes_and_reports(script, tmp_path, request, monkeypatch):
    mod = _load(script)
    tiny = ensemble_sweep.SweepConfig(widths=(8,), ensemble_sizes=(1, 2), steps=4, record_steps=(0, 4))
    cfg = mod.PRESETS["small"].__class__(sweep=tiny)
    if script == "fmnist_ntk":       # real images: the offline data, a few of them
        monkeypatch.setenv("NTKEQUI_DATA_DIR", str(request.getfixturevalue("data_dir")))
        cfg = mod.PRESETS["small"].__class__(n_train=6, n_eval=2, sweep=tiny)
    prob = mod.problem(cfg)
    out = tmp_path / script
    done = ensemble_sweep.run(prob, tiny, out, config=cfg, progress=False)
    assert set(done) == {f"{m}/width8" for m in ensemble_sweep.MODES}
    for kind in ("size", "width", "time"):       # the figures draw from what was saved
        figures.save(getattr(ensemble_sweep, f"figure_{kind}")(tiny, figures.load_run(out).done),
                     tmp_path / "fig" / kind)
        assert (tmp_path / "fig" / f"{kind}.pdf").exists()
    assert (np.asarray(done["orbit/width8"]["noise"][-1]["ensemble_std"][:1]) >= 0).all()
    rec = done["orbit/width8"]["noise"][-1]
    assert rec["ntk"] < 1e-6 and len(rec["ensemble"]) == 2       # augmented NTK is invariant
    assert done["none/width8"]["noise"][-1]["ntk"] > 1e-3
    n = len((out / "results.jsonl").read_text().splitlines())
    ensemble_sweep.run(prob, tiny, out, config=cfg, progress=False)       # resume: nothing to do
    assert len((out / "results.jsonl").read_text().splitlines()) == n
    assert "orbit" in ensemble_sweep.table(done, tiny, prob.group.name, "noise")
    assert json.loads((out / "config.json").read_text())["sweep"]["steps"] == 4
