"""Ensemble sweeps: finite deep ensembles vs members vs the NTK, with full, partial and no augmentation.

For a problem (group, training data, evaluation sets, architecture family) and each
augmentation mode (none; full orbit; a subgroup) and each width, one ensemble of
``max(ensemble_sizes)`` members is trained by full-batch gradient descent on the summed
MSE (learning rate ``lr_fraction`` times the largest stable one of the orbit-augmented
NTK), and its predictions on the group orbits of the evaluation sets are recorded at
several steps. Reported per record step: the invariance error of single members, of the
mean of the first M members for each M, and of the analytic NTK mean mu_t at the same t,
and the distance of the ensemble mean from mu_t. Shared by the experiments
:mod:`~ntkequi.experiments.toy_ensembles`, :mod:`~ntkequi.experiments.ising` and
:mod:`~ntkequi.experiments.fmnist_ntk`, which define the problems; the figures, tables
and numbers they declare are built here.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Callable, ClassVar

import jax.numpy as jnp
import numpy as np

from .. import ensembles, metrics
from .._validate import check_member_dtype
from ..groups import Group
from ..kernels import Predictor, max_learning_rate
from ..nn import ArchSpec
from ..runs import RunDir
from .protocol import Figure, Table, pyplot, tex_escape

MODES = ("none", "orbit", "subgroup")


@dataclasses.dataclass(frozen=True)
class Problem:
    """group; x ``(N, ...)``, y ``(N, k)``; evals: name -> inputs ``(n_eval, ...)``;
    spec(width) -> ArchSpec."""
    group: Group
    x: object
    y: object
    evals: dict
    spec: Callable[[int], ArchSpec]


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains: widths, ensemble sizes, steps and record steps of full-batch
    gradient descent at ``lr_fraction`` of the largest stable step, and ``member_dtype``,
    the precision of the members (float32; the NTK side is float64 regardless; runs saved
    before this field trained float64 members and read back as such)."""
    SAVED_BEFORE: ClassVar[dict] = {"member_dtype": "float64"}
    subgroup_step: int = 2
    widths: tuple = (64, 256)
    ensemble_sizes: tuple = (1, 2, 4, 8, 16, 32)
    steps: int = 1000
    record_steps: tuple = (0, 10, 100, 1000)
    lr_fraction: float = 0.5           # of 2 / lambda_max of the orbit-augmented NTK
    seed: int = 0
    member_dtype: str = "float32"      # ensembles.TrainConfig.dtype of the members

    def __post_init__(self):
        check_member_dtype("member_dtype", self.member_dtype)


def _inv(f_orbit, group):
    return metrics.equivariance_error(f_orbit, group).relative


