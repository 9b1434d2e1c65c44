"""FashionMNIST, C4: deep ensembles of CNNs vs the analytic NTK on real images.

A subset of FashionMNIST (8 images in the small preset, 256 in the cpu preset); one-hot
targets (MSE, full-batch gradient descent), ensembles of CNNs (small: conv 3x3 -> ReLU ->
flatten -> dense; cpu: the OSP table's members, conv 3x3 -> ReLU -> 2x2 average pool twice
-> flatten -> dense, at widths 8, 16, 32, 64; float32 members) with no augmentation, the full C4 orbit, or the
C2 subgroup; the analytic NTK of the same ArchSpec at the same training times (one
prediction per augmentation, shared by the widths). Compared on the C4 orbits of FashionMNIST test images (in distribution),
MNIST digits and uniform-noise images (out of distribution): invariance error of
members, of the ensemble mean for growing M, of the NTK mean mu_t, and the distance of
the ensemble mean from mu_t for growing width (see ntkequi.experiments.sweep).

    ntkequi run fmnist_ntk --data-dir DIR                  # ~12 min on 2 CPU cores
    ntkequi run fmnist_ntk --data-dir DIR --preset cpu     # the OSP table's CNN, N = 256, M <= 32, widths 8-64
    ntkequi run fmnist_ntk --data-dir DIR --preset paper   # wider, larger M (a GPU)

Writes runs/fmnist_ntk[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from .. import data, groups
from ..nn import ArchSpec
from . import sweep

NAME = "fmnist_ntk"
USES_DATA = True
CPU_TIME = {"small": "12 min", "cpu": "1.7 h (2026-12-07, over two starts, sharing the CPU with other runs)",
            "paper": "not measured (meant for a GPU)"}


@dataclasses.dataclass(frozen=True)
class FmnistNTKConfig:
    x64: ClassVar[bool] = True          # NTK comparisons in float64
    n_train: int = 8
    n_eval: int = 8
    depth: int = 1
    pool: bool = False                  # 2x2 average pooling after each conv (the OSP table's members)
    sweep: sweep.SweepConfig = sweep.SweepConfig(
        widths=(16, 48, 128), ensemble_sizes=(1, 2, 4, 8), steps=300, record_steps=(0, 10, 100, 300))


Config = FmnistNTKConfig
PRESETS = {
    "small": FmnistNTKConfig(),
    # the OSP table's member network (conv-ReLU-2x2 pool twice, flatten, dense) on the first
    # N = 256 training images of fmnist_ntk_scale's permutation, three widths, M up to 32
    # float32 members (sweep.SweepConfig.member_dtype) train the CNN much faster than the float64
    # members of the preset's first version (widths 8-32, 20 steps; benchmarks/member_precision.py):
    # the saving buys an 8x width range and twice the steps
    "cpu": FmnistNTKConfig(n_train=256, n_eval=32, depth=2, pool=True, sweep=sweep.SweepConfig(
        widths=(8, 16, 32, 64), ensemble_sizes=(1, 2, 4, 8, 16, 32), steps=40, record_steps=(0, 5, 10, 20, 40))),
    "paper": FmnistNTKConfig(n_train=256, n_eval=64, sweep=sweep.SweepConfig(
        widths=(64, 256, 1024, 4096), ensemble_sizes=(1, 2, 4, 8, 16, 32, 64, 128),
        steps=10000, record_steps=(0, 10, 100, 1000, 10000))),
}


def problem(cfg: FmnistNTKConfig, data_dir=None) -> sweep.Problem:
    seed = cfg.sweep.seed
    sets = data.splits(data.SplitConfig(n_train=cfg.n_train, n_val=0, n_test=cfg.n_eval, seed=seed), data_dir=data_dir)
    x, labels = sets["train"]
    f64 = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))
    y = np.eye(10)[labels] - 0.1                      # centred one-hot targets
    return sweep.Problem(
        group=groups.rotations(4, (28, 28)), x=f64(x), y=f64(y),
        evals={"fashion_mnist_test": f64(sets["test"][0]),
               "mnist": f64(data.ood_set("mnist", cfg.n_eval, seed, data_dir)),
               "noise": f64(data.ood_set("noise", cfg.n_eval, seed, data_dir))},
        spec=lambda w: ArchSpec(kind="cnn", depth=cfg.depth, width=w, out_dim=10, pool=cfg.pool))


def run(cfg: FmnistNTKConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) the sweep of :func:`problem` into ``out``; returns its records."""
    return sweep.run(problem(cfg, data_dir), cfg.sweep, out, config=cfg, progress=progress, overwrite=overwrite)


def summary(cfg: FmnistNTKConfig, done: dict) -> str:
    """The sweep's plain-text tables, one per evaluation set."""
    return sweep.summary(cfg.sweep, done)


FIGURES = sweep.figures(NAME, "FashionMNIST, C4, CNN ensembles.", ('size', 'width', 'time', 'noise'))
TABLES = {NAME: sweep.last_step_table(NAME), f"{NAME}_sets": sweep.eval_sets_table(NAME)}
numbers = sweep.distance_numbers("fmnist")
