"""partial_augmentation on a few real images: the C_n-augmented means from the C4 blocks of
the quarter-turn offsets equal the direct |G| N x |G| N prediction on the bilinear C_n
orbits, for the OSP table's CNN and the MLP; float32 tiles agree with float64; a rerun
computes nothing; bad configs are refused."""
import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import experiments, groups, kernels, metrics
from ntkequi.experiments import partial_augmentation as exp
from ntkequi.nn import ArchSpec

CNN = exp.Config(n_train=4, n_eval=2, arch=exp.POOLED_CNN, train_orders=(1, 8), eval_order=8,
                 time_multiples=(3.0, math.inf), tile=5)


def _run(tmp_path, data_dir, cfg, name="run"):
    return experiments.run_experiment(exp.NAME, out=tmp_path / name, cfg=cfg, data_dir=data_dir,
                                      progress=False)[2]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("partial")
    return out, _run(out, data_dir, CNN)


def _direct(cfg, data_dir, n, rec):
    """Per-angle errors and OSP from the direct prediction on the bilinear C_n orbit."""
    x, y, evals, labels = exp._problem(cfg, data_dir)
    g_eval = groups.rotations(cfg.eval_order, (28, 28))
    ev = metrics.EvalOrbits.of(g_eval, {s: evals[s] for s in exp.EVAL_SETS})
    group = groups.rotations(n, (28, 28)) if n > 1 else None
    lam = 2.0 / kernels.max_learning_rate(cfg.arch, x, group)
    assert rec["lambda_max"] == pytest.approx(lam, rel=1e-8)
    ts = np.asarray(cfg.time_multiples, dtype=float) / lam
    pred = kernels.predict(cfg.arch, x, y, ev.x, ts, group=group, diag_reg=cfg.diag_reg, solver="direct")
    return [{s: (exp.per_angle_error(orb), metrics.orbit_same_predictions(orb, g_eval)[0])
             for s, orb in ev.orbits(pred.mean[i]).items()} for i in range(len(ts))], ev, pred


def test_cnn_equals_the_direct_prediction_on_the_bilinear_orbits(cnn_run, data_dir):
    _, done = cnn_run
    assert set(done) == {"C1", "C8"}
    for n in CNN.train_orders:
        rec = done[f"C{n}"]
        direct, ev, pred = _direct(CNN, data_dir, n, rec)
        for i, per_set in enumerate(direct):
            for s, (err, osp) in per_set.items():
                got = np.asarray(rec["per_time"][i][s]["per_angle"])
                np.testing.assert_allclose(got, err, rtol=1e-6, atol=1e-11)
                assert rec["per_time"][i][s]["osp"] == osp
        # the augmented means are invariant under the exact quarter turns
        for i in range(len(CNN.time_multiples)):
            err = np.asarray(rec["per_time"][i]["fashion_mnist_test"]["per_angle"])
            if n > 1:
                assert err[:: CNN.eval_order // 4].max() < 1e-10
            assert err[1:].max() > 1e-4 or n == CNN.eval_order
        test = ev.orbits(pred.mean[-1])["fashion_mnist_test"]
        labels = exp._problem(CNN, data_dir)[3]
        assert rec["per_time"][-1]["fashion_mnist_test"]["accuracy"] == pytest.approx(
            metrics.accuracy(test[0], labels))


def test_mlp_equals_the_direct_prediction(tmp_path, data_dir):
    cfg = exp.Config(n_train=5, n_eval=2, arch=ArchSpec(kind="mlp", depth=2, b_std=0.1, out_dim=10),
                     train_orders=(1, 8), eval_order=16, tile=4)
    done = _run(tmp_path, data_dir, cfg)
    for n in cfg.train_orders:
        direct, _, _ = _direct(cfg, data_dir, n, done[f"C{n}"])
        for i, per_set in enumerate(direct):
            for s, (err, _) in per_set.items():
                np.testing.assert_allclose(done[f"C{n}"]["per_time"][i][s]["per_angle"], err, rtol=1e-6,
                                           atol=1e-11)


def test_float32_tiles_agree_and_a_rerun_computes_nothing(cnn_run, tmp_path, data_dir):
    out, done = cnn_run
    tiles = sorted(p.name for p in (out / "run" / "tiles").rglob("*.npz"))
    lines = (out / "run" / "results.jsonl").read_text().splitlines()
    _run(out, data_dir, CNN)
    assert sorted(p.name for p in (out / "run" / "tiles").rglob("*.npz")) == tiles
    assert (out / "run" / "results.jsonl").read_text().splitlines() == lines
    f32 = _run(tmp_path, data_dir, dataclasses.replace(CNN, kernel_dtype="float32"))
    for n in (1, 8):
        for a, b in zip(f32[f"C{n}"]["per_time"], done[f"C{n}"]["per_time"]):
            np.testing.assert_allclose(a["noise"]["per_angle"], b["noise"]["per_angle"], rtol=1e-3, atol=1e-6)


def test_quarter_turn_offsets_are_prefixes():
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 12, 12, 1)))
    offs = exp.quarter_turn_offsets((1, 4, 8, 16), x)
    assert offs == [(0, 16), (2, 16), (1, 16), (3, 16)]
    # the first n/4 offsets are C_n's: angles 2 pi s / n
    assert {k / 16 for k, _ in offs[:2]} == {s / 8 for s in range(2)}
    assert exp.quarter_turn_offsets((1,), x) == [(0, 1)]
    assert exp.quarter_turn_offsets((4, 32), x) == [(k, 32) for k in range(8)]


@pytest.mark.parametrize("kw, match", [
    ({"train_orders": (1, 6), "eval_order": 12}, "multiples of 4"),
    ({"train_orders": (1, 8, 12), "eval_order": 24}, "each dividing the next"),
    ({"train_orders": (4, 8), "eval_order": 12}, "multiple of every train order"),
    ({"eval_order": 34, "train_orders": (1, 2)}, "multiple of 4"),
    ({"kernel_dtype": "float16"}, "float16"),
    ({"n_train": 0}, "n_train >= 1"),
])
def test_bad_configs_name_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        exp.Config(**kw)
