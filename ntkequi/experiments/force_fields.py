"""Learning an energy-conserving force field from few samples (the seeds' 2D example).

The potential (Wang et al., ACS Cent. Sci. 5, 755, 2019), in units of kT,

    V(x, y) = (x - 4)(x - 2)(x + 2)(x + 3) / 50 + y^2 / 20 + sin(3 (x + 5)(y - 6)) / 25,

is sampled by Brownian (overdamped Langevin) dynamics at kT = 1,
``r <- r + F(r) dt + sqrt(2 dt) xi`` with ``F = -grad V``. From N samples of positions and
their instantaneous forces, two kernel models learn the force field on the seed's features
``q = (2 (x + y), x - y)``:

* ``independent``: one Gaussian kernel on q per force component (``k(q, q') I``), the usual
  choice, with no prior linking the components;
* ``conserving``: the gradient-domain (Hessian) kernel of the same Gaussian on q
  (:func:`ntkequi.kernels.matrix.hessian_kernel`), whose fields are exact gradients of a
  learned energy.

Kernel width and regulariser of each model are chosen on a validation set from the same
dynamics. Reported: force error on held-out samples (learning curve over N, several
seeds), the curl of the learned field, the energy recovered up to a constant (conserving
model), and, for N = ``bd_n_train``, a Brownian-dynamics run on each learned force field,
whose distribution is compared with the Boltzmann distribution ``exp(-V)`` (total variation
distance of 2D histograms; the same for a run with the true force, as the reference).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..data.physics import (  # noqa: F401
    EXTENT,
    brownian,
    potential,
    smooth_force,
    smooth_potential,
    true_force,
)
from ..kernels import matrix as mk
from ..runs import RunDir, learning_curve
from .protocol import PM, Figure, Table, pyplot

NAME = "force_fields"
USES_DATA = False
CPU_TIME = {"small": "1.5 min", "paper": "not measured"}

MODELS = ("independent", "conserving")
FEATURES = ((2.0, 2.0), (1.0, -1.0))       # q = (2(x + y), x - y)


@dataclasses.dataclass(frozen=True)
class ForceConfig:
    x64: ClassVar[bool] = True
    """n_trains: learning-curve sample sizes, each with ``seeds`` random draws; bd_n_train:
    the size whose learned fields drive Brownian dynamics; sigmas/regs: the validation grid."""
    n_trains: tuple = (10, 20, 50, 100, 200)
    seeds: int = 5
    n_val: int = 200
    n_test: int = 1000
    sigmas: tuple = (1.0, 2.0, 4.0, 8.0)
    regs: tuple = (1e-4, 1e-2, 1e-1, 1.0)
    dt: float = 5e-3
    pool_walkers: int = 200
    pool_burn: int = 4000
    pool_snapshots: int = 40
    pool_every: int = 200
    bd_n_train: int = 50
    bd_walkers: int = 256
    bd_steps: int = 6000
    bd_burn: int = 1000
    bd_every: int = 20
    hist_bins: int = 30
    seed: int = 0


Config = ForceConfig
PRESETS = {
    "small": ForceConfig(),
    "paper": ForceConfig(n_trains=(10, 20, 50, 100, 200, 400), seeds=20, bd_walkers=1024, bd_steps=40000),
}

def features():
    return mk.linear_features(FEATURES)


def kernels(model: str, sigma: float):
    """(matrix kernel, energy kernel or None) of a model at width ``sigma``."""
    q = features()
    k = lambda a, b: mk.rbf(a, b, sigma)
    if model == "independent":
        return (lambda r, r2: k(q(r), q(r2)) * jnp.eye(2, dtype=jnp.asarray(r).dtype)), None
    if model == "conserving":
        return mk.hessian_kernel(k, q), mk.energy_force_kernel(k, q)
    raise ValueError(f"unknown model {model!r}; use one of {MODELS}")


def fit_model(model: str, x, f, x_val, f_val, sigmas, regs):
    """Fit ``model`` on ``(x, f)`` for every (sigma, reg) of the grid and keep the one with the
    smallest validation force error. Returns ``(VectorKRR, sigma, reg)``."""
    best = None
    for s in sigmas:
        kern, ekern = kernels(model, s)
        k_xx, k_vx = mk.gram(kern, x, x), mk.gram(kern, x_val, x)      # independent of reg
        for lam in regs:
            m = mk.fit(kern, x, f, reg=lam, energy_kernel=ekern, gram_xx=k_xx)
            err = _rmse((k_vx @ m.alpha.reshape(-1)).reshape(f_val.shape), f_val)
            if best is None or err < best[0]:
                best = (err, m, s, lam)
    return best[1], best[2], best[3]


def curl(model: mk.VectorKRR, x) -> jnp.ndarray:
    """``d f_y / dx - d f_x / dy`` of the learned field at ``x`` ``(M, 2)``: ``(M,)``."""
    jac = jax.vmap(jax.jacfwd(lambda p: model.predict(p[None])[0]))(x)      # (M, 2, 2): d f_i / d r_j
    return jac[:, 1, 0] - jac[:, 0, 1]


def _rmse(a, b) -> float:
    return float(jnp.sqrt(jnp.mean(jnp.sum((a - b) ** 2, -1))))


def histogram(samples, bins: int) -> np.ndarray:
    """Normalised 2D histogram ``(bins, bins)`` of ``samples`` ``(..., 2)`` on :data:`EXTENT`."""
    s = np.asarray(samples).reshape(-1, 2)
    h, _, _ = np.histogram2d(s[:, 0], s[:, 1], bins=bins, range=EXTENT)
    return h / max(h.sum(), 1)


def boltzmann(bins: int, sub: int = 8) -> np.ndarray:
    """``exp(-V)`` integrated over the cells of the :func:`histogram` grid, normalised."""
    (x0, x1), (y0, y1) = EXTENT
    n = bins * sub
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    g = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1)
    p = np.exp(-np.asarray(potential(jnp.asarray(g))))
    p = p.reshape(bins, sub, bins, sub).sum((1, 3))
    return p / p.sum()


def total_variation(p, q) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def _pool(cfg: ForceConfig):
    key = jax.random.PRNGKey(cfg.seed)
    k0, k1 = jax.random.split(key)
    r0 = jnp.stack([jax.random.uniform(k0, (cfg.pool_walkers,), minval=-3.0, maxval=4.0),
                    jnp.zeros(cfg.pool_walkers)], -1)
    steps = cfg.pool_burn + cfg.pool_snapshots * cfg.pool_every
    pos = brownian(k1, r0, true_force, steps, cfg.dt, cfg.pool_every, cfg.pool_burn).reshape(-1, 2)
    return pos, true_force(pos)


def run(cfg: ForceConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``. Records ``curve/{model}/n{N}/seed{s}`` (force error,
    curl, energy error, chosen sigma/reg) and ``bd/{model}`` / ``bd/true`` (histogram, its
    total-variation distance from the Boltzmann distribution), ``fields`` (grid values for
    the figure)."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    pos, frc = _pool(cfg)
    npool = pos.shape[0]
    need = max(cfg.n_trains + (cfg.bd_n_train,)) + cfg.n_val + cfg.n_test
    if npool < need:
        raise ValueError(f"the sample pool holds {npool} samples but {need} are needed; raise pool_walkers")
    rng = np.random.default_rng(cfg.seed)
    test = rng.permutation(npool)[:cfg.n_test]
    rest = np.setdiff1d(np.arange(npool), test)
    xt, ft = pos[test], frc[test]
    vt = potential(xt)
    fs = smooth_force(xt)
    fitted = {}
    for n in cfg.n_trains:
        for s in range(cfg.seeds):
            idx = np.random.default_rng([cfg.seed, n, s]).permutation(rest)
            tr, va = idx[:n], idx[n:n + cfg.n_val]
            for model in MODELS:
                key = f"curve/{model}/n{n}/seed{s}"
                if key in done and not (n == cfg.bd_n_train and s == 0):
                    continue
                m, sig, lam = fit_model(model, pos[tr], frc[tr], pos[va], frc[va], cfg.sigmas, cfg.regs)
                if n == cfg.bd_n_train and s == 0:
                    fitted[model] = (m, tr)
                if key in done:
                    continue
                pred = m.predict(xt)
                rec = {"model": model, "n": n, "seed": s, "sigma": sig, "reg": lam,
                       "force_rmse": _rmse(pred, ft), "force_scale": float(jnp.sqrt(jnp.mean(jnp.sum(ft ** 2, -1)))),
                       "smooth_force_rmse": _rmse(pred, fs),
                       "curl_mean_abs": float(jnp.mean(jnp.abs(curl(m, xt[:200]))))}
                if model == "conserving":
                    e = m.energy(xt)
                    rec["energy_rmse"] = float(jnp.std((e - vt) - jnp.mean(e - vt)))
                    rec["energy_scale"] = float(jnp.std(vt))
                done[key] = rd.record(key, **rec)
            if progress:
                print(f"[{out.name}] n={n} seed={s}", flush=True)
    ref = boltzmann(cfg.hist_bins)
    kbd = jax.random.PRNGKey(cfg.seed + 7)
    r0 = pos[rng.permutation(npool)[:cfg.bd_walkers]]
    for key, name in rd.pending(("true",) + MODELS, "bd/{}".format):
        if name == "true":
            fn = true_force
        else:
            m = fitted[name][0]
            fn = jax.jit(m.predict)
        if progress:
            print(f"[{out.name}] Brownian dynamics on the {name} force field", flush=True)
        traj = brownian(kbd, r0, fn, cfg.bd_steps, cfg.dt, cfg.bd_every, cfg.bd_burn)
        h = histogram(traj, cfg.hist_bins)
        done[key] = rd.record(key, histogram=h, tv_to_boltzmann=total_variation(h, ref),
                              escaped=float(np.mean(~np.isfinite(np.asarray(traj)).any(-1))))
    if "fields" not in done:
        g = _grid(20)
        rec = {"grid": g, "true_force": true_force(g), "true_energy": potential(g),
               "train": {m: np.asarray(pos[fitted[m][1]]) for m in MODELS}}
        for model in MODELS:
            m = fitted[model][0]
            rec[f"{model}_force"] = m.predict(g)
            rec[f"{model}_curl"] = curl(m, g)
        rec["conserving_energy"] = fitted["conserving"][0].energy(g)
        rec["boltzmann"] = ref
        done["fields"] = rd.record("fields", **rec)
    return done


def _grid(n: int) -> jnp.ndarray:
    (x0, x1), (y0, y1) = EXTENT
    xs, ys = jnp.linspace(x0, x1, n), jnp.linspace(y0, y1, n)
    return jnp.stack(jnp.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)


def curve(done: dict, model: str, metric: str = "force_rmse", counts: bool = False):
    """``(ns, mean, std)`` of ``metric`` over training draws for ``model``."""
    return learning_curve(done, f"curve/{model}/", metric, counts)


def summary(cfg: ForceConfig, done: dict) -> str:
    """Force RMSE, energy error and curl per model against training-set size; Brownian dynamics."""
    lines = [f"force RMSE on {cfg.n_test} held-out samples (mean +- std over {cfg.seeds} draws; "
             f"RMS force {next(r for k, r in done.items() if k.startswith('curve/'))['force_scale']:.3f})",
             f"{'N':>5} | " + " | ".join(f"{m:>19}" for m in MODELS) + " | conserving: energy err | mean |curl| indep / cons"]
    ns = curve(done, MODELS[0])[0]
    for i, n in enumerate(ns):
        cells = []
        for m in MODELS:
            _, mu, sd = curve(done, m)
            cells.append(f"{mu[i]:8.4f} +- {sd[i]:7.4f}")
        _, emu, _ = curve(done, "conserving", "energy_rmse")
        c1 = curve(done, "independent", "curl_mean_abs")[1][i]
        c2 = curve(done, "conserving", "curl_mean_abs")[1][i]
        lines.append(f"{n:>5} | " + " | ".join(f"{c:>19}" for c in cells) + f" | {emu[i]:22.4f} | {c1:.2e} / {c2:.1e}")
    lines.append("force RMSE against the smooth part of the force (without the sin term): " + "; ".join(
        f"{m} " + ", ".join(f"{v:.3f}" for v in curve(done, m, "smooth_force_rmse")[1]) for m in MODELS))
    lines.append("Brownian dynamics, total variation distance of the 2D histogram from exp(-V): " + ", ".join(
        f"{k}: {done[f'bd/{k}']['tv_to_boltzmann']:.3f}" for k in ("true",) + MODELS if f"bd/{k}" in done))
    return "\n".join(lines)


def figure(cfg: ForceConfig, done: dict):
    """Potential with training samples; learned fields (independent, conserving with its
    energy); learning curve; curl; sampled distributions against exp(-V)."""
    plt = pyplot()
    f = done["fields"]
    g = np.asarray(f["grid"], dtype=float)
    n = int(round(np.sqrt(len(g))))
    X, Y = g[:, 0].reshape(n, n), g[:, 1].reshape(n, n)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = axes[0, 0]
    cs = ax.contourf(X, Y, np.asarray(f["true_energy"], dtype=float).reshape(n, n), 20, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="V / kT")
    tr = np.asarray(f["train"]["conserving"], dtype=float)
    ax.plot(tr[:, 0], tr[:, 1], "w.", ms=5, label=f"{len(tr)} training samples")
    ax.set(xlabel="x", ylabel="y", title="potential and Brownian-dynamics samples")
    ax.legend(fontsize=7)
    for j, (model, title) in enumerate((("independent", "independent Gaussian kernels"),
                                        ("conserving", "energy-conserving (Hessian) kernel"))):
        ax = axes[0, 1 + j]
        F = np.asarray(f[f"{model}_force"], dtype=float)
        T = np.asarray(f["true_force"], dtype=float)
        err = np.linalg.norm(F - T, axis=-1).reshape(n, n)
        cs = ax.contourf(X, Y, err, 20, cmap="magma")
        fig.colorbar(cs, ax=ax, label="|F_learned - F| (kT per unit length)")
        ax.quiver(X, Y, F[:, 0].reshape(n, n), F[:, 1].reshape(n, n), color="w", scale=None, width=0.003)
        ax.set(xlabel="x", ylabel="y", title=f"learned force, {title}, N={len(tr)}")
    ax = axes[1, 0]
    for j, model in enumerate(MODELS):
        ns, mu, sd = curve(done, model)
        ax.errorbar(ns, mu, yerr=sd, fmt="o-", capsize=3, color=f"C{j}", label=f"{model}: force error")
    ns, emu, esd = curve(done, "conserving", "energy_rmse")
    ax.errorbar(ns, emu, yerr=esd, fmt="s--", capsize=3, color="C2", label="conserving: energy error (kT)")
    ax.set(xscale="log", yscale="log", xlabel="training samples N", ylabel="RMS error on held-out samples",
           title="learning curve")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    for j, model in enumerate(MODELS):
        ns, mu, _ = curve(done, model, "curl_mean_abs")
        ax.plot(ns, np.maximum(mu, 1e-18), "o-", color=f"C{j}", label=model)
    ax.set(xscale="log", yscale="log", xlabel="training samples N", ylabel="mean |curl F_learned|",
           title="curl of the learned field (true field: 0)")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    (x0, x1), (y0, y1) = EXTENT
    edges = np.linspace(x0, x1, cfg.hist_bins + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    ax.plot(mids, np.asarray(f["boltzmann"], dtype=float).sum(1), "k-", lw=2, label="exp(-V) (exact)")
    for j, name in enumerate(("true",) + MODELS):
        rec = done.get(f"bd/{name}")
        if rec is None:
            continue
        ax.plot(mids, np.asarray(rec["histogram"], dtype=float).sum(1), ["k:", "C0-", "C1-"][j],
                label=f"BD on {name} force (TV {rec['tv_to_boltzmann']:.3f})")
    ax.set(xlabel="x", ylabel="marginal probability per bin", title="sampled distributions (x marginal)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def rmse_table(cfg: ForceConfig, done: dict) -> Table:
    """Force RMSE (full and smooth force) and the conserving model's energy error."""
    header = ["$N$", "independent", "conserving", "independent, smooth part", "conserving, smooth part",
              "energy (conserving)"]
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m, counts=True)[1:] for m in MODELS] + \
        [curve(done, m, "smooth_force_rmse", counts=True)[1:] for m in MODELS]
    e = curve(done, "conserving", "energy_rmse", counts=True)[1:]
    rows = [[str(int(n))] + [PM(mu[i], sd[i], n=int(c[i])) for mu, sd, c in cols] + [PM(e[0][i], e[1][i], n=int(e[2][i]))]
            for i, n in enumerate(ns)]
    cap = ("Force-field learning on the 2D potential: RMS force error on held-out Brownian-dynamics samples "
           "(against the full force and against its smooth part, without the oscillating term), and the "
           "RMS error of the conserving model's energy up to a constant, mean $\\pm$ std over draws of "
           "the training set [95 \\% t-interval of the mean].")
    return Table(header, rows, cap, "force_fields")


