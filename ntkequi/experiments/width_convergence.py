"""Empirical NTK of finite Flax networks vs the analytic NTK of the same ``ArchSpec``, over width.

The infinite-width theory behind every other experiment rests on the empirical NTK of a
finite network converging to the analytic kernel, at the rate ``1/sqrt(width)``. For an
MLP on flattened FashionMNIST images and a CNN on 7x7 downsampled images (the
architectures of the FashionMNIST experiments, small enough for a CPU), this records the
relative Frobenius distance ``||Theta_emp - Theta|| / ||Theta||`` for several random
initialisations at each width, and the fitted slope of ``log error`` against ``log width``
(theory: -1/2).

    python experiments/width_convergence.py --data-dir DIR            # ~3 min on 2 CPU cores
    python experiments/width_convergence.py --data-dir DIR --preset paper

Writes runs/width_convergence[-paper]/ (one record per architecture and width, resumable).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from .. import data
from ..nn import ArchSpec, empirical_ntk_errors
from ..runs import RunDir
from .protocol import Figure, Table, pyplot

NAME = "width_convergence"
USES_DATA = True
CPU_TIME = {"small": "2 min", "paper": "not measured (meant for a GPU)"}


@dataclasses.dataclass(frozen=True)
class WidthConfig:
    x64: ClassVar[bool] = True
    """n_images FashionMNIST training images (seed ``seed``); for each architecture
    ('mlp': flattened 28x28, 'cnn': 7x7 by 4x4 average pooling) and width, ``seeds``
    initialisations."""
    n_images: int = 8
    mlp_widths: tuple = (64, 128, 256, 512, 1024, 2048, 4096)
    cnn_widths: tuple = (16, 32, 64, 128, 256, 512)
    seeds: int = 8
    seed: int = 0


Config = WidthConfig
PRESETS = {
    "small": WidthConfig(),
    "paper": WidthConfig(n_images=32, mlp_widths=(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
                         cnn_widths=(16, 32, 64, 128, 256, 512, 1024, 2048), seeds=32),
}

ARCHS = ("mlp", "cnn")


def specs() -> dict:
    """The two architecture families (width set per run): name -> ArchSpec."""
    return {"mlp": ArchSpec(kind="mlp", depth=2, b_std=0.1),
            "cnn": ArchSpec(kind="cnn", depth=1, b_std=0.1)}


def _inputs(cfg: WidthConfig, data_dir=None) -> dict:
    x = data.splits(data.SplitConfig(n_train=cfg.n_images, n_val=0, n_test=1, seed=cfg.seed),
                    data_dir=data_dir)["train"][0].astype(np.float64)
    return {"mlp": jnp.asarray(x.reshape(len(x), -1)), "cnn": jnp.asarray(data.downsample(x, 4))}


def run(cfg: WidthConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``: records ``{arch}/width{w}`` with ``errors`` (one per
    seed). Returns ``{key: record}``."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    xs = _inputs(cfg, data_dir)
    for arch, widths in (("mlp", cfg.mlp_widths), ("cnn", cfg.cnn_widths)):
        spec = specs()[arch]
        for key, w in rd.pending(widths, lambda w: f"{arch}/width{w}"):
            errs = empirical_ntk_errors(spec, xs[arch], (w,), cfg.seeds)[0]
            done[key] = rd.record(key, arch=arch, width=w, spec=dataclasses.replace(spec, width=w),
                                  errors=errs)
            if progress:
                print(f"[{out.name}] {key}: relative error {errs.mean():.4f} +- {errs.std():.4f}", flush=True)
    return done


def widths_and_errors(done: dict, arch: str):
    """``(widths (W,), errors (W, seeds))`` of ``arch`` from the records, by width."""
    recs = sorted((r for r in done.values() if r.get("arch") == arch), key=lambda r: r["width"])
    return (np.array([r["width"] for r in recs], dtype=float),
            np.array([r["errors"] for r in recs], dtype=float))


def slope(done: dict, arch: str) -> float:
    """Least-squares slope of log(mean error) against log(width) (theory: -0.5)."""
    w, e = widths_and_errors(done, arch)
    return float(np.polyfit(np.log(w), np.log(e.mean(axis=1)), 1)[0])


def summary(cfg: WidthConfig, done: dict) -> str:
    """Distance to the analytic NTK per width, and the log-log slope."""
    lines = ["relative distance of the empirical NTK from the analytic NTK (mean +- std over "
             f"{cfg.seeds} initialisations, {cfg.n_images} FashionMNIST images)"]
    for arch in ARCHS:
        w, e = widths_and_errors(done, arch)
        lines.append(f"{arch}: slope of log error vs log width {slope(done, arch):+.3f} (theory -0.5)")
        lines += [f"  width {int(wi):>6}: {ei.mean():.4f} +- {ei.std():.4f}" for wi, ei in zip(w, e)]
    return "\n".join(lines)


def figure(cfg: WidthConfig, done: dict):
    """Error vs width per architecture, error bars over initialisations, 1/sqrt(width) guide."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, arch in enumerate(ARCHS):
        w, e = widths_and_errors(done, arch)
        if not len(w):
            continue
        ax.errorbar(w, e.mean(1), yerr=e.std(1), fmt="o-", color=f"C{i}", capsize=3,
                    label=f"{arch.upper()} (slope {slope(done, arch):+.2f})")
        ax.plot(w, e.mean(1)[0] * np.sqrt(w[0] / w), ":", color=f"C{i}", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="width (channels for the CNN)",
           ylabel=r"$\|\Theta_{emp} - \Theta\|_F / \|\Theta\|_F$",
           title=f"empirical vs analytic NTK ({cfg.seeds} initialisations;\n"
                 "dotted: 1/sqrt(width))")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def distance_table(cfg: WidthConfig, done: dict) -> Table:
    """Relative distance of the empirical NTK from the analytic one per architecture and width."""
    rows = []
    for arch in ARCHS:
        w, e = widths_and_errors(done, arch)
        rows += [[arch.upper(), str(int(wi)), ei.mean(), ei.std()] for wi, ei in zip(w, e)]
    cap = ("Relative Frobenius distance of the empirical NTK of finite networks from the analytic NTK of "
           "the same architecture specification.")
    return Table(["architecture", "width", "relative error", "std over seeds"], rows, cap, "width_convergence")


def numbers(cfg: WidthConfig, done: dict) -> dict:
    """Log-log slopes of the error against width (theory -0.5)."""
    return {"widthSlopeMLP": slope(done, "mlp"), "widthSlopeCNN": slope(done, "cnn")}


FIGURES = (Figure("width_convergence", figure,
                  "Empirical NTK of finite Flax networks against the analytic NTK of the same "
                  "architecture specification, over width (error bars: std over initialisations)."),)
TABLES = {"width_convergence": distance_table}
