"""Ising experiment: energies of spin configurations on a periodic L x L lattice, with the
lattice's cyclic translations as the group -- deep ensembles vs members vs the NTK.

Target: the nearest-neighbour energy per site, E(s) = -(1/L^2) sum_i s_i (s_right(i) + s_down(i)),
invariant under all L^2 translations. Models: CNNs with circular padding and a flatten
readout (their NTK is invariant under translations acting on both arguments), ensembles
with no augmentation, the full translation orbit, or the subgroup of translations by an
even number of columns. Evaluation: fresh spin configurations (in distribution) and
Gaussian-noise "configurations" (off the data manifold). See ntkequi.sweep.

    ntkequi run ising                  # small default (L=4), a few minutes on 2 CPU cores
    ntkequi run ising --preset paper   # L=6, wider and larger ensembles (use a GPU)

Writes runs/ising[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax

from .. import data, groups
from ..nn import ArchSpec
from . import sweep

NAME = "ising"
USES_DATA = False
CPU_TIME = {"small": "3 min", "paper": "not measured (meant for a GPU)"}


@dataclasses.dataclass(frozen=True)
class IsingConfig:
    x64: ClassVar[bool] = True          # NTK comparisons in float64
    L: int = 4
    n_train: int = 8
    n_eval: int = 4
    depth: int = 1
    sweep: sweep.SweepConfig = sweep.SweepConfig(
        widths=(16, 64), ensemble_sizes=(1, 2, 4, 8, 16), steps=500, record_steps=(0, 5, 50, 500))


Config = IsingConfig
PRESETS = {
    "small": IsingConfig(),
    "paper": IsingConfig(L=6, n_train=32, n_eval=16, depth=2, sweep=sweep.SweepConfig(
        widths=(16, 64, 256, 1024), ensemble_sizes=(1, 2, 4, 8, 16, 32, 64),
        steps=5000, record_steps=(0, 5, 50, 500, 5000))),
}


def problem(cfg: IsingConfig, data_dir=None) -> sweep.Problem:
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(cfg.sweep.seed), 3)
    x = data.ising_configurations(kx, cfg.n_train, cfg.L)
    return sweep.Problem(
        group=groups.lattice_translations(cfg.L), x=x, y=data.ising_energy(x),
        evals={"in_distribution": data.ising_configurations(k1, cfg.n_eval, cfg.L),
               "noise": jax.random.normal(k2, (cfg.n_eval, cfg.L, cfg.L, 1))},
        spec=lambda w: ArchSpec(kind="cnn", depth=cfg.depth, width=w, padding="CIRCULAR",
                                b_std=0.5))


def run(cfg: IsingConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) the sweep of :func:`problem` into ``out``; returns its records."""
    return sweep.run(problem(cfg, data_dir), cfg.sweep, out, config=cfg, progress=progress, overwrite=overwrite)


def summary(cfg: IsingConfig, done: dict) -> str:
    """The sweep's plain-text tables, one per evaluation set."""
    return sweep.summary(cfg.sweep, done)


FIGURES = sweep.figures(NAME, "Ising energies, lattice translations.", ('size', 'time', 'noise'))
TABLES = {NAME: sweep.last_step_table(NAME), f"{NAME}_sets": sweep.eval_sets_table(NAME)}
numbers = sweep.distance_numbers("ising")
