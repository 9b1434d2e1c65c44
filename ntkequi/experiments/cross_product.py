"""Equivariant (vector-valued) targets: emergent SO(3) equivariance for the cross product.

Inputs are pairs of 3-vectors ``x = (a, b)`` ``(N, 2, 3)``, the target is ``y = a x b``
``(N, 3)``, which rotates with the inputs: ``y(R a, R b) = R y(a, b)``. Training inputs
have ``a_z, b_z > 0`` (upper half-space), so the data alone do not pin down the
symmetry. For each augmentation — none, the full orbit of a finite rotation group
(C4 about z, tetrahedral T (12), octahedral O (24), icosahedral I (60), targets rotated
by the same matrices) or a fixed set of random rotations from SO(3) — the analytic NTK
mean of a ReLU MLP is evaluated over training time on in-distribution inputs, larger
inputs (x3, 'far') and inputs from the lower half-space ('flipped'), and its
equivariance error is measured under (i) the augmentation group and (ii) random rotations
from SO(3). Finite MLP ensembles trained on the O orbit (and without augmentation) give
the members' and the ensemble mean's errors against ensemble size.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .. import ensembles, groups, kernels, metrics
from ..nn import ArchSpec
from .._validate import check_member_dtype
from ..runs import RunDir
from .protocol import Figure, Num, Table, pyplot, time_label

NAME = "cross_product"
USES_DATA = False
CPU_TIME = {"small": "5 min", "paper": "not measured (meant for a GPU)"}

EVAL_SETS = ("in_dist", "far", "flipped")
FINITE = ("C4", "T", "O", "I")


@dataclasses.dataclass(frozen=True)
class CrossProductConfig:
    x64: ClassVar[bool] = True
    SAVED_BEFORE: ClassVar[dict] = {"member_dtype": "float64"}     # runs saved before the field
    """Cross-product experiment (saved beside its results).

    time_multiples: training times in units of ``1 / lambda_max`` of each augmented
        NTK (``inf``: converged). ensemble_*: finite ensembles trained with each of
        ``ensemble_augmentations`` (as the NTK), recorded at ``ensemble_times``
        (``t lambda_max``; learning rate ``lr_fraction * 2 / lambda_max``); their
        group error is measured under the augmentation group, or under
        ``reference_group`` for 'none' and 'so3'.
    """
    n_train: int = 32
    n_eval: int = 24
    depth: int = 2
    b_std: float = 0.5
    augmentations: tuple = ("none", "C4", "T", "O", "I", "so3")
    so3_augment: int = 60
    n_so3_eval: int = 16
    time_multiples: tuple = (0.1, 1.0, 10.0, 100.0, math.inf)
    diag_reg: float = 1e-8
    ensemble_augmentations: tuple = ("none", "C4", "T", "O", "I", "so3")
    reference_group: str = "O"
    ensemble_width: int = 512
    ensemble_sizes: tuple = (1, 2, 4, 8, 16)
    ensemble_times: tuple = (1.0, 10.0, 100.0)
    lr_fraction: float = 0.5
    seed: int = 0
    member_dtype: str = "float32"        # the finite members' precision (the kernels: float64)

    def __post_init__(self):
        check_member_dtype("member_dtype", self.member_dtype)


Config = CrossProductConfig
PRESETS = {
    "small": CrossProductConfig(),
    "paper": CrossProductConfig(n_train=128, n_eval=64, ensemble_width=2048,
                                ensemble_sizes=(1, 2, 4, 8, 16, 32, 64), ensemble_times=(1.0, 10.0, 100.0, 1000.0)),
}


def _half_space_pairs(key, n: int, sign: float, scale: float = 1.0):
    x = jax.random.normal(key, (n, 2, 3))
    return scale * x.at[..., 2].set(sign * jnp.abs(x[..., 2]))


def problem(cfg: CrossProductConfig):
    """``x (N, 2, 3)``, ``y = a x b (N, 3)``, eval sets ``{name: (n_eval, 2, 3)}``,
    and ``n_so3_eval`` Haar-random rotations ``(R, 3, 3)``."""
    ks = jax.random.split(jax.random.PRNGKey(cfg.seed), 6)
    x = _half_space_pairs(ks[0], cfg.n_train, 1.0)
    evals = {"in_dist": _half_space_pairs(ks[1], cfg.n_eval, 1.0),
             "far": _half_space_pairs(ks[2], cfg.n_eval, 1.0, 3.0),
             "flipped": _half_space_pairs(ks[3], cfg.n_eval, -1.0)}
    return x, cross(x), evals, groups.random_rotations3d(ks[4], cfg.n_so3_eval)


def cross(x):
    """``a x b`` for pairs ``(N, 2, 3)`` -> ``(N, 3)``."""
    return jnp.cross(x[:, 0], x[:, 1])


def spec(cfg: CrossProductConfig, width: int = 1) -> ArchSpec:
    return ArchSpec(kind="mlp", depth=cfg.depth, width=width, out_dim=3, b_std=cfg.b_std)


def _rotate(mats, x):
    """``(R, N, 2, 3)``: every pair rotated by every matrix."""
    return jnp.einsum("rij,nvj->rnvi", mats, x)


def _eval_inputs(group, evals, rots):
    """Per eval set: the group orbit (or the set itself) and its random rotations,
    concatenated; returns the flat inputs and slices to cut them apart."""
    parts, index = [], {}
    start = 0
    for name in EVAL_SETS:
        e = evals[name]
        orb = group.orbit(e) if group is not None else e[None]
        rot = _rotate(rots, e)
        for kind, arr in (("orbit", orb), ("so3", rot)):
            flat = arr.reshape((-1, 2, 3))
            index[(name, kind)] = (slice(start, start + flat.shape[0]), arr.shape[0])
            parts.append(flat)
            start += flat.shape[0]
    return jnp.concatenate(parts), index


def _errors(pred, group, index, rots) -> dict:
    """Equivariance errors of predictions ``(M_eval, 3)`` per eval set."""
    out = {}
    for name in EVAL_SETS:
        sl, n_orb = index[(name, "orbit")]
        orb = pred[sl].reshape(n_orb, -1, 3)
        rs, n_rot = index[(name, "so3")]
        rot = pred[rs].reshape(n_rot, -1, 3)
        rec = {"so3": metrics.transform_error(rot, orb[0], rots).relative,
               "norm": float(jnp.linalg.norm(orb[0], axis=-1).mean())}
        if group is not None:
            rec["group"] = metrics.equivariance_error(orb, group).relative
        out[name] = rec
    return out


def _group(name: str):
    return groups.rotations3d(name) if name in FINITE else None


def _predict(cfg, aug, x, y, x_eval, ts, so3_mats):
    arch = spec(cfg)
    if aug in FINITE:
        return kernels.predict(arch, x, y, x_eval, ts, group=_group(aug), diag_reg=cfg.diag_reg,
                           solver="structured").mean
    if aug == "so3":
        x = _rotate(so3_mats, x).reshape((-1, 2, 3))
        y = jnp.einsum("rij,nj->rni", so3_mats, y).reshape((-1, 3))
    return kernels.predict(arch, x, y, x_eval, ts, diag_reg=cfg.diag_reg).mean


def _lambda_max(cfg, aug, x, so3_mats) -> float:
    arch = spec(cfg)
    if aug == "so3":
        x = _rotate(so3_mats, x).reshape((-1, 2, 3))
    return 2.0 / kernels.max_learning_rate(arch, x, _group(aug) if aug in FINITE else None)


def run(cfg: CrossProductConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) the experiment into ``out``; returns ``{key: record}``."""
    for a in cfg.augmentations:
        if a not in ("none", "so3") + FINITE:
            raise ValueError(f"unknown augmentation {a!r}; use none, so3 or one of {FINITE}")
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    x, y, evals, rots = problem(cfg)
    so3_mats = groups.random_rotations3d(jax.random.PRNGKey(cfg.seed + 1000), cfg.so3_augment)
    mult = np.asarray(cfg.time_multiples, dtype=float)
    for _, aug in rd.pending(cfg.augmentations):
        print(f"[{out.name}] NTK, augmentation {aug}", flush=True)
        group = _group(aug)
        x_eval, index = _eval_inputs(group, evals, rots)
        lam = _lambda_max(cfg, aug, x, so3_mats)
        mean = _predict(cfg, aug, x, y, x_eval, mult / lam, so3_mats)
        per_time = [_errors(mean[i], group, index, rots) for i in range(len(mult))]
        done[aug] = rd.record(aug, order=1 if aug == "none" else (cfg.so3_augment if aug == "so3"
                                                                   else group.order),
                              lambda_max=lam, time_multiples=list(mult), per_time=per_time)
    for key, aug in rd.pending(cfg.ensemble_augmentations, "ensemble_{}".format):
        group = _group(aug)
        g_eval = group if group is not None else groups.rotations3d(cfg.reference_group)
        lam = _lambda_max(cfg, aug, x, so3_mats)
        lr = cfg.lr_fraction * 2.0 / lam
        steps = [int(round(m / (2 * cfg.lr_fraction))) for m in cfg.ensemble_times]
        xt, yt = x, y
        if aug == "so3":     # the same fixed random rotations as the NTK
            xt = _rotate(so3_mats, x).reshape((-1, 2, 3))
            yt = jnp.einsum("rij,nj->rni", so3_mats, y).reshape((-1, 3))
        tcfg = ensembles.TrainConfig(ensemble_size=max(cfg.ensemble_sizes), steps=max(steps),
                                     learning_rate=lr, augmentation="orbit" if group is not None else "none",
                                     record_steps=tuple(steps), seed=cfg.seed, dtype=cfg.member_dtype)
        x_eval, index = _eval_inputs(g_eval, evals, rots)
        print(f"[{out.name}] ensemble ({aug}): {tcfg.ensemble_size} members, width {cfg.ensemble_width}",
              flush=True)
        res = ensembles.train(spec(cfg, cfg.ensemble_width), tcfg, ensembles.TrainingData(xt, yt, x_eval, group),
                              run_dir=out / key, progress=progress)
        ref = _predict(cfg, aug, x, y, x_eval, np.asarray(steps) * lr, so3_mats)
        recs = []
        for i, s in enumerate(steps):
            members = res.members[list(res.steps).index(s)]
            recs.append({"step": s, "t_lambda_max": s * lr * lam,
                         "ensemble": [_errors(members[:m].mean(0), g_eval, index, rots)
                                      for m in cfg.ensemble_sizes],
                         "members": [_errors(mb, g_eval, index, rots) for mb in members],
                         "ntk": _errors(ref[i], g_eval, index, rots),
                         "distance_to_ntk": [metrics.ntk_distance(members[:m].mean(0), ref[i])
                                             for m in cfg.ensemble_sizes]})
        done[key] = rd.record(key, learning_rate=lr, group_evaluated=g_eval.name, records=recs)
    return done


