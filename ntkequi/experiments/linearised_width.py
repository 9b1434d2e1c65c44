"""The linearised ensemble at widths that training cannot reach on a CPU, in closed form: does its
spread approach the NTK covariance as the width grows?

ntk_convergence's FashionMNIST MLP ensembles (network and linearised alike) spread about 5 %
less than the NTK covariance Sigma_s predicts at the last step, at widths 1024 and 2048. A
linearised member is a linear model in its parameters, so full-batch gradient descent on it has a
closed form in the member's own empirical NTK (``ensembles.linearised_ensemble``: the empirical
NTK, output by output, written out layer by layer, then ``(I - eta Theta_hat)^s``); tested equal
to training the linearised members to 1e-9. That makes widths of 8192 and more cheap.

For each width and seed, ``ensemble_size`` linearised members of the problem's MLP (the same data,
orbit, step size ``eta = eta_lambda / lambda_max`` and steps as ntk_convergence) are evolved
twice from the same initial functions ``f_0``:

* kernel 'empirical': with each member's own empirical NTK (exactly what training gives);
* kernel 'analytic': with the analytic NTK (a control: then ``f_s`` is a fixed linear map of
  ``f_0``, whose covariance is the NNGP kernel at any width for one hidden layer, so the
  variance ratio must be 1 within its interval; it checks the data, the step size and the
  formula for Sigma_s, everything but the kernel's finite-width fluctuation).

Records per (width, seed, kernel, step, evaluation set) carry ntk_convergence's deviation fields
(:func:`ntkequi.metrics.ensemble_deviation`: bias, variance ratio, their intervals).

    ntkequi run linearised_width                                   # small: toy
    ntkequi run linearised_width --data-dir DIR --preset cpu       # FashionMNIST MLP, widths 1024 ... 32768

Writes runs/linearised_width[-<preset>]/ (resumable by (width, seed)); the per-member predictions
of the empirical kernel stay in ``ensembles/<unit>/predictions_step*.npy`` (float32).
"""
from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .. import ensembles, metrics
from ..kernels import Predictor, augment
from ..runs import RunDir
from .ntk_convergence import (ProblemConfig, fit_exponent, pooled_bias, pooled_mean, problem, rows, spec,
                              step_size, t_interval)
from .protocol import Figure, Num, Table, pyplot

NAME = "linearised_width"
USES_DATA = True
CPU_TIME = {"small": "35 s", "cpu": "26 min (beside other work; 80 members per width, 2 s each at width 1024 to 8 s at 32768)"}
KERNELS = ("empirical", "analytic")


@dataclasses.dataclass(frozen=True)
class LinearisedWidthConfig:
    """problem: the data, MLP, widths, members per ensemble and steps (ntk_convergence's
    :class:`~ntkequi.experiments.ntk_convergence.ProblemConfig`; kind 'mlp'); seeds: one
    ensemble per seed and width; eta_lambda: ``eta * lambda_max`` of the orbit-augmented NTK;
    gram_dtype: the precision of the empirical NTK's Gram products (the rest is float64);
    data_seed: the draw of the data."""
    x64: ClassVar[bool] = True
    problem: ProblemConfig = ProblemConfig("toy", widths=(64, 1024), ensemble_size=8, n_train=6, n_eval=4,
                                           steps=40, record_steps=(0, 10, 40))
    seeds: tuple = (0, 1)
    eta_lambda: float = 0.5
    gram_dtype: str = "float64"
    data_seed: int = 0

    def __post_init__(self):
        if self.problem.kind != "mlp":
            raise ValueError(f"the closed form is written for MLPs: problem.kind must be 'mlp'; got {self.problem.kind!r}")
        if not 0 < self.eta_lambda <= 0.5:
            raise ValueError(f"eta_lambda must be in (0, 0.5]; got {self.eta_lambda}")
        if self.gram_dtype not in ("float32", "float64"):
            raise ValueError(f"gram_dtype must be 'float32' or 'float64'; got {self.gram_dtype!r}")


Config = LinearisedWidthConfig
PRESETS = {
    "small": LinearisedWidthConfig(),
    # ntk_convergence's cpu FashionMNIST MLP problem (C4 orbit of 64 images at 14x14, 1200 steps at
    # eta lambda_max = 0.5, test/MNIST/noise orbits, 16 members), so that at widths 1024 and 2048 the
    # members of seeds 0-2 are ntk_convergence's own (the same keys); widths up to 32768, 5 seeds
    "cpu": LinearisedWidthConfig(problem=ProblemConfig(
        "fmnist", widths=(1024, 2048, 8192, 32768), ensemble_size=16, n_train=64, n_eval=16, steps=1200,
        record_steps=(0, 10, 100, 400, 1200), downsample=2), seeds=(0, 1, 2, 3, 4), gram_dtype="float32"),
}


