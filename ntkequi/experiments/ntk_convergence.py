"""Finite ensembles against the NTK, measured as a referee would: the ensemble mean's distance
from the discrete-time NTK mean split into sampling noise and a width bias.

For each problem (toy: planar C8 points; Ising: lattice translations; FashionMNIST: the C4
orbit, quarter turns permuting pixels) the infinite-width prediction of full-batch gradient
descent on the summed MSE of the full orbit, at step size ``eta = eta_lambda / lambda_max``
and the recorded step counts (``kernels.predict(..., steps=, learning_rate=eta)``: mean mu_s
and covariance Sigma_s), is compared with ensembles of ``ensemble_size`` members trained by
exactly that gradient descent (``ensembles.train``, float32 members), for every width, seed
and model ('network'; 'linearised', its first-order Taylor expansion, which differs from the
NTK only through the finite-width kernel). Per record step and evaluation set
(:func:`ntkequi.metrics.ensemble_deviation`): the unbiased squared bias
``b^2 = ||mean_M - mu||^2 - tr(S)/M`` with its bootstrap interval, the variance ratio
``tr(S) / (k tr Sigma)``, a calibration statistic, the distance of the mean of the first m
members for m = 1, 2, 4, ..., M (``M d^2`` flat in M at ``k tr Sigma`` is pure sampling noise),
and the measured and NTK-predicted squared invariance error of the M-member mean. Relative
numbers are against ``sqrt(k tr Sigma_0)`` (the initial spread), which does not vanish off the
data. The per-member predictions stay in the run directory (``ensembles/<unit>/``, float32).

    ntkequi run ntk_convergence                          # small: toy and Ising, a few minutes
    ntkequi run ntk_convergence --data-dir DIR --preset cpu     # toy, Ising, FashionMNIST MLP and CNN
    ntkequi run ntk_convergence --data-dir DIR --preset paper   # wider, more members (a GPU)

Writes runs/ntk_convergence[-<preset>]/ (resumable unit by unit, each ensemble from its
checkpoint); `ntkequi figures` makes the figures from results/.
"""
from __future__ import annotations

import dataclasses
import time
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import data, ensembles, groups, metrics
from .._validate import check_member_dtype
from ..kernels import Predictor, max_learning_rate
from ..nn import ArchSpec
from ..runs import RunDir
from .protocol import Figure, Num, Table, pyplot

NAME = "ntk_convergence"
USES_DATA = True
CPU_TIME = {"small": "not measured", "cpu": "88 min in its units (records' seconds: toy 40, Ising 8, FashionMNIST MLP 26, CNN 15), run in one piece beside other work; about 1.5 h wall clock as observed (the start is not recorded)", "paper": "not measured (meant for a GPU)"}
DATASETS = ("toy", "ising", "fmnist")
MODELS = ("network", "linearised")


#: the member networks a problem can have (all but 'mlp' for fmnist only)
KINDS = ("mlp", "cnn", "cnn_gap", "gcnn")


@dataclasses.dataclass(frozen=True)
class ProblemConfig:
    """One comparison.

    Attributes:
        dataset: 'toy' (points in a wedge, target cos 2|x| + |x|/2, planar C8), 'ising'
            (L x L spin configurations, energy per site, lattice translations) or 'fmnist'
            (FashionMNIST, centred one-hot targets, C4; evaluated on test images, MNIST digits
            and uniform noise; every image standardised to zero mean and unit variance over its
            pixels, which commutes with the quarter turns and makes the NTK far better conditioned:
            its training loss falls by 90 % in about 1,000 instead of over 3,000 steps).
        kind: 'mlp', or for fmnist 'cnn' (the OSP table's network, conv-ReLU-2x2 pool per block,
            flatten), 'cnn_gap' (the same blocks, global average pooling) or 'gcnn' (its
            corresponding C4 group CNN: lifting conv, group convs, invariant pooling;
            gcnn_correspondence).
        widths: hidden widths (channels for the CNN).
        ensemble_size: members per ensemble.
        n_train, n_eval: training inputs (before the orbit) and inputs per evaluation set.
        depth: hidden layers of the MLP (conv blocks of the CNN).
        steps, record_steps: gradient-descent steps and the steps recorded (0 included).
        downsample: fmnist: average-pool factor of the images (2: 14x14; 1: 28x28).
        L: ising: the lattice size.
        eta_lambda: this problem's ``eta * lambda_max`` (None: the run's
            ``ConvergenceConfig.eta_lambda``); lower it where narrow members' own empirical NTKs
            exceed the analytic one so far that their linearisations diverge
            (:func:`member_step_sizes` measures it).
    """
    dataset: str = "toy"
    kind: str = "mlp"
    widths: tuple = (64, 256)
    ensemble_size: int = 16
    n_train: int = 8
    n_eval: int = 8
    depth: int = 1
    steps: int = 100
    record_steps: tuple = (0, 10, 100)
    downsample: int = 1
    L: int = 4
    eta_lambda: Optional[float] = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}; got {self.dataset!r}")
        if self.kind not in KINDS or (self.kind != "mlp" and self.dataset != "fmnist"):
            raise ValueError(f"kind must be 'mlp', or one of {KINDS[1:]} for fmnist; got {self.kind!r} for "
                             f"{self.dataset!r}")
        if 0 not in self.record_steps or max(self.record_steps) != self.steps:
            raise ValueError(f"record_steps must include 0 and steps={self.steps}; got {self.record_steps}")
        if self.eta_lambda is not None and not 0 < self.eta_lambda <= 0.5:
            raise ValueError(f"eta_lambda must be None or in (0, 0.5]; got {self.eta_lambda}")
        if self.ensemble_size < 2 or min(self.widths) < 1:
            raise ValueError(f"need ensemble_size >= 2 and widths >= 1; got {self.ensemble_size}, {self.widths}")

    @property
    def name(self) -> str:
        """``<dataset>_<kind>``, the records' ``dataset`` field."""
        return f"{self.dataset}_{self.kind}"