def _member_mean(rec, name, kind):
    return float(np.mean([m[name][kind] for m in rec["members"]]))


def summary(cfg: CrossProductConfig, done: dict) -> str:
    """Markdown: NTK equivariance errors at each time; ensembles vs members."""
    lines = ["| augmentation | |G| | t lambda_max | group err. in / far / flipped | "
             "SO(3) err. in / far / flipped |", "|---|---|---|---|---|"]
    for aug in cfg.augmentations:
        r = done[aug]
        for m, p in zip(cfg.time_multiples, r["per_time"]):
            grp = " / ".join(f"{p[s]['group']:.1e}" for s in EVAL_SETS) if "group" in p["in_dist"] else "-"
            so3 = " / ".join(f"{p[s]['so3']:.2g}" for s in EVAL_SETS)
            lines.append(f"| {aug} | {r['order']} | {m:g} | {grp} | {so3} |")
    lines += ["", f"Finite ensembles (width {cfg.ensemble_width}, M = {max(cfg.ensemble_sizes)}), flipped set; "
              f"group error under the augmentation group ({cfg.reference_group} for none / so3):", "",
              "| training | t lambda_max | group err. members (mean) / ensemble / NTK | "
              "SO(3) err. members (mean) / ensemble / NTK | distance ensemble-NTK |", "|---|---|---|---|---|"]
    for aug in cfg.ensemble_augmentations:
        for rec in done[f"ensemble_{aug}"]["records"]:
            e, n = rec["ensemble"][-1]["flipped"], rec["ntk"]["flipped"]
            lines.append(f"| {aug} | {rec['t_lambda_max']:.3g} | {_member_mean(rec, 'flipped', 'group'):.3f} / "
                         f"{e['group']:.3f} / {n['group']:.1e} | {_member_mean(rec, 'flipped', 'so3'):.3f} / "
                         f"{e['so3']:.3f} / {n['so3']:.3f} | {rec['distance_to_ntk'][-1]:.3f} |")
    return "\n".join(lines)


