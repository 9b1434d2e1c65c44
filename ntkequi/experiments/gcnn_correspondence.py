"""The augmentation/group-convolution correspondence with finite ensembles: a CNN trained on the
C4 orbits of FashionMNIST images and its corresponding group CNN (GCNN) have one mean prediction
mu_s at infinite width; do finite ensembles of both approach it?

The pair (Misof, Kessel & Gerken 2025, arXiv 2406.06504): the CNN is conv -> ReLU -> 2x2 average
pool blocks, then global average pooling and a dense readout; the GCNN has the same layers with
a C4 lifting convolution for the first conv, C4 group convolutions for the others, and invariant
pooling (global average over positions and rotations) before the readout. Every pooled map must
have an even side (an odd one drops a row, which breaks the rotation). The GCNN's NTK is then the
one-sided C4-symmetrized CNN NTK (``tests/test_gcnn_kernels.py``, to float64 rounding), so on
invariant targets its mean after gradient descent on the orbit equals the augmented CNN's, at
every step and on every input: here the two analytic means are computed independently (each
network's own kernel, structured solve on the orbit) and their largest relative difference is
recorded per evaluation set and step. Their covariances differ: the GCNN's initial functions are
invariant, the CNN's are not.

Both ensembles are ntk_convergence units (:func:`ntkequi.experiments.ntk_convergence.run`: same
data, orbit, step size ``eta = eta_lambda / lambda_max`` and steps, per-member predictions kept),
each compared with its own network's analytic mean and covariance by
:func:`ntkequi.metrics.ensemble_deviation` (bias, variance ratio, intervals); problems
``fmnist_cnn_gap`` and ``fmnist_gcnn``.

    ntkequi run gcnn_correspondence --data-dir DIR                  # small: 14x14, a few images
    ntkequi run gcnn_correspondence --data-dir DIR --preset cpu     # widths 4 ... 256 (CNN), 2 ... 128 (GCNN)
"""
from __future__ import annotations

import numpy as np

from .. import metrics
from ..kernels import Predictor
from ..runs import RunDir
from . import ntk_convergence as nc
from .ntk_convergence import ConvergenceConfig, ProblemConfig, pooled_bias, pooled_mean
from .protocol import Figure, pyplot

NAME = "gcnn_correspondence"
USES_DATA = True
CPU_TIME = {"small": "40 s", "cpu": "10 min"}
NETWORKS = ("cnn_gap", "gcnn")


def _pair(widths: tuple, gcnn_widths: tuple, **fields) -> tuple:
    return (ProblemConfig("fmnist", "cnn_gap", widths=widths, **fields),
            ProblemConfig("fmnist", "gcnn", widths=gcnn_widths, **fields))


def check_pair(cfg: ConvergenceConfig) -> None:
    """ValueError unless ``cfg.problems`` is a CNN (GAP readout) and its GCNN on the same data,
    depth and steps, with every pooled map of even side."""
    kinds = tuple(p.kind for p in cfg.problems)
    if kinds != NETWORKS:
        raise ValueError(f"problems must be the pair {NETWORKS} (kinds); got {kinds}")
    a, b = cfg.problems
    same = ("dataset", "ensemble_size", "n_train", "n_eval", "depth", "steps", "record_steps", "downsample",
            "eta_lambda")
    diff = [f for f in same if getattr(a, f) != getattr(b, f)]
    if diff:
        raise ValueError(f"the CNN and GCNN problems must share {diff}; got "
                         f"{[(getattr(a, f), getattr(b, f)) for f in diff]}")
    side = 28 // a.downsample
    for block in range(a.depth):
        if side % 2:
            raise ValueError(f"block {block + 1} pools a {side}x{side} map: an odd side breaks the rotation and "
                             f"the correspondence (choose downsample and depth so every pooled side is even)")
        side //= 2


