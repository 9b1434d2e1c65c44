"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4 by tests/test_sharding.py:
ensembles sharded over 4 (virtual CPU) devices vs 1 device, and kernel blocks computed
with nt.batch over 4 devices vs unbatched. Prints one JSON line of measurements."""
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

# kernel blocks with nt.batch over 4 devices
b4 = structured.kernel_blocks(cnn.kernel_fn, g, x, None, ("nngp", "ntk"), batch_size=2)
b1 = structured.kernel_blocks(cnn.kernel_fn, g, x, None, ("nngp", "ntk"))
out["blocks_max_rel_diff"] = max(float(jnp.abs(b4[k] - b1[k]).max() / jnp.abs(b1[k]).max()) for k in b1)
json.dump(out, sys.stdout)
print()
