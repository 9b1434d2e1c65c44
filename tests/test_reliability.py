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
    ensembles.train(spec, cfg, x, y, xe, group=group, run_dir=sys.argv[1], progress=False)
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
    resumed = ensembles.train(spec, cfg, x, y, xe, group=group, run_dir=d, progress=False)
    whole = ensembles.train(spec, cfg, x, y, xe, group=group, run_dir=tmp_path / "whole", progress=False)
    np.testing.assert_array_equal(resumed.steps, whole.steps)
    np.testing.assert_array_equal(resumed.members, whole.members)