def step_size(cfg, p: ProblemConfig, prob: "Problem") -> float:
    """The gradient-descent step ``eta`` of problem ``p``: its ``eta_lambda`` (else ``cfg``'s)
    over the largest eigenvalue of the orbit-augmented analytic NTK of the training set."""
    k = prob.y.shape[1]
    frac = cfg.eta_lambda if p.eta_lambda is None else p.eta_lambda
    return frac * max_learning_rate(spec(p, min(p.widths), k), prob.x, prob.group) / 2.0


@dataclasses.dataclass(frozen=True)
class ConvergenceConfig:
    """problems: the comparisons; seeds: one ensemble per seed (and width and model);
    models: 'network' and/or 'linearised'; antithetic: members in antithetic pairs (the pair
    means are the units of the bias estimate); eta_lambda: ``eta * lambda_max`` of the
    orbit-augmented NTK (at most 0.5: stable and not oscillating); member_dtype: the members'
    precision (the NTK side is float64); data_seed: the draw of the data; closed_form: the
    linearised MLP members in closed form from their own empirical NTKs
    (:func:`ntkequi.ensembles.linearised_ensemble`, float64) instead of trained step by step
    (the same gradient descent without the step loop; the trained float32 members drift from it
    by their rounding, which grows with the steps); the CNN's linearised members are trained
    either way."""
    x64: ClassVar[bool] = True
    problems: tuple[ProblemConfig, ...] = (ProblemConfig(),)
    seeds: tuple = (0, 1, 2)
    models: tuple = MODELS
    antithetic: bool = False
    eta_lambda: float = 0.5
    member_dtype: str = "float32"
    data_seed: int = 0
    closed_form: bool = False

    def __post_init__(self):
        check_member_dtype("member_dtype", self.member_dtype)
        if self.closed_form and self.antithetic:
            raise ValueError("closed_form=True computes independent members; it cannot make antithetic pairs "
                             "(antithetic=True): set one of them to False")
        if not 0 < self.eta_lambda <= 0.5:
            raise ValueError(f"eta_lambda must be in (0, 0.5]; got {self.eta_lambda}")
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise ValueError(f"models must be a non-empty subset of {MODELS}; got {self.models}")
        if len({p.name for p in self.problems}) != len(self.problems):
            raise ValueError(f"problems must have distinct dataset/kind pairs; got {[p.name for p in self.problems]}")


