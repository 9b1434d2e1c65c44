"""The FashionMNIST orbit-consistency table on a tiny setting: runs, resumes, reports."""
import json

import numpy as np

from ntkequi import data
from ntkequi.experiments import fmnist_osp_table as orbit_table
from ntkequi.nn import ArchSpec


def tiny_config(**kw):
    kw = {"split": data.SplitConfig(n_train=48, n_val=0, n_test=12), "gcnn": orbit_table.GCNNConfig(channels=3),
          "canon": orbit_table.CanonConfig(channels=2), **kw}
    return orbit_table.TableConfig(
        groups=(4,), seeds=(0,), n_ood=6,
        cnn=ArchSpec(kind="cnn", depth=1, width=4, out_dim=10, pool=True), ensemble_size=3,
        kernel_size=3, steps=4, batch_size=16, **kw)


def test_table_runs_resumes_and_reports(data_dir, tmp_path):
    cfg = tiny_config()
    out = tmp_path / "table"
    done = orbit_table.run(cfg, out, data_dir=data_dir, progress=False)
    assert set(done) == {f"{m}/C4/seed0" for m in orbit_table.MODELS}
    for s in orbit_table.EVAL_SETS:
        # exactly invariant baselines: every orbit element gets the same class
        assert done["gcnn/C4/seed0"][s]["osp"] == 4.0
        assert done["canonicalization/C4/seed0"][s]["osp"] == 4.0
        assert done["canonicalization/C4/seed0"][s]["invariance_error"] < 1e-5    # float32
        ens = done["deep_ensemble/C4/seed0"]
        assert 1.0 <= ens[s]["osp"] <= 4.0 and len(ens[s + "_members"]) == 3
    # an exactly invariant model classifies every rotated copy alike: orbit accuracy = accuracy
    gcnn = done["gcnn/C4/seed0"]["test"]
    assert gcnn["accuracy_orbit"] == gcnn["accuracy"]
    summ = orbit_table.summarize(cfg, done, "mnist")
    assert summ["single"][4][2] == 3 and summ["deep_ensemble"][4][2] == 1
    md = orbit_table.summary(cfg, done)
    assert "| E2CNN-style GCNN | 4 +- 0 | 4.0 +- 0.0 |" in md and "3.85 +- 0.12" in md
    table = orbit_table.TABLES["osp_mnist"](cfg, done)
    assert table.rows[2][0] == "E2CNN-style GCNN" and table.rows[2][1][0].mean == 4.0
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * (3 + 3)          # header + (3 orbit sets + test_all) x (3 models + 3 members)
    # n_orbit None: the orbit set's unrotated images are all test images, so the two accuracies agree
    for m in orbit_table.MODELS:
        assert done[f"{m}/C4/seed0"]["test_all"]["accuracy"] == done[f"{m}/C4/seed0"]["test"]["accuracy"]
    # OSP against m: m = 1 are the members, m = M the ensemble; M // m disjoint subsets
    for s in orbit_table.EVAL_SETS:
        curve = ens[s + "_vs_m"] if s == "mnist" else done["deep_ensemble/C4/seed0"][s + "_vs_m"]
        assert [p["m"] for p in curve] == [1, 2, 3] and [len(p["osp"]) for p in curve] == [3, 1, 1]
        rec = done["deep_ensemble/C4/seed0"]
        np.testing.assert_allclose(curve[0]["osp"], [m["osp"] for m in rec[s + "_members"]])
        np.testing.assert_allclose(curve[0]["relative_std"], [m["relative_std"] for m in rec[s + "_members"]])
        assert curve[-1]["osp"] == [rec[s]["osp"]] and curve[-1]["invariance_error"] == [rec[s]["invariance_error"]]
    assert len((out / "ensemble_size.csv").read_text().splitlines()) == 1 + 3 * 5
    vs_m = orbit_table.summarize_vs_m(cfg, done, "noise")
    assert [p[0] for p in vs_m[4]] == [1, 2, 3] and vs_m[4][0][3] == 3
    assert orbit_table.TABLES["osp_ensemble_size"](cfg, done).rows[0][0] == "1"
    summ_table = orbit_table.TABLES["osp_summary"](cfg, done)
    assert summ_table.rows[0][0] == "DeepEns + DA" and summ_table.rows[0][-1].value == 0.91
    n = len((out / "results.jsonl").read_text().splitlines())
    orbit_table.run(cfg, out, data_dir=data_dir, progress=False)               # resume: nothing retrained
    assert len((out / "results.jsonl").read_text().splitlines()) == n
    assert json.loads((out / "config.json").read_text())["steps"] == 4


