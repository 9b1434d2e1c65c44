"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4 by tests/test_sharding.py:
ensembles sharded over 4 (virtual CPU) devices vs 1 device, and ntkequi's own kernel (with the
orbit blocks, the tile store and the predictor built on it) with its tiles spread over 4 devices
vs 1. Prints one JSON line of measurements."""
import json
import sys
import tempfile

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ntkequi import ensembles, groups  # noqa: E402
from ntkequi.kernels import structured  # noqa: E402
from ntkequi.nn import ArchSpec  # noqa: E402

out = {"devices": jax.local_device_count()}
x = jax.random.normal(jax.random.PRNGKey(0), (8, 6, 6, 1))
y = jax.random.normal(jax.random.PRNGKey(1), (8, 1))
g = groups.rotations(4, (6, 6))

# MLP ensemble, 8 members over 4 devices vs 1
xf = x.reshape(8, 36)
mlp = ArchSpec(kind="mlp", depth=2, width=16)
cfg = ensembles.TrainConfig(ensemble_size=8, steps=4, learning_rate=0.01, record_steps=(0, 2, 4),
                            dtype="float64")    # compared to float64 rounding
a = ensembles.train(mlp, cfg, ensembles.TrainingData(xf, y, xf), progress=False)
b = ensembles.train(mlp, cfg, ensembles.TrainingData(xf, y, xf),
                    progress=False, runtime=ensembles.Runtime(devices=1, member_map="vmap"))
leaf = jax.tree_util.tree_leaves(a.params)[0]
out["mlp_sharding_devices"] = len(leaf.sharding.device_set)
out["mlp_shard_shape"] = list(leaf.addressable_shards[0].data.shape)
out["mlp_identical"] = bool(np.array_equal(a.members, b.members))

# CNN ensemble with orbit augmentation; sharded run interrupted and resumed
cnn = ArchSpec(kind="cnn", depth=1, width=8)
cfg = ensembles.TrainConfig(ensemble_size=8, steps=4, learning_rate=0.01, augmentation="orbit",
                            record_steps=(0, 4), dtype="float64")
c4 = ensembles.train(cnn, cfg, ensembles.TrainingData(x, y, x, g), progress=False)
c1 = ensembles.train(cnn, cfg, ensembles.TrainingData(x, y, x, g),
                     progress=False, runtime=ensembles.Runtime(devices=1, member_map="vmap"))
c1u = ensembles.train(cnn, cfg, ensembles.TrainingData(x, y, x, g),
                      progress=False, runtime=ensembles.Runtime(devices=1))   # CPU default: unrolled
out["cnn_unrolled_max_rel_diff"] = float(np.abs(c4.members - c1u.members).max() / np.abs(c1u.members).max())
out["cnn_max_rel_diff"] = float(np.abs(c4.members - c1.members).max() / np.abs(c1.members).max())
with tempfile.TemporaryDirectory() as d:
    half = ensembles.TrainConfig(**{**cfg.__dict__, "checkpoint_every": 2})
    full = ensembles.train(cnn, half, ensembles.TrainingData(x, y, x, g), progress=False, run_dir=d)
    again = ensembles.train(cnn, half, ensembles.TrainingData(x, y, x, g), progress=False, run_dir=d)
    out["resume_identical"] = bool(np.array_equal(full.members, again.members))
    out["resume_sharding_devices"] = len(jax.tree_util.tree_leaves(again.params)[0].sharding.device_set)

# ntkequi's own kernel over the 4 devices (its default: every local device) vs one device, in
# tiles of 2 x 2 pairs so that each device computes several tiles
from ntkequi.kernels import Predictor, TileStore  # noqa: E402

def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


k4 = cnn.kernel_fn.with_block_bytes(2 * 2 * cnn.kernel_fn.intermediate_bytes((6, 6, 1), 8, 1))
k1 = k4.with_devices(1)
xk = jax.random.normal(jax.random.PRNGKey(2), (8, 6, 6, 1))
yk = jax.random.normal(jax.random.PRNGKey(3), (6, 6, 6, 1))
gap = ArchSpec(kind="cnn", depth=2, width=1, pool=True, readout="gap", b_std=0.1).kernel_fn
kernel_diffs, kernel_devices = [], []
for fn4, fn1 in [(k4, k1), (gap, gap.with_devices(1))]:
    for other in (None, yk):
        a, b = fn4(xk, other, ("nngp", "ntk")), fn1(xk, other, ("nngp", "ntk"))
        kernel_diffs += [rel(a.nngp, b.nngp), rel(a.ntk, b.ntk)]
        kernel_devices += [len(a.ntk.sharding.device_set), len(b.ntk.sharding.device_set)]
        out.setdefault("kernel_row_shard", a.ntk.addressable_shards[0].data.shape)
out["kernel_max_rel_diff"] = max(kernel_diffs)
out["kernel_devices"] = kernel_devices                 # [4, 1] per call
out["kernel_uneven_rows_devices"] = len(k4(xk[:7], None, "ntk").sharding.device_set)
out["kernel_uneven_rows_rel_diff"] = rel(k4(xk[:7], None, "ntk"), k1(xk[:7], None, "ntk"))
out["kernel_jitted_rel_diff"] = rel(jax.jit(lambda a, b: k4(a, b, "ntk"))(xk, yk), k1(xk, yk, "ntk"))

# everything built on it: the orbit blocks, the tile store, the predictor
b4 = structured.kernel_blocks(k4, g, x, None, ("nngp", "ntk"))
b1 = structured.kernel_blocks(k1, g, x, None, ("nngp", "ntk"))
out["blocks_max_rel_diff"] = max(rel(b4[k], b1[k]) for k in b1)
with tempfile.TemporaryDirectory() as d:
    s4 = TileStore(f"{d}/four", k4, g, x, tile=4)
    s1 = TileStore(f"{d}/one", k1, g, x, tile=4)
    s4.compute(progress=False), s1.compute(progress=False)
    t4, t1 = s4.train_blocks(8), s1.train_blocks(8)
    out["store_max_rel_diff"] = max(rel(t4[k], t1[k]) for k in t1)
yt = jax.random.normal(jax.random.PRNGKey(4), (8, 1))
for solver in ("direct", "structured"):
    p4 = Predictor(k4, x, yt, group=g, solver=solver, compute_cov=True)(yk, np.array([1.0, np.inf]), compute_cov=True)
    p1 = Predictor(k1, x, yt, group=g, solver=solver, compute_cov=True)(yk, np.array([1.0, np.inf]), compute_cov=True)
    out[f"predict_{solver}_rel_diff"] = max(rel(p4.mean, p1.mean), rel(p4.cov, p1.cov))
json.dump(out, sys.stdout)
print()