Config = ConvergenceConfig
PRESETS = {
    "small": ConvergenceConfig(problems=(
        ProblemConfig("toy", widths=(32, 128, 512), ensemble_size=8, n_train=6, n_eval=4, steps=40,
                      record_steps=(0, 10, 40)),
        ProblemConfig("ising", widths=(32, 256), ensemble_size=8, n_train=6, n_eval=3, steps=40,
                      record_steps=(0, 40))), seeds=(0, 1)),
    # sized so that the NTK's training loss falls by at least 90 % by the last step (toy 92 %,
    # Ising 99.3 % by step 400, FashionMNIST MLP 92 %: kernels.predict(..., steps=) on the training
    # inputs; recorded as ntk_train_loss_fraction) and
    # the whole preset fits about 3 h on 2 cores; the CNN is a trend over the widths a CPU allows
    "cpu": ConvergenceConfig(problems=(
        ProblemConfig("toy", widths=(64, 128, 256, 1024, 4096), ensemble_size=64, n_train=16, n_eval=16,
                      steps=2000, record_steps=(0, 10, 100, 500, 2000)),
        ProblemConfig("ising", widths=(32, 128, 512, 2048), ensemble_size=32, n_train=16, n_eval=8, steps=400,
                      record_steps=(0, 10, 50, 400)),
        ProblemConfig("fmnist", widths=(64, 256, 1024, 2048), ensemble_size=16, n_train=64, n_eval=16,
                      steps=1200, record_steps=(0, 10, 100, 400, 1200), downsample=2),
        # the CNN at eta lambda_max = 0.15: narrow members' own empirical NTKs reach 7x the analytic
        # one's largest eigenvalue (member_step_sizes), and their linearisations diverged at 0.5
        ProblemConfig("fmnist", "cnn", widths=(8, 16, 32), ensemble_size=16, n_train=64, n_eval=8, depth=2,
                      steps=60, record_steps=(0, 10, 60), eta_lambda=0.15)), seeds=(0, 1, 2), closed_form=True),
    "paper": ConvergenceConfig(problems=(
        ProblemConfig("toy", widths=(64, 256, 1024, 4096, 16384), ensemble_size=128, n_train=16, n_eval=32,
                      steps=1000, record_steps=(0, 10, 100, 1000)),
        ProblemConfig("ising", widths=(32, 128, 512, 2048, 8192), ensemble_size=64, n_train=32, n_eval=16,
                      steps=1000, record_steps=(0, 10, 100, 1000)),
        ProblemConfig("fmnist", widths=(64, 256, 1024, 4096), ensemble_size=64, n_train=512, n_eval=32,
                      steps=1000, record_steps=(0, 10, 100, 1000)),
        ProblemConfig("fmnist", "cnn", widths=(16, 64, 256, 1024), ensemble_size=32, n_train=256, n_eval=16,
                      depth=2, steps=200, record_steps=(0, 10, 50, 200))), seeds=(0, 1, 2, 3, 4)),
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """The arrays of a :class:`ProblemConfig`: group, x ``(N, ...)``, y ``(N, k)`` and the
    evaluation sets ``{name: (n, ...)}``."""
    group: object
    x: object
    y: object
    evals: dict


def problem(p: ProblemConfig, seed: int = 0, data_dir=None) -> Problem:
    """The training data, group and evaluation sets of ``p`` (float64)."""
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(seed), 3)
    f64 = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))       # noqa: E731
    if p.dataset == "toy":
        x = data.wedge_points(kx, p.n_train)
        return Problem(groups.planar_rotations(8), x, data.radial_target(x),
                       {"in_distribution": data.wedge_points(k1, p.n_eval), "noise": data.noise_points(k2, p.n_eval)})
    if p.dataset == "ising":
        x = data.ising_configurations(kx, p.n_train, p.L)
        return Problem(groups.lattice_translations(p.L), x, data.ising_energy(x),
                       {"in_distribution": data.ising_configurations(k1, p.n_eval, p.L),
                        "noise": jax.random.normal(k2, (p.n_eval, p.L, p.L, 1))})
    sets = data.splits(data.SplitConfig(n_train=p.n_train, n_val=0, n_test=p.n_eval, seed=seed), data_dir=data_dir)
    x, labels = sets["train"]

    def small(a):            # downsampled, then each image to zero mean and unit variance over its pixels
        a = np.asarray(a, dtype=np.float64)
        a = data.downsample(a, p.downsample) if p.downsample > 1 else a
        a = a - a.mean(axis=(1, 2, 3), keepdims=True)
        return f64(a / a.std(axis=(1, 2, 3), keepdims=True))
    evals = {"fashion_mnist_test": small(sets["test"][0]), "mnist": small(data.ood_set("mnist", p.n_eval, seed, data_dir)),
             "noise": small(data.ood_set("noise", p.n_eval, seed, data_dir))}
    size = 28 // p.downsample
    return Problem(groups.rotations(4, (size, size)), small(x), f64(np.eye(10)[labels] - 0.1), evals)


def spec(p: ProblemConfig, width: int, out_dim: int) -> ArchSpec:
    """The member network of ``p`` at ``width`` (NTK parameterisation)."""
    if p.kind == "cnn":
        return ArchSpec(kind="cnn", depth=p.depth, width=width, out_dim=out_dim, pool=True, b_std=0.1)
    if p.kind in ("cnn_gap", "gcnn"):
        return ArchSpec(kind=p.kind.removesuffix("_gap"), depth=p.depth, width=width, out_dim=out_dim, pool=True,
                        readout="gap", b_std=0.1)
    return ArchSpec(kind="mlp", depth=p.depth, width=width, out_dim=out_dim,
                    b_std={"toy": 1.0, "ising": 0.5, "fmnist": 0.1}[p.dataset])


def sizes_up_to(m: int) -> list:
    """1, 2, 4, ... up to ``m`` (and ``m`` itself)."""
    out = [1]
    while out[-1] * 2 < m:
        out.append(out[-1] * 2)
    return sorted(set(out + [m]))


