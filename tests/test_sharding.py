"""Ensembles sharded over several devices give the one-device results.

Runs tests/scripts/multidevice.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (the flag must be set before JAX
starts, so it cannot run in this process)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "multidevice.py"


@pytest.fixture(scope="module")
def measured():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_members_are_sharded_over_all_devices(measured):
    assert measured["devices"] == 4
    assert measured["mlp_sharding_devices"] == 4
    assert measured["mlp_shard_shape"][0] == 2          # 8 members / 4 devices


def test_sharded_ensemble_equals_one_device(measured):
    # Both runs vmapped: MLP members bitwise identical. CNN members: XLA:CPU picks its convolution
    # blocking by batch size (2 members per device vs 8), so they agree to rounding.
    assert measured["mlp_identical"]
    assert measured["cnn_max_rel_diff"] < 1e-12
    # and the one-device CPU default (members unrolled in one jit) to rounding as well
    assert measured["cnn_unrolled_max_rel_diff"] < 1e-12


def test_sharded_run_resumes_sharded(measured):
    assert measured["resume_identical"]
    assert measured["resume_sharding_devices"] == 4


def test_kernel_blocks_batched_over_devices(measured):
    assert measured["blocks_max_rel_diff"] < 1e-13