def run(problem: Problem, cfg: SweepConfig, out: Path, config=None, progress: bool = True,
        overwrite: bool = False) -> dict:
    """Run (or resume) the sweep into ``out``; ``config`` (saved as the run's config)
    must determine ``problem`` and ``cfg``. Build the problem's arrays in float64 (the
    experiments' configs ask the runner for it); float32 data limit the NTK's invariance
    to float32 rounding (~1e-8 here), and a warning says so."""
    run_dir = RunDir(out, config if config is not None else cfg, overwrite=overwrite)
    group, x, y = problem.group, problem.x, problem.y
    if jnp.asarray(x).dtype != jnp.float64:
        warnings.warn(f"problem data are {jnp.asarray(x).dtype}: NTK invariance is then limited to "
                      f"that precision; enable jax_enable_x64 before building the problem")
    names = list(problem.evals)
    ev = metrics.EvalOrbits.of(group, problem.evals)
    x_eval = ev.x
    lr = cfg.lr_fraction * max_learning_rate(problem.spec(min(cfg.widths)), x, group)
    done = run_dir.done()
    predictors, preds = {}, {}      # the analytic kernel does not depend on the width: one solve per mode
    for mode in MODES:
        for key, width in run_dir.pending(cfg.widths, lambda w: f"{mode}/width{w}"):
            spec = problem.spec(width)
            tcfg = ensembles.TrainConfig(
                ensemble_size=max(cfg.ensemble_sizes), steps=cfg.steps, learning_rate=lr,
                augmentation=mode, subgroup_step=cfg.subgroup_step,
                record_steps=cfg.record_steps, seed=cfg.seed, dtype=cfg.member_dtype)
            print(f"[{out.name}] {key}: {tcfg.ensemble_size} {cfg.member_dtype} members, lr={lr:.3g}", flush=True)
            res = ensembles.train(spec, tcfg, ensembles.TrainingData(x, y, x_eval, group),
                                  run_dir=run_dir.path / "ensembles" / key.replace("/", "_"), progress=progress)
            # the infinite-width limit of the same training set
            x_aug, y_aug = ensembles.training_set(group, tcfg, x, y)
            if mode not in predictors:
                predictors[mode] = Predictor(problem.spec(min(cfg.widths)), x_aug, y_aug, compute_cov=True)
            if (mode, tuple(res.times(lr))) not in preds:
                preds[mode, tuple(res.times(lr))] = predictors[mode](x_eval, res.times(lr), compute_cov=True)
            pred = preds[mode, tuple(res.times(lr))]
            rec = {"mode": mode, "width": width, "steps": res.steps, "times": res.times(lr),
                   "group": group.name, "eval_sets": names}
            for s in names:
                sl = ev.slice(s)
                per_step = []
                for i in range(len(res.steps)):
                    members = res.members[i, :, sl]
                    orbit = lambda f: metrics.orbit_predictions(f, group)
                    member_errs = [_inv(orbit(m), group) for m in members]
                    per_step.append({
                        "members": float(np.mean(member_errs)),
                        "members_std": float(np.std(member_errs)),
                        "ensemble": [_inv(orbit(members[:m].mean(0)), group) for m in cfg.ensemble_sizes],
                        # spread of the mean of M over the disjoint groups of M members (nan: only one group)
                        "ensemble_std": [float(np.std([_inv(orbit(members[k:k + m].mean(0)), group)
                                                       for k in range(0, len(members) - m + 1, m)]))
                                         if len(members) >= 2 * m else float("nan")
                                         for m in cfg.ensemble_sizes],
                        "ntk": _inv(orbit(pred.mean[i, sl]), group) if res.steps[i] > 0 else float("nan"),
                        "distance_to_ntk": [metrics.ntk_distance(members[:m].mean(0), pred.mean[i, sl])
                                            if res.steps[i] > 0 else float("nan")
                                            for m in cfg.ensemble_sizes],
                        # mean squared invariance error of the mean of M members, measured and
                        # predicted from the NTK ensemble's covariance (and mean) at the same time
                        "ensemble_msq": [metrics.mean_squared_invariance_error(orbit(members[:m].mean(0)), group)
                                         for m in cfg.ensemble_sizes],
                        "predicted_msq": [_predicted_msq(pred, i, sl, group, m) for m in cfg.ensemble_sizes],
                    })
                rec[s] = per_step
            done[key] = run_dir.record(key, **rec)
    return done


