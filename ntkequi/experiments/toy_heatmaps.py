"""The talk's toy picture: the learned function over the plane for the planar C8 toy
problem (points in a 60-degree wedge, rotation-invariant target), for a single member, the
mean of M members and the NTK mean mu_t, at initialisation, after 1, 2, 3 and many
gradient-descent steps, without augmentation and on the full C8 orbit. With the orbit the
ensemble mean shows the C8 pattern everywhere on the square, off the data included, while
single members show none (and without augmentation nothing is C8-symmetric). Members come in
antithetic pairs (the same weights but the readout's sign), so the initial functions cancel in
the mean and it shows mu's pattern from the first steps on; mu is the discrete-time prediction
of the same gradient-descent steps.

    ntkequi run toy_heatmaps            # ~1 min on 2 CPU cores
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .. import data, ensembles, groups, metrics
from ..kernels import max_learning_rate, predict
from ..nn import ArchSpec
from .._validate import check_member_dtype
from ..runs import RunDir
from .protocol import Figure, pyplot

NAME = "toy_heatmaps"
USES_DATA = False
CPU_TIME = {"small": "4 min"}
MODES = ("none", "orbit")


@dataclasses.dataclass(frozen=True)
class HeatmapConfig:
    """``grid`` points per side of the square ``[-half_width, half_width]^2``; ``record_steps``
    the steps drawn (0 = initialisation); the rest as in :mod:`toy_ensembles`."""
    x64: ClassVar[bool] = True
    SAVED_BEFORE: ClassVar[dict] = {"member_dtype": "float64", "antithetic": False,   # runs saved before the fields
                                    "discrete": False}
    group_order: int = 8
    n_train: int = 8
    depth: int = 2
    width: int = 256
    b_std: float = 1.0
    ensemble_size: int = 32
    record_steps: tuple = (0, 1, 2, 3, 1000)
    lr_fraction: float = 0.5
    grid: int = 41
    half_width: float = 2.5
    seed: int = 0
    member_dtype: str = "float32"        # the finite members' precision (the kernels: float64)
    antithetic: bool = True              # members in antithetic pairs: the initial function cancels in the mean
    discrete: bool = True                # mu after the same gradient-descent steps (else gradient flow at t)

    def __post_init__(self):
        check_member_dtype("member_dtype", self.member_dtype)
        if self.grid < 3 or not self.half_width > 0:
            raise ValueError(f"need grid >= 3 and half_width > 0; got grid={self.grid}, half_width={self.half_width}")
        if list(self.record_steps) != sorted(set(self.record_steps)) or self.record_steps[0] < 0:
            raise ValueError(f"record_steps must be ascending distinct steps >= 0; got {self.record_steps!r}")
        if self.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1; got {self.ensemble_size}")


Config = HeatmapConfig
PRESETS = {"small": HeatmapConfig()}


def grid_points(cfg: HeatmapConfig) -> jnp.ndarray:
    """``(grid^2, 2)`` points of the square, row-major (y, then x)."""
    t = np.linspace(-cfg.half_width, cfg.half_width, cfg.grid)
    xx, yy = np.meshgrid(t, t)
    return jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1))


def run(cfg: HeatmapConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``: one record per augmentation mode with the member 0, the
    M-member mean and mu_t on the grid at every recorded step, and their C8 invariance errors
    on the grid."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    group = groups.planar_rotations(cfg.group_order)
    x = data.wedge_points(jax.random.PRNGKey(cfg.seed), cfg.n_train)
    y = data.radial_target(x)
    spec = ArchSpec(kind="mlp", depth=cfg.depth, width=cfg.width, b_std=cfg.b_std)
    pts = grid_points(cfg)
    # the grid's C8 orbit (to measure invariance) after the grid itself
    evals = jnp.concatenate([pts, group.orbit(pts)[1:].reshape(-1, 2)])
    lr = cfg.lr_fraction * max_learning_rate(spec, x, group)
    for _, mode in rd.pending(MODES):
        tcfg = ensembles.TrainConfig(ensemble_size=cfg.ensemble_size, steps=cfg.record_steps[-1],
                                     learning_rate=lr, augmentation=mode, record_steps=cfg.record_steps,
                                     seed=cfg.seed, dtype=cfg.member_dtype, antithetic=cfg.antithetic)
        res = ensembles.train(spec, tcfg, ensembles.TrainingData(x, y, evals, group),
                              run_dir=out / "ensembles" / mode, progress=progress)
        x_aug, y_aug = ensembles.training_set(group, tcfg, x, y)
        times = res.times(lr)
        pred = (predict(spec, x_aug, y_aug, evals, steps=res.steps, learning_rate=lr) if cfg.discrete
                else predict(spec, x_aug, y_aug, evals, times))
        p = pts.shape[0]
        orbit = lambda f: metrics.orbit_predictions(f, group)         # noqa: E731
        per_step = []
        for i in range(len(res.steps)):
            member, mean, mu = res.members[i, 0], res.members[i].mean(0), pred.mean[i]
            per_step.append({
                "step": int(res.steps[i]),
                "member": np.asarray(member[:p, 0]), "mean": np.asarray(mean[:p, 0]), "ntk": np.asarray(mu[:p, 0]),
                "invariance": {k: metrics.equivariance_error(orbit(v), group).relative
                               for k, v in (("member", member), ("mean", mean), ("ntk", mu))},
            })
        done[mode] = rd.record(mode, mode=mode, learning_rate=lr, times=times, per_step=per_step,
                               train_x=np.asarray(x))
    return done


def summary(cfg: HeatmapConfig, done: dict) -> str:
    """The C8 invariance error on the grid of member 0, the M-member mean and mu_t per step."""
    lines = [f"relative C{cfg.group_order} invariance error over the {cfg.grid}x{cfg.grid} grid "
             f"(member 0 | mean of {cfg.ensemble_size} | NTK mu_t)"]
    for mode in MODES:
        rec = done.get(mode)
        if rec is None:
            continue
        for r in rec["per_step"]:
            inv = r["invariance"]
            lines.append(f"{mode:>6} step {r['step']:5d}: " + " | ".join(f"{float(inv[k]):8.2e}" for k in ("member", "mean", "ntk")))
    return "\n".join(lines)


def figure(cfg: HeatmapConfig, done: dict):
    """Rows: (augmentation, kind) for kind in member 0, M-member mean, mu_t; columns: steps.
    Training points as white dots; each row shares one colour scale per column."""
    plt = pyplot()
    steps = cfg.record_steps
    rows = [(mode, kind) for mode in MODES for kind in ("member", "mean", "ntk")]
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.2 * len(steps), 2.2 * len(rows)), squeeze=False)
    names = {"member": "one member", "ntk": "NTK mu_t",
             "mean": f"mean of {cfg.ensemble_size}" + (" (antithetic)" if cfg.antithetic else "")}
    ext = (-cfg.half_width, cfg.half_width, -cfg.half_width, cfg.half_width)
    for j, _ in enumerate(steps):
        for (mode, kind), ax_row in zip(rows, axes):
            ax = ax_row[j]
            rec = done.get(mode)
            ax.set_xticks([])
            ax.set_yticks([])
            if rec is None:
                continue
            r = rec["per_step"][j]
            vals = np.asarray(r[kind], dtype=float).reshape(cfg.grid, cfg.grid)
            lim = np.quantile(np.abs(vals), 0.99) or 1.0
            ax.imshow(vals, origin="lower", extent=ext, cmap="RdBu_r", vmin=-lim, vmax=lim)
            tx = np.asarray(rec["train_x"], dtype=float)
            ax.plot(tx[:, 0], tx[:, 1], "o", ms=2, mfc="white", mec="k", mew=0.4)
            ax.set_title(f"step {r['step']}, inv. {float(r['invariance'][kind]):.1e}", fontsize=6)
            if j == 0:
                ax.set_ylabel(f"{'C' + str(cfg.group_order) + ' orbit' if mode == 'orbit' else 'no aug.'}\n"
                              f"{names[kind]}", fontsize=7)
    fig.tight_layout()
    return fig


FIGURES = (Figure(NAME, figure, "The planar C8 toy problem over the plane: one member, the mean of M members "
                                "(antithetic pairs, whose initial functions cancel) and the NTK mean after the same "
                                "gradient-descent steps at initialisation and after 1, 2, 3 and many gradient-"
                                "descent steps, without augmentation and on the full C8 orbit (white dots: "
                                "training points; titles: relative C8 invariance error on the grid)."),)


def numbers(cfg: HeatmapConfig, done: dict) -> dict:
    """C8 invariance error on the grid at the last step with the orbit: member 0
    (``heatMember``), the M-member mean (``heatMean``), mu_t (``heatNtk``); and ``heatM``."""
    last = done["orbit"]["per_step"][-1]["invariance"]
    return {"heatMember": float(last["member"]), "heatMean": float(last["mean"]), "heatNtk": float(last["ntk"]),
            "heatM": str(cfg.ensemble_size), "heatSteps": str(cfg.record_steps[-1])}