def _unit_records(cfg, p, prob, ev, pred, train_loss, scales, width, seed, model, res, eta) -> list:
    """The records of one trained ensemble: one per record step and evaluation set."""
    recs = []
    k = prob.y.shape[1]
    for i, step in enumerate(res.steps):
        for s in ev.names:
            sl = ev.slice(s)
            members, mu, cov = res.members[i][:, sl], np.asarray(pred.mean[i, sl]), np.asarray(pred.cov[i][sl, sl])
            dev = metrics.ensemble_deviation(members, mu, cov, pairs=cfg.antithetic, scale=scales[s],
                                             seed=seed)
            units = 0.5 * (members[0::2] + members[1::2]) if cfg.antithetic else members
            ms = sizes_up_to(units.shape[0])
            orbit = lambda f: metrics.orbit_predictions(f, prob.group)      # noqa: E731
            cov_orbit = metrics.orbit_covariance(cov, prob.group.order, (sl.stop - sl.start) // prob.group.order)
            recs.append({
                "key": f"{p.name}/{model}/w{width}/s{seed}/step{int(step)}/{s}", "dataset": p.name, "model": model,
                "width": int(width), "seed": int(seed), "step": int(step), "t": float(step * eta), "eval_set": s,
                **dev.as_record(), "sizes": ms, "outputs": int(k),
                "distance_sq_by_m": [float(np.sum((units[:m].mean(0) - mu) ** 2)) for m in ms],
                "predicted_noise_sq": float(k * np.trace(cov)),           # k tr Sigma_s: M d^2 of i.i.d. members
                "invariance_msq": metrics.mean_squared_invariance_error(orbit(members.mean(0)), prob.group),
                "predicted_invariance_msq": metrics.predicted_invariance_error(cov_orbit, k, members.shape[0],
                                                                               mean_orbit=orbit(mu)),
                "ntk_train_loss_fraction": float(train_loss[i])})
    return recs


def run(cfg: ConvergenceConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) every (problem, width, seed, model) unit into ``out``; returns the records."""
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    for p in cfg.problems:
        units = rd.pending([(w, s, m) for w in p.widths for s in cfg.seeds for m in cfg.models],
                           lambda u: f"{p.name}/{u[2]}/w{u[0]}/s{u[1]}")
        if not units:
            continue
        prob = problem(p, cfg.data_seed, data_dir)
        ev = metrics.EvalOrbits.of(prob.group, prob.evals)
        k = prob.y.shape[1]
        ref = spec(p, min(p.widths), k)                  # the analytic kernel does not depend on the width
        eta = step_size(cfg, p, prob)
        print(f"[{rd.path.name}] {p.name}: eta = {eta:.4g} (eta lambda_max = "
              f"{cfg.eta_lambda if p.eta_lambda is None else p.eta_lambda})", flush=True)
        mu = Predictor(ref, prob.x, prob.y, group=prob.group, compute_cov=True)     # one training solve
        pred = mu(ev.x, steps=p.record_steps, learning_rate=eta, compute_cov=True)
        on_train = mu(prob.x, steps=p.record_steps, learning_rate=eta)
        y = np.asarray(prob.y)
        train_loss = [float(np.sum((np.asarray(m) - y) ** 2) / np.sum(y ** 2)) for m in on_train.mean]
        scales = {s: float(np.sqrt(k * np.trace(np.asarray(pred.cov[0][ev.slice(s), ev.slice(s)]))))
                  for s in ev.names}
        for unit, (width, seed, model) in units:
            tcfg = ensembles.TrainConfig(ensemble_size=p.ensemble_size, steps=p.steps, learning_rate=eta,
                                         augmentation="orbit", record_steps=tuple(p.record_steps), seed=seed,
                                         dtype=cfg.member_dtype, model=model, antithetic=cfg.antithetic)
            closed = cfg.closed_form and model == "linearised" and p.kind == "mlp"
            print(f"[{rd.path.name}] {unit}: {p.ensemble_size} members{' in closed form' if closed else ''}",
                  flush=True)
            start = time.perf_counter()
            member_data = ensembles.TrainingData(prob.x, prob.y, ev.x, prob.group)
            unit_dir = rd.path / "ensembles" / unit.replace("/", "_")
            res = (closed_form_members(spec(p, width, k), tcfg, member_data, unit_dir, progress) if closed else
                   ensembles.train(spec(p, width, k), tcfg, member_data, run_dir=unit_dir, progress=progress))
            for rec in _unit_records(cfg, p, prob, ev, pred, train_loss, scales, width, seed, model, res, eta):
                key = rec.pop("key")
                done[key] = rd.record(key, **rec)
            done[unit] = rd.record(unit, kind="unit", dataset=p.name, model=model, width=int(width), seed=int(seed),
                                   eta=float(eta), seconds=round(time.perf_counter() - start, 1))   # wall time
    return done


def closed_form_members(net: ArchSpec, tcfg, member_data, unit_dir, progress: bool = False):
    """The linearised MLP members :func:`ntkequi.ensembles.train` would train for ``tcfg``
    (same keys, the orbit as training set), in closed form
    (:func:`ntkequi.ensembles.linearised_ensemble`, float64), their predictions saved in
    ``unit_dir`` as ``predictions_step{S}.npy`` (float32, as training saves them).

    Returns:
        An :class:`~ntkequi.ensembles.EnsembleResult` with members ``(R, M, N_eval, k)``.
    """
    from pathlib import Path
    xs, ys = ensembles.training_set(member_data.group, tcfg, member_data.x, member_data.y)
    key_init, _ = jax.random.split(jax.random.PRNGKey(tcfg.seed))        # as ensembles.train draws them
    params = ensembles.init_ensemble(net, key_init, tcfg.ensemble_size, xs)
    steps = tuple(int(s) for s in tcfg.record_steps)
    members = ensembles.linearised_ensemble(net, params, xs, ys, jnp.asarray(member_data.x_eval), steps,
                                            tcfg.learning_rate, gram_dtype=jnp.float64, progress=progress)
    unit_dir = Path(unit_dir)
    unit_dir.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(steps):
        np.save(unit_dir / f"predictions_step{step}.npy", members[i].astype(np.float32))
    return ensembles.EnsembleResult(np.asarray(steps), members)


def member_step_sizes(cfg: ConvergenceConfig, p: ProblemConfig, width: int, seed: int, data_dir=None,
                      members=None) -> np.ndarray:
    """``eta * lambda_max`` of each member's own empirical NTK on the training orbit at
    initialisation (:func:`ntkequi.nn.empirical_ntk_lambda_max`), for the members ``run`` draws
    for ``(p, width, seed)`` (the same keys; ``members``: which, default all) at the run's step
    size. The linearised member's gradient descent diverges where this exceeds 2, whatever the
    analytic NTK's ``eta * lambda_max`` (:func:`step_size`) is. Numpy ``(len(members),)``."""
    from ..kernels import augment
    from ..nn import empirical_ntk_lambda_max
    prob = problem(p, cfg.data_seed, data_dir)
    k = prob.y.shape[1]
    eta = step_size(cfg, p, prob)
    xs, _ = augment(prob.group, prob.x, prob.y)
    net = spec(p, width, k)
    key_init, _ = jax.random.split(jax.random.PRNGKey(seed))            # as ensembles.train draws them
    params = ensembles.init_ensemble(net, key_init, p.ensemble_size, xs)
    members = range(p.ensemble_size) if members is None else members
    return np.asarray([eta * empirical_ntk_lambda_max(net, jax.tree_util.tree_map(lambda v: v[m], params), xs)
                       for m in members])


#: the committed per-member predictions may take this many bytes; beyond it only each unit's last record
KEEP_BYTES = 20 * 2 ** 20


def kept_files(run_dir) -> list:
    """The per-member predictions (``ensembles/<unit>/predictions_step*.npy``, float32) that the
    committed results keep, relative to ``run_dir``: all of them if they fit in
    :data:`KEEP_BYTES`, else each unit's last recorded step."""
    from pathlib import Path
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("ensembles/*/predictions_step*.npy"))
    if sum(f.stat().st_size for f in files) > KEEP_BYTES:
        last = {}
        for f in files:
            step = int(f.stem.removeprefix("predictions_step"))
            if step >= last.get(f.parent, (-1, None))[0]:
                last[f.parent] = (step, f)
        files = sorted(f for _, f in last.values())
    return [f.relative_to(run_dir).as_posix() for f in files]