def test_orbit_subset_and_validation_accuracy(data_dir, tmp_path):
    """n_orbit < n_test: orbits of the first n_orbit test images, accuracy over all n_test
    (test_all) and over the validation split (val), each member's too."""
    cfg = tiny_config(split=data.SplitConfig(n_train=48, n_val=10, n_test=12), n_orbit=5,
                      models=("deep_ensemble", "gcnn"), schedule="onecycle",
                      gcnn=orbit_table.GCNNConfig(channels=3, learning_rate=1e-3))
    done = orbit_table.run(cfg, tmp_path / "t", data_dir=data_dir, progress=False)
    ens = done["deep_ensemble/C4/seed0"]
    acc = lambda v, n: np.isclose(v * n, round(v * n))          # a fraction of n images
    assert acc(ens["test"]["accuracy"], 5) and acc(ens["test_all"]["accuracy"], 12) and acc(ens["val"]["accuracy"], 10)
    assert len(ens["val_members"]) == 3 and "val" in done["gcnn/C4/seed0"]
    cfg_models = json.loads((tmp_path / "t" / "models" / "gcnn_C4_seed0" / "config.json").read_text())
    assert cfg_models["train"]["learning_rate"] == 1e-3 and cfg_models["train"]["schedule"] == "onecycle"
    assert "validation accuracy" in orbit_table.summary(cfg, done)
    import pytest
    with pytest.raises(ValueError, match="n_orbit must be in"):
        tiny_config(n_orbit=13)
    with pytest.raises(ValueError, match=r"gcnn\.learning_rate"):
        orbit_table.GCNNConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match=r"canon\.learning_rate must be > 0 or None; got -1"):
        orbit_table.CanonConfig(learning_rate=-1.0)
    with pytest.raises(ValueError, match="learning_rate must be > 0; got 0"):
        tiny_config(learning_rate=0.0)
    own = tiny_config(gcnn=orbit_table.GCNNConfig(learning_rate=1e-3))
    assert orbit_table.learning_rate(own, "gcnn") == 1e-3
    assert orbit_table.learning_rate(own, "canonicalization") == tiny_config().learning_rate


def test_unknown_model_is_an_error():
    import pytest
    with pytest.raises(ValueError, match="unknown models"):
        tiny_config(models=("resnet",))
    assert np.isclose(orbit_table.PAPER_OSP["gcnn"][4][0], 4.0)


def test_parameter_counts_and_forward_flops_match_the_layer_arithmetic():
    """The CNN's counts by hand (conv 3x3 -> pool twice, flatten, dense); the GCNN's group
    convolutions have n c_in c_out k^2 weights, and a parameter-matched GCNN costs more
    compute than the CNN, the more the larger n."""
    cfg = orbit_table.TableConfig(groups=(4, 16), cnn=ArchSpec(kind="cnn", depth=2, width=8, out_dim=10, pool=True),
                          gcnn=orbit_table.GCNNConfig(depth=2, channels=(4, 6, 8), head=16),
                          canon=orbit_table.CanonConfig(channels=4))
    w = 8
    counts = orbit_table.parameter_counts(cfg)
    assert counts[("deep_ensemble", 4)] == (9 * w + w) + (9 * w * w + w) + (7 * 7 * w * 10 + 10)
    k, (c0, c1, c2) = cfg.kernel_size, orbit_table.channels_for(16, (4, 6, 8))
    gcnn16 = (k * k * c0 + c0) + (k * k * 16 * c0 * c1 + c1) + (k * k * 16 * c1 * c2 + c2) + (c2 * 16 + 16) + (16 * 10 + 10)
    assert counts[("gcnn", 16)] == gcnn16
    flops = orbit_table.forward_flops(cfg)
    macs = 28 * 28 * 9 * w + 14 * 14 * 9 * w * w + 7 * 7 * w * 10
    assert 2 * macs <= flops[("deep_ensemble", 4)] <= 2.5 * macs           # + bias, ReLU, pooling
    assert flops[("gcnn", 16)] > flops[("gcnn", 4)] > flops[("deep_ensemble", 4)]


