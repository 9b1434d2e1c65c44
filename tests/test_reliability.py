"""Reliability: run directories are locked against a second process (and released when
the holder dies), and a run killed with SIGKILL resumes to bitwise the same result."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from ntkequi import ensembles, groups
from ntkequi.nn import ArchSpec
from ntkequi.runs import RunDir, RunDirInUseError

HOLD = textwrap.dedent("""
    import sys, time
    from ntkequi.runs import RunDir
    rd = RunDir(sys.argv[1], {"what": "held"})
    print("ready", flush=True)
    time.sleep(600)
""")


def _start(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_second_process_is_refused_and_a_killed_holder_releases_the_directory(tmp_path):
    d = tmp_path / "run"
    holder = _start(HOLD, d)
    try:
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
        with pytest.raises(RunDirInUseError, match=rf"{d}.*in use by process {holder.pid}"):
            RunDir(d, {"what": "held"})
        assert not (d / "results.jsonl").exists()              # refused before touching anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with RunDir(d, {"what": "held"}) as rd:                    # the kernel released the lock
        rd.record("a", value=1)
        again = RunDir(d, {"what": "held"})                    # the same process may reopen it
        again.record("b", value=2)
        again.close()
    assert set(RunDir(d, {"what": "held"}).done()) == {"a", "b"}


TRAIN = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    from ntkequi import ensembles, groups
    sys.path.insert(0, sys.argv[2])
    from test_reliability import _problem
    spec, cfg, x, y, xe, group = _problem()
    ensembles.train(spec, cfg, ensembles.TrainingData(x, y, xe, group), run_dir=sys.argv[1], progress=False)
""")


def _problem():
    group = groups.planar_rotations(4)
    rng = np.random.default_rng(0)
    x, xe = rng.normal(size=(32, 2)), rng.normal(size=(8, 2))
    y = np.sin(x[:, :1] * x[:, 1:])
    spec = ArchSpec(kind="mlp", depth=2, width=64, out_dim=1)
    cfg = ensembles.TrainConfig(ensemble_size=8, steps=3000, learning_rate=0.002, augmentation="orbit",
                                record_steps=(500, 1500, 3000), checkpoint_every=25, seed=3)
    return spec, cfg, x, y, xe, group


def test_a_run_killed_mid_training_resumes_bitwise_identical(tmp_path):
    assert jax.config.jax_enable_x64
    spec, cfg, x, y, xe, group = _problem()
    d = tmp_path / "killed"
    child = _start(TRAIN, d, os.path.dirname(__file__))
    ckpt, t0 = d / "checkpoint.msgpack", time.time()
    while not ckpt.exists() and child.poll() is None and time.time() - t0 < 300:
        time.sleep(0.005)
    time.sleep(0.3)                                            # somewhere past the first checkpoint
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    from flax import serialization
    killed_at = int(serialization.msgpack_restore(ckpt.read_bytes())["step"])
    assert 0 < killed_at < cfg.steps, killed_at                # it really was stopped mid-run
    resumed = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, xe, group), run_dir=d, progress=False)
    whole = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, xe, group),
                            run_dir=tmp_path / "whole", progress=False)
    np.testing.assert_array_equal(resumed.steps, whole.steps)
    np.testing.assert_array_equal(resumed.members, whole.members)


# ------------------------------------------------------------------ t = inf on singular kernels
def test_direct_solve_equals_neural_tangents_predictor():
    """ntkequi's own plain solve (the direct path) against neural-tangents' gradient-descent
    ensemble predictor: mean and covariance, NTK and NNGP, finite t and t = inf, with and
    without diag_reg, on a non-singular kernel."""
    from ntkequi.kernels import predict
    from ntkequi.kernels._common import nt_time
    from ntkequi.nt import nt
    spec = ArchSpec(kind="mlp", depth=2, out_dim=2, b_std=0.2)
    rng = np.random.default_rng(1)
    x, xt = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    ts = [0.3, 4.0, float("inf")]
    for get in ("ntk", "nngp"):
        for reg in (0.0, 1e-3):
            ours = predict(spec, x, y, xt, ts, get=get, diag_reg=reg, compute_cov=True)
            ref_fn = nt.predict.gradient_descent_mse_ensemble(spec.kernel_fn, x, y, diag_reg=reg)
            for i, t in enumerate(ts):
                tn = None if np.isinf(t) else nt_time(np.asarray([t]), y.size)[0]
                mean, cov = ref_fn(tn, xt, get, compute_cov=True)
                np.testing.assert_allclose(ours.mean[i], mean, rtol=1e-8, atol=1e-11, err_msg=f"{get} {reg} {t}")
                np.testing.assert_allclose(ours.cov[i], cov, rtol=1e-8, atol=1e-11, err_msg=f"{get} {reg} {t}")


