"""Finite ensembles: vmapped members, matched to mu_t, emergent invariance, resume."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import data, ensembles, groups, metrics, runs
from ntkequi.kernels import ntk
from ntkequi.nn import ArchSpec

G4 = groups.planar_rotations(4)
SPEC = ArchSpec(kind="mlp", depth=2, width=256, b_std=1.0)


def _toy():
    x = data.wedge_points(jax.random.PRNGKey(0), 8)
    y = data.radial_target(x)
    x_eval = jnp.concatenate([data.wedge_points(jax.random.PRNGKey(2), 3),
                              data.noise_points(jax.random.PRNGKey(1), 3)])
    return x, y, G4.orbit(x_eval).reshape(-1, 2)


def test_members_are_distinct_and_one_vmap():
    params = ensembles.init_ensemble(SPEC, jax.random.PRNGKey(0), 5, jnp.ones((3, 2)))
    kernel = params["params"]["_NTKDense_0"]["kernel"]
    assert kernel.shape == (5, 2, 256)
    assert float(jnp.abs(kernel[0] - kernel[1]).min()) > 0


def test_gd_ensemble_mean_matches_ntk_prediction_and_is_invariant():
    """Full-orbit augmented GD on the summed MSE: the M-member mean is within the
    NTK's sampling error of mu_t (z-scores against Sigma_t / M) at every recorded t,
    and far more invariant than its members, which are not invariant."""
    x, y, x_eval = _toy()
    lr = 0.2 * ntk.max_learning_rate(SPEC, x, G4)
    M = 64
    cfg = ensembles.TrainConfig(ensemble_size=M, steps=400, learning_rate=lr, augmentation="orbit",
                                record_steps=(0, 40, 400))
    # vmapped members (the accelerator path; same numbers to rounding as the CPU default of
    # unrolling them, which other tests run): unrolling 64 members compiles ~20 s longer
    res = ensembles.train(SPEC, cfg, ensembles.TrainingData(x, y, x_eval, G4),
                          progress=False, runtime=ensembles.Runtime(member_map="vmap"))
    pred = ntk.predict(SPEC, x, y, x_eval, res.times(lr), group=G4, compute_cov=True)
    for i, step in enumerate(res.steps):
        z = (res.mean[i, :, 0] - pred.mean[i, :, 0]) / np.sqrt(np.diag(pred.cov[i]) / M)
        assert np.mean(z ** 2) < 4.0, (step, np.mean(z ** 2))
        ratio = np.median(res.std[i, :, 0] / np.sqrt(np.diag(pred.cov[i])))
        assert 0.7 < ratio < 1.4, (step, ratio)
        if step > 0:
            ens = metrics.equivariance_error(metrics.orbit_predictions(res.mean[i], G4), G4).relative
            members = [metrics.equivariance_error(metrics.orbit_predictions(res.members[i, m], G4), G4).relative
                       for m in range(M)]
            assert np.mean(members) > 0.2 and ens < 0.4 * np.mean(members), (step, ens, np.mean(members))


def test_augmentation_modes_build_the_right_training_sets():
    x, y, _ = _toy()
    c16 = groups.rotations(16, (6, 6))
    imgs = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 6, 1))
    cfg = ensembles.TrainConfig(augmentation="subgroup", subgroup_step=4, steps=1, record_steps=(1,))
    xs, ys = ensembles.training_set(c16, cfg, imgs, jnp.ones((3, 1)))
    assert xs.shape == (12, 6, 6, 1)                 # C4 inside C16: 4 elements
    np.testing.assert_array_equal(xs[3:6], np.rot90(np.asarray(imgs), 1, axes=(1, 2)))
    with pytest.raises(groups.GroupError, match="divide"):
        ensembles.subgroup_elements(c16, 3)
    xs, ys = ensembles.training_set(G4, dataclasses.replace(cfg, augmentation="orbit"), x, y)
    assert xs.shape == (32, 2) and ys.shape == (32, 1)


@pytest.mark.parametrize("mode,opt,loss", [("random", "sgd", "mse"), ("orbit", "adam", "xent"),
                                           ("none", "gd", "mse")])
def test_training_modes_reduce_the_loss(mode, opt, loss):
    x, y, _ = _toy()
    if loss == "xent":
        y = jax.nn.one_hot((y[:, 0] > y[:, 0].mean()).astype(int), 2)
    spec = dataclasses.replace(SPEC, width=64, out_dim=y.shape[1])
    cfg = ensembles.TrainConfig(ensemble_size=3, steps=150, learning_rate=0.01 if opt == "adam" else 0.002,
                                optimizer=opt, loss=loss, augmentation=mode, batch_size=4,
                                record_steps=(0, 150))
    res = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x, G4), progress=False)
    if loss == "xent":
        import optax
        err = [float(optax.softmax_cross_entropy(res.members[i], y[None]).mean()) for i in range(2)]
    else:
        err = [float(np.mean((res.members[i] - np.asarray(y)[None]) ** 2)) for i in range(2)]
    assert err[1] < 0.7 * err[0], err


def test_resume_after_interruption_gives_the_same_result(tmp_path, monkeypatch):
    x, y, x_eval = _toy()
    spec = dataclasses.replace(SPEC, width=32)
    cfg = ensembles.TrainConfig(ensemble_size=3, steps=60, learning_rate=0.005, augmentation="random",
                                record_steps=(0, 20, 40, 60), checkpoint_every=10)
    ref = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, G4), progress=False)

    real = runs.RunDir.record
    def crash_after_step_20(self, key, **payload):
        if payload.get("step") == 40:
            raise KeyboardInterrupt("simulated interruption")
        return real(self, key, **payload)
    monkeypatch.setattr(runs.RunDir, "record", crash_after_step_20)
    with pytest.raises(KeyboardInterrupt):
        ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, G4), run_dir=tmp_path, progress=False)
    monkeypatch.setattr(runs.RunDir, "record", real)
    resumed = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x_eval, G4),
                              run_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(resumed.steps, ref.steps)
    np.testing.assert_allclose(resumed.members, ref.members, rtol=1e-6, atol=1e-6)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    keys = [__import__("json").loads(line)["key"] for line in lines]
    assert keys == ["step/0", "step/20", "step/40", "step/60"]
    # predictions live in .npy files beside the records, not inline
    assert all("members" not in __import__("json").loads(line) for line in lines)
    np.testing.assert_array_equal(np.load(tmp_path / "predictions_step60.npy"), resumed.members[-1])


def test_bad_training_input():
    x, y, x_eval = _toy()
    with pytest.raises(ValueError, match="needs a group"):
        ensembles.train(SPEC, ensembles.TrainConfig(augmentation="orbit", steps=1, record_steps=(1,)), ensembles.TrainingData(x, y, x_eval),
                        progress=False)
    with pytest.raises(ValueError, match="record_steps"):
        ensembles.TrainConfig(steps=10, record_steps=(0, 20))
    with pytest.raises(ValueError, match="x_train contains"):
        ensembles.train(SPEC, ensembles.TrainConfig(steps=1, record_steps=(1,)), ensembles.TrainingData(x.at[0, 0].set(jnp.inf), y, x_eval),
                        progress=False)


def test_onecycle_schedule_steps():
    """With schedule='onecycle' the first Adam step is the constant-rate step at the
    warm-up's start (peak / 25), and the last step's rate is the peak / 2.5e5; gd refuses it."""
    x, y, x_eval = _toy()
    base = dict(ensemble_size=2, optimizer="adam", steps=10, record_steps=(1,), batch_size=None)
    one = ensembles.train(SPEC, ensembles.TrainConfig(learning_rate=0.1, schedule="onecycle", **base), ensembles.TrainingData(x, y, x_eval),
                          progress=False)
    const = ensembles.train(SPEC, ensembles.TrainConfig(learning_rate=0.1 / 25, **base), ensembles.TrainingData(x, y, x_eval),
                            progress=False)
    np.testing.assert_allclose(one.members, const.members, rtol=1e-5, atol=1e-7)
    peak = ensembles.train(SPEC, ensembles.TrainConfig(learning_rate=0.1, **base), ensembles.TrainingData(x, y, x_eval),
                           progress=False)
    assert not np.allclose(peak.members, const.members, rtol=1e-3)
    f = ensembles.learning_rate_schedule(ensembles.TrainConfig(learning_rate=0.1, schedule="onecycle",
                                                               **{**base, "steps": 50, "record_steps": (50,)}))
    np.testing.assert_allclose([float(f(0)), float(f(15)), float(f(50))], [0.1 / 25, 0.1, 0.1 / 2.5e5], rtol=1e-4)
    with pytest.raises(ValueError, match="schedule='onecycle' needs optimizer"):
        ensembles.TrainConfig(schedule="onecycle", optimizer="gd")
    with pytest.raises(ValueError, match="schedule must be one of"):
        ensembles.TrainConfig(schedule="cyclic", optimizer="adam")


def test_unrolled_members_equal_vmapped():
    """The CPU form of the ensemble step (members unrolled in one jit) computes what the
    vmapped one does, to float64 rounding; sharded runs, accelerators and very large
    ensembles keep the vmap."""
    from ntkequi.ensembles import map_members, member_map_for
    spec = ArchSpec(kind="cnn", depth=1, width=4)
    net = spec.flax()
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5, 5, 1))
    params = jax.vmap(lambda k: net.init(k, x[:1]))(jax.random.split(jax.random.PRNGKey(1), 3))
    loss = lambda p, xb: jnp.sum(net.apply(p, xb) ** 2)  # noqa: E731
    v = jax.jit(map_members(jax.grad(loss), 3, "vmap", in_axes=(0, None)))(params, x)
    u = jax.jit(map_members(jax.grad(loss), 3, "unroll", in_axes=(0, None)))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(u)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert member_map_for(sharded=True, ensemble_size=8) == "vmap"
    assert member_map_for(sharded=False, ensemble_size=128) == "vmap"
    expected = "unroll" if jax.default_backend() == "cpu" else "vmap"
    assert member_map_for(sharded=False, ensemble_size=8) == expected
    with pytest.raises(ValueError, match="member map"):
        map_members(loss, 3, "pmap")


@pytest.mark.parametrize("loss", ["xent", "mse"])
def test_micro_batch_gradient_is_the_whole_batch_gradient(loss):
    """A member's gradient over micro-batches (the last one short) equals the gradient of
    the whole minibatch to float64 rounding, for the mean (xent) and the summed (mse) loss."""
    spec = ArchSpec(kind="cnn", depth=2, width=4, out_dim=3, pool=True)
    net = spec.flax()
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 6, 6, 1))
    y = jax.nn.one_hot(jnp.arange(10) % 3, 3)
    params = net.init(jax.random.PRNGKey(1), x[:1])
    cfg = ensembles.TrainConfig(loss=loss)
    f = ensembles._loss_fn(net.apply, cfg)
    whole = jax.grad(f)(params, x, y)
    for micro in (4, 5, 10, 32):
        parts = ensembles.batch_grad(f, cfg, micro)(params, x, y)
        for a, b in zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(parts)):
            np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)
    with pytest.raises(ValueError, match="micro_batch.*got 0"):
        ensembles.batch_grad(f, cfg, 0)


def test_training_over_micro_batches_equals_whole_batch_training():
    """Minibatch Adam with each member's gradient over micro-batches of 16 (the CPU
    default uses 32) trains the same ensemble as whole-batch gradients: predictions
    agree to float64 rounding after 5 steps; the default uses micro-batches only for
    unrolled members on minibatches of 64-512."""
    spec = ArchSpec(kind="cnn", depth=1, width=4, out_dim=2)
    x = jax.random.normal(jax.random.PRNGKey(0), (80, 4, 4, 1))
    y = jax.nn.one_hot(jnp.arange(80) % 2, 2)
    cfg = ensembles.TrainConfig(ensemble_size=2, steps=5, learning_rate=1e-2, optimizer="adam", loss="xent",
                                batch_size=64, record_steps=(5,), dtype="float64")
    run = lambda micro: ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x[:6]),
                                        progress=False, runtime=ensembles.Runtime(member_map="unroll", micro_batch=micro)).members
    np.testing.assert_allclose(run(16), run(None), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="micro_batch.*'half'"):
        run("half")
    assert ensembles.micro_batch_for("unroll", cfg, 80) == 32
    assert ensembles.micro_batch_for("vmap", cfg, 80) is None
    assert ensembles.micro_batch_for("unroll", dataclasses.replace(cfg, batch_size=None), 80) is None
    assert ensembles.micro_batch_for("unroll", dataclasses.replace(cfg, batch_size=32), 80) is None
    assert ensembles.micro_batch_for("unroll", dataclasses.replace(cfg, optimizer="gd"), 80) is None


def test_minibatch_indices_are_a_uniform_random_subset():
    """Minibatches are distinct indices, every index equally likely: over 4,000 draws of 8
    of 20 each index's frequency is within 5 standard errors of 8/20, and every pair
    of indices appears together as often as uniform subsets predict."""
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    idx = np.asarray(jax.vmap(lambda k: ensembles.minibatch_indices(k, 20, 8))(keys))
    assert all(len(set(row)) == 8 for row in idx) and idx.min() >= 0 and idx.max() < 20
    freq = np.bincount(idx.ravel(), minlength=20) / 4000
    p = 8 / 20
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / 4000)), freq
    hot = np.zeros((4000, 20))
    np.put_along_axis(hot, idx, 1, axis=1)
    pair = (hot.T @ hot / 4000)[np.triu_indices(20, 1)]
    q = 8 * 7 / (20 * 19)
    assert np.all(np.abs(pair - q) < 5 * np.sqrt(q * (1 - q) / 4000)), pair
    with pytest.raises(ValueError, match="size <= n=20"):
        ensembles.minibatch_indices(jax.random.PRNGKey(0), 20, 21)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are XLA:CPU's")
def test_cpu_compiler_options_keep_convolutions_in_xla_and_train_the_same_ensemble():
    """On a CPU the training step is compiled with ``CPU_XLA_OPTIONS`` (YNNPACK for single
    dots only): in float32 (the orbit table's precision) the compiled gradient of a pooled
    CNN then calls XLA for every convolution, where JAX's own options send most to YNNPACK
    fusions, and 5 Adam
    steps of a 2-member ensemble with random C4 rotations give the same predictions as with
    JAX's options, to float32 rounding."""
    spec = ArchSpec(kind="cnn", depth=2, width=8, out_dim=3, pool=True)
    net = spec.flax()
    with jax.enable_x64(False):
        x = jax.random.normal(jax.random.PRNGKey(0), (64, 8, 8, 1))
        y = jax.nn.one_hot(jnp.arange(64) % 3, 3)
        params = net.init(jax.random.PRNGKey(1), x[:1])
        grad = jax.grad(lambda p: jnp.sum(net.apply(p, x) ** 2))

        def xla_convolutions(opts):    # in the compiled program's top level (it calls the fusions)
            text = jax.jit(grad, compiler_options=ensembles.xla_options_for(opts)).lower(params)
            text = text.compile().as_text()
            return text[text.index("ENTRY"):].count(" convolution(")
        # forward of both layers, the second's input gradient, both filter gradients
        assert xla_convolutions("auto") == 5 > xla_convolutions(None)
        cfg = ensembles.TrainConfig(ensemble_size=2, steps=5, learning_rate=1e-2, optimizer="adam", loss="xent",
                                    batch_size=32, augmentation="random", record_steps=(5,))
        run = lambda opts: ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x[:6], groups.rotations(4, (8, 8))),
                                           progress=False, runtime=ensembles.Runtime(xla_options=opts)).members
        fast, plain = run("auto"), run(None)
    assert fast.dtype == np.float64                  # float32 members, predictions returned as float64
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-5)
    assert ensembles.xla_options_for("auto") == ensembles.CPU_XLA_OPTIONS
    with pytest.raises(ValueError, match="xla_options.*'fast'"):
        ensembles.xla_options_for("fast")