def test_cpu_preset_models_are_parameter_matched_without_a_readout_bottleneck():
    """The cpu preset's sizing (issue 17 part 1): at every group order the GCNN and the
    canonicalization model have 0.9-1.15x the CNN's parameters, the GCNN's invariant readout
    sees at least 16 features (4 rings x 32 / 23 / 16 channels at C4 / C8 / C16) through a
    hidden layer wider than the 10 classes, and its FLOPs, not its parameters, grow with n."""
    cfg = orbit_table.PRESETS["cpu"]
    counts = orbit_table.parameter_counts(cfg)
    cnn = counts[("deep_ensemble", 4)]
    assert 50_000 <= cnn <= 150_000
    for n in cfg.groups:
        assert counts[("deep_ensemble", n)] == cnn
        for model in ("gcnn", "canonicalization"):
            assert 0.9 * cnn <= counts[(model, n)] <= 1.15 * cnn, (model, n, counts[(model, n)], cnn)
        g = orbit_table.model_spec(cfg, "gcnn", n)
        assert g.invariant_features >= 16 and g.head > cfg.cnn.out_dim and g.depth >= 2
    assert [orbit_table.model_spec(cfg, "gcnn", n).invariant_features for n in cfg.groups] == [128, 92, 64]
    assert cfg.split.n_train == 55000 and cfg.split.n_val == 5000 and cfg.split.n_test is None
    assert cfg.n_orbit >= 1000 and cfg.n_ood >= 1000 and len(cfg.seeds) >= 3 and cfg.ensemble_size >= 5


def test_a_config_saved_with_the_flat_baseline_fields_reads_back_nested_and_resumes(tmp_path):
    """The committed cpu table's config.json (written with gcnn_channels, canon_depth, ...)
    is today's cpu preset, its run directory accepts the preset on resumption, and the baselines'
    networks are those the flat fields described."""
    import shutil
    from pathlib import Path
    from ntkequi.nn import GCNNSpec, channels_for
    from ntkequi.runs import RunDir, from_jsonable
    saved = Path(__file__).resolve().parents[1] / "results" / "fmnist_osp_table" / "config.json"
    flat = json.loads(saved.read_text())
    assert "gcnn_channels" in flat and "gcnn" not in flat          # the old layout, as committed
    cfg = from_jsonable(orbit_table.TableConfig, flat)
    assert cfg == orbit_table.PRESETS["cpu"]
    shutil.copy(saved, tmp_path / "config.json")
    RunDir(tmp_path, orbit_table.PRESETS["cpu"]).close()           # no ConfigMismatchError
    assert orbit_table.model_spec(cfg, "gcnn", 16) == GCNNSpec(
        n=16, depth=flat["gcnn_depth"], channels=channels_for(16, tuple(flat["gcnn_channels"])),
        kernel_size=flat["kernel_size"], out_dim=10, pool=True, head=flat["gcnn_head"], rings=flat["gcnn_rings"])
    canon = orbit_table.model_spec(cfg, "canonicalization", 8)
    assert canon.canonicalizer.depth == flat["canon_depth"] and canon.classifier == cfg.cnn
    assert orbit_table.learning_rate(cfg, "gcnn") == flat["gcnn_learning_rate"]
    with __import__("pytest").raises(ValueError, match="does not define"):
        from_jsonable(orbit_table.TableConfig, {**flat, "gcnn_width": 3})
