"""Three symmetric infinite-width predictors side by side (issue: kernel-side symmetry).

(i)   a CNN's NTK trained on the full C4 orbit (the augmented NTK, ``kernels.predict(group=)``),
(ii)  kernel regression / gradient flow with the C4-symmetrized CNN kernel at ``|G| t``
      (:func:`ntkequi.kernels.augmented_as_symmetrized`; equal to (i) up to rounding),
(iii) the NTK of a C4 group-convolutional network (:mod:`ntkequi.kernels.group_stax`) on the
      original data,

evaluated on the C4 orbits of FashionMNIST test images, MNIST digits and noise images
(downsampled to 7x7 so that the group-convolutional kernel, which holds the full spatial
covariance, fits on a CPU), at several training times: invariance error, accuracy, and the
distance between (i) and (iii); plus finite gradient-descent ensembles of the CNN with
full-orbit augmentation approaching (i), and the toy planar C8 problem for (i) vs (ii).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .. import data, ensembles, groups, kernels, metrics
from ..kernels import group_stax
from ..kernels.group_stax import GroupConv, LiftingConv
from ..nn import ArchSpec
from ..nt import stax
from .._validate import check_member_dtype
from ..runs import RunDir
from .protocol import Figure, Num, Table, pyplot, time_label

NAME = "kernel_symmetry"
USES_DATA = True
CPU_TIME = {"small": "6 min", "paper": "not measured (meant for a GPU)"}


@dataclasses.dataclass(frozen=True)
class KernelSymmetryConfig:
    x64: ClassVar[bool] = True
    SAVED_BEFORE: ClassVar[dict] = {"member_dtype": "float64"}     # runs saved before the field
    """time_multiples: training times in units of ``1 / lambda_max`` of the augmented
    CNN kernel (``inf`` allowed); the ensembles run ``multiple / (2 lr_fraction)``
    steps of gradient descent with learning rate ``lr_fraction * 2 / lambda_max``."""
    n_train: int = 32
    n_eval: int = 16
    factor: int = 4
    depth: int = 2
    b_std: float = 0.1
    time_multiples: tuple = (1.0, 10.0, 100.0, math.inf)
    ensemble_width: int = 64
    ensemble_sizes: tuple = (1, 2, 4, 8)
    lr_fraction: float = 0.5
    kernel_batch: int = 16
    seed: int = 0
    member_dtype: str = "float32"        # the finite members' precision (the kernels: float64)

    def __post_init__(self):
        check_member_dtype("member_dtype", self.member_dtype)


Config = KernelSymmetryConfig
PRESETS = {
    "small": KernelSymmetryConfig(),
    "paper": KernelSymmetryConfig(n_train=128, n_eval=64, ensemble_width=512,
                                  ensemble_sizes=(1, 2, 4, 8, 16, 32, 64),
                                  time_multiples=(1.0, 10.0, 100.0, 1000.0, math.inf)),
}
EVAL_SETS = ("fashion_mnist_test", "mnist", "noise")


def cnn_spec(cfg: KernelSymmetryConfig, width: int = 1) -> ArchSpec:
    return ArchSpec(kind="cnn", depth=cfg.depth, width=width, out_dim=10, readout="gap", b_std=cfg.b_std)


def gcnn_kernel_fn(cfg: KernelSymmetryConfig):
    """(iii): lifting conv, ``depth - 1`` group convs, ReLUs, invariant pooling, dense."""
    layers = [LiftingConv(1, 3, b_std=cfg.b_std), stax.Relu()]
    for _ in range(cfg.depth - 1):
        layers += [GroupConv(1, 3, b_std=cfg.b_std), stax.Relu()]
    layers += [stax.GlobalAvgPool(), stax.Dense(10, b_std=cfg.b_std)]
    return group_stax.serial(*layers)[2]        # declares (4 H W)^2 floats per pair


def problem(cfg: KernelSymmetryConfig, data_dir=None):
    """Downsampled float64 training data (centred one-hot targets) and evaluation sets."""
    sets = data.splits(data.SplitConfig(n_train=cfg.n_train, n_val=0, n_test=cfg.n_eval, seed=cfg.seed),
                       data_dir=data_dir)
    f64 = lambda a: jnp.asarray(data.downsample(a, cfg.factor), dtype=jnp.float64)
    x, labels = sets["train"]
    evals = {"fashion_mnist_test": f64(sets["test"][0]),
             "mnist": f64(data.ood_set("mnist", cfg.n_eval, cfg.seed, data_dir)),
             "noise": f64(data.ood_set("noise", cfg.n_eval, cfg.seed, data_dir))}
    return f64(x), jnp.asarray(np.eye(10)[labels] - 0.1), evals, jnp.asarray(sets["test"][1])


def _metrics(mean, ev: metrics.EvalOrbits, test_labels):
    """mean ``(T, |G| N_all, 10)`` -> per time: invariance per set, test accuracy."""
    out, group = [], ev.group
    for i in range(mean.shape[0]):
        rec = {}
        for s, orb in ev.orbits(mean[i]).items():
            rec[s] = metrics.equivariance_error(orb, group).relative
            if s == "fashion_mnist_test":
                rec["accuracy"] = metrics.accuracy(orb[0], test_labels)
        out.append(rec)
    return out


def run(cfg: KernelSymmetryConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) everything into ``out``; returns ``{key: record}``."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    g4 = groups.rotations(4, (28 // cfg.factor,) * 2)
    x, y, evals, test_labels = problem(cfg, data_dir)
    ev = metrics.EvalOrbits.of(g4, {s: evals[s] for s in EVAL_SETS})
    x_eval = ev.x
    spec = cnn_spec(cfg)
    max_lr = kernels.max_learning_rate(spec, x, g4)
    ts = np.asarray(cfg.time_multiples) * max_lr / 2          # t in units of 1 / lambda_max
    preds = {}
    for name in ("augmented", "symmetrized", "gcnn"):
        f = out / f"mean_{name}.npy"
        if name in done and f.exists():
            preds[name] = np.load(f)
            continue
        print(f"[{out.name}] {name}", flush=True)
        if name == "augmented":
            mean = kernels.predict(spec, x, y, x_eval, ts, group=g4, batch_size=cfg.kernel_batch).mean
        elif name == "symmetrized":
            p = kernels.augmented_as_symmetrized(spec, g4, x, ts)
            mean = kernels.predict(p.kernel_fn, x, y, x_eval, p.t).mean
        else:
            mean = kernels.predict(gcnn_kernel_fn(cfg), x, y, x_eval, ts, batch_size=cfg.kernel_batch).mean
        preds[name] = np.asarray(mean)
        np.save(f, preds[name])
        done[name] = rd.record(name, times=ts, per_time=_metrics(preds[name], ev, test_labels))
    if "comparison" not in done:
        a, s_, g = preds["augmented"], preds["symmetrized"], preds["gcnn"]
        done["comparison"] = rd.record("comparison", times=ts, augmented_vs_symmetrized=[
            metrics.ntk_distance(s_[i], a[i]) for i in range(len(ts))], augmented_vs_gcnn=[
            metrics.ntk_distance(g[i], a[i]) for i in range(len(ts))])
    if "ensemble" not in done:
        finite = [i for i, m in enumerate(cfg.time_multiples) if math.isfinite(m)]
        steps = [int(round(cfg.time_multiples[i] / (2 * cfg.lr_fraction))) for i in finite]
        lr = cfg.lr_fraction * max_lr
        tcfg = ensembles.TrainConfig(ensemble_size=max(cfg.ensemble_sizes), steps=max(steps),
                                     learning_rate=lr, augmentation="orbit", record_steps=tuple(sorted(set(steps))),
                                     seed=cfg.seed, dtype=cfg.member_dtype)
        print(f"[{out.name}] ensemble: {tcfg.ensemble_size} members, width {cfg.ensemble_width}", flush=True)
        res = ensembles.train(cnn_spec(cfg, cfg.ensemble_width), tcfg, ensembles.TrainingData(x, y, x_eval, g4),
                              run_dir=out / "ensemble", progress=progress)
        rec = {"steps": steps, "times": [float(s * lr) for s in steps], "distance_to_augmented": [],
               "invariance_noise": [], "member_invariance_noise": []}
        sl = ev.slice("noise")
        for i, s in zip(finite, steps):
            members = res.members[list(res.steps).index(s)]
            ref = preds["augmented"][i]
            rec["distance_to_augmented"].append([metrics.ntk_distance(members[:m].mean(0), ref)
                                                 for m in cfg.ensemble_sizes])
            inv = lambda f: metrics.equivariance_error(metrics.orbit_predictions(f[sl], g4), g4).relative
            rec["invariance_noise"].append([inv(members[:m].mean(0)) for m in cfg.ensemble_sizes])
            rec["member_invariance_noise"].append(float(np.mean([inv(m) for m in members])))
        done["ensemble"] = rd.record("ensemble", **rec)
    if "toy" not in done:
        # the toy problem: planar C8, MLP NTK, (i) vs (ii)
        g8 = groups.planar_rotations(8)
        kx, kt = jax.random.split(jax.random.PRNGKey(cfg.seed))
        xt = data.wedge_points(kx, 16)
        xe = g8.orbit(data.noise_points(kt, 16)).reshape(-1, 2)
        mlp = ArchSpec(kind="mlp", depth=2, b_std=cfg.b_std)
        tt = np.asarray(cfg.time_multiples) * kernels.max_learning_rate(mlp, xt, g8) / 2
        aug = kernels.predict(mlp, xt, data.radial_target(xt), xe, tt, group=g8).mean
        p = kernels.augmented_as_symmetrized(mlp, g8, xt, tt)
        sym = kernels.predict(p.kernel_fn, xt, data.radial_target(xt), xe, p.t).mean
        inv = lambda f: metrics.equivariance_error(metrics.orbit_predictions(f, g8), g8).relative
        done["toy"] = rd.record("toy", times=tt, augmented_vs_symmetrized=[
            metrics.ntk_distance(sym[i], aug[i]) for i in range(len(tt))],
            invariance_augmented=[inv(aug[i]) for i in range(len(tt))],
            invariance_symmetrized=[inv(sym[i]) for i in range(len(tt))])
    return done


def _markdown(cfg: KernelSymmetryConfig, done: dict) -> str:
    """Markdown: invariance error per set and accuracy for (i), (ii), (iii) at each time."""
    mult = cfg.time_multiples
    lines = ["| t lambda_max | predictor | FMNIST test inv. | MNIST inv. | noise inv. | test acc. |",
             "|---|---|---|---|---|---|"]
    for i, m in enumerate(mult):
        for name, label in (("augmented", "(i) CNN NTK, C4 orbit"), ("symmetrized", "(ii) symmetrized CNN NTK"),
                            ("gcnn", "(iii) GCNN NTK")):
            r = done[name]["per_time"][i]
            lines.append(f"| {m:g} | {label} | {r['fashion_mnist_test']:.1e} | {r['mnist']:.1e} | "
                         f"{r['noise']:.1e} | {r['accuracy']:.3f} |")
    return "\n".join(lines)


def figure(cfg: KernelSymmetryConfig, done: dict):
    """Returns the matplotlib Figure: Invariance (noise inputs) and accuracy vs time for (i)-(iii); ensembles vs (i)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    mult = np.asarray(cfg.time_multiples, dtype=float)
    xs = np.where(np.isfinite(mult), mult, mult[np.isfinite(mult)].max() * 10)
    style = {"augmented": ("C0", "o-", "(i) CNN NTK + C4 orbit"), "symmetrized": ("C2", "x--", "(ii) symmetrized"),
             "gcnn": ("C3", "s-", "(iii) GCNN NTK")}
    for name, (c, ls, label) in style.items():
        per = done[name]["per_time"]
        axes[0].plot(xs, [max(p["noise"], 1e-17) for p in per], ls, color=c, label=label)
        axes[1].plot(xs, [p["accuracy"] for p in per], ls, color=c, label=label)
    ens = done["ensemble"]
    fin = xs[np.isfinite(mult)]
    axes[0].plot(fin, [v[-1] for v in ens["invariance_noise"]], "^:", color="C1",
                 label=f"finite ensemble M={cfg.ensemble_sizes[-1]}, width {cfg.ensemble_width}")
    axes[0].plot(fin, ens["member_invariance_noise"], "v:", color="C7", label="its members")
    axes[0].set(xscale="log", yscale="log", xlabel="t lambda_max (rightmost: t = inf)",
                ylabel="relative C4 invariance error (noise)", title="invariance on noise images")
    axes[1].set(xscale="log", xlabel="t lambda_max (rightmost: t = inf)", ylabel="test accuracy (unrotated)",
                title=f"FashionMNIST 7x7, {cfg.n_train} training images")
    for t, d in zip(ens["steps"], ens["distance_to_augmented"]):
        axes[2].plot(cfg.ensemble_sizes, d, "o-", label=f"step {t}")
    axes[2].set(xscale="log", yscale="log", xlabel="ensemble size M", ylabel="||ensemble mean - (i)|| / ||(i)||",
                title="finite C4-augmented ensembles approach (i)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def summary(cfg: KernelSymmetryConfig, done: dict) -> str:
    """The table and the distances the README quotes."""
    c = done["comparison"]
    return "\n".join([
        _markdown(cfg, done), "",
        "||(ii) - (i)|| / ||(i)|| per time: " + str(["%.1e" % v for v in c["augmented_vs_symmetrized"]]),
        "||(iii) - (i)|| / ||(i)|| per time: " + str(["%.2f" % v for v in c["augmented_vs_gcnn"]]),
        "toy planar C8, ||(ii) - (i)|| / ||(i)||: " + str(["%.1e" % v for v in done["toy"]["augmented_vs_symmetrized"]]),
        "ensemble distance to (i) (rows: steps, columns: M): " + str(done["ensemble"]["distance_to_augmented"])])


_PREDICTORS = (("augmented", "(i) CNN NTK, C4 orbit"), ("symmetrized", "(ii) symmetrized CNN NTK"),
               ("gcnn", "(iii) GCNN NTK"))


def converged_table(cfg: KernelSymmetryConfig, done: dict) -> Table:
    """Invariance error per evaluation set and test accuracy of (i)-(iii) at the last time."""
    rows = []
    for name, label in _PREDICTORS:
        r = done[name]["per_time"][-1]
        rows.append([label] + [r[s] for s in EVAL_SETS] + [Num(r["accuracy"], 3)])
    cap = ("Relative C4 invariance error (test images, MNIST digits, noise) and test accuracy of three "
           "kernel predictors at $t=\\infty$ on 7x7 FashionMNIST.")
    return Table(["predictor", "test", "MNIST", "noise", "accuracy"], rows, cap, "kernel_symmetry")


def time_table(cfg: KernelSymmetryConfig, done: dict) -> Table:
    """(i)-(iii) and a finite ensemble over training time."""
    mult = cfg.time_multiples
    c, ens = done["comparison"], done["ensemble"]
    rows = [["(i) vs (ii), relative distance"] + list(c["augmented_vs_symmetrized"]),
            ["(i) vs (iii), relative distance"] + list(c["augmented_vs_gcnn"])]
    for key, label in (("augmented", "(i)"), ("symmetrized", "(ii)"), ("gcnn", "(iii)")):
        rows.append([f"invariance error on noise, {label}"] + [r["noise"] for r in done[key]["per_time"]])
    for key, label in (("augmented", "(i)"), ("gcnn", "(iii)")):
        rows.append([f"test accuracy, {label}"] + [Num(r["accuracy"], 3) for r in done[key]["per_time"]])
    m = max(cfg.ensemble_sizes)
    dist = [d[-1] for d in ens["distance_to_augmented"]]
    rows.append([f"CNN ensemble, $M={m}$, distance to (i)"] + dist + ["--"] * (len(mult) - len(dist)))
    cap = ("Three C4-invariant kernel predictors on 7x7 FashionMNIST over training time: (i) the CNN NTK "
           "trained on the C4 orbit, (ii) the symmetrized CNN NTK at $|G|t$, (iii) the group-CNN NTK; "
           f"relative distances, invariance error on noise orbits, test accuracy, and the distance of a finite "
           f"CNN ensemble (width {cfg.ensemble_width}) to (i).")
    return Table([""] + [time_label(t) for t in mult], rows, cap, "kernel_symmetry_time")


def numbers(cfg: KernelSymmetryConfig, d: dict) -> dict:
    """Distance of (iii) to (i) at the last time; largest (i)-(ii) distance on the toy problem."""
    return {"ksGcnnInf": d["comparison"]["augmented_vs_gcnn"][-1],
            "ksToyMax": max(d["toy"]["augmented_vs_symmetrized"])}


FIGURES = (Figure("kernel_symmetry", figure,
                  "Kernel-side symmetry on 7x7 FashionMNIST: the C4-augmented CNN NTK, the symmetrized "
                  "kernel and the group-convolutional NTK over training time; finite ensembles approach "
                  "the augmented NTK."),)
TABLES = {"kernel_symmetry_time": time_table, "kernel_symmetry": converged_table}