def _predicted_msq(pred, i: int, sl: slice, group, m: int) -> float:
    """:func:`ntkequi.metrics.predicted_invariance_error` of an M-member mean at time index
    ``i`` on the evaluation rows ``sl`` (group-major orbit points) of an NTK prediction with
    covariance."""
    cov_orbit = metrics.orbit_covariance(pred.cov[i][sl, sl], group.order, (sl.stop - sl.start) // group.order)
    mean = metrics.orbit_predictions(pred.mean[i, sl], group)
    return metrics.predicted_invariance_error(cov_orbit, mean.shape[-1], m, mean_orbit=mean)


COLORS = {"none": "C3", "orbit": "C0", "subgroup": "C2"}


def _labels(group_name: str, cfg) -> dict:
    return {"none": "no augmentation", "orbit": f"{group_name} orbit",
            "subgroup": f"subgroup (every {cfg.subgroup_step}. element)"}


def _meta(done: dict):
    first = next(iter(done.values()))
    return first["group"], list(first["eval_sets"])


def _nan(v):
    return np.asarray([float(x) for x in v], dtype=float)


def figure_size(cfg: SweepConfig, done: dict):
    """(a) invariance error vs ensemble size M at the last step and the widest network,
    one panel per evaluation set: mean of M members (error bars: std over disjoint groups
    of M), members (dashed, band: std over members), NTK mu_t (dotted)."""
    plt = pyplot()
    group, names = _meta(done)
    labels, width, sizes = _labels(group, cfg), max(cfg.widths), np.asarray(cfg.ensemble_sizes)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.2), squeeze=False)
    for ax, s in zip(axes[0], names):
        for mode in MODES:
            last = done[f"{mode}/width{width}"][s][-1]
            c = COLORS[mode]
            ax.errorbar(sizes, _nan(last["ensemble"]), yerr=_nan(last.get("ensemble_std", [0] * len(sizes))),
                        fmt="o-", color=c, capsize=3, label=f"ensemble mean, {labels[mode]}")
            m, sd = last["members"], last.get("members_std", 0.0)
            ax.axhline(m, ls="--", color=c, lw=1)
            ax.axhspan(max(m - sd, 1e-30), m + sd, color=c, alpha=0.08)
            ax.axhline(max(float(last["ntk"]), 1e-17), ls=":", color=c, lw=1.5)
        ref = done[f"orbit/width{width}"][s][-1]["ensemble"][0]
        ax.plot(sizes, ref / np.sqrt(sizes), "k-", lw=0.8, label="1/sqrt(M)")
        ax.set(xscale="log", yscale="log", xlabel="ensemble size M", ylabel=f"relative {group} invariance error",
               title=f"{s} inputs, width {width}, step {cfg.steps}\ndashed: members, dotted: NTK mu_t")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_width(cfg: SweepConfig, done: dict):
    """(b) full-orbit augmentation vs width (last step, off-manifold set): invariance
    error of members, of the mean of all members and of mu_t; distance of the mean of M
    members from mu_t for each M."""
    plt = pyplot()
    group, names = _meta(done)
    s = names[-1]
    widths = np.asarray(sorted(cfg.widths))
    recs = [done[f"orbit/width{w}"][s][-1] for w in widths]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax = axes[0]
    ax.errorbar(widths, [r["members"] for r in recs], yerr=[r.get("members_std", 0.0) for r in recs],
                fmt="s--", color="C1", capsize=3, label="single members (std over members)")
    ax.plot(widths, [r["ensemble"][-1] for r in recs], "o-", color="C0",
            label=f"ensemble mean, M={max(cfg.ensemble_sizes)}")
    ax.plot(widths, [max(float(r["ntk"]), 1e-17) for r in recs], "^:", color="C2", label="NTK mu_t")
    ax.set(xscale="log", yscale="log", xlabel="width", ylabel=f"relative {group} invariance error",
           title=f"{group} orbit augmentation, {s} inputs, step {cfg.steps}")
    ax.legend(fontsize=7)
    ax = axes[1]
    for k, m in enumerate(cfg.ensemble_sizes):
        ax.plot(widths, [r["distance_to_ntk"][k] for r in recs], "o-", label=f"M={m}")
    ax.set(xscale="log", yscale="log", xlabel="width", ylabel="||ensemble mean - mu_t|| / ||mu_t||",
           title=f"distance from the NTK mean ({s} inputs)")
    ax.legend(fontsize=7, ncol=2)
    from matplotlib.ticker import NullFormatter
    for ax in axes:
        ax.set_xticks(widths, [str(int(w)) for w in widths])
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    return fig


