"""Ensembles sharded over several devices, and ntkequi's kernels spread over them, give the
one-device results.

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
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()   # conftest's too
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
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


def test_own_kernel_spreads_its_tiles_over_every_device_and_equals_one_device(measured):
    """ArchSpec.kernel_fn (ntkequi's recursion) on 4 devices, tiles of 2 x 2 pairs (flatten and
    GAP CNNs, x2 given and None): every result is a jax.Array sharded by rows over the 4
    devices (1 with devices=1: the single-device path), equal to the 1-device kernel to 1e-12;
    under an outer jit too; rows that do not split evenly come back replicated, equal too."""
    assert measured["kernel_devices"] == [4, 1] * 4
    assert measured["kernel_row_shard"] == [2, 8]           # 8 rows / 4 devices
    assert measured["kernel_max_rel_diff"] < 1e-12
    assert measured["kernel_jitted_rel_diff"] < 1e-12
    assert measured["kernel_uneven_rows_devices"] == 4 and measured["kernel_uneven_rows_rel_diff"] < 1e-12


def test_orbit_blocks_tile_store_and_predictor_on_four_devices_equal_one_device(measured):
    assert measured["blocks_max_rel_diff"] < 1e-12
    assert measured["store_max_rel_diff"] < 1e-12
    assert measured["predict_direct_rel_diff"] < 1e-12
    assert measured["predict_structured_rel_diff"] < 1e-12
