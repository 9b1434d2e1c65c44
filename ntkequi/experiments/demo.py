"""``ntkequi demo`` (``ntkequi run demo``): analytic NTK ensembles with and without full-orbit augmentation on toy data.

Training data are points in a 60-degree wedge of the plane with a rotation-invariant
target; the group is C_n acting on the plane. For each training time t the demo
computes the infinite ensemble's mean mu_t (plain and C_n-augmented) on the C_n
orbits of three evaluation sets -- in-distribution points, a ring outside the
training radii, and Gaussian noise -- and reports the relative invariance error.
Emergent equivariance predicts ~0 (float64 rounding) for the augmented ensemble
on every set at every t, and O(1) for the plain one.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import data, groups, metrics
from ..kernels import Predictor
from ..nn import ArchSpec
from ..runs import RunDir
from .protocol import Figure, Table, pyplot

NAME = "demo"
USES_DATA = False
CPU_TIME = {"small": "25 s"}
EVAL_SETS = ("in_distribution", "ring", "noise")
MODES = ("plain", "augmented")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Everything that determines the demo's numbers."""
    arch: ArchSpec = ArchSpec(kind="mlp", depth=2, activation="relu", b_std=1.0)
    group_order: int = 8
    n_train: int = 64
    n_eval: int = 32
    times: tuple = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, math.inf)
    diag_reg: float = 1e-4
    seed: int = 0
    x64: bool = True
    circle_radius: float = 1.25
    circle_points: int = 181


def _eval_sets(cfg: DemoConfig, key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "in_distribution": data.wedge_points(k1, cfg.n_eval),
        "ring": data.ring_points(k2, cfg.n_eval),
        "noise": data.noise_points(k3, cfg.n_eval),
    }


Config = DemoConfig
PRESETS = {"small": DemoConfig()}


def run(cfg: DemoConfig, out: str | Path, *, data_dir=None, progress: bool = True,
        overwrite: bool = False) -> dict:
    """Run (or resume) the demo into ``out``; returns ``{key: record}`` (``data_dir`` unused)."""
    from tqdm.auto import tqdm

    run_dir = RunDir(out, cfg, overwrite=overwrite)
    group = groups.planar_rotations(cfg.group_order)
    groups.check_group(group)
    kx, ke = jax.random.split(jax.random.PRNGKey(cfg.seed))
    x_train = data.wedge_points(kx, cfg.n_train)
    y_train = data.radial_target(x_train)
    eval_sets = _eval_sets(cfg, ke)

    done = run_dir.done()
    units = [(m, s) for m in MODES for s in EVAL_SETS] + [(m, "circle") for m in MODES]
    todo = [u for _, u in run_dir.pending(units, "/".join)]
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc="ntkequi demo",
               unit="prediction", disable=not progress)
    predictors = {}            # one training solve per mode, built for its first unit
    for mode, set_name in todo:
        t0 = time.perf_counter()
        if mode not in predictors:
            predictors[mode] = Predictor(cfg.arch, x_train, y_train, diag_reg=cfg.diag_reg,
                                         group=group if mode == "augmented" else None)
        mu = predictors[mode]
        if set_name == "circle":
            ang = np.linspace(0, 2 * np.pi, cfg.circle_points)
            xs = cfg.circle_radius * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
            pred = mu(xs, math.inf)
            rec = run_dir.record(f"{mode}/circle", mode=mode, eval_set="circle",
                                 angle=ang, mean=np.asarray(pred.mean[0, :, 0]),
                                 target=np.asarray(data.radial_target(xs)[:, 0]),
                                 seconds=time.perf_counter() - t0)
        else:
            x = eval_sets[set_name]
            x_orbit = group.orbit(x).reshape(-1, 2)
            pred = mu(x_orbit, cfg.times)
            f_orbit = metrics.orbit_predictions(pred.mean, group)          # (T, |G|, N, 1)
            errs = [metrics.equivariance_error(f_orbit[i], group) for i in range(len(cfg.times))]
            mse = jnp.mean((f_orbit[:, 0] - data.radial_target(x)[None]) ** 2, axis=(1, 2))
            rec = run_dir.record(f"{mode}/{set_name}", mode=mode, eval_set=set_name,
                                 times=list(cfg.times),
                                 invariance_abs=[e.absolute for e in errs],
                                 invariance_rel=[e.relative for e in errs],
                                 mse=np.asarray(mse), seconds=time.perf_counter() - t0)
        done[rec["key"]] = rec
        bar.update(1)
    bar.close()
    return done


