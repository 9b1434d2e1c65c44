"""The FashionMNIST orbit-consistency table on a tiny setting: runs, resumes, reports."""
import json

import numpy as np

from ntkequi import data
from ntkequi.experiments import fmnist_osp_table as orbit_table
from ntkequi.nn import ArchSpec


def tiny_config(**kw):
    return orbit_table.TableConfig(
        groups=(4,), seeds=(0,), split=data.SplitConfig(n_train=48, n_val=0, n_test=12), n_ood=6,
        cnn=ArchSpec(kind="cnn", depth=1, width=4, out_dim=10, pool=True), ensemble_size=3,
        gcnn_channels=3, canon_channels=2, kernel_size=3, steps=4, batch_size=16, **kw)


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
    assert len(rows) == 1 + 3 * (3 + 3)          # header + eval sets x (3 models + 3 members)
    n = len((out / "results.jsonl").read_text().splitlines())
    orbit_table.run(cfg, out, data_dir=data_dir, progress=False)               # resume: nothing retrained
    assert len((out / "results.jsonl").read_text().splitlines()) == n
    assert json.loads((out / "config.json").read_text())["steps"] == 4


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
                          gcnn_depth=2, gcnn_channels=(4, 6, 8), gcnn_head=16, canon_channels=4)
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