Config = ConvergenceConfig
PRESETS = {
    # 14x14 images, one conv-ReLU-pool block (14 -> 7), a few images and members: the test's size
    "small": ConvergenceConfig(problems=_pair((2,), (1,), ensemble_size=4, n_train=4, n_eval=1, steps=4,
                                              record_steps=(0, 4), downsample=2, depth=1),
                               seeds=(0,), models=("network",), eta_lambda=0.15),
    # ntk_convergence's CNN settings (eta lambda_max = 0.15, 60 steps, 16 members, 3 seeds) on the
    # GAP pair at 14x14 with one block; widths spanning 64x, GCNN channels per rotation half the CNN's
    "cpu": ConvergenceConfig(problems=_pair((4, 16, 64, 256), (2, 8, 32, 128), ensemble_size=16, n_train=32, n_eval=8,
                                            steps=60, record_steps=(0, 10, 60), downsample=2, depth=1),
                             seeds=(0, 1, 2), models=("network",), eta_lambda=0.15),
}


def run(cfg: ConvergenceConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) both ensembles' units (:func:`ntk_convergence.run`) and the analytic means'
    correspondence records ``correspondence/step<S>/<eval set>`` into ``out``; returns the records."""
    check_pair(cfg)
    done = nc.run(cfg, out, data_dir=data_dir, progress=progress, overwrite=overwrite)
    rd = RunDir(out, cfg)
    p = cfg.problems[0]
    keys = [f"correspondence/step{int(s)}/{e}" for s in p.record_steps for e in ("fashion_mnist_test", "mnist", "noise")]
    if all(k in done for k in keys):
        return done
    preds = {}
    for q in cfg.problems:
        prob = nc.problem(q, cfg.data_seed, data_dir)
        ev = metrics.EvalOrbits.of(prob.group, prob.evals)
        eta = nc.step_size(cfg, q, prob)
        net = nc.spec(q, min(q.widths), prob.y.shape[1])
        mu = Predictor(net, prob.x, prob.y, group=prob.group, compute_cov=True)
        preds[q.kind] = (mu(ev.x, steps=q.record_steps, learning_rate=eta, compute_cov=True), eta)
    (cnn, eta), (gcnn, eta_g) = preds["cnn_gap"], preds["gcnn"]
    for i, step in enumerate(p.record_steps):
        for e in ev.names:
            sl = ev.slice(e)
            a, b = np.asarray(gcnn.mean[i, sl]), np.asarray(cnn.mean[i, sl])
            scale = float(np.abs(np.asarray(cnn.mean[:, sl])).max())     # mu_0 = 0: the largest |mu_s| of the set
            ca, cb = np.asarray(gcnn.cov[i][sl, sl]), np.asarray(cnn.cov[i][sl, sl])
            key = f"correspondence/step{int(step)}/{e}"
            done[key] = rd.record(key, kind="correspondence", step=int(step), t=float(step * eta), evaluation_set=e,
                                  eta_cnn=float(eta), eta_gcnn=float(eta_g),
                                  max_abs_diff=float(np.abs(a - b).max()), scale=scale,
                                  max_rel_diff=float(np.abs(a - b).max() / scale),
                                  cov_max_rel_diff=float(np.abs(ca - cb).max() / np.abs(cb).max()))
    rd.close()
    return done


def kept_files(run_dir) -> list:
    """The per-member predictions, as ntk_convergence keeps them."""
    return nc.kept_files(run_dir)


def _last(cfg) -> int:
    return int(max(cfg.problems[0].record_steps))


def summary(cfg: ConvergenceConfig, done: dict) -> str:
    """The analytic means' correspondence, and per network and width the relative bias and the
    variance ratio of the ensembles at the last step on test images (90 % intervals over seeds)."""
    step = _last(cfg)
    corr = [r for r in done.values() if r.get("kind") == "correspondence"]
    lines = ["Analytic means, GCNN against augmented CNN (largest relative difference over steps and sets): "
             + (f"{max(r['max_rel_diff'] for r in corr):.1e}; covariances {max(r['cov_max_rel_diff'] for r in corr):.1e}"
                if corr else "not computed yet"),
             f"Ensembles against their own network's mu_s and Sigma_s, step {step}, FashionMNIST test orbits:",
             f"{'network':>8} {'width':>6} | {'relative bias [90% CI]':>26} | {'variance ratio [90% CI]':>26}"]
    for net in NETWORKS:
        match = dict(dataset=f"fmnist_{net}", model="network", step=step, eval_set="fashion_mnist_test")
        w, b, blo, bhi = pooled_bias(done, **match)
        _, v, vlo, vhi = pooled_mean(done, "variance_ratio", **match)
        for i in range(len(w)):
            lines.append(f"{net:>8} {int(w[i]):6d} | {b[i]:8.3f} [{blo[i]:.3f}, {bhi[i]:.3f}]{'':>4} | "
                         f"{v[i]:8.3f} [{vlo[i]:.3f}, {vhi[i]:.3f}]")
    return "\n".join(lines)


def figure(cfg: ConvergenceConfig, done: dict):
    """Left: relative bias against width, right: variance ratio against width, at the last step on
    test orbits, for the augmented CNN and its GCNN (90 % intervals over seeds)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    step = _last(cfg)
    for net, colour in zip(NETWORKS, ("C0", "C3")):
        match = dict(dataset=f"fmnist_{net}", model="network", step=step, eval_set="fashion_mnist_test")
        label = {"cnn_gap": "CNN (GAP), orbit-augmented", "gcnn": "C4 GCNN"}[net]
        for ax, (w, m, lo, hi) in zip(axes, (pooled_bias(done, **match),
                                              pooled_mean(done, "variance_ratio", **match))):
            if len(w):
                ax.errorbar(w, m, yerr=[np.maximum(m - lo, 0), np.maximum(hi - m, 0)], marker="o", color=colour,
                            capsize=3, label=label)
    axes[0].axhline(0.0, color="k", lw=0.8, ls=":")          # the pooled bias is often 0 (clipped): linear axis
    axes[0].set(xscale="log", xlabel="width (channels)", ylabel="relative bias of the mean")
    axes[1].axhline(1.0, color="k", lw=0.8, ls=":")
    axes[1].set(xscale="log", xlabel="width (channels)", ylabel="variance ratio tr S / tr Sigma")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def numbers(cfg: ConvergenceConfig, done: dict) -> dict:
    """The largest relative difference of the two analytic means and of their covariances (over
    steps and evaluation sets); per network, at its smallest and largest width (last step, test
    orbits): the relative bias with the upper end of its interval and the variance ratio with
    its interval."""
    corr = [r for r in done.values() if r.get("kind") == "correspondence"]
    out = {"gcnnCorrMax": max(r["max_rel_diff"] for r in corr), "gcnnCovDiff": max(r["cov_max_rel_diff"] for r in corr)}
    step = _last(cfg)
    for net, tag in zip(NETWORKS, ("Cnn", "Gcnn")):
        match = dict(dataset=f"fmnist_{net}", model="network", step=step, eval_set="fashion_mnist_test")
        w, b, _, bhi = pooled_bias(done, **match)
        _, v, vlo, vhi = pooled_mean(done, "variance_ratio", **match)
        for i, end in ((0, "Narrow"), (-1, "Wide")):
            out[f"gcnn{tag}{end}Width"] = str(int(w[i]))
            out[f"gcnn{tag}{end}Bias"], out[f"gcnn{tag}{end}BiasHi"] = float(b[i]), float(bhi[i])
            out[f"gcnn{tag}{end}Var"], out[f"gcnn{tag}{end}VarLo"], out[f"gcnn{tag}{end}VarHi"] = \
                float(v[i]), float(vlo[i]), float(vhi[i])
    return out


FIGURES = (Figure("gcnn_correspondence", figure,
                  "Finite ensembles of an orbit-augmented CNN with global average pooling and of its "
                  "corresponding C4 group CNN on FashionMNIST, each against its network's NTK prediction "
                  "after the same gradient descent: relative bias of the ensemble mean and variance ratio "
                  "against width at the last step, test orbits, 90 % intervals over seeds. The two "
                  "analytic means are the same to float64 rounding."),)