def summary(cfg: DemoConfig, done: dict) -> str:
    """Plain-text table of relative invariance errors (rows: t; columns: set x mode)."""
    cols = [(s, m) for s in EVAL_SETS for m in MODES]
    head = f"{'t':>8} | " + " | ".join(f"{s[:7] + ' ' + m[:5]:>13}" for s, m in cols)
    lines = [f"relative invariance error of the ensemble mean mu_t under {cfg.group_order}-fold "
             f"rotations (plain = no augmentation, augm = full C{cfg.group_order} orbit)",
             head, "-" * len(head)]
    for i, t in enumerate(cfg.times):
        vals = [done[f"{m}/{s}"]["invariance_rel"][i] for s, m in cols]
        lines.append(f"{t:>8g} | " + " | ".join(f"{float(v):>13.2e}" for v in vals))
    return "\n".join(lines)


def figure(cfg: DemoConfig, done: dict):
    """Invariance error vs t (left) and the t=inf predictions around a circle (right);
    returns the matplotlib Figure."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    finite = [t for t in cfg.times if math.isfinite(t)]
    t_inf = (max(finite) * 10) if finite else 1.0
    tt = [t if math.isfinite(t) else t_inf for t in cfg.times]
    colors = {"in_distribution": "C0", "ring": "C1", "noise": "C2"}
    for s in EVAL_SETS:
        for m, ls, mk in (("plain", "--", "o"), ("augmented", "-", "s")):
            v = [max(float(e), 1e-17) for e in done[f"{m}/{s}"]["invariance_rel"]]
            ax1.plot(tt, v, ls=ls, marker=mk, color=colors[s], label=f"{s}, {m}")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xticks(tt, [f"{t:g}" if math.isfinite(t) else "inf" for t in cfg.times])
    ax1.set_xlabel("training time t = learning rate x steps (summed MSE loss)")
    ax1.set_ylabel("relative invariance error of mu_t")
    ax1.set_title(f"C{cfg.group_order} on the plane, NTK of a {cfg.arch.depth}-layer "
                  f"{cfg.arch.activation} MLP")
    ax1.legend(fontsize=7)
    c_plain, c_aug = done["plain/circle"], done["augmented/circle"]
    ang = np.degrees(np.asarray(c_plain["angle"], dtype=float))
    ax2.plot(ang, c_plain["target"], color="k", lw=1, label="target")
    ax2.plot(ang, c_plain["mean"], "--", color="C3", label="mu_inf, plain")
    ax2.plot(ang, c_aug["mean"], "-", color="C4", label=f"mu_inf, C{cfg.group_order}-augmented")
    ax2.axvspan(0, 60, color="0.9", label="training wedge")
    ax2.set_xlabel(f"polar angle on the circle |x| = {cfg.circle_radius} (degrees)")
    ax2.set_ylabel("prediction (dimensionless)")
    ax2.set_title("ensemble mean at t = inf around a circle")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def paper_table(cfg: DemoConfig, done: dict) -> Table:
    """Relative invariance error of mu_t per time, set and mode."""
    sets = EVAL_SETS
    header = ["$t$"] + [f"{s.replace('_', ' ')}, {m}" for s in sets for m in MODES]
    rows = [[t] + [done[f"{m}/{s}"]["invariance_rel"][i] for s in sets for m in MODES]
            for i, t in enumerate(cfg.times)]
    cap = (f"Relative C{cfg.group_order} invariance error of the NTK mean $\\mu_t$ on the plane, without "
           "(plain) and with full-orbit augmentation.")
    return Table(header, rows, cap, "demo")


def numbers(cfg: DemoConfig, done: dict) -> dict:
    """The largest augmented and the smallest plain invariance error over sets and times."""
    aug = max(max(float(v) for v in done[f"augmented/{s}"]["invariance_rel"]) for s in EVAL_SETS)
    plain = min(min(float(v) for v in done[f"plain/{s}"]["invariance_rel"]) for s in EVAL_SETS)
    return {"demoAugMax": aug, "demoPlainMin": plain}


FIGURES = (Figure("demo", figure,
                  "Analytic NTK ensembles on the plane: invariance error of mu_t under C8 against training "
                  "time, plain and C8-augmented (left), and the converged means around a circle (right)."),)
TABLES = {"demo": paper_table}
