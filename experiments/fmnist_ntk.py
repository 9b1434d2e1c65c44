"""FashionMNIST, C4: deep ensembles of CNNs vs the analytic NTK on real images.

A subset of FashionMNIST small enough for the analytic CNN kernel on a CPU; one-hot
targets (MSE, full-batch gradient descent), ensembles of one-hidden-layer CNNs
(conv 3x3 -> ReLU -> flatten -> dense) with no augmentation, the full C4 orbit, or the
C2 subgroup. Compared on the C4 orbits of FashionMNIST test images (in distribution),
MNIST digits and uniform-noise images (out of distribution): invariance error of
members, of the ensemble mean for growing M, of the NTK mean mu_t, and the distance of
the ensemble mean from mu_t for growing width (see ntkequi.ensemble_sweep).

    python experiments/fmnist_ntk.py --data-dir DIR                  # ~12 min on 2 CPU cores
    python experiments/fmnist_ntk.py --data-dir DIR --preset paper   # wider, larger M (a GPU)

Writes runs/fmnist_ntk[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
import dataclasses
import sys

import jax.numpy as jnp
import numpy as np

from ntkequi import data, ensemble_sweep, groups
from ntkequi.arch import ArchSpec


@dataclasses.dataclass(frozen=True)
class FmnistNTKConfig:
    n_train: int = 8
    n_eval: int = 8
    depth: int = 1
    sweep: ensemble_sweep.SweepConfig = ensemble_sweep.SweepConfig(
        widths=(16, 48, 128), ensemble_sizes=(1, 2, 4, 8), steps=300, record_steps=(0, 10, 100, 300))


PRESETS = {
    "small": FmnistNTKConfig(),
    "paper": FmnistNTKConfig(n_train=256, n_eval=64, sweep=ensemble_sweep.SweepConfig(
        widths=(64, 256, 1024, 4096), ensemble_sizes=(1, 2, 4, 8, 16, 32, 64, 128),
        steps=10000, record_steps=(0, 10, 100, 1000, 10000))),
}


def problem(cfg: FmnistNTKConfig) -> ensemble_sweep.Problem:
    seed = cfg.sweep.seed
    sets = data.splits(data.SplitConfig(n_train=cfg.n_train, n_val=0, n_test=cfg.n_eval, seed=seed))
    x, labels = sets["train"]
    f64 = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))
    y = np.eye(10)[labels] - 0.1                      # centred one-hot targets
    return ensemble_sweep.Problem(
        group=groups.rotations(4, (28, 28)), x=f64(x), y=f64(y),
        evals={"fashion_mnist_test": f64(sets["test"][0]),
               "mnist": f64(data.ood_set("mnist", cfg.n_eval, seed)),
               "noise": f64(data.ood_set("noise", cfg.n_eval, seed))},
        spec=lambda w: ArchSpec(kind="cnn", depth=cfg.depth, width=w, out_dim=10))


if __name__ == "__main__":
    sys.exit(ensemble_sweep.cli("fmnist_ntk", PRESETS, problem, __doc__))