# ---------------------------------------------------------------- reading the records
#: a unit whose ensemble mean lies more than this many initial spreads ``sqrt(k tr Sigma_0)``
#: from mu_s at some step diverged: gradient descent that converges keeps the mean within a few
DIVERGED_DISTANCE = 10.0


def diverged_units(done: dict) -> list:
    """``[(dataset, model, width, seed)]`` of the units that diverged (any record's ensemble
    mean more than :data:`DIVERGED_DISTANCE` initial spreads from mu_s, or not finite).

    >>> rec = dict(eval_set="a", dataset="d", model="linearised", width=8, seed=0, scale=1.0)
    >>> diverged_units({"x": {**rec, "distance_sq": 1e40}, "y": {**rec, "seed": 1, "distance_sq": 0.01}})
    [('d', 'linearised', 8, 0)]
    """
    bad = {(r["dataset"], r["model"], r["width"], r["seed"]) for r in done.values() if "eval_set" in r
           and not np.sqrt(r["distance_sq"]) / r["scale"] <= DIVERGED_DISTANCE}
    return sorted(bad)


def rows(done: dict, **match) -> list:
    """The step records (not the unit markers) whose fields equal ``match``, without the units
    that diverged (:func:`diverged_units`, which the summary and the table list)."""
    bad = set(diverged_units(done))
    return [r for r in done.values() if "eval_set" in r and all(r.get(k) == v for k, v in match.items())
            and (r["dataset"], r["model"], r["width"], r["seed"]) not in bad]


def t_interval(values, level: float = 0.9) -> tuple:
    """``(mean, low, high)`` of ``values`` over independent seeds: ``mean +- t_{S-1} se`` at
    ``level`` (two-sided; nan half-width with a single value).

    >>> tuple(round(v, 3) for v in t_interval([0.9, 1.0, 1.1]))
    (1.0, 0.831, 1.169)
    """
    from scipy import stats
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def pooled_mean(done: dict, field: str, level: float = 0.9, **match):
    """``(widths, mean, low, high)``: ``field`` averaged over the seeds per width with the
    interval ``mean +- t_{S-1} se`` over the ``S`` seeds (each seed is an independent ensemble,
    so the spread of its estimates carries the sampling of members and of seeds alike; with one
    seed, that seed's own ``{field}_ci``). Numpy arrays, widths ascending.

    >>> rec = dict(eval_set="a", dataset="d", model="network", width=8, distance_sq=0.0, scale=1.0)
    >>> done = {s: {**rec, "seed": s, "r": v} for s, v in enumerate((0.9, 1.0, 1.1))}
    >>> w, m, lo, hi = pooled_mean(done, "r")
    >>> int(w[0]), round(float(m[0]), 6), round(float(hi[0] - m[0]), 3)
    (8, 1.0, 0.169)
    """
    recs = rows(done, **match)
    widths = sorted({r["width"] for r in recs})
    m, lo, hi = [], [], []
    for w in widths:
        rs = [r for r in recs if r["width"] == w]
        mean, low, high = t_interval([float(r[field]) for r in rs], level)
        if len(rs) == 1:
            low, high = rs[0][f"{field}_ci"]
        m.append(mean)
        lo.append(low)
        hi.append(high)
    return np.asarray(widths), np.asarray(m), np.asarray(lo), np.asarray(hi)