def _records(p, ev, pred, scales, width, seed, kernel, members, steps, eta) -> dict:
    """``{key: record}`` of one ensemble ``members`` ``(steps, M, n, k)`` against ``pred``."""
    out = {}
    for i, step in enumerate(steps):
        for s in ev.names:
            sl = ev.slice(s)
            dev = metrics.ensemble_deviation(members[i][:, sl], np.asarray(pred.mean[i, sl]),
                                             np.asarray(pred.cov[i][sl, sl]), scale=scales[s], seed=seed)
            out[f"w{width}/s{seed}/{kernel}/step{int(step)}/{s}"] = {
                "dataset": p.name, "model": "linearised", "kernel": kernel, "width": int(width), "seed": int(seed),
                "step": int(step), "t": float(step * eta), "eval_set": s, **dev.as_record()}
    return out


def run(cfg: LinearisedWidthConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) every (width, seed) unit into ``out``; returns the records."""
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    p = cfg.problem
    units = rd.pending([(w, s) for w in p.widths for s in cfg.seeds], lambda u: f"w{u[0]}/s{u[1]}")
    if not units:
        return done
    prob = problem(p, cfg.data_seed, data_dir)
    ev = metrics.EvalOrbits.of(prob.group, prob.evals)
    k = prob.y.shape[1]
    ref = spec(p, min(p.widths), k)
    eta = step_size(cfg, p, prob)
    steps = tuple(int(s) for s in p.record_steps)
    pred = Predictor(ref, prob.x, prob.y, group=prob.group, compute_cov=True)(
        ev.x, steps=steps, learning_rate=eta, compute_cov=True)
    scales = {s: float(np.sqrt(k * np.trace(np.asarray(pred.cov[0][ev.slice(s), ev.slice(s)])))) for s in ev.names}
    xs, ys = augment(prob.group, prob.x, prob.y)                     # the full orbit, as the members train on
    n = xs.shape[0]
    pts = jnp.concatenate([xs, ev.x])
    theta = ref.kernel_fn(pts, None, "ntk")                           # the analytic NTK, (P, P)
    analytic = jax.vmap(lambda f0, y: ensembles.linearised_gd(theta, f0[:, None], y[:, None], steps, eta)[..., 0],
                        in_axes=(1, 1), out_axes=-1)                 # one output at a time: Theta (x) I_k
    print(f"[{rd.path.name}] {p.name}: eta = {eta:.4g}, {n} training inputs, {ev.x.shape[0]} evaluated", flush=True)
    for unit, (width, seed) in units:
        net = spec(p, width, k)
        key_init, _ = jax.random.split(jax.random.PRNGKey(seed))       # as ensembles.train draws members
        params = ensembles.init_ensemble(net, key_init, p.ensemble_size, xs)
        print(f"[{rd.path.name}] {unit}: {p.ensemble_size} linearised members in closed form", flush=True)
        start = time.perf_counter()
        emp = ensembles.linearised_ensemble(net, params, xs, ys, ev.x, steps, eta,
                                            gram_dtype=jnp.dtype(cfg.gram_dtype), progress=progress)
        f0 = jax.vmap(lambda q: net.flax().apply(q, pts))(params)     # (M, P, k)
        ana = np.asarray(jax.vmap(analytic, in_axes=(0, None), out_axes=1)(f0, ys))   # (steps, M, n, k)
        store = rd.path / "ensembles" / unit.replace("/", "_")
        store.mkdir(parents=True, exist_ok=True)
        for i, step in enumerate(steps):
            np.save(store / f"predictions_step{step}.npy", emp[i].astype(np.float32))
        recs = {**_records(p, ev, pred, scales, width, seed, "empirical", emp, steps, eta),
                **_records(p, ev, pred, scales, width, seed, "analytic", ana, steps, eta)}
        for key, rec in recs.items():
            done[key] = rd.record(key, **rec)
        done[unit] = rd.record(unit, kind="unit", width=int(width), seed=int(seed), eta=float(eta),
                               seconds=round(time.perf_counter() - start, 1))       # wall time of the unit
        if progress:
            last = [r for r in recs.values() if r["step"] == steps[-1] and r["eval_set"] == ev.names[0]]
            print(f"[{rd.path.name}] {unit}: variance ratio at step {steps[-1]} ({ev.names[0]}): "
                  + ", ".join(f"{r['kernel']} {r['variance_ratio']:.3f}" for r in last), flush=True)
    return done


def kept_files(run_dir) -> list:
    """Each unit's last recorded per-member predictions (float32), relative to ``run_dir``."""
    from pathlib import Path
    last = {}
    for f in Path(run_dir).glob("ensembles/*/predictions_step*.npy"):
        step = int(f.stem.removeprefix("predictions_step"))
        if step >= last.get(f.parent, (-1, None))[0]:
            last[f.parent] = (step, f)
    return sorted(f.relative_to(run_dir).as_posix() for _, f in last.values())