def figure(cfg: CrossProductConfig, done: dict):
    """Returns the matplotlib Figure: (a) SO(3) error vs time per augmentation (flipped inputs); (b) at t = inf vs group
    order; (c) ensembles vs members vs M."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    mult = np.asarray(cfg.time_multiples, dtype=float)
    xs = np.where(np.isfinite(mult), mult, mult[np.isfinite(mult)].max() * 10)
    for i, aug in enumerate(cfg.augmentations):
        r = done[aug]
        axes[0].plot(xs, [p["flipped"]["so3"] for p in r["per_time"]], "o-", color=f"C{i}",
                     label=f"{aug} (|G|={r['order']})")
        if aug in FINITE:
            axes[0].plot(xs, [max(p["flipped"]["group"], 1e-17) for p in r["per_time"]], "x:", color=f"C{i}")
    axes[0].set(xscale="log", yscale="log", xlabel="t lambda_max (rightmost: t = inf)",
                ylabel="relative equivariance error", title="NTK mean, flipped inputs\n(solid: SO(3); dotted: own group)")
    fin = [a for a in cfg.augmentations if a in FINITE]
    for j, s in enumerate(EVAL_SETS):
        axes[1].plot([done[a]["order"] for a in fin], [done[a]["per_time"][-1][s]["so3"] for a in fin],
                     "o-", color=f"C{j}", label=s)
        if "none" in done:
            axes[1].axhline(done["none"]["per_time"][-1][s]["so3"], color=f"C{j}", ls=":", lw=1)
    axes[1].set(xscale="log", yscale="log", xlabel="|G| (C4, T, O, I)", ylabel="SO(3) equivariance error",
                title="t = inf: finer groups, smaller SO(3) error\n(dotted: no augmentation)")
    for i, aug in enumerate(cfg.augmentations):
        if f"ensemble_{aug}" not in done:
            continue
        rec = done[f"ensemble_{aug}"]["records"][-1]
        axes[2].plot(cfg.ensemble_sizes, [e["flipped"]["so3"] for e in rec["ensemble"]], "o-", color=f"C{i}",
                     label=f"{aug}: ensemble mean")
        axes[2].axhline(_member_mean(rec, "flipped", "so3"), color=f"C{i}", ls="--", lw=1)
    axes[2].set(xscale="log", yscale="log", xlabel="ensemble size M",
                ylabel="SO(3) equivariance error (flipped)",
                title=f"finite MLP ensembles, width {cfg.ensemble_width}, t lambda_max = "
                      f"{cfg.ensemble_times[-1]:g}\n(dashed: mean over members)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig




def converged_table(cfg: CrossProductConfig, done: dict) -> Table:
    """Equivariance errors of the converged NTK mean per augmentation and evaluation set."""
    header = ["augmentation", "$|G|$", "own group, flipped", "SO(3), in", "SO(3), far", "SO(3), flipped"]
    rows = []
    for aug in cfg.augmentations:
        r = done[aug]
        p = r["per_time"][-1]
        own = p["flipped"]["group"] if "group" in p["flipped"] else "--"
        rows.append([aug, str(r["order"]), own] + [p[s]["so3"] for s in ("in_dist", "far", "flipped")])
    cap = ("Relative equivariance error of the converged ($t=\\infty$) NTK mean for the cross product, "
           "under the augmentation group and under random rotations from SO(3), on in-distribution, "
           "larger (far) and lower-half-space (flipped) inputs.")
    return Table(header, rows, cap, "cross_product")


def time_table(cfg: CrossProductConfig, done: dict) -> Table:
    """SO(3) error of the NTK mean on flipped inputs over training time."""
    header = ["augmentation", "$|G|$", "own group, max over $t$"] + [("SO(3), ", time_label(m))
                                                                      for m in cfg.time_multiples]
    rows = []
    for aug in cfg.augmentations:
        r = done[aug]
        own = (max(p["flipped"]["group"] for p in r["per_time"]) if "group" in r["per_time"][0]["flipped"]
               else "--")
        rows.append([aug, str(r["order"]), own] + [p["flipped"]["so3"] for p in r["per_time"]])
    cap = ("Relative equivariance error of the NTK mean for the cross product on flipped (lower half-space) "
           "inputs over training time: under the augmentation group (largest over $t$) and under random "
           "rotations from SO(3).")
    return Table(header, rows, cap, "cross_product_time")


def ensembles_table(cfg: CrossProductConfig, done: dict) -> Table:
    """Finite ensembles against members and the NTK at the last recorded time."""
    header = ["training", "group: members / ensemble / NTK", "SO(3): members / ensemble / NTK",
              r"distance to $\mu_t$"]
    rows = []
    for aug in cfg.ensemble_augmentations:
        rec = done[f"ensemble_{aug}"]["records"][-1]
        cells = []
        for kind in ("group", "so3"):
            mem = sum(m["flipped"][kind] for m in rec["members"]) / len(rec["members"])
            cells.append((mem, " / ", rec["ensemble"][-1]["flipped"][kind], " / ", rec["ntk"]["flipped"][kind]))
        rows.append([aug] + cells + [rec["distance_to_ntk"][-1]])
    last = done[f"ensemble_{cfg.ensemble_augmentations[0]}"]["records"][-1]
    cap = (f"Finite MLP ensembles (width {cfg.ensemble_width}, $M={max(cfg.ensemble_sizes)}$) for the cross "
           r"product at $t\lambda_{max}=", Num(last["t_lambda_max"]), "$, flipped inputs: relative equivariance "
           f"error of single members (mean), the ensemble mean and the NTK mean, under the augmentation group "
           f"({cfg.reference_group} for none and random rotations) and under SO(3); relative distance of the "
           r"ensemble mean to $\mu_t$.")
    return Table(header, rows, cap, "cross_product_ensembles")


def numbers(cfg: CrossProductConfig, d: dict) -> dict:
    """SO(3) errors at t = inf per group, the largest own-group error, and the first
    ensemble record of the O orbit."""
    out = {}
    for aug, nm in (("T", "T"), ("O", "O"), ("I", "I"), ("none", "None")):
        if aug in d:
            out[f"crossSO{nm}"] = d[aug]["per_time"][-1]["flipped"]["so3"]
    grp = [d[a]["per_time"][-1][s]["group"] for a in FINITE if a in d for s in EVAL_SETS]
    if grp:
        out["crossGroupMax"] = max(grp)
    if "ensemble_O" in d:
        rec = d["ensemble_O"]["records"][0]
        out.update(crossEnsFirstT=rec["t_lambda_max"], crossEnsFirstO=rec["ensemble"][-1]["flipped"]["so3"],
                   crossMembersFirstO=sum(m["flipped"]["so3"] for m in rec["members"]) / len(rec["members"]))
    return out


FIGURES = (Figure("cross_product", figure,
                  "Vector targets (cross product in R^3): SO(3) equivariance error of the NTK mean over "
                  "time for each augmentation group, at convergence against the group's order, and "
                  "finite ensembles against members."),)
TABLES = {"cross_product_time": time_table, "cross_product_ensembles": ensembles_table,
          "cross_product": converged_table}