def pooled_bias(done: dict, level: float = 0.9, **match):
    """``(widths, b, low, high)``: the relative bias per width pooled over seeds,
    ``b = sqrt(max(mean_seeds b^2, 0)) / scale`` (the mean of unbiased per-seed estimates is
    unbiased), with the interval ``mean b^2 +- t_{S-1} se`` over the ``S`` seeds (square roots
    clipped at 0; with one seed, that seed's bootstrap interval). Numpy arrays, widths ascending."""
    recs = rows(done, **match)
    widths = sorted({r["width"] for r in recs})
    b, lo, hi = [], [], []
    for w in widths:
        rs = [r for r in recs if r["width"] == w]
        m, low, high = t_interval(np.asarray([r["bias_sq"] for r in rs]) / rs[0]["scale"] ** 2, level)
        if len(rs) == 1:
            lo.append(rs[0]["relative_bias_ci"][0])
            hi.append(rs[0]["relative_bias_ci"][1])
        else:
            lo.append(np.sqrt(max(low, 0.0)))
            hi.append(np.sqrt(max(high, 0.0)))
        b.append(np.sqrt(max(m, 0.0)))
    return np.asarray(widths), np.asarray(b), np.asarray(lo), np.asarray(hi)


def fit_exponent(widths, values) -> float:
    """Least-squares slope of ``log values`` against ``log widths`` (positive values only; nan
    with fewer than two).

    >>> round(fit_exponent([1, 10, 100], [1.0, 0.1, 0.01]), 6)
    -1.0
    """
    w, v = np.asarray(widths, dtype=float), np.asarray(values, dtype=float)
    ok = v > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(w[ok]), np.log(v[ok]), 1)[0])


def _last_step(done: dict, dataset: str) -> int:
    return max(r["step"] for r in rows(done, dataset=dataset))


ORDER = ("toy_mlp", "ising_mlp", "fmnist_mlp", "fmnist_cnn")


def _datasets(done: dict) -> list:
    return sorted({r["dataset"] for r in rows(done)}, key=ORDER.index)


def summary(cfg: ConvergenceConfig, done: dict) -> str:
    """Per dataset, model and evaluation set at the last step: the relative bias pooled over
    seeds with its interval (:func:`pooled_bias`) and the variance ratio with its interval over
    seeds (:func:`pooled_mean`) per width, and the fitted exponents against width of the bias and
    of the variance ratio's distance from 1."""
    lines = []
    for d in _datasets(done):
        step = _last_step(done, d)
        for model in cfg.models:
            for s in sorted({r["eval_set"] for r in rows(done, dataset=d)}):
                match = dict(dataset=d, model=model, eval_set=s, step=step)
                if not rows(done, **match):
                    continue
                w, b, lo, hi = pooled_bias(done, **match)
                _, v, vlo, vhi = pooled_mean(done, "variance_ratio", **match)
                lines.append(f"{d} {model} {s} step {step}: relative bias "
                             + ", ".join(f"w{int(x)} {y:.3g} [{a:.3g}, {c:.3g}]" for x, y, a, c in zip(w, b, lo, hi))
                             + f"; exponent {fit_exponent(w, b):.2f}; variance ratio "
                             + ", ".join(f"{y:.2f} [{a:.2f}, {c:.2f}]" for y, a, c in zip(v, vlo, vhi))
                             + f"; exponent of |ratio - 1| {fit_exponent(w, np.abs(v - 1)):.2f}")
    bad = diverged_units(done)
    if bad:
        lines.append(f"left out, diverged (mean more than {DIVERGED_DISTANCE:g} initial spreads from mu_s): "
                     + ", ".join(f"{d} {m} w{w} s{sd}" for d, m, w, sd in bad))
    return "\n".join(lines)


# ---------------------------------------------------------------- figures, table, numbers
def _eval_sets(done, d):
    return sorted({r["eval_set"] for r in rows(done, dataset=d)})


def _width_ticks(ax, done, d):
    from matplotlib.ticker import NullFormatter
    w = sorted({r["width"] for r in rows(done, dataset=d)})
    ax.set_xticks(w, [str(v) for v in w])
    ax.xaxis.set_minor_formatter(NullFormatter())


