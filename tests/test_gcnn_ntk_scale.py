"""gcnn_ntk_scale on a few real 28x28 images: the GCNN and the augmented CNN are invariant and
the plain CNN is not, their records at t = inf read the same numbers, the corresponding pair's
means agree to float64 rounding at every time (GCNN at 4t, augmented CNN at t), and configs
that break the pair are refused naming the cause."""
import dataclasses

import pytest

from ntkequi import experiments
from ntkequi.experiments import gcnn_ntk_scale as exp
from ntkequi.report import build
from ntkequi.runs import load_run

CFG = exp.PRESETS["small"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("gcnn_scale") / "run"
    cfg, out, done = experiments.run_experiment(exp.NAME, out=out, cfg=CFG, data_dir=data_dir, progress=False,
                                                argv=["ntkequi", "run", exp.NAME])
    return out, done


def test_three_networks_side_by_side_and_the_pair_agrees(ran):
    out, done = ran
    assert set(done) == {"gcnn_gap/N6", "cnn_gap/N6", "pair/gcnn_gap/cnn_gap/N6"}
    g, c = done["gcnn_gap/N6"], done["cnn_gap/N6"]
    assert g["networks"] == {"none": "gcnn"} and c["networks"] == {"none": "cnn", "C4": "cnn-augmented"}
    for per_set in g["none"] + c["C4"]:
        for s in exp.EVAL_SETS:
            assert per_set[s]["invariance_error"] < 1e-10 and per_set[s]["osp"] == 4.0
    assert max(p[s]["invariance_error"] for p in c["none"] for s in exp.EVAL_SETS) > 1e-3
    # t = inf: both converge to one interpolant, so the GCNN's record (its own kernel, evaluated at
    # the orbit points it was given) reads the augmented CNN's numbers
    for key in ("accuracy", "orbit_accuracy", "osp"):
        assert g["none"][-1]["fashion_mnist_test"][key] == pytest.approx(c["C4"][-1]["fashion_mnist_test"][key])
    pair = done["pair/gcnn_gap/cnn_gap/N6"]
    assert pair["time_factor"] == 4 and len(pair["times"]) == len(CFG.time_multiples)
    assert max(max(v) for v in pair["max_rel_diff"].values()) < 1e-10
    saved = load_run(out, exp.Config)
    assert saved.config == CFG
    for fig in exp.FIGURES:
        build.save(fig.draw(saved.config, saved.done), out / "fig" / fig.name)
    assert "largest relative difference" in exp.summary(CFG, done)
    assert len(exp.TABLES[exp.NAME](CFG, done).rows) == 3
    nums = exp.numbers(CFG, done)
    assert nums["gcnnScaleN"] == "6" and nums["gcnnScalePairDiff"] < 1e-10 and nums["gcnnScalePairDiffInf"] < 1e-10


def test_configs_that_break_the_pair_are_refused():
    g, c = CFG.archs
    with pytest.raises(ValueError, match="kind must be one of"):
        dataclasses.replace(g, kind="resnet")
    with pytest.raises(ValueError, match="must be a GAP GCNN and a GAP CNN"):
        dataclasses.replace(CFG, pairs=(("cnn_gap", "gcnn_gap"),))
    with pytest.raises(ValueError, match=r"must share the data; \['n_test'\] differ"):
        dataclasses.replace(CFG, archs=(g, dataclasses.replace(c, n_test=3)))
    with pytest.raises(ValueError, match="must name"):
        dataclasses.replace(CFG, pairs=(("gcnn_gap", "nothing"),))