def figure_time(cfg: SweepConfig, done: dict):
    """(c) over training (widest network): invariance error of the ensemble mean (all
    members), of members and of mu_t, full-orbit augmentation (solid) and none (faint),
    one panel per evaluation set (in distribution and off the data manifold)."""
    plt = pyplot()
    group, names = _meta(done)
    width = max(cfg.widths)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.2), squeeze=False)
    for ax, s in zip(axes[0], names):
        for mode, alpha in (("orbit", 1.0), ("none", 0.35)):
            rec = done[f"{mode}/width{width}"]
            steps = np.asarray(rec["steps"], dtype=float)
            pos = steps > 0
            per = [r for r, p in zip(rec[s], pos) if p]
            lab = _labels(group, cfg)[mode]
            ax.errorbar(steps[pos], [r["ensemble"][-1] for r in per], fmt="o-", color="C0", alpha=alpha,
                        label=f"ensemble mean (M={max(cfg.ensemble_sizes)}), {lab}")
            ax.errorbar(steps[pos], [r["members"] for r in per], yerr=[r.get("members_std", 0.0) for r in per],
                        fmt="s--", color="C1", alpha=alpha, capsize=3, label=f"members, {lab}")
            ax.plot(steps[pos], [max(float(r["ntk"]), 1e-17) for r in per], "^:", color="C2", alpha=alpha,
                    label=f"NTK mu_t, {lab}")
        ax.set(xscale="log", yscale="log", xlabel="gradient-descent step",
               ylabel=f"relative {group} invariance error", title=f"{s} inputs, width {width}")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def figure_noise(cfg: SweepConfig, done: dict):
    """(d) the invariance error of the M-member mean as sampling noise: mean squared
    invariance error against M at the last step, measured for every width (markers) and
    predicted from the NTK covariance (line, width-independent), full-orbit augmentation
    (and no augmentation, faint), one panel per evaluation set."""
    plt = pyplot()
    group, names = _meta(done)
    sizes = np.asarray(cfg.ensemble_sizes)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.2), squeeze=False)
    for ax, s in zip(axes[0], names):
        for mode, alpha in (("orbit", 1.0), ("none", 0.3)):
            for k, w in enumerate(sorted(cfg.widths)):
                last = done[f"{mode}/width{w}"][s][-1]
                if "ensemble_msq" not in last:
                    continue
                ax.plot(sizes, last["ensemble_msq"], "o", color=f"C{k}", alpha=alpha,
                        label=f"measured, width {w}" if mode == "orbit" else None)
            last = done[f"{mode}/width{max(cfg.widths)}"][s][-1]
            if "predicted_msq" in last:
                ax.plot(sizes, last["predicted_msq"], "k-" if mode == "orbit" else "k:", alpha=alpha,
                        label="NTK covariance prediction" + ("" if mode == "orbit" else ", no augmentation"))
        ax.set(xscale="log", yscale="log", xlabel="ensemble size M",
               ylabel=f"mean squared {group} invariance error", title=f"{s} inputs, step {cfg.steps}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def table(done: dict, cfg: SweepConfig, group_name: str, eval_set: str) -> str:
    """Invariance errors at the last step for the widest network (members, means of M,
    NTK) and the distance of the means of M members from mu_t for every width."""
    width = max(cfg.widths)
    lines = [f"relative {group_name} invariance error at step {cfg.steps}, width {width}, {eval_set} inputs",
             f"{'mode':>9} | {'member':>8} | " + " | ".join(f"M={m:<4}" for m in cfg.ensemble_sizes) + " |    NTK"]
    for mode in MODES:
        last = done[f"{mode}/width{width}"][eval_set][-1]
        lines.append(f"{mode:>9} | {last['members']:8.3f} | " + " | ".join(f"{v:6.3f}" for v in last["ensemble"])
                     + f" | {float(last['ntk']):6.1e}")
    lines.append(f"||mean of M members - mu_t|| / ||mu_t|| at step {cfg.steps}, orbit augmentation")
    for w in cfg.widths:
        d = done[f"orbit/width{w}"][eval_set][-1]["distance_to_ntk"]
        lines.append(f"{'width ' + str(w):>9} | {'':>8} | " + " | ".join(f"{v:6.3f}" for v in d) + " |")
    return "\n".join(lines)


def summary(cfg: SweepConfig, done: dict) -> str:
    """:func:`table` for every evaluation set of the run."""
    group, names = _meta(done)
    return "\n\n".join(table(done, cfg, group, s) for s in names)


# ---------------------------------------------------------------- what a sweep experiment declares
_SIZE = ("Relative invariance error of the ensemble mean against ensemble size M, with no augmentation, "
         "the full orbit and a subgroup: mean of the first M members (error bars: spread over disjoint "
         "groups of M members), single members (dashed; band: std over members) and the analytic NTK mean "
         "at the same training time (dotted).")
_WIDTH = ("Full-orbit augmentation against width: invariance error of single members, of the mean of "
          "all members and of the NTK mean (left), and distance of the ensemble mean from the NTK mean "
          "for each ensemble size (right).")
_TIME = ("Full-orbit augmentation over training: invariance error of the ensemble mean, of single "
         "members and of the NTK mean mu_t at the same time, on in-distribution and off-manifold inputs.")


_NOISE = ("The invariance error of the ensemble mean as sampling noise: mean squared invariance error of the "
          "mean of M members against M, measured for each width (markers) and predicted from the NTK "
          "ensemble's covariance at the same time (line: (k/M) tr[Sigma(gx,gx) + Sigma(x,x) - 2 Sigma(gx,x)] "
          "plus the squared invariance error of mu_t, which is zero with the full orbit).")


def figures(name: str, what: str, kinds=("size", "width", "time", "noise")) -> tuple:
    """The :class:`Figure` s ``<name>_<kind>`` of a sweep experiment whose config has a
    ``sweep`` field; ``what`` starts each caption."""
    draw = {"size": figure_size, "width": figure_width, "time": figure_time, "noise": figure_noise}
    text = {"size": _SIZE, "width": _WIDTH, "time": _TIME, "noise": _NOISE}
    return tuple(Figure(f"{name}_{k}", (lambda f: lambda cfg, done: f(cfg.sweep, done))(draw[k]),
                        f"{what} {text[k]}") for k in kinds)


def last_step_table(name: str):
    """``fn(cfg, done) -> Table``: invariance errors at the last step, widest network, last
    evaluation set, per augmentation mode."""
    def table_(exp_cfg, done) -> Table:
        cfg = exp_cfg.sweep
        group, names = _meta(done)
        s, width = names[-1], max(cfg.widths)
        header = ["augmentation", "members"] + [f"$M={m}$" for m in cfg.ensemble_sizes] + ["NTK"]
        rows = []
        for mode in MODES:
            last = done[f"{mode}/width{width}"][s][-1]
            rows.append([mode, last["members"]] + list(last["ensemble"]) + [last["ntk"]])
        cap = (f"Relative {group} invariance error on {tex_escape(s)} inputs after {cfg.steps} gradient-descent "
               f"steps, width {width}: single members (mean), the mean of the first $M$ members, and the NTK mean "
               f"$\\mu_t$ at the same time.")
        return Table(header, rows, cap, name)
    return table_


_SET_NAMES = {"fashion_mnist_test": "FashionMNIST test", "mnist": "MNIST", "noise": "noise",
              "in_distribution": "in distribution", "fresh": "fresh configurations"}


def set_name(s: str) -> str:
    """A readable (LaTeX) name of an evaluation set."""
    return _SET_NAMES.get(s, tex_escape(s))


def eval_sets_table(name: str):
    """``fn(cfg, done) -> Table``: full-orbit augmentation, widest network, last step, every
    evaluation set: invariance errors and the distance of the M-member mean to mu_t."""
    def table_(exp_cfg, done) -> Table:
        cfg = exp_cfg.sweep
        width = max(cfg.widths)
        rec = done[f"orbit/width{width}"]
        header = ["orbit augmentation", "members"] + [f"$M={m}$" for m in cfg.ensemble_sizes] + [r"NTK $\mu_t$"]
        rows = []
        for s in rec["eval_sets"]:
            last = rec[s][-1]
            rows.append([f"invariance error, {set_name(s)}", last["members"]] + list(last["ensemble"])
                        + [last["ntk"]])
        for s in rec["eval_sets"]:
            last = rec[s][-1]
            rows.append([rf"distance to $\mu_t$, {set_name(s)}", ""] + list(last["distance_to_ntk"]) + [""])
        cap = (f"Full-orbit ({rec['group']}) augmentation, width {width}, after {cfg.steps} gradient-descent steps: "
               "relative invariance error of single members (mean), of the mean of the first $M$ members and of "
               r"the NTK mean $\mu_t$ at the same time, and the relative distance of the $M$-member mean to $\mu_t$, "
               "on each evaluation set.")
        return Table(header, rows, cap, f"{name}_sets")
    return table_


def distance_numbers(prefix: str):
    """``fn(cfg, done) -> {macro: value}``: ensemble size, distance of the mean to mu_t
    (M = 1 and the largest M), and the ensemble / NTK errors without augmentation, with a
    subgroup, and off the data, at the widest network and last step."""
    def numbers_(exp_cfg, d) -> dict:
        cfg = exp_cfg.sweep
        w = max(cfg.widths)
        orbit, none, sub = (d[f"{m}/width{w}"] for m in ("orbit", "none", "subgroup"))
        first, last = orbit["eval_sets"][0], orbit["eval_sets"][-1]
        return {f"{prefix}Mmax": str(max(cfg.ensemble_sizes)),
                f"{prefix}DistOne": orbit[first][-1]["distance_to_ntk"][0],
                f"{prefix}DistMax": orbit[first][-1]["distance_to_ntk"][-1],
                f"{prefix}NoneEns": none[first][-1]["ensemble"][-1],
                f"{prefix}NoneNtk": none[first][-1]["ntk"],
                f"{prefix}SubgroupNtk": sub[first][-1]["ntk"],
                f"{prefix}OffOrbitEns": orbit[last][-1]["ensemble"][-1],
                f"{prefix}OffNoneEns": none[last][-1]["ensemble"][-1]}
    return numbers_