def figure_noise(cfg: ConvergenceConfig, done: dict):
    """``m d_m^2`` against the number of members m at the last step, per width (network, seed
    0), with the NTK's ``k tr Sigma_s`` (the level of pure sampling noise): flat at the line is
    noise alone; growth in m is a bias. One panel per dataset and evaluation set."""
    plt = pyplot()
    panels = [(d, s) for d in _datasets(done) for s in _eval_sets(done, d)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (d, s) in zip(axes[0], panels):
        step = _last_step(done, d)
        recs = sorted(rows(done, dataset=d, eval_set=s, step=step, model="network", seed=min(cfg.seeds)),
                      key=lambda r: r["width"])
        for j, r in enumerate(recs):
            m = np.asarray(r["sizes"])
            ax.plot(m, m * np.asarray(r["distance_sq_by_m"]), "o-", color=f"C{j}", ms=3, label=f"width {r['width']}")
        if recs:
            ax.axhline(recs[0]["predicted_noise_sq"], color="k", ls="--", lw=1, label=r"$k\,\mathrm{tr}\,\Sigma_s$")
        ax.set(xscale="log", yscale="log", xlabel="members m", title=f"{d}, {s}, step {step}")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel(r"$m\,\|\bar f_m - \mu_s\|^2$")
    fig.tight_layout()
    return fig


def _against_width(done: dict, series, ylabel: str, log_y: bool, height: float):
    """One panel per dataset at its last step: for every evaluation set (colour) and model
    (solid network, dashed linearised) the curve ``series(match) -> (widths, y, low, high,
    label suffix)`` with error bars from low to high."""
    plt = pyplot()
    ds = _datasets(done)
    fig, axes = plt.subplots(1, len(ds), figsize=(4.2 * len(ds), height), squeeze=False)
    for ax, d in zip(axes[0], ds):
        step = _last_step(done, d)
        for j, s in enumerate(_eval_sets(done, d)):
            for model, ls in (("network", "-"), ("linearised", "--")):
                match = dict(dataset=d, eval_set=s, step=step, model=model)
                if not rows(done, **match):
                    continue
                w, y, lo, hi, extra = series(match)
                ax.errorbar(w, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], fmt="o" + ls,
                            color=f"C{j}", capsize=2, ms=3, label=f"{s}, {model}{extra}")
        ax.set(xscale="log", yscale="log" if log_y else "linear", xlabel="width", title=f"{d}, step {step}")
        _width_ticks(ax, done, d)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    return fig, axes


def figure_bias(cfg: ConvergenceConfig, done: dict):
    """Relative bias ``b / sqrt(k tr Sigma_0)`` against width at the last step (log-log), pooled
    over seeds with its interval (:func:`pooled_bias`; estimates of 0 drawn at 1e-4), network
    (solid) and linearised (dashed) per evaluation set, with the fitted slope in the legend; one
    panel per dataset."""
    floor = 1e-4                                    # a bias estimated at 0 is drawn here

    def series(match):
        w, b, lo, hi = pooled_bias(done, **match)
        return (w, np.maximum(b, floor), np.maximum(lo, floor), np.maximum(hi, floor),
                f" (slope {fit_exponent(w, b):.2f})")
    return _against_width(done, series, r"bias $b / \sqrt{k\,\mathrm{tr}\,\Sigma_0}$", True, 3.6)[0]


def figure_variance(cfg: ConvergenceConfig, done: dict):
    """Variance ratio ``tr(S) / (k tr Sigma_s)`` against width at the last step, mean over seeds
    with its 90% interval over seeds (:func:`pooled_mean`); 1 is the NTK's spread."""
    def series(match):
        return (*pooled_mean(done, "variance_ratio", **match), "")
    fig, axes = _against_width(done, series, r"variance ratio $\mathrm{tr}\,S / (k\,\mathrm{tr}\,\Sigma_s)$",
                               False, 3.4)
    for ax in axes[0]:
        ax.axhline(1.0, color="k", lw=0.8)
    return fig


FIGURES = (
    Figure(f"{NAME}_noise", figure_noise, "Sampling noise against bias: m times the squared distance of the mean of "
           "m members from the discrete-time NTK mean, per width, at the last recorded step (network, first seed); "
           "the dashed line is the NTK's k tr Sigma_s, the level of pure sampling noise."),
    Figure(f"{NAME}_bias", figure_bias, "Bias of the ensemble mean against width (log-log), relative to the initial "
           "spread sqrt(k tr Sigma_0): the unbiased estimate b^2 = ||mean - mu||^2 - tr(S)/M averaged over seeds, bars "
           "its 90% interval over seeds (estimates of 0 drawn at 1e-4); the network (solid) and its linearisation "
           "(dashed), with the fitted slopes."),
    Figure(f"{NAME}_variance", figure_variance, "Variance ratio tr(S) / (k tr Sigma_s) of the members against width "
           "at the last recorded step (1: the NTK's spread), mean over seeds, bars its 90% interval over seeds."),
)


