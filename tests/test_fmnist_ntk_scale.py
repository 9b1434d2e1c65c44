"""fmnist_ntk_scale on a few real images: the solves from saved tiles equal predict on the
orbit points (with and without augmentation), the augmented mean is invariant, a rerun
computes nothing, a too-large request is refused before any tile exists, and the
predicted ensemble invariance error scales as 1/M."""
import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import experiments, groups, kernels
from ntkequi.experiments import fmnist_ntk_scale as exp
from ntkequi.report import build
from ntkequi.runs import load_run

CASE = exp.ArchCase("pool_flatten", "flatten", (6, 10), 3, 2)
CFG = exp.Config(archs=(CASE,), time_multiples=(3.0, math.inf), ensemble_sizes=(1, 4), tile=4)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("scale") / "run"
    cfg, out, done = experiments.run_experiment(exp.NAME, out=out, cfg=CFG, data_dir=data_dir, progress=False,
                                                argv=["ntkequi", "run", exp.NAME])
    return out, done


def test_records_and_invariance(ran):
    out, done = ran
    assert set(done) == {"pool_flatten/N6", "pool_flatten/N10"}
    for rec in done.values():
        for per_set in rec["C4"]:
            for s in exp.EVAL_SETS:
                assert per_set[s]["invariance_error"] < 1e-10 and per_set[s]["osp"] == 4.0
                pred = per_set[s]["predicted_msq_invariance"]
                assert pred["1"] > 0 and pred["4"] == pytest.approx(pred["1"] / 4, rel=1e-12)
        assert max(p[s]["invariance_error"] for p in rec["none"] for s in exp.EVAL_SETS) > 1e-3
        assert 0.0 <= rec["none"][-1]["fashion_mnist_test"]["accuracy"] <= 1.0
    saved = load_run(out, exp.Config)
    assert saved.config == CFG
    for fig in exp.FIGURES:
        build.save(fig.draw(saved.config, saved.done), out / "fig" / fig.name)
    assert "pool_flatten" in exp.summary(CFG, done)
    exp.TABLES[exp.NAME](CFG, done)


def test_means_equal_predict_on_the_orbit_points(ran, data_dir):
    out, done = ran
    x, y, evals, labels = exp._problem(CASE, CFG.seed, data_dir)
    c4 = groups.rotations(4, (28, 28))
    xt = np.concatenate([evals[s] for s in exp.EVAL_SETS])
    orbit = c4.orbit(jnp.asarray(xt)).reshape((-1, 28, 28, 1))          # group-major
    n = 10
    rec = done[f"pool_flatten/N{n}"]
    spec = CASE.spec()
    ts = rec["times"]
    aug = kernels.predict(spec, jnp.asarray(x[:n]), jnp.asarray(y[:n]), orbit, ts, group=c4, solver="direct")
    plain = kernels.predict(spec, jnp.asarray(x[:n]), jnp.asarray(y[:n]), orbit, ts, solver="direct")
    m = xt.shape[0]
    labels = np.asarray(labels)
    for i in range(len(ts)):
        for name, pred in (("C4", aug), ("none", plain)):
            orb = np.asarray(pred.mean[i]).reshape(4, m, 10)[:, :CASE.n_test]
            acc = float(np.mean(np.argmax(orb[0], -1) == labels))
            assert rec[name][i]["fashion_mnist_test"]["accuracy"] == pytest.approx(acc)
            err = np.linalg.norm(orb - orb[0][None], axis=-1).mean()    # over all g, e included
            assert rec[name][i]["fashion_mnist_test"]["invariance_abs"] == pytest.approx(err, rel=1e-6, abs=1e-12)


def test_rerun_computes_nothing(ran, data_dir):
    out, done = ran
    tiles = sorted(p.name for p in (out / "tiles").rglob("*.npz"))
    lines = (out / "results.jsonl").read_text().splitlines()
    experiments.run_experiment(exp.NAME, out=out, cfg=CFG, data_dir=data_dir, progress=False)
    assert sorted(p.name for p in (out / "tiles").rglob("*.npz")) == tiles
    assert (out / "results.jsonl").read_text().splitlines() == lines


def test_too_large_is_refused_before_any_tile(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("NTKEQUI_MAX_KERNEL_BYTES", "10000")
    with pytest.raises(kernels.KernelTooLargeError, match="10 training x 7 test inputs"):
        experiments.run_experiment(exp.NAME, out=tmp_path / "r", cfg=CFG, data_dir=data_dir, progress=False)
    assert not list((tmp_path / "r").rglob("*.npz"))


@pytest.mark.parametrize("bad, match", [
    (dict(readout="avg"), "readout must be 'flatten' or 'gap'"),
    (dict(sizes=(10, 6)), "ascending"),
    (dict(sizes=(70000,)), "60000"),
    (dict(n_test=0), "n_test >= 1"),
    (dict(kernel_dtype="float16"), "kernel_dtype must be"),
])
def test_bad_cases_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CASE, **bad)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="time_multiples must be positive"):
        exp.Config(time_multiples=(0.0,))
    with pytest.raises(ValueError, match="distinct"):
        exp.Config(archs=(CASE, CASE))


def test_workers_fill_a_runs_tiles_and_the_run_then_only_solves(tmp_path, data_dir, monkeypatch, capsys):
    """`ntkequi run fmnist_ntk_scale --out D --worker 1/2` fills every tile of the run (alone here;
    tests/test_stored.py runs workers at once); the run, started as a two-process jax.distributed
    job, then computes none, and process 0 records; a worker with another config is refused with
    both values named."""
    import json
    from ntkequi import cli
    from ntkequi.runs import ConfigMismatchError
    monkeypatch.setenv("NTKEQUI_DATA_DIR", str(data_dir))
    out = tmp_path / "run"
    sets = []
    for field in ("archs.0.sizes=(4, 6)", "archs.0.n_test=2", "archs.0.n_ood=1", "archs.1.sizes=(2,)",
                  "archs.1.n_test=1", "archs.1.n_ood=1", "tile=4", "time_multiples=(3.0,)", "ensemble_sizes=(1,)"):
        sets += ["--set", field]
    base = ["run", exp.NAME, "--out", str(out), "--no-progress"] + sets
    assert cli.main(base + ["--worker", "1/2"]) == 0
    assert "every tile of the run is on disk" in capsys.readouterr().out
    n_tiles = len(list((out / "tiles").rglob("*.npz")))
    assert n_tiles > 0 and not list((out / "tiles").rglob("*.claim"))
    # the same run as a two-process job (jax.distributed on localhost): both find the tiles done,
    # meet at the barrier, and process 0 solves and records
    import socket
    import subprocess
    import sys
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-m", "ntkequi.cli"] + base + [
        "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert "process 1/2: computed 0 tile(s)" in outs[1][0]
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["tiles_computed"] for r in recs if "key" in r] == [0, 0, 0]
    assert len(list((out / "tiles").rglob("*.npz"))) == n_tiles
    other = [a.replace("tile=4", "tile=5") for a in base]
    with pytest.raises(ConfigMismatchError, match=r"tile: saved 4, given 5"):
        cli.main(other + ["--worker", "1/1"])
