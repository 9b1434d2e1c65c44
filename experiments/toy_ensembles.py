"""Toy experiment: finite deep ensembles vs members vs the NTK, with full, partial and no augmentation.

Planar points in a 60-degree wedge with a rotation-invariant target; group C8 of the
plane. For each augmentation mode (none; full C8 orbit; the C4 subgroup of C8) and
each width, one ensemble of ``max(ensemble_sizes)`` members is trained by full-batch
gradient descent on the summed MSE (learning rate ``lr_fraction`` times the largest
stable one of the C8-augmented NTK), and its predictions on the C8 orbits of
in-distribution points and of Gaussian noise (off the data) are recorded at several
steps. Reported per record step: the C8 invariance error of single members, of the
mean of the first M members for each M, and of the analytic NTK mean mu_t at the same
t, and the distance of the ensemble mean from mu_t.

    python experiments/toy_ensembles.py                   # small default, a few minutes on 2 CPU cores
    python experiments/toy_ensembles.py --preset paper    # wider, larger ensembles (use a GPU)

Writes ``runs/toy_ensembles[-paper]/`` (config, versions, results.jsonl, ensemble
checkpoints; resumable) and ``figures/toy_ensembles[-paper].png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ntkequi import data, ensembles, groups, metrics, ntk
from ntkequi.arch import ArchSpec
from ntkequi.results import RunDir

MODES = ("none", "orbit", "subgroup")
EVAL_SETS = ("in_distribution", "noise")


@dataclasses.dataclass(frozen=True)
class ToyEnsembleConfig:
    group_order: int = 8
    subgroup_step: int = 2             # C4 inside C8
    n_train: int = 8
    n_eval: int = 8
    depth: int = 2
    b_std: float = 1.0
    widths: tuple = (64, 256)
    ensemble_sizes: tuple = (1, 2, 4, 8, 16, 32)
    steps: int = 1000
    record_steps: tuple = (0, 10, 100, 1000)
    lr_fraction: float = 0.5           # of 2 / lambda_max of the C8-augmented NTK
    seed: int = 0


PRESETS = {
    "small": ToyEnsembleConfig(),
    "paper": ToyEnsembleConfig(n_train=16, n_eval=32, widths=(64, 256, 1024, 4096),
                               ensemble_sizes=(1, 2, 4, 8, 16, 32, 64, 128),
                               steps=10000, record_steps=(0, 10, 100, 1000, 10000)),
}


def _inv(f_orbit, group):
    return metrics.equivariance_error(f_orbit, group).relative


def run(cfg: ToyEnsembleConfig, out: Path, progress: bool = True) -> dict:
    jax.config.update("jax_enable_x64", True)
    run_dir = RunDir(out, cfg)
    group = groups.planar_rotations(cfg.group_order)
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
    x = data.wedge_points(kx, cfg.n_train)
    y = data.radial_target(x)
    evals = {"in_distribution": data.wedge_points(k1, cfg.n_eval),
             "noise": data.noise_points(k2, cfg.n_eval)}
    x_eval = jnp.concatenate([group.orbit(evals[s]).reshape(-1, 2) for s in EVAL_SETS])
    lr = cfg.lr_fraction * ntk.max_learning_rate(
        ArchSpec(depth=cfg.depth, b_std=cfg.b_std), x, group)
    n_orbit = group.order * cfg.n_eval
    done = run_dir.done()
    for mode in MODES:
        for width in cfg.widths:
            key = f"{mode}/width{width}"
            if key in done:
                continue
            spec = ArchSpec(kind="mlp", depth=cfg.depth, width=width, b_std=cfg.b_std)
            tcfg = ensembles.TrainConfig(
                ensemble_size=max(cfg.ensemble_sizes), steps=cfg.steps, learning_rate=lr,
                augmentation=mode, subgroup_step=cfg.subgroup_step,
                record_steps=cfg.record_steps, seed=cfg.seed)
            print(f"[toy_ensembles] {key}: {tcfg.ensemble_size} members, lr={lr:.3g}", flush=True)
            res = ensembles.train(spec, tcfg, x, y, x_eval, group=group,
                                  run_dir=run_dir.path / "ensembles" / key.replace("/", "_"),
                                  progress=progress)
            aug = {"none": None, "orbit": group}.get(mode)
            if mode == "subgroup":
                elems = ensembles.subgroup_elements(group, cfg.subgroup_step)
                sub = groups.MatrixGroup(f"C{len(elems)}", group.mats[elems])
                pred = ntk.predict(spec, jnp.concatenate([sub.act(g, x) for g in range(sub.order)]),
                                   jnp.concatenate([y] * sub.order), x_eval, res.times(lr))
            else:
                pred = ntk.predict(spec, x, y, x_eval, res.times(lr), group=aug)
            rec = {"mode": mode, "width": width, "steps": res.steps, "times": res.times(lr)}
            for j, s in enumerate(EVAL_SETS):
                sl = slice(j * n_orbit, (j + 1) * n_orbit)
                per_step = []
                for i in range(len(res.steps)):
                    members = res.members[i, :, sl]
                    orbit = lambda f: metrics.orbit_predictions(f, group)
                    per_step.append({
                        "members": float(np.mean([_inv(orbit(m), group) for m in members])),
                        "ensemble": [_inv(orbit(members[:m].mean(0)), group) for m in cfg.ensemble_sizes],
                        "ntk": _inv(orbit(pred.mean[i, sl]), group) if res.steps[i] > 0 else float("nan"),
                        "distance_to_ntk": [metrics.ntk_distance(members[:m].mean(0), pred.mean[i, sl])
                                            if res.steps[i] > 0 else float("nan")
                                            for m in cfg.ensemble_sizes],
                    })
                rec[s] = per_step
            done[key] = run_dir.record(key, **rec)
    figure(done, cfg, out)
    return done


def figure(done: dict, cfg: ToyEnsembleConfig, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    colors = {"none": "C3", "orbit": "C0", "subgroup": "C2"}
    labels = {"none": "no augmentation", "orbit": f"C{cfg.group_order} orbit",
              "subgroup": f"C{cfg.group_order // cfg.subgroup_step} subgroup"}
    width = max(cfg.widths)
    sizes = np.asarray(cfg.ensemble_sizes)
    ax = axes[0]
    for mode in MODES:
        last = done[f"{mode}/width{width}"]["noise"][-1]
        ax.plot(sizes, last["ensemble"], "o-", color=colors[mode], label=f"ensemble mean, {labels[mode]}")
        ax.axhline(last["members"], ls="--", color=colors[mode], lw=1)
        ax.axhline(float(last["ntk"]), ls=":", color=colors[mode], lw=1.5)
    ref = done[f"orbit/width{width}"]["noise"][-1]["ensemble"][0]
    ax.plot(sizes, ref / np.sqrt(sizes), "k-", lw=0.8, label="1/sqrt(M)")
    ax.set(xscale="log", yscale="log", xlabel="ensemble size M",
           ylabel=f"relative C{cfg.group_order} invariance error",
           title=f"off-manifold (noise), width {width}, step {cfg.steps}\n"
                 "dashed: single members, dotted: NTK mu_t")
    ax.legend(fontsize=7)
    ax = axes[1]
    for w, mk in zip(cfg.widths, "osd^v"):
        rec = done[f"orbit/width{w}"]
        d = [r["distance_to_ntk"] for r in rec["noise"]][-1]
        ax.plot(sizes, d, marker=mk, label=f"width {w}")
    ax.set(xscale="log", yscale="log", xlabel="ensemble size M",
           ylabel="||ensemble mean - mu_t|| / ||mu_t||",
           title=f"C{cfg.group_order}-augmented ensemble vs NTK (noise inputs, step {cfg.steps})")
    ax.legend(fontsize=7)
    ax = axes[2]
    rec = done[f"orbit/width{width}"]
    steps = np.asarray(rec["steps"], dtype=float)
    pos = steps > 0
    for s, ls in zip(EVAL_SETS, ("-", "--")):
        ax.plot(steps[pos], [r["ensemble"][-1] for r, p in zip(rec[s], pos) if p], "o" + ls, color="C0",
                label=f"ensemble (M={sizes[-1]}), {s}")
        ax.plot(steps[pos], [r["members"] for r, p in zip(rec[s], pos) if p], "s" + ls, color="C1",
                label=f"members, {s}")
        ax.plot(steps[pos], [float(r["ntk"]) for r, p in zip(rec[s], pos) if p], "^" + ls, color="C2",
                label=f"NTK mu_t, {s}")
    ax.set(xscale="log", yscale="log", xlabel="gradient-descent step",
           ylabel=f"relative C{cfg.group_order} invariance error",
           title=f"C{cfg.group_order} orbit augmentation over training, width {width}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = out.name
    fig_dir = Path(__file__).resolve().parents[1] / "figures"
    fig_dir.mkdir(exist_ok=True)
    fig.savefig(fig_dir / f"{name}.png", dpi=110)
    fig.savefig(out / f"{name}.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--out", default=None, help="run directory (default runs/toy_ensembles[-paper])")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = PRESETS[args.preset]
    out = Path(args.out or ("runs/toy_ensembles" + ("" if args.preset == "small" else f"-{args.preset}")))
    done = run(cfg, out, progress=not args.no_progress)
    width = max(cfg.widths)
    print(f"\nrelative C{cfg.group_order} invariance error at step {cfg.steps}, width {width}, noise inputs")
    print(f"{'mode':>9} | {'member':>8} | " + " | ".join(f"M={m:<4}" for m in cfg.ensemble_sizes) + " |    NTK")
    for mode in MODES:
        last = done[f"{mode}/width{width}"]["noise"][-1]
        print(f"{mode:>9} | {last['members']:8.3f} | " + " | ".join(f"{v:6.3f}" for v in last["ensemble"])
              + f" | {float(last['ntk']):6.1e}")
    print(f"\nwrote {out}/results.jsonl and figures/{out.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
