"""Partial augmentation: NTK ensembles augmented with C4, C8 or C16 rotations, evaluated
under finer rotations.

The theorem makes an ensemble equivariant under the group it was augmented with, not
under the continuous rotations that group approximates. On FashionMNIST, the analytic
NTK mean of an MLP is trained with no augmentation and with the full C4, C8 and C16
orbits of the training images (bilinear rotations for C8/C16, see
:func:`ntkequi.groups.rotations`), and evaluated on the C_m orbits (m = ``eval_order``,
finer than every training group) of FashionMNIST test images, MNIST digits and noise:
the relative invariance error of the logits at every angle of C_m, its mean over the
angles of each C_n (n dividing m), and the OSP under C_m.

    python experiments/partial_augmentation.py --data-dir DIR           # ~2 min on 2 CPU cores
    python experiments/partial_augmentation.py --data-dir DIR --preset paper

Writes runs/partial_augmentation[-paper]/ (one record per training group, resumable).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from .. import data, groups, kernels, metrics
from ..nn import ArchSpec
from ..runs import RunDir
from .protocol import Figure, Table, number_word, pyplot

NAME = "partial_augmentation"
USES_DATA = True
CPU_TIME = {"small": "30 s", "paper": "not measured"}

EVAL_SETS = ("fashion_mnist_test", "mnist", "noise")


@dataclasses.dataclass(frozen=True)
class PartialConfig:
    x64: ClassVar[bool] = True
    """train_orders: n of the C_n used for augmentation (1: none); eval_order: m of the
    finer C_m used for evaluation (every train order must divide it); time_multiples:
    training times in units of 1 / lambda_max of each augmented NTK (inf: converged)."""
    n_train: int = 64
    n_eval: int = 32
    arch: ArchSpec = ArchSpec(kind="mlp", depth=2, b_std=0.1, out_dim=10)
    train_orders: tuple = (1, 4, 8, 16)
    eval_order: int = 32
    time_multiples: tuple = (10.0, math.inf)
    diag_reg: float = 1e-6
    seed: int = 0

    def __post_init__(self):
        bad = [n for n in self.train_orders if self.eval_order % n]
        if bad:
            raise ValueError(f"eval_order {self.eval_order} must be a multiple of every train order; "
                             f"{bad} do not divide it")


Config = PartialConfig
PRESETS = {
    "small": PartialConfig(),
    "paper": PartialConfig(n_train=512, n_eval=256,
                           arch=ArchSpec(kind="cnn", depth=2, b_std=0.1, pool=True, out_dim=10),
                           eval_order=64),
}


def _problem(cfg: PartialConfig, data_dir=None):
    sets = data.splits(data.SplitConfig(n_train=cfg.n_train, n_val=0, n_test=cfg.n_eval, seed=cfg.seed),
                       data_dir=data_dir)
    f64 = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))
    x, labels = sets["train"]
    evals = {"fashion_mnist_test": f64(sets["test"][0]),
             "mnist": f64(data.ood_set("mnist", cfg.n_eval, cfg.seed, data_dir)),
             "noise": f64(data.ood_set("noise", cfg.n_eval, cfg.seed))}
    return f64(x), f64(np.eye(10)[labels] - 0.1), evals


def per_angle_error(f_orbit) -> np.ndarray:
    """``(m,)`` relative invariance error at each element of the evaluation group:
    ``mean_x ||f(g_k x) - f(x)|| / mean_x ||f(x)||`` from orbit predictions ``(m, N, k)``."""
    f = np.asarray(f_orbit)
    return np.linalg.norm(f - f[0], axis=-1).mean(axis=1) / np.linalg.norm(f[0], axis=-1).mean()


def run(cfg: PartialConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``; one record ``C{n}`` per training group with, per
    time and evaluation set, the per-angle error and the OSP under C_m."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    x, y, evals = _problem(cfg, data_dir)
    g_eval = groups.rotations(cfg.eval_order, (28, 28))
    ev = metrics.EvalOrbits.of(g_eval, {s: evals[s] for s in EVAL_SETS})
    mult = np.asarray(cfg.time_multiples, dtype=float)
    for n in cfg.train_orders:
        key = f"C{n}"
        if key in done:
            continue
        group = groups.rotations(n, (28, 28)) if n > 1 else None
        if progress:
            print(f"[{out.name}] NTK, augmentation {key} ({n * cfg.n_train} training images)", flush=True)
        lam = 2.0 / kernels.max_learning_rate(cfg.arch, x, group)
        pred = kernels.predict(cfg.arch, x, y, ev.x, mult / lam, group=group, diag_reg=cfg.diag_reg)
        per_time = []
        for i in range(len(mult)):
            per_set = {s: {"per_angle": per_angle_error(orb), "osp": metrics.orbit_same_predictions(orb, g_eval)[0]}
                       for s, orb in ev.orbits(pred.mean[i]).items()}
            per_time.append(per_set)
        done[key] = rd.record(key, order=n, lambda_max=lam, time_multiples=list(mult), per_time=per_time)
    return done


def mean_error(rec: dict, eval_set: str, sub_order: int, time_index: int = -1) -> float:
    """Mean per-angle error over the elements of C_{sub_order} (a subgroup of C_m)."""
    e = np.asarray(rec["per_time"][time_index][eval_set]["per_angle"])
    return float(e[:: len(e) // sub_order].mean())


def summary(cfg: PartialConfig, done: dict) -> str:
    """Mean invariance error under each C_n and the OSP under C_m, per training group."""
    m = cfg.eval_order
    lines = [f"relative invariance error of the NTK mean (t = {cfg.time_multiples[-1]} / lambda_max) "
             f"under C_n rotations (mean over the angles of C_n), and OSP under C{m}"]
    subs = sorted({n for n in cfg.train_orders if n > 1} | {m})
    for s in EVAL_SETS:
        lines.append(f"{s}:")
        lines.append(f"{'trained':>9} | " + " | ".join(f"{'C' + str(n):>8}" for n in subs)
                     + f" | {'OSP/' + str(m):>8}")
        for n in cfg.train_orders:
            rec = done.get(f"C{n}")
            if rec is None:
                continue
            lines.append(f"{'C' + str(n):>9} | " + " | ".join(f"{mean_error(rec, s, k):8.2e}" for k in subs)
                         + f" | {rec['per_time'][-1][s]['osp']:8.2f}")
    return "\n".join(lines)


def figure(cfg: PartialConfig, done: dict):
    """Left: error at every angle of C_m (FashionMNIST test images), one curve per training group;
    right: mean error under C_m vs the training group's order, per evaluation set."""
    plt = pyplot()
    m = cfg.eval_order
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    angles = 360.0 * np.arange(m) / m
    for i, n in enumerate(cfg.train_orders):
        rec = done.get(f"C{n}")
        if rec is None:
            continue
        e = np.asarray(rec["per_time"][-1]["fashion_mnist_test"]["per_angle"])
        label = "no augmentation" if n == 1 else f"C{n} orbit"
        axes[0].plot(angles[1:], e[1:], "o-", ms=3, color=f"C{i}", label=label)
        if n > 1:
            axes[0].plot(angles[:: m // n][1:], e[:: m // n][1:], "s", ms=7, mfc="none", color=f"C{i}")
    axes[0].set(yscale="log", xlabel="rotation angle (degrees)", ylabel="relative invariance error",
                title=f"FashionMNIST test images, every angle of C{m}\n(open squares: angles of the training group)")
    axes[0].legend(fontsize=7)
    orders = [n for n in cfg.train_orders if f"C{n}" in done]
    for j, s in enumerate(EVAL_SETS):
        axes[1].plot(orders, [mean_error(done[f"C{n}"], s, m) for n in orders], "o-", color=f"C{j}",
                     label=s)
    axes[1].set(xscale="log", yscale="log", xlabel="order n of the training group C_n (1: none)",
                ylabel=f"relative invariance error under C{m}",
                title=f"t = {cfg.time_multiples[-1]:g} / lambda_max, {cfg.arch.kind.upper()} NTK, "
                      f"{cfg.n_train} training images")
    axes[1].set_xticks(orders, [str(n) for n in orders])
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def error_table(cfg: PartialConfig, done: dict) -> Table:
    """Mean invariance error over the rotations of each C_k, per training group."""
    subs = sorted({n for n in cfg.train_orders if n > 1} | {cfg.eval_order})
    header = ["trained on"] + [f"$C_{{{k}}}$, test" for k in subs] + [f"$C_{{{cfg.eval_order}}}$, noise"]
    rows = []
    for n in cfg.train_orders:
        rec = done[f"C{n}"]
        rows.append(["none" if n == 1 else f"$C_{{{n}}}$"] + [mean_error(rec, "fashion_mnist_test", k) for k in subs]
                    + [mean_error(rec, "noise", cfg.eval_order)])
    cap = ("Relative invariance error of the NTK mean trained on the $C_n$ orbits of FashionMNIST images, "
           "averaged over the rotations of $C_k$, on test images and (last column) noise images.")
    return Table(header, rows, cap, "partial_augmentation")


def numbers(cfg: PartialConfig, done: dict) -> dict:
    """Mean error over the evaluation group per training group (``partial<Order>``; order 1:
    ``None``) on test images, MNIST digits and noise."""
    m, out = cfg.eval_order, {}
    for n in cfg.train_orders:
        word = "None" if n == 1 else number_word(n)
        rec = done[f"C{n}"]
        out.update({f"partial{word}": mean_error(rec, "fashion_mnist_test", m),
                    f"partialMnist{word}": mean_error(rec, "mnist", m),
                    f"partialNoise{word}": mean_error(rec, "noise", m)})
    return out


FIGURES = (Figure("partial_augmentation", figure,
                  "Partial augmentation on FashionMNIST: the NTK mean trained on the C4, C8 or C16 orbits "
                  "(or none), evaluated at every angle of the finer C32 (left) and on average over C32 "
                  "against the training group's order (right)."),)
TABLES = {"partial_augmentation": error_table}