def test_singular_orbit_kernel_gives_the_minimum_norm_limit_on_every_path():
    """A training point at the origin is fixed by every planar rotation: the C4 orbit
    holds it four times and the orbit kernel is singular. t = inf is the minimum-norm
    limit of gradient flow, finite, equal on the direct and structured paths, to an
    independent pseudo-inverse and to a long finite time (the null directions never move)."""
    from ntkequi import data
    from ntkequi.kernels import augment, predict
    from ntkequi.kernels.structured import inf_cutoff
    c4 = groups.planar_rotations(4)
    spec = ArchSpec(kind="mlp", depth=2, b_std=0.3)
    x = np.array([[0.0, 0.0], [1.0, 0.5], [-0.3, 0.8]])
    y = np.asarray(data.radial_target(x))
    xt = np.random.default_rng(2).normal(size=(5, 2))
    xa, ya = augment(c4, x, y)
    theta = np.asarray(spec.kernel_fn(xa, None, "ntk"))
    w = np.linalg.eigvalsh(theta)
    cut = inf_cutoff(w.max(), theta.shape[0], np.float64)
    assert np.sum(w <= cut) == 3                                   # four copies of the origin
    pinv = np.linalg.pinv(theta, rcond=cut / w.max(), hermitian=True)
    ref = np.asarray(spec.kernel_fn(xt, xa, "ntk")) @ pinv @ np.asarray(ya)
    t_long = 1e3 / w[w > cut].min()                                # every kept direction converged
    out = {s: predict(spec, x, y, xt, [t_long, float("inf")], group=c4, solver=s, compute_cov=True)
           for s in ("direct", "structured")}
    for s, p in out.items():
        assert np.all(np.isfinite(p.mean)) and np.all(np.isfinite(p.cov)), s
        rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))  # noqa: E731
        assert rel(p.mean[1], ref) < 1e-8, (s, rel(p.mean[1], ref))
        assert rel(p.mean[0], ref) < 1e-8, (s, rel(p.mean[0], ref))
        assert rel(p.cov[0], np.asarray(p.cov[1])) < 1e-6, s
    assert float(np.max(np.abs(out["direct"].cov[1] - out["structured"].cov[1]))) < 1e-8


def test_a_non_finite_kernel_is_an_error_not_a_nan():
    from ntkequi.kernels import predict
    spec = ArchSpec(kind="mlp", depth=2)
    x = np.array([[1e200, 0.0], [0.0, 1.0]])                     # finite inputs, overflowing kernel
    with pytest.raises(FloatingPointError, match="train ntk kernel has non-finite entries"):
        predict(spec, x, np.ones((2, 1)), x, float("inf"))


# ------------------------------------------------------------------ memory guard for every kernel
def test_every_kernel_declares_its_per_pair_cost_and_predict_refuses_what_would_not_fit():
    import re

    from ntkequi.kernels import DEFAULT_FLOATS_PER_PAIR, KernelTooLargeError, predict, symmetrize, with_pair_cost
    from ntkequi.kernels._common import intermediate_bytes, kernel_memory_bytes
    from ntkequi.kernels.group_stax import LiftingConv, pair_floats, serial
    from ntkequi.nt import stax
    n, m, ev = 64, 16, (8, 8, 1)
    x, xt, y = np.ones((n,) + ev), np.ones((m,) + ev), np.ones((n, 1))
    # the C4 group-conv kernel holds (4 H W)^2 numbers per pair
    gconv = serial(LiftingConv(1, 3), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1))[2]
    assert pair_floats(ev) == (4 * 64) ** 2
    assert intermediate_bytes(gconv, ev, 8, 10) == 4 * 10 * pair_floats(ev) * 8
    budget = kernel_memory_bytes(n, m, 8, pair_floats(ev), batch_size=8) + 1     # fits in blocks of 8
    assert kernel_memory_bytes(n, m, 8, DEFAULT_FLOATS_PER_PAIR) < budget         # would pass undeclared
    with pytest.raises(KernelTooLargeError, match=r"needs about .*pass batch_size=(\d+)") as e:
        predict(gconv, x, y, xt, 1.0, max_bytes=budget)
    assert int(re.search(r"batch_size=(\d+)", str(e.value)).group(1)) == 8         # the largest that fits
    # the structured path (the default for an exact group) guards the same cost
    with pytest.raises(KernelTooLargeError, match=r"structured C4 .*pass batch_size=\d+"):
        predict(gconv, x, y, xt, 1.0, group=groups.rotations(4, (8, 8)), solver="structured", max_bytes=budget)
    # a user's own kernel_fn: the stated default, or what it declares
    def mine(x1, x2=None, get="ntk"):
        b2 = x1 if x2 is None else x2
        return x1.reshape(x1.shape[0], -1) @ b2.reshape(b2.shape[0], -1).T
    assert np.all(np.isfinite(predict(mine, x, y, xt, 1.0, max_bytes=budget).mean))
    with pytest.raises(KernelTooLargeError, match="batch_size="):
        predict(with_pair_cost(mine, 10_000), x, y, xt, 1.0, max_bytes=budget)
    # a symmetrized kernel holds what its base kernel holds (one group element at a time)
    spec = ArchSpec(kind="cnn", depth=1, pool=True, readout="gap")
    c4 = groups.rotations(4, (8, 8))
    sym = symmetrize(spec.kernel_fn, c4)
    assert intermediate_bytes(sym, ev, 8, 100) == intermediate_bytes(spec.kernel_fn, ev, 8, 100)
    assert intermediate_bytes(symmetrize(gconv, c4), ev, 8, 100) == intermediate_bytes(gconv, ev, 8, 100)
