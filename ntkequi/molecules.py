"""A molecule-like toy: permutation-symmetrized kernels on pairwise distances.

Configurations of ``n_atoms`` identical atoms in R^3 are described by their pairwise
distances ``d(x)`` ``(P,)``, ``P = n(n-1)/2`` -- invariant under rotations, reflections
and translations (seed 003's isometry part), but not under relabelling the atoms: a
permutation of the atoms permutes the entries of ``d``. The energy is a sum of Morse pair
terms plus a three-body term over atom triples (:func:`energy`), invariant under all of them. :func:`pair_permutations` gives the symmetric group
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
import itertools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import groups, kernels, ntk
from .results import RunDir, learning_curve

__all__ = ["MoleculeConfig", "PRESETS", "pair_permutations", "distances", "morse_energy", "energy", "run", "table",
           "figure", "cli"]

MODELS = ("plain", "symmetrized", "augmented", "sorted")


def _pairs(n_atoms: int):
    return list(itertools.combinations(range(n_atoms), 2))


def pair_permutations(n_atoms: int) -> groups.GatherGroup:
    """``S_n`` acting on distance vectors ``(N, P, 1)``: relabelling the atoms by ``sigma``
    moves the distance of pair ``{i, j}`` to pair ``{sigma(i), sigma(j)}``."""
    pairs = _pairs(n_atoms)
    where = {p: k for k, p in enumerate(pairs)}
    perms = []
    for sigma in itertools.permutations(range(n_atoms)):
        inv = np.argsort(sigma)
        # output pair {a, b} reads the input pair that sigma maps onto it
        perms.append([where[tuple(sorted((int(inv[a]), int(inv[b]))))] for a, b in pairs])
    return groups.GatherGroup.from_permutations(f"S{n_atoms}", perms, (len(pairs),))


def distances(x) -> jnp.ndarray:
    """Pairwise distances of configurations ``x`` ``(N, n_atoms, 3)``: ``(N, P, 1)``."""
    x = jnp.asarray(x)
    i, j = np.triu_indices(x.shape[1], 1)
    return jnp.linalg.norm(x[:, i] - x[:, j], axis=-1)[..., None]


def morse_energy(d, depth: float = 1.0, width: float = 1.5, r0: float = 1.0) -> jnp.ndarray:
    """Sum of Morse pair terms ``depth (1 - exp(-width (r - r0)))^2 - depth`` over the
    distances ``d`` ``(N, P, 1)``: ``(N, 1)``."""
    m = depth * (1 - jnp.exp(-width * (d[..., 0] - r0))) ** 2 - depth
    return m.sum(-1, keepdims=True)


def _triangles(n_atoms: int):
    """For each atom triple, the indices of its three pairs in the distance vector."""
    where = {p: k for k, p in enumerate(_pairs(n_atoms))}
    return np.array([[where[(i, j)], where[(i, k)], where[(j, k)]]
                     for i, j, k in itertools.combinations(range(n_atoms), 3)])


def energy(d, three_body: float = 2.0) -> jnp.ndarray:
    """Morse pair energy plus a three-body term ``three_body * sum_triangles exp(-(r_ij r_ik
    r_jk))`` of distances ``d`` ``(N, P, 1)``: ``(N, 1)``. Both are invariant under
    relabelling the atoms; the three-body term depends on which distances share atoms, which
    a sorted list of distances does not keep."""
    n_atoms = int(round((1 + math.sqrt(1 + 8 * d.shape[1])) / 2))
    tri = d[:, _triangles(n_atoms), 0]                          # (N, T, 3)
    return morse_energy(d) + three_body * jnp.exp(-jnp.prod(tri, -1)).sum(-1, keepdims=True)


def configurations(key, n: int, n_atoms: int, spread: float = 0.8, min_distance: float = 0.6):
    """``n`` random configurations ``(n, n_atoms, 3)`` (Gaussian positions, rejected if two
    atoms are closer than ``min_distance``)."""
    out, k = [], key
    while sum(len(o) for o in out) < n:
        k, sub = jax.random.split(k)
        x = spread * jax.random.normal(sub, (4 * n, n_atoms, 3))
        ok = np.asarray(distances(x)[..., 0].min(-1) > min_distance)
        out.append(np.asarray(x)[ok])
    return jnp.asarray(np.concatenate(out)[:n])


@dataclasses.dataclass(frozen=True)
class MoleculeConfig:
    n_atoms: int = 4
    n_trains: tuple = (10, 20, 50, 100, 200)
    seeds: int = 5
    n_test: int = 500
    n_val: int = 100
    sigmas: tuple = (0.5, 1.0, 2.0)
    regs: tuple = (1e-6, 1e-4, 1e-2)
    seed: int = 0


PRESETS = {"small": MoleculeConfig(),
           "paper": MoleculeConfig(n_atoms=5, n_trains=(10, 20, 50, 100, 200, 400), seeds=20)}


def _rbf_fn(sigma):
    def fn(a, b):
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        d2 = jnp.sum(a ** 2, 1)[:, None] + jnp.sum(b ** 2, 1)[None] - 2 * a @ b.T
        return jnp.exp(-jnp.maximum(d2, 0.0) / (2 * sigma ** 2))
    return kernels.from_function(fn)


def predict(model: str, group, sigma: float, reg: float, x, y, x_test) -> jnp.ndarray:
    """Converged kernel ridge prediction ``(M, 1)`` of ``model`` on distance vectors."""
    k = _rbf_fn(sigma)
    if model == "plain":
        return ntk.predict(k, x, y, x_test, math.inf, diag_reg=reg).mean[0]
    if model == "augmented":
        return ntk.predict(k, x, y, x_test, math.inf, group=group, diag_reg=reg).mean[0]
    if model == "symmetrized":
        p = kernels.augmented_as_symmetrized(k, group, x, math.inf, diag_reg=reg)
        return ntk.predict(p.kernel_fn, x, y, x_test, p.t, diag_reg=p.diag_reg).mean[0]
    if model == "sorted":
        s = lambda d: jnp.sort(d, axis=1)
        return ntk.predict(k, s(x), y, s(x_test), math.inf, diag_reg=reg).mean[0]
    raise ValueError(f"unknown model {model!r}; use one of {MODELS}")


def run(cfg: MoleculeConfig, out, progress: bool = True) -> dict:
    """Run (or resume) into ``out``: records ``{model}/n{N}/seed{s}`` with the test RMSE,
    the chosen width/regulariser, and the relative invariance error under relabelling."""
    jax.config.update("jax_enable_x64", True)
    out = Path(out)
    rd = RunDir(out, cfg)
    done = rd.done()
    group = pair_permutations(cfg.n_atoms)
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
            for model in MODELS:
                k = f"{model}/n{n}/seed{s}"
                if k in done:
                    continue
                best = min(((float(jnp.sqrt(jnp.mean((predict(model, group, sg, lam, x, y, xv) - yv) ** 2))), sg, lam)
                            for sg in cfg.sigmas for lam in cfg.regs), key=lambda t: t[0])
                _, sg, lam = best
                pt = predict(model, group, sg, lam, x, y, jnp.concatenate([xt, x_orbit]))
                f_orbit = pt[len(xt):].reshape(group.order, 50, 1)
                inv = float(jnp.mean(jnp.abs(f_orbit - f_orbit[0])) / jnp.mean(jnp.abs(f_orbit[0])))
                done[k] = rd.record(k, model=model, n=n, seed=s, sigma=sg, reg=lam,
                                    rmse=float(jnp.sqrt(jnp.mean((pt[:len(xt)] - yt) ** 2))),
                                    energy_std=float(jnp.std(yt)), invariance=inv)
            if progress:
                print(f"[{out.name}] n={n} seed={s}", flush=True)
    return done


def curve(done: dict, model: str, metric: str = "rmse"):
    """``(ns, mean, std)`` of ``metric`` over training draws for ``model``."""
    return learning_curve(done, f"{model}/", metric)


def table(cfg: MoleculeConfig, done: dict) -> str:
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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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


def cli(argv=None) -> int:
    from .experiments import cli as experiment_cli
    return experiment_cli("molecules", PRESETS, run, table, __doc__, argv=argv)
