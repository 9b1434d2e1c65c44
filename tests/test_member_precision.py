"""Members train in float32 (TrainConfig.dtype), whatever the process-wide float64 switch;
the NTK side of every comparison stays float64; runs saved before the field resume as they were."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import data, ensembles, experiments, groups
from ntkequi.experiments import sweep
from ntkequi.kernels import ntk, structured
from ntkequi.nn import ArchSpec
from ntkequi.runs import ConfigMismatchError, from_jsonable, load_run

EPS32 = float(np.finfo(np.float32).eps)


def _problem(kind):
    """(spec, group, x, y, x_eval): an MLP on planar C4 points, or the orbit table's pooled CNN
    (two conv-ReLU-pool blocks) on the C4 orbit of 12x12 images."""
    if kind == "mlp":
        x = data.wedge_points(jax.random.PRNGKey(0), 8)
        x_eval = data.noise_points(jax.random.PRNGKey(1), 6)
        return ArchSpec(kind="mlp", depth=2, width=128, b_std=1.0), groups.planar_rotations(4), x, \
            data.radial_target(x), x_eval
    x = jax.random.uniform(jax.random.PRNGKey(0), (6, 12, 12, 1))
    y = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    x_eval = jax.random.uniform(jax.random.PRNGKey(2), (4, 12, 12, 1))
    return ArchSpec(kind="cnn", depth=2, width=16, out_dim=3, pool=True), groups.rotations(4, (12, 12)), x, y, x_eval


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_float32_members_are_the_float64_members_to_float32_rounding(kind):
    """The same members (one key) trained by full-batch gradient descent at half the largest
    stable step, in float32 and in float64: the float32 predictions differ from the float64
    ones by at most 10 float32 epsilons times (1 + steps), relative to their largest magnitude,
    at every recorded step (measured: 2-3 epsilons at initialisation, 4-6 after 10 steps,
    for both networks); the float32 run's
    parameters are float32 and its predictions come back as float64 arrays."""
    spec, group, x, y, x_eval = _problem(kind)
    lr = 0.5 * ntk.max_learning_rate(spec, x, group)
    steps = 10
    cfg = ensembles.TrainConfig(ensemble_size=3, steps=steps, learning_rate=lr, augmentation="orbit",
                                record_steps=(0, 5, steps))
    assert cfg.dtype == "float32"                                # the default
    f32 = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, group), progress=False)
    f64 = ensembles.train(spec, dataclasses.replace(cfg, dtype="float64"), ensembles.TrainingData(x, y, x_eval, group),
                          progress=False)
    assert f32.members.dtype == f64.members.dtype == np.float64
    assert {p.dtype for p in jax.tree_util.tree_leaves(f32.params)} == {jnp.dtype(jnp.float32)}
    assert {p.dtype for p in jax.tree_util.tree_leaves(f64.params)} == {jnp.dtype(jnp.float64)}
    for i, step in enumerate(f64.steps):
        rel = np.abs(f32.members[i] - f64.members[i]).max() / np.abs(f64.members[i]).max()
        assert rel <= 10 * EPS32 * (1 + int(step)), (step, rel / EPS32)
    # and the members did train: the loss fell, so the agreement is not that of an idle network
    assert not np.allclose(f64.members[0], f64.members[-1], rtol=1e-2)


def test_member_precision_is_independent_of_the_float64_switch(tmp_path):
    """Under jax_enable_x64, float32 members save float32 predictions and checkpoints and
    read them back as float64; dtype=None keeps the process default (float64 here); asking
    for float64 members with float64 off is an error that says so; a bad dtype is named."""
    spec, group, x, y, x_eval = _problem("mlp")
    cfg = ensembles.TrainConfig(ensemble_size=2, steps=4, learning_rate=1e-3, augmentation="random",
                                record_steps=(0, 4))
    res = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, group),
                          run_dir=tmp_path / "f32", progress=False)
    saved = np.load(tmp_path / "f32" / "predictions_step4.npy")
    assert saved.dtype == np.float32 and res.members.dtype == np.float64
    np.testing.assert_array_equal(saved, res.members[-1])
    again = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, group),
                            run_dir=tmp_path / "f32", progress=False)
    np.testing.assert_array_equal(again.members, res.members)            # resumed from the files
    legacy = ensembles.train(spec, dataclasses.replace(cfg, dtype=None), ensembles.TrainingData(x, y, x_eval, group),
                             progress=False)
    assert {p.dtype for p in jax.tree_util.tree_leaves(legacy.params)} == {jnp.dtype(jnp.float64)}
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="dtype='float64' needs jax_enable_x64"):
            ensembles.train(spec, dataclasses.replace(cfg, dtype="float64"), ensembles.TrainingData(np.asarray(x), np.asarray(y), np.asarray(x_eval), group),
                            progress=False)
    with pytest.raises(ValueError, match="dtype.*'float16'"):
        ensembles.TrainConfig(dtype="float16")
    with pytest.raises(ValueError, match="member_dtype.*'bfloat16'"):
        sweep.SweepConfig(member_dtype="bfloat16")


def test_runs_saved_before_the_dtype_field_resume_as_they_were(tmp_path):
    """A run directory whose config has no ``dtype`` (written before the field existed, by a
    float64 process) resumes with ``dtype=None`` (the process default it trained in) and
    refuses float32; a sweep config saved without ``member_dtype`` reads back as float64."""
    spec, group, x, y, x_eval = _problem("mlp")
    cfg = ensembles.TrainConfig(ensemble_size=2, steps=4, learning_rate=1e-3, augmentation="orbit",
                                record_steps=(0, 4), dtype=None)
    ref = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, group), run_dir=tmp_path, progress=False)
    path = tmp_path / "config.json"
    old = json.loads(path.read_text())
    del old["train"]["dtype"]
    path.write_text(json.dumps(old))
    resumed = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, group),
                              run_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(resumed.members, ref.members)
    assert np.load(tmp_path / "predictions_step4.npy").dtype == np.float64
    path.write_text(json.dumps(old))
    with pytest.raises(ConfigMismatchError, match="train"):
        ensembles.train(spec, dataclasses.replace(cfg, dtype="float32"), ensembles.TrainingData(x, y, x_eval, group),
                        run_dir=tmp_path, progress=False)
    saved = {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(sweep.SweepConfig()))).items()
             if k != "member_dtype"}
    assert from_jsonable(sweep.SweepConfig, saved).member_dtype == "float64"


def test_an_experiment_compares_float32_members_with_a_float64_ntk(tmp_path, monkeypatch):
    """toy_ensembles (the sweep machinery of ising and fmnist_ntk too): every kernel block,
    target and prediction that reaches the solve is float64, and the members' saved
    predictions are float32. Fails if the kernels or the solve ran in float32."""
    seen = []
    real = structured.BlockSolve.predict

    def checked(self, test, *args, **kwargs):          # every prediction path ends in BlockSolve.predict
        pred = real(self, test, *args, **kwargs)
        arrays = list(self.train.values()) + list(test.values()) + list(self.yhat.values()) + [pred.mean, pred.cov]
        arrays += [kwargs["nngp_tt"]] if kwargs.get("nngp_tt") is not None else []
        seen.append({str(jnp.asarray(a).dtype) for a in arrays if a is not None})
        return pred
    monkeypatch.setattr(structured.BlockSolve, "predict", checked)
    cfg = experiments.get("toy_ensembles").Config(sweep=sweep.SweepConfig(
        widths=(8,), ensemble_sizes=(1, 2), steps=2, record_steps=(0, 2)))
    cfg, out, done = experiments.run_experiment("toy_ensembles", out=tmp_path / "t", cfg=cfg, progress=False)
    assert len(seen) == len(sweep.MODES) and all(s == {"float64"} for s in seen), seen
    saved = sorted((out / "ensembles").glob("*/predictions_step2.npy"))
    assert len(saved) == len(sweep.MODES) and all(np.load(f).dtype == np.float32 for f in saved)
    assert done["orbit/width8"]["noise"][-1]["ntk"] < 1e-12          # float64-exact invariance of mu_t
    assert load_run(out, type(cfg)).config.sweep.member_dtype == "float32"