def curl_table(cfg: ForceConfig, done: dict) -> Table:
    """Mean absolute curl of each learned field."""
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m, "curl_mean_abs")[1] for m in MODELS]
    rows = [[str(int(n))] + [c[i] for c in cols] for i, n in enumerate(ns)]
    cap = "Mean absolute curl of the learned force field over the held-out samples, mean over draws."
    return Table(["$N$"] + list(MODELS), rows, cap, "force_fields_curl")


def numbers(cfg: ForceConfig, d: dict) -> dict:
    """Errors at the Brownian-dynamics training size, the force scale, total variations."""
    out = {}
    n = cfg.bd_n_train
    ns = list(curve(d, "independent")[0])
    if n in ns:
        i = ns.index(n)
        out.update(forceN=str(n), forceIndep=curve(d, "independent")[1][i], forceCons=curve(d, "conserving")[1][i],
                   forceIndepSmooth=curve(d, "independent", "smooth_force_rmse")[1][i],
                   forceConsSmooth=curve(d, "conserving", "smooth_force_rmse")[1][i],
                   forceEnergy=curve(d, "conserving", "energy_rmse")[1][i],
                   forceCurlIndep=curve(d, "independent", "curl_mean_abs")[1][i],
                   forceCurlCons=max(curve(d, "conserving", "curl_mean_abs")[1]))
    out["forceScale"] = next(r for k, r in d.items() if k.startswith("curve/"))["force_scale"]
    for k, nm in (("true", "True"), ("independent", "Indep"), ("conserving", "Cons")):
        if f"bd/{k}" in d:
            out[f"forceTV{nm}"] = d[f"bd/{k}"]["tv_to_boltzmann"]
    return out


FIGURES = (Figure("force_fields", figure,
                  "Force field of the 2D potential learned from Brownian-dynamics samples: the potential "
                  "with the training samples; learned fields of independent Gaussian kernels and of the "
                  "energy-conserving Hessian kernel (colour: error against the true force); learning "
                  "curves (error bars: std over draws of the training set); curl of the learned fields; "
                  "x-marginals of Brownian dynamics on each field against exp(-V)."),)
TABLES = {"force_fields_curl": curl_table, "force_fields": rmse_table}
