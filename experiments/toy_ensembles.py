"""Toy experiment: planar points, C8 -- deep ensembles vs members vs the NTK.

Points in a 60-degree wedge with the rotation-invariant target cos(2|x|) + |x|/2; MLP
ensembles with no augmentation, the full C8 orbit, or the C4 subgroup (see
ntkequi.ensemble_sweep for what is measured).

    python experiments/toy_ensembles.py                   # small default, ~2 min on 2 CPU cores
    python experiments/toy_ensembles.py --preset paper    # widths to 4096, M to 128 (use a GPU)

Writes runs/toy_ensembles[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
import dataclasses
import sys

import jax

from ntkequi import data, ensemble_sweep, groups
from ntkequi.arch import ArchSpec


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    group_order: int = 8
    n_train: int = 8
    n_eval: int = 8
    depth: int = 2
    b_std: float = 1.0
    sweep: ensemble_sweep.SweepConfig = ensemble_sweep.SweepConfig()


PRESETS = {
    "small": ToyConfig(),
    "paper": ToyConfig(n_train=16, n_eval=32, sweep=ensemble_sweep.SweepConfig(
        widths=(64, 256, 1024, 4096), ensemble_sizes=(1, 2, 4, 8, 16, 32, 64, 128),
        steps=10000, record_steps=(0, 10, 100, 1000, 10000))),
}


def problem(cfg: ToyConfig) -> ensemble_sweep.Problem:
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(cfg.sweep.seed), 3)
    x = data.wedge_points(kx, cfg.n_train)
    return ensemble_sweep.Problem(
        group=groups.planar_rotations(cfg.group_order), x=x, y=data.radial_target(x),
        evals={"in_distribution": data.wedge_points(k1, cfg.n_eval),
               "noise": data.noise_points(k2, cfg.n_eval)},
        spec=lambda w: ArchSpec(kind="mlp", depth=cfg.depth, width=w, b_std=cfg.b_std))


if __name__ == "__main__":
    sys.exit(ensemble_sweep.cli("toy_ensembles", PRESETS, problem, __doc__))
