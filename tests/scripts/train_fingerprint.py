"""Members of 13 small training configurations (orbit gd, random-augmentation adam with minibatches,
linearised + antithetic, float64; each in memory, with a run directory and resumed; a CNN), saved
to OUT.npz. Run it under two checkouts and compare the files bitwise to check that a refactor of
ensembles.train changed no result:

    PYTHONPATH=OLD python tests/scripts/train_fingerprint.py old.npz
    PYTHONPATH=NEW python tests/scripts/train_fingerprint.py new.npz
    python -c "import numpy as np; a, b = np.load(\"old.npz\"), np.load(\"new.npz\"); print(all(np.array_equal(a[k], b[k]) for k in a.files))"
"""
import sys, tempfile, numpy as np, jax
jax.config.update("jax_enable_x64", True)
from ntkequi import ensembles, groups, data
from ntkequi.nn import ArchSpec
out = {}
c4 = groups.planar_rotations(4)
x = data.wedge_points(jax.random.PRNGKey(0), 8); y = data.radial_target(x)
xe = data.noise_points(jax.random.PRNGKey(1), 5)
mlp = ArchSpec(kind="mlp", depth=2, width=32)
cases = {
 "orbit": (mlp, ensembles.TrainConfig(ensemble_size=4, steps=7, learning_rate=0.01, augmentation="orbit", record_steps=(0, 3, 7))),
 "random_adam": (mlp, ensembles.TrainConfig(ensemble_size=3, steps=6, learning_rate=0.01, optimizer="adam", augmentation="random", record_steps=(6,), batch_size=4)),
 "lin_anti": (mlp, ensembles.TrainConfig(ensemble_size=4, steps=5, learning_rate=0.01, augmentation="orbit", record_steps=(5,), model="linearised", antithetic=True)),
 "f64": (mlp, ensembles.TrainConfig(ensemble_size=2, steps=4, learning_rate=0.01, augmentation="orbit", record_steps=(4,), dtype="float64")),
}
for name, (spec, cfg) in cases.items():
    out[name] = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, xe, c4), progress=False).members
    d = tempfile.mkdtemp()
    out[name + "_dir"] = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, xe, c4),
                                         progress=False, run_dir=d).members
    out[name + "_resumed"] = ensembles.train(spec, cfg, ensembles.TrainingData(x, y, xe, c4),
                                             progress=False, run_dir=d).members
img = jax.random.normal(jax.random.PRNGKey(2), (6, 8, 8, 1)); yi = jax.random.normal(jax.random.PRNGKey(3), (6, 2))
cnn = ArchSpec(kind="cnn", depth=1, width=4, out_dim=2)
g = groups.rotations(4, (8, 8))
out["cnn"] = ensembles.train(cnn, ensembles.TrainConfig(ensemble_size=2, steps=3, learning_rate=0.01, augmentation="orbit", record_steps=(3,)), ensembles.TrainingData(img, yi, img, g),
                             progress=False).members
np.savez(sys.argv[1], **out)
