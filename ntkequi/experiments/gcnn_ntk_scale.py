"""The C4 group CNN against the augmented and the plain CNN in the infinite-width limit, on
28x28 FashionMNIST at real size: three analytic NTK means side by side, and the corresponding
pair shown equal at this size.

Networks (all two 3x3 conv -> ReLU -> 2x2 average pool blocks, then global average pooling and
a dense readout; ntkequi's own kernel recursions, :class:`ntkequi.nn.ArchSpec`):

* ``gcnn``: the GCNN (C4 lifting convolution, C4 group convolution, invariant pooling over
  positions and rotations) trained on the N images;
* ``cnn-augmented``: the CNN trained on the C4 orbits of the N images (structured solve);
* ``cnn``: the same CNN trained on the N images.

Per N (nested subsets of one permutation of the training set, the data of fmnist_ntk_scale's
GAP network) and time t (multiples of ``1 / lambda_max`` of each network's own N x N NTK, and
t = inf): accuracy on unrotated test images and over all their rotations, OSP (out of 4) and
relative invariance error of mu_t on the C4 orbits of test images, MNIST digits and noise
images. The GCNN's kernel is the one-sided C4-symmetrized CNN kernel (the correspondence of
Misof, Kessel & Gerken 2025; ``tests/test_gcnn_kernels.py``), so its mean after time ``4 t`` on
the images equals the augmented CNN's after ``t`` on the orbit: records ``pair/gcnn_gap/cnn_gap/N<n>``
solve both from their own saved kernels and give the largest relative difference per
evaluation set and time (float32 kernel tiles in the ``cpu`` preset, so agreement is to float32
rounding, not float64's).

The runner is :func:`ntkequi.experiments.fmnist_ntk_scale.run` (tiles saved as they finish under
``<run dir>/tiles/<network>``, resumable, ``--worker K/N`` workers, multi-process runs).

    ntkequi run gcnn_ntk_scale --data-dir DIR                  # small (tests)
    ntkequi run gcnn_ntk_scale --data-dir DIR --preset cpu     # N = 256 (float32 kernel tiles)
    ntkequi run gcnn_ntk_scale --data-dir DIR --preset cpu1024 # N = 256 and 1024
    ntkequi run gcnn_ntk_scale --data-dir DIR --preset paper   # N to 4096, 5x the evaluation images (a GPU)
"""
from __future__ import annotations

import math

import numpy as np

from . import fmnist_ntk_scale as scale
from .fmnist_ntk_scale import ArchCase, FmnistNTKScaleConfig
from .protocol import Figure, Num, Table, pyplot

NAME = "gcnn_ntk_scale"
USES_DATA = True
CPU_TIME = {"small": "not measured", "cpu": "28 min (kernel 27 min: GCNN 20, CNN 7)", "cpu1024": "not measured (about 3 h estimated from the per-entry costs)",
            "paper": "not measured (meant for a GPU)"}
NETWORKS = ("gcnn", "cnn-augmented", "cnn")
EVAL_SETS = scale.EVAL_SETS


def _config(sizes: tuple, n_test: int, n_ood: int, dtype: str = "float32", **fields) -> FmnistNTKScaleConfig:
    return FmnistNTKScaleConfig(archs=(ArchCase("gcnn_gap", "gap", sizes, n_test, n_ood, dtype, kind="gcnn"),
                                       ArchCase("cnn_gap", "gap", sizes, n_test, n_ood, dtype)),
                                pairs=(("gcnn_gap", "cnn_gap"),), **fields)


Config = FmnistNTKScaleConfig
PRESETS = {
    "small": _config((6,), 2, 1, "float64", time_multiples=(3.0, math.inf), ensemble_sizes=(1, 4)),
    # fmnist_ntk_scale's GAP data at N = 256 (its first 256 images; 100 test images, 25 MNIST
    # digits, 25 noise images, the same evaluation images as its records)
    "cpu": _config((256,), 100, 25),
    # N = 256 and 1024 (the GCNN's N = 1024 kernel alone is about 1.5 h on 2 cores; resumable:
    # run it over several sessions, or as --worker K/N processes)
    "cpu1024": _config((256, 1024), 100, 25),
    "paper": _config((256, 1024, 4096), 500, 125),
}