# ---------------------------------------------------------------- reading the records
def _last(done: dict) -> int:
    return max(r["step"] for r in rows(done))


def _eval_sets(done: dict) -> list:
    return list(dict.fromkeys(r["eval_set"] for r in rows(done)))


def ratios(done: dict, kernel: str, eval_set: str, step=None):
    """``(widths, mean, low, high)``: the variance ratio per width pooled over seeds (with its
    90 % interval over seeds, ntk_convergence's :func:`pooled_mean`), at ``step`` (default: the
    last recorded)."""
    step = _last(done) if step is None else step
    return pooled_mean(done, "variance_ratio", kernel=kernel, eval_set=eval_set, step=step)


def paired_differences(done: dict, eval_set: str, step=None, level: float = 0.9):
    """``(widths, mean, low, high)``: the variance ratio with each member's empirical NTK minus the
    ratio with the analytic NTK, per width, averaged over seeds with its ``level`` interval over
    seeds (``mean +- t_{S-1} se``). Both evolve the same initial functions, so their sampling
    noise cancels in the difference, which is the finite-width kernel's own effect on the spread."""
    step = _last(done) if step is None else step
    emp = {(r["width"], r["seed"]): r["variance_ratio"]
           for r in rows(done, kernel="empirical", eval_set=eval_set, step=step)}
    ana = {(r["width"], r["seed"]): r["variance_ratio"]
           for r in rows(done, kernel="analytic", eval_set=eval_set, step=step)}
    widths = sorted({w for w, _ in emp})
    m, lo, hi = [], [], []
    for w in widths:
        mean, low, high = t_interval([emp[u] - ana[u] for u in emp if u[0] == w and u in ana], level)
        m.append(mean)
        lo.append(low)
        hi.append(high)
    return np.asarray(widths), np.asarray(m), np.asarray(lo), np.asarray(hi)


def summary(cfg: LinearisedWidthConfig, done: dict) -> str:
    """Per evaluation set and kernel at the last step: the variance ratio per width with its
    interval over seeds, the fitted exponent of its distance from 1, and the relative bias."""
    step = _last(done)
    lines = [f"{cfg.problem.name}, linearised members in closed form, step {step}, "
             f"{cfg.problem.ensemble_size} members x {len(cfg.seeds)} seeds per width"]
    for s in _eval_sets(done):
        for kernel in KERNELS:
            w, v, lo, hi = ratios(done, kernel, s)
            _, b, blo, bhi = pooled_bias(done, kernel=kernel, eval_set=s, step=step)
            lines.append(f"{s} {kernel} kernel: variance ratio "
                         + ", ".join(f"w{int(x)} {y:.3f} [{a:.3f}, {c:.3f}]" for x, y, a, c in zip(w, v, lo, hi))
                         + f"; exponent of |ratio - 1| {fit_exponent(w, np.abs(v - 1)):.2f}; relative bias "
                         + ", ".join(f"{y:.3g} [up to {c:.3g}]" for y, c in zip(b, bhi)))
        w, d, lo, hi = paired_differences(done, s)
        lines.append(f"{s} empirical minus analytic (paired): "
                     + ", ".join(f"w{int(x)} {y:+.4f} [{a:+.4f}, {c:+.4f}]" for x, y, a, c in zip(w, d, lo, hi))
                     + f"; exponent of |difference| {fit_exponent(w, np.abs(d)):.2f}")
    return "\n".join(lines)