def table(cfg: ConvergenceConfig, done: dict) -> Table:
    """Per dataset, model and evaluation set at the last step: relative bias at the smallest
    and the largest width (pooled over seeds), the upper end of the largest width's interval,
    their ratio ('--' where the largest width's estimate is 0), the fitted exponent, and the
    variance ratio at the largest width with its interval over seeds (:func:`pooled_mean`)."""
    header = ["dataset", "model", "eval set", "step", "$b$ smallest", "$b$ largest", "its upper bound", "ratio",
              "exponent", "variance ratio", "its interval"]
    out = []
    for d in _datasets(done):
        step = _last_step(done, d)
        for model in cfg.models:
            for s in _eval_sets(done, d):
                match = dict(dataset=d, model=model, eval_set=s, step=step)
                if not rows(done, **match):
                    continue
                w, b, _, hi = pooled_bias(done, **match)
                _, v, vlo, vhi = pooled_mean(done, "variance_ratio", **match)
                out.append([d.replace("_", " "), model, s.replace("_", " "), str(step), Num(b[0]), Num(b[-1]),
                            Num(hi[-1]), Num(b[0] / b[-1]) if b[-1] > 0 else "--", Num(fit_exponent(w, b)),
                            Num(v[-1]), f"[{vlo[-1]:.2f}, {vhi[-1]:.2f}]"])
    cap = ("Finite ensembles against the discrete-time NTK prediction at the last recorded step: the ensemble "
           "mean's bias relative to the initial spread, pooled over seeds, at the smallest and the largest width "
           "(with the upper end of the latter's 90\\% interval over seeds), their ratio, the fitted exponent of "
           "the bias against width, and the variance ratio at the largest width with its 90\\% interval over seeds.")
    bad = diverged_units(done)
    if bad:
        cap += (f" Left out, diverged (the ensemble mean more than {DIVERGED_DISTANCE:g} initial spreads from "
                "$\\mu_s$): " + ", ".join(f"{d.replace('_', ' ')} {m} width {w} seed {sd}" for d, m, w, sd in bad) + ".")
    return Table(header, out, cap, NAME)


TABLES = {NAME: table}

#: the macro-name part of each dataset, and the evaluation set its numbers are on (in distribution)
_NUMBER_SETS = {"toy_mlp": ("Toy", "in_distribution"), "ising_mlp": ("Ising", "in_distribution"),
                "fmnist_mlp": ("Fmnist", "fashion_mnist_test"), "fmnist_cnn": ("Cnn", "fashion_mnist_test")}


def numbers(cfg: ConvergenceConfig, done: dict) -> dict:
    """The quoted numbers, per dataset (``conv<Dataset>``: Toy, Ising, Fmnist, Cnn) and model
    (network; ``Lin``: linearised) on the in-distribution evaluation set at the last step: the
    smallest and largest width, the relative bias there (pooled over seeds) with the upper end
    of the largest width's interval, their ratio (``BiasFall``, '--' where the largest width's
    estimate is 0), the fitted exponent, and the variance ratio at the largest width with its
    interval over seeds, and at the smallest width (``VarMin``); the distance-from-1 exponent of
    the variance ratio; for the network, the fraction of the initial spread the NTK leaves at the
    last step (``SpreadLeft``, ``k tr Sigma_s / k tr Sigma_0``) in distribution and on noise inputs,
    the range over widths of the variance ratio on noise inputs, and the fraction of the NTK's
    training loss left at the last step (``LossKeep``)."""
    out = {}
    for d in _datasets(done):
        name, s = _NUMBER_SETS[d]
        step = _last_step(done, d)
        for model, tag in (("network", ""), ("linearised", "Lin")):
            match = dict(dataset=d, model=model, eval_set=s, step=step)
            if not rows(done, **match):
                continue
            w, b, _, hi = pooled_bias(done, **match)
            _, v, vlo, vhi = pooled_mean(done, "variance_ratio", **match)
            key = f"conv{name}{tag}"
            out.update({f"{key}WidthMin": str(int(w[0])), f"{key}WidthMax": str(int(w[-1])), f"{key}Step": str(step),
                        f"{key}BiasMin": float(b[0]), f"{key}BiasMax": float(b[-1]), f"{key}BiasMaxHi": float(hi[-1]),
                        f"{key}BiasFall": float(b[0] / b[-1]) if b[-1] > 0 else "--",
                        f"{key}Exp": fit_exponent(w, b), f"{key}Var": float(v[-1]), f"{key}VarLo": float(vlo[-1]),
                        f"{key}VarHi": float(vhi[-1]), f"{key}VarExp": fit_exponent(w, np.abs(v - 1)),
                        f"{key}VarMin": float(v[0])})
            if model == "network":
                # the NTK's training loss left at the last step, a fraction of the initial one
                out[f"{key}LossKeep"] = float(rows(done, **match)[0]["ntk_train_loss_fraction"])
                for eval_set, where in ((s, ""), ("noise", "Noise")):
                    recs = rows(done, dataset=d, model=model, eval_set=eval_set, step=step)
                    # k tr Sigma_s over k tr Sigma_0: how much of the initial spread the NTK leaves
                    out[f"{key}{where}SpreadLeft"] = float(recs[0]["predicted_noise_sq"] / recs[0]["scale"] ** 2)
                    if where:
                        _, vn, _, _ = pooled_mean(done, "variance_ratio", dataset=d, model=model, eval_set=eval_set,
                                                  step=step)
                        out[f"{key}NoiseVarLow"], out[f"{key}NoiseVarHigh"] = float(vn.min()), float(vn.max())
    return out