run = scale.run
tiles = scale.tiles


def _series(cfg, done):
    """``[(n, network, per-time metrics, times)]`` for every recorded size and network."""
    out = []
    for case in cfg.archs:
        for n in case.sizes:
            rec = done.get(f"{case.name}/N{n}")
            if rec is None:
                continue
            for aug in case.augmentations:
                out.append((n, case.network(aug), rec[aug], rec["times"]))
    return out


def _pairs(cfg, done):
    for g, c in cfg.pairs:
        for n in next(a for a in cfg.archs if a.name == g).sizes:
            rec = done.get(f"pair/{g}/{c}/N{n}")
            if rec is not None:
                yield n, rec


def summary(cfg: FmnistNTKScaleConfig, done: dict) -> str:
    """Per N and network at the last time: accuracy, orbit accuracy, OSP and invariance error per
    set; then the pair's largest relative difference."""
    lines = [f"NTK means at t = {cfg.time_multiples[-1]:g} / lambda_max (FashionMNIST 28x28, C4 orbits)",
             f"{'N':>5} {'network':>13} | {'acc':>5} {'orbit':>5} | "
             + " | ".join(f"{s[:12]:>12} OSP  inv.err" for s in EVAL_SETS)]
    for n, net, per_t, _ in sorted(_series(cfg, done), key=lambda r: (r[0], NETWORKS.index(r[1]))):
        r = per_t[-1]
        f = r["fashion_mnist_test"]
        lines.append(f"{n:5d} {net:>13} | {f['accuracy']:5.3f} {f['orbit_accuracy']:5.3f} | "
                     + " | ".join(f"{r[s]['osp']:12.2f} {r[s]['invariance_error']:8.1e}" for s in EVAL_SETS))
    for n, rec in _pairs(cfg, done):
        worst = max(max(v) for v in rec["max_rel_diff"].values())
        lines.append(f"N = {n}: GCNN (time {rec['time_factor']} t) vs augmented CNN (t): largest relative "
                     f"difference of the means {worst:.1e} over every set and time")
    return "\n".join(lines)