def figure(cfg: LinearisedWidthConfig, done: dict):
    """Top: variance ratio against width, one panel per evaluation set, the empirical kernel at
    each recorded step after 0 and the analytic-kernel control at the last step. Bottom: the paired
    difference (analytic minus empirical, log-log) with a 1/width guide. Intervals over seeds."""
    plt = pyplot()
    sets = _eval_sets(done)
    fig, axes = plt.subplots(2, len(sets), figsize=(4.2 * len(sets), 6.6), squeeze=False)
    steps = sorted({r["step"] for r in rows(done)} - {0})
    for ax, s in zip(axes[1], sets):
        for i, step in enumerate(steps):
            w, d, lo, hi = paired_differences(done, s, step)
            ax.errorbar(w, -d, yerr=[hi - d, d - lo], fmt="o-", color=f"C{i}", capsize=3, label=f"step {step}")
        ax.plot(w, -d[0] * w[0] / w, ":", color="k", lw=1, label="1/width")
        ax.set(xscale="log", yscale="log", xlabel="width", ylabel="analytic minus empirical (paired)")
    axes[1][0].legend(fontsize=7)
    for ax, s in zip(axes[0], sets):
        for i, step in enumerate(steps):
            w, v, lo, hi = ratios(done, "empirical", s, step)
            ax.errorbar(w, v, yerr=[v - lo, hi - v], fmt="o-", color=f"C{i}", capsize=3, label=f"step {step}")
        w, v, lo, hi = ratios(done, "analytic", s)
        ax.errorbar(w, v, yerr=[v - lo, hi - v], fmt="s--", color="k", capsize=3, label=f"analytic NTK, step {steps[-1]}")
        ax.axhline(1.0, color="0.6", lw=0.8)
        ax.set(xscale="log", xlabel="width", ylabel=r"tr $S$ / ($k$ tr $\Sigma_s$)", title=s.replace("_", " "))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def table(cfg: LinearisedWidthConfig, done: dict) -> Table:
    """The variance ratio at the last step per width and evaluation set: the empirical kernel, the
    analytic-kernel control and their paired difference, each with its interval over seeds."""
    rows_ = []
    for s in _eval_sets(done):
        w, v, lo, hi = ratios(done, "empirical", s)
        _, va, alo, ahi = ratios(done, "analytic", s)
        _, d, dlo, dhi = paired_differences(done, s)
        rows_ += [[s.replace("_", " "), str(int(x)), Num(y, 3), (Num(a, 3), "--", Num(c, 3)), Num(z, 3),
                   (Num(e, 3), "--", Num(f, 3)), Num(g, 2), (Num(h, 2), "--", Num(i, 2))]
                  for x, y, a, c, z, e, f, g, h, i in zip(w, v, lo, hi, va, alo, ahi, d, dlo, dhi)]
    cap = (f"Linearised {cfg.problem.name.replace('_', ' ')} ensembles in closed form "
           f"({cfg.problem.ensemble_size} members, {len(cfg.seeds)} seeds per width): the variance ratio "
           r"tr $S$ / ($k$ tr $\Sigma_s$) at the last step, with each member's empirical NTK and, as a control, "
           "with the analytic NTK from the same initial functions, and their difference per seed (the "
           "finite-width kernel's effect, free of the members' sampling noise); 90 \\% intervals over seeds.")
    return Table(["evaluation set", "width", "ratio", "interval", "analytic-NTK control", "interval",
                  "difference (paired)", "interval"], rows_, cap,
                 "linearised_width")


def numbers(cfg: LinearisedWidthConfig, done: dict) -> dict:
    """On the first evaluation set at the last step, at the smallest and the largest width: the
    variance ratio for both kernels and their paired difference, each with the ends of its
    interval; the fitted exponents of the empirical ratio's distance from 1 and of the difference."""
    s = _eval_sets(done)[0]
    out = {}
    for kernel, tag in (("empirical", "Emp"), ("analytic", "Ana")):
        w, v, lo, hi = ratios(done, kernel, s)
        for i, end in ((0, "Narrow"), (-1, "Wide")):
            out[f"linWidth{tag}{end}"] = float(v[i])
            out[f"linWidth{tag}{end}Low"] = float(lo[i])
            out[f"linWidth{tag}{end}High"] = float(hi[i])
        if kernel == "empirical":
            out["linWidthExponent"] = fit_exponent(w, np.abs(v - 1))
            out["linWidthNarrowWidth"], out["linWidthWideWidth"] = str(int(w[0])), str(int(w[-1]))
    w, d, lo, hi = paired_differences(done, s)
    for i, end in ((0, "Narrow"), (-1, "Wide")):
        out[f"linWidthDiff{end}"], out[f"linWidthDiff{end}Low"], out[f"linWidthDiff{end}High"] = \
            float(d[i]), float(lo[i]), float(hi[i])
    out["linWidthDiffExponent"] = fit_exponent(w, np.abs(d))
    return out


FIGURES = (Figure("linearised_width", figure,
                  "Linearised ensembles in closed form: the variance ratio (spread of the members over "
                  "the NTK covariance) against width, with each member's empirical NTK at each recorded step "
                  "and with the analytic NTK at the last step (a control); 90 % intervals over seeds."),)
TABLES = {"linearised_width": table}
