"""Toy experiment: planar points, C8 -- deep ensembles vs members vs the NTK.

Points in a 60-degree wedge with the rotation-invariant target cos(2|x|) + |x|/2; MLP
ensembles with no augmentation, the full C8 orbit, or the C4 subgroup (see
ntkequi.experiments.sweep for what is measured).

    ntkequi run toy_ensembles                   # small default, ~2 min on 2 CPU cores
    ntkequi run toy_ensembles --preset paper    # widths to 4096, M to 128 (use a GPU)

Writes runs/toy_ensembles[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax

from .. import data, groups
from ..nn import ArchSpec
from . import sweep

NAME = "toy_ensembles"
USES_DATA = False
CPU_TIME = {"small": "2.5 min", "paper": "not measured (meant for a GPU)"}


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    x64: ClassVar[bool] = True          # NTK comparisons in float64
    group_order: int = 8
    n_train: int = 8
    n_eval: int = 8
    depth: int = 2
    b_std: float = 1.0
    sweep: sweep.SweepConfig = sweep.SweepConfig()


Config = ToyConfig
PRESETS = {
    "small": ToyConfig(),
    "paper": ToyConfig(n_train=16, n_eval=32, sweep=sweep.SweepConfig(
        widths=(64, 256, 1024, 4096), ensemble_sizes=(1, 2, 4, 8, 16, 32, 64, 128),
        steps=10000, record_steps=(0, 10, 100, 1000, 10000))),
}


def problem(cfg: ToyConfig, data_dir=None) -> sweep.Problem:
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(cfg.sweep.seed), 3)
    x = data.wedge_points(kx, cfg.n_train)
    return sweep.Problem(
        group=groups.planar_rotations(cfg.group_order), x=x, y=data.radial_target(x),
        evals={"in_distribution": data.wedge_points(k1, cfg.n_eval),
               "noise": data.noise_points(k2, cfg.n_eval)},
        spec=lambda w: ArchSpec(kind="mlp", depth=cfg.depth, width=w, b_std=cfg.b_std))


def run(cfg: ToyConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) the sweep of :func:`problem` into ``out``; returns its records."""
    return sweep.run(problem(cfg, data_dir), cfg.sweep, out, config=cfg, progress=progress, overwrite=overwrite)


def summary(cfg: ToyConfig, done: dict) -> str:
    """The sweep's plain-text tables, one per evaluation set."""
    return sweep.summary(cfg.sweep, done)


FIGURES = sweep.figures(NAME, "Toy problem (planar C8).", ('size', 'width', 'time', 'noise'))
TABLES = {NAME: sweep.last_step_table(NAME), f"{NAME}_sets": sweep.eval_sets_table(NAME)}


def numbers(cfg: ToyConfig, done: dict) -> dict:
    """Width and size of the widest ensemble, and its errors off the data (noise inputs)."""
    c, s = cfg.sweep, "noise"
    w = max(c.widths)
    last = done[f"orbit/width{w}"][s][-1]
    return {"toyWidth": str(w), "toyMmax": str(max(c.ensemble_sizes)), "toyMembers": last["members"],
            "toyEnsembleOne": last["ensemble"][0], "toyEnsembleMax": last["ensemble"][-1], "toyNtk": last["ntk"],
            "toyNoneNtk": done[f"none/width{w}"][s][-1]["ntk"],
            "toySubgroupNtk": done[f"subgroup/width{w}"][s][-1]["ntk"]}