def figure(cfg: FmnistNTKScaleConfig, done: dict):
    """Left: test accuracy of mu_t over training time per N and network (solid: unrotated test
    images; dotted: over all rotations). Middle: the relative invariance error on the noise
    orbits. Right: the corresponding pair's largest relative difference per evaluation set."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    mults = np.asarray(cfg.time_multiples, dtype=float)
    finite = np.isfinite(mults)
    xs = np.where(finite, mults, (mults[finite].max() if finite.any() else 1.0) * 10)
    sizes = sorted({n for n, *_ in _series(cfg, done)})
    for n, net, per_t, _ in _series(cfg, done):
        color, ls = f"C{NETWORKS.index(net)}", "-" if n == sizes[-1] else "--"
        axes[0].plot(xs, [p["fashion_mnist_test"]["accuracy"] for p in per_t], ls, marker="o", ms=3, color=color,
                     label=f"{net}, N={n}")
        axes[0].plot(xs, [p["fashion_mnist_test"]["orbit_accuracy"] for p in per_t], ":", color=color)
        axes[1].plot(xs, [max(p["noise"]["invariance_error"], 1e-17) for p in per_t], ls, marker="o", ms=3,
                     color=color, label=f"{net}, N={n}")
    for n, rec in _pairs(cfg, done):
        for j, s in enumerate(EVAL_SETS):
            axes[2].plot(xs, np.maximum(rec["max_rel_diff"][s], 1e-17), "-" if n == sizes[-1] else "--",
                         marker="osx"[j], ms=4, color=f"C{j}", label=f"{s}, N={n}")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("t lambda_max (rightmost: t = inf)")
    axes[0].set(ylabel="test accuracy", title="mu_t: unrotated test images (dotted: all rotations)")
    axes[1].set(yscale="log", ylabel="relative invariance error under C4", title="noise images' orbits")
    axes[2].set(yscale="log", ylabel="largest relative difference",
                title="GCNN at 4t vs augmented CNN at t")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def table(cfg: FmnistNTKScaleConfig, done: dict) -> Table:
    """Per N and network at t = inf: accuracy, orbit accuracy, OSP and invariance error per set."""
    header = ["$N$", "network", "accuracy", "orbit acc."] + [f"OSP {s}" for s in ("test", "MNIST", "noise")] + \
             [f"inv. err. {s}" for s in ("test", "MNIST", "noise")]
    rows = []
    for n, net, per_t, _ in sorted(_series(cfg, done), key=lambda r: (r[0], NETWORKS.index(r[1]))):
        r = per_t[-1]
        f = r["fashion_mnist_test"]
        rows.append([f"{n}", {"gcnn": "GCNN", "cnn-augmented": "CNN, $C_4$ orbit", "cnn": "CNN"}[net],
                     Num(f["accuracy"], decimals=3), Num(f["orbit_accuracy"], decimals=3)]
                    + [Num(r[s]["osp"], decimals=2) for s in EVAL_SETS] + [r[s]["invariance_error"] for s in EVAL_SETS])
    cap = ("The analytic NTK means $\\mu_\\infty$ of the C4 group CNN (lifting and group convolution, invariant "
           "pooling) trained on $N$ FashionMNIST images, of the CNN with the same layers trained on their $C_4$ "
           "orbits and of the CNN trained on the images: accuracy on unrotated test images and over all "
           "rotations, OSP (out of 4) and relative invariance error on the $C_4$ orbits of test images, MNIST "
           "digits and noise images.")
    return Table(header, rows, cap, NAME)


FIGURES = (Figure(NAME, figure, "The C4 group CNN's NTK mean against the augmented and the plain CNN's at real "
                                "size: accuracy and invariance over training time, and the corresponding pair's "
                                "difference."),)
TABLES = {NAME: table}


def numbers(cfg: FmnistNTKScaleConfig, done: dict) -> dict:
    """At t = inf and the largest recorded N: N, each network's accuracy, orbit accuracy and
    largest invariance error; the pair's largest relative difference over every set at the
    finite times (``gcnnScalePairDiff``) and at t = inf (``gcnnScalePairDiffInf``); per kernel, the
    distinct pairs of the smallest N and their rate (``gcnnScalePairs...``, ``...PairsPerSec...``)."""
    series = _series(cfg, done)
    if not series:
        return {}
    n = max(r[0] for r in series)
    out = {"gcnnScaleN": str(n)}
    for m, net, per_t, _ in series:
        if m != n:
            continue
        p = {"gcnn": "Gcnn", "cnn-augmented": "Aug", "cnn": "Cnn"}[net]
        f = per_t[-1]["fashion_mnist_test"]
        out[f"gcnnScaleAcc{p}"] = f["accuracy"]
        out[f"gcnnScaleOrbitAcc{p}"] = f["orbit_accuracy"]
        out[f"gcnnScaleInv{p}"] = max(per_t[-1][s]["invariance_error"] for s in EVAL_SETS)
        out[f"gcnnScaleInvFirst{p}"] = max(per_t[0][s]["invariance_error"] for s in EVAL_SETS)
    # kernel pairs per second of the smallest N (its record's kernel_seconds cover all of its
    # tiles when that unit ran in one piece, as in the committed cpu run)
    for case in cfg.archs:
        rec = done.get(f"{case.name}/N{case.sizes[0]}")
        if rec is not None and rec.get("kernel_seconds"):
            p = {"gcnn": "Gcnn", "cnn": "Cnn"}[case.kind]
            out[f"gcnnScalePairs{p}"] = str(scale.kernel_pairs(case, case.sizes[0]))
            out[f"gcnnScalePairsPerSec{p}"] = scale.kernel_pairs(case, case.sizes[0]) / rec["kernel_seconds"]
    for m, rec in _pairs(cfg, done):
        if m != n:
            continue
        finite = [i for i, t in enumerate(rec["times"]) if math.isfinite(float(t))]
        out["gcnnScalePairDiff"] = max(v[i] for v in rec["max_rel_diff"].values() for i in finite)
        out["gcnnScalePairDiffFirst"] = max(v[0] for v in rec["max_rel_diff"].values())
        if len(finite) < len(rec["times"]):
            out["gcnnScalePairDiffInf"] = max(v[-1] for v in rec["max_rel_diff"].values())
    return out
