"""Ising experiment: energies of spin configurations on a periodic L x L lattice, with the
lattice's cyclic translations as the group -- deep ensembles vs members vs the NTK.

Target: the nearest-neighbour energy per site, E(s) = -(1/L^2) sum_i s_i (s_right(i) + s_down(i)),
invariant under all L^2 translations. Models: CNNs with circular padding and a flatten
readout (their NTK is invariant under translations acting on both arguments), ensembles
with no augmentation, the full translation orbit, or the subgroup of translations by an
even number of columns. Evaluation: fresh spin configurations (in distribution) and
Gaussian-noise "configurations" (off the data manifold). See ntkequi.ensemble_sweep.

    python experiments/ising.py                  # small default (L=4), a few minutes on 2 CPU cores
    python experiments/ising.py --preset paper   # L=6, wider and larger ensembles (use a GPU)

Writes runs/ising[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
import dataclasses
import sys

import jax

from ntkequi import data, ensemble_sweep, groups
from ntkequi.arch import ArchSpec


@dataclasses.dataclass(frozen=True)
class IsingConfig:
    L: int = 4
    n_train: int = 8
    n_eval: int = 4
    depth: int = 1
    sweep: ensemble_sweep.SweepConfig = ensemble_sweep.SweepConfig(
        widths=(16, 64), ensemble_sizes=(1, 2, 4, 8, 16), steps=500, record_steps=(0, 5, 50, 500))


PRESETS = {
    "small": IsingConfig(),
    "paper": IsingConfig(L=6, n_train=32, n_eval=16, depth=2, sweep=ensemble_sweep.SweepConfig(
        widths=(16, 64, 256, 1024), ensemble_sizes=(1, 2, 4, 8, 16, 32, 64),
        steps=5000, record_steps=(0, 5, 50, 500, 5000))),
}


def problem(cfg: IsingConfig) -> ensemble_sweep.Problem:
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(cfg.sweep.seed), 3)
    x = data.ising_configurations(kx, cfg.n_train, cfg.L)
    return ensemble_sweep.Problem(
        group=groups.lattice_translations(cfg.L), x=x, y=data.ising_energy(x),
        evals={"in_distribution": data.ising_configurations(k1, cfg.n_eval, cfg.L),
               "noise": jax.random.normal(k2, (cfg.n_eval, cfg.L, cfg.L, 1))},
        spec=lambda w: ArchSpec(kind="cnn", depth=cfg.depth, width=w, padding="CIRCULAR",
                                b_std=0.5))


if __name__ == "__main__":
    sys.exit(ensemble_sweep.cli("ising", PRESETS, problem, __doc__))
