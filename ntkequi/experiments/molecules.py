"""A molecule-like toy: permutation-symmetrized kernels on pairwise distances.

Configurations of ``n_atoms`` identical atoms in R^3 are described by their pairwise
distances ``d(x)`` ``(P,)``, ``P = n(n-1)/2`` -- invariant under rotations, reflections
and translations (seed 003's isometry part), but not under relabelling the atoms: a
permutation of the atoms permutes the entries of ``d``. The energy is a sum of Morse pair
terms plus a three-body term over atom triples (:func:`energy`), invariant under all of them. :func:`ntkequi.groups.pair_permutations` gives the symmetric group
``S_n`` acting on distance vectors (a :class:`ntkequi.groups.GatherGroup`), so the kernel
toolbox of :mod:`ntkequi.kernels` applies unchanged: a Gaussian kernel on ``d`` (plain),
its ``S_n``-symmetrized kernel, the same Gaussian trained on the full ``S_n`` orbit of the
data (equal to the symmetrized one, the kernel counterpart of emergent invariance), and a
Gaussian on sorted distances (a common invariant descriptor that discards which distances
share an atom). Reported: energy error on held-out configurations against training size,
and the invariance error under relabelling.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .. import groups, kernels
from ..data.physics import configurations, distances, energy, morse_energy  # noqa: F401
from ..runs import RunDir, learning_curve
from .protocol import PM, Figure, Table, pyplot

NAME = "molecules"
USES_DATA = False
CPU_TIME = {"small": "3 min", "paper": "not measured"}

MODELS = ("plain", "symmetrized", "augmented", "sorted")


@dataclasses.dataclass(frozen=True)
class MoleculeConfig:
    x64: ClassVar[bool] = True
    n_atoms: int = 4
    n_trains: tuple = (10, 20, 50, 100, 200)
    seeds: int = 5
    n_test: int = 500
    n_val: int = 100
    sigmas: tuple = (0.5, 1.0, 2.0)
    regs: tuple = (1e-6, 1e-4, 1e-2)
    seed: int = 0


Config = MoleculeConfig
PRESETS = {"small": MoleculeConfig(),
           "paper": MoleculeConfig(n_atoms=5, n_trains=(10, 20, 50, 100, 200, 400), seeds=20)}


def _rbf_fn(sigma):
    def fn(a, b):
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        d2 = jnp.sum(a ** 2, 1)[:, None] + jnp.sum(b ** 2, 1)[None] - 2 * a @ b.T
        return jnp.exp(-jnp.maximum(d2, 0.0) / (2 * sigma ** 2))
    return kernels.from_function(fn)


def fit(model: str, group, sigma: float, x, y) -> Callable:
    """The converged kernel ridge predictor of ``model`` on distance vectors ``x (N, P)``,
    ``y (N, 1)`` with an RBF kernel of width ``sigma``: ``f(x_test, reg) -> (M, 1)``. The kernel
    (and, per regulariser, its eigendecomposition) is computed once for all questions."""
    k = _rbf_fn(sigma)
    if model in ("plain", "augmented", "sorted"):
        s = (lambda d: jnp.sort(d, axis=1)) if model == "sorted" else (lambda d: d)
        mu = kernels.Predictor(k, s(x), y, group=group if model == "augmented" else None)
        return lambda x_test, reg: mu(s(x_test), math.inf, diag_reg=reg).mean[0]
    if model == "symmetrized":
        def symmetrized(x_test, reg):
            p = kernels.augmented_as_symmetrized(k, group, x, math.inf, diag_reg=reg)
            return kernels.predict(p.kernel_fn, x, y, x_test, p.t, diag_reg=p.diag_reg).mean[0]
        return symmetrized
    raise ValueError(f"unknown model {model!r}; use one of {MODELS}")


def run(cfg: MoleculeConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``: records ``{model}/n{N}/seed{s}`` with the test RMSE,
    the chosen width/regulariser, and the relative invariance error under relabelling."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    group = groups.pair_permutations(cfg.n_atoms)
    key = jax.random.PRNGKey(cfg.seed)
    pool = max(cfg.n_trains) + cfg.n_val
    xt = distances(configurations(jax.random.fold_in(key, 1), cfg.n_test, cfg.n_atoms))
    yt = energy(xt)
    x_orbit = group.orbit(xt[:50]).reshape((-1,) + xt.shape[1:])        # relabelled test configurations
    for n in cfg.n_trains:
        for s in range(cfg.seeds):
            xs = distances(configurations(jax.random.fold_in(key, 100 + s), pool, cfg.n_atoms))
            x, y = xs[:n], energy(xs[:n])
            xv, yv = xs[-cfg.n_val:], energy(xs[-cfg.n_val:])
            for k, model in rd.pending(MODELS, lambda m: f"{m}/n{n}/seed{s}"):
                fitted = {sg: fit(model, group, sg, x, y) for sg in cfg.sigmas}
                best = min(((float(jnp.sqrt(jnp.mean((fitted[sg](xv, lam) - yv) ** 2))), sg, lam)
                            for sg in cfg.sigmas for lam in cfg.regs), key=lambda t: t[0])
                _, sg, lam = best
                pt = fitted[sg](jnp.concatenate([xt, x_orbit]), lam)
                f_orbit = pt[len(xt):].reshape(group.order, 50, 1)
                inv = float(jnp.mean(jnp.abs(f_orbit - f_orbit[0])) / jnp.mean(jnp.abs(f_orbit[0])))
                done[k] = rd.record(k, model=model, n=n, seed=s, sigma=sg, reg=lam,
                                    rmse=float(jnp.sqrt(jnp.mean((pt[:len(xt)] - yt) ** 2))),
                                    energy_std=float(jnp.std(yt)), invariance=inv)
            if progress:
                print(f"[{out.name}] n={n} seed={s}", flush=True)
    return done


def curve(done: dict, model: str, metric: str = "rmse", counts: bool = False):
    """``(ns, mean, std)`` of ``metric`` over training draws for ``model``."""
    return learning_curve(done, f"{model}/", metric, counts)


def summary(cfg: MoleculeConfig, done: dict) -> str:
    """Energy RMSE (and invariance error) per model against training-set size."""
    first = next(iter(done.values()))
    lines = [f"energy RMSE on {cfg.n_test} held-out configurations of {cfg.n_atoms} atoms (std of the energy "
             f"{first['energy_std']:.3f}), mean +- std over {cfg.seeds} training draws; invariance error under "
             f"relabelling in brackets",
             f"{'N':>5} | " + " | ".join(f"{m:>26}" for m in MODELS)]
    for i, n in enumerate(curve(done, MODELS[0])[0]):
        cells = []
        for m in MODELS:
            _, mu, sd = curve(done, m)
            inv = curve(done, m, "invariance")[1][i]
            cells.append(f"{mu[i]:.4f} +- {sd[i]:.4f} [{inv:.0e}]")
        lines.append(f"{int(n):>5} | " + " | ".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


def figure(cfg: MoleculeConfig, done: dict):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"plain": "o-", "symmetrized": "s-", "augmented": "x--", "sorted": "^-"}
    for j, m in enumerate(MODELS):
        ns, mu, sd = curve(done, m)
        axes[0].errorbar(ns, mu, yerr=sd, fmt=styles[m], capsize=3, color=f"C{j}", label=m)
        axes[1].plot(ns, np.maximum(curve(done, m, "invariance")[1], 1e-17), styles[m], color=f"C{j}", label=m)
    axes[0].set(xscale="log", yscale="log", xlabel="training configurations N", ylabel="energy RMSE (held out)",
                title=f"{cfg.n_atoms} identical atoms, Morse pairs + three-body term")
    axes[1].set(xscale="log", yscale="log", xlabel="training configurations N",
                ylabel="relative invariance error under relabelling", title=f"S{cfg.n_atoms} on pairwise distances")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def rmse_table(cfg: MoleculeConfig, done: dict) -> Table:
    """Energy RMSE per model and training-set size, mean +- std over draws."""
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m, counts=True)[1:] for m in MODELS]
    rows = [[str(int(n))] + [PM(mu[i], sd[i], n=int(c[i])) for mu, sd, c in cols] for i, n in enumerate(ns)]
    cap = ("Energy RMSE on held-out configurations of the molecule-like toy, mean $\\pm$ std over draws "
           "of the training set [95 \\% t-interval of the mean], for kernels on pairwise distances: plain, symmetrized over atom "
           "relabellings, trained on the full relabelling orbit, and on sorted distances.")
    return Table(["$N$"] + list(MODELS), rows, cap, "molecules")


def invariance_table(cfg: MoleculeConfig, done: dict) -> Table:
    """Invariance error under relabelling per model and training-set size."""
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m, "invariance")[1] for m in MODELS]
    rows = [[str(int(n))] + [c[i] for c in cols] for i, n in enumerate(ns)]
    cap = ("Relative invariance error of the learned energy under relabelling the atoms (held-out "
           "configurations), mean over draws.")
    return Table(["$N$"] + list(MODELS), rows, cap, "molecules_invariance")


def numbers(cfg: MoleculeConfig, d: dict) -> dict:
    """RMSE and invariance error of every model at the largest training set."""
    ns = list(curve(d, "plain")[0])
    i = len(ns) - 1
    out = {"molN": str(int(ns[i])), "molEnergyStd": next(iter(d.values()))["energy_std"]}
    for m, nm in (("plain", "Plain"), ("symmetrized", "Sym"), ("augmented", "Aug"), ("sorted", "Sorted")):
        out[f"mol{nm}"] = curve(d, m)[1][i]
        out[f"mol{nm}Inv"] = curve(d, m, "invariance")[1][i]
    return out


FIGURES = (Figure("molecules", figure,
                  "Molecule-like toy (identical atoms, Morse pairs plus a three-body term): energy error on "
                  "held-out configurations against training size for a Gaussian kernel on pairwise distances, "
                  "its symmetrized kernel over atom relabellings, the same kernel trained on the full "
                  "relabelling orbit, and a Gaussian on sorted distances (left; error bars: std over "
                  "training draws), and their invariance error under relabelling (right)."),)
TABLES = {"molecules_invariance": invariance_table, "molecules": rmse_table}
