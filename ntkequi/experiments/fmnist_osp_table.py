"""The orbit-consistency table on rotated FashionMNIST (the paper's headline table).

For each rotation group C_n (n in ``cfg.groups``) and seed, trains

* ``deep_ensemble``: ``ensemble_size`` CNNs (an :class:`ArchSpec`, so the analytic
  kernel of the same network exists) with full-orbit augmentation: every minibatch
  draws (image, rotation) pairs uniformly from the full C_n orbit of the training
  set (``augmentation='random'`` of :mod:`ntkequi.ensembles`: one random rotation
  per image per step, i.e. minibatches of the orbit-augmented set). The ensemble
  prediction is the mean of the members' logits (the quantity the NTK theory is
  about). The "single model, data augmentation only" row is each member on its own
  (mean +- std over members and seeds);
* ``gcnn``: the E2CNN-style C_n group CNN (:mod:`ntkequi.nn.gcnn`);
* ``canonicalization``: learned canonicalization (:mod:`ntkequi.nn.canonicalization`);

the baselines with the same optimizer, steps and augmented minibatches. Each model is
evaluated on the C_n orbits of the FashionMNIST test subset (accuracy, and
in-distribution OSP) and of the out-of-distribution sets (MNIST digits, uniform
noise): orbit same predictions (OSP, out of n), relative invariance error of the
logits, relative standard deviation across the orbit.

Every trained model lives in its own resumable run directory (checkpointed while
training) and every finished (model, group, seed) appends its metrics to
``results.jsonl`` at once, so an interrupted table run keeps all finished work.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import data, ensembles, groups, metrics
from ..nn import ArchSpec, CanonSpec, GCNNSpec, channels_for
from ..runs import RunDir
from .protocol import PM, Figure, Num, Table, number_word, pyplot

NAME = "fmnist_osp_table"
USES_DATA = True
CPU_TIME = {"small": "18 min", "cpu": "2.5 h (43-56 min per seed; resumable)", "paper": "weeks on a CPU (meant for a GPU)"}

MODELS = ("deep_ensemble", "gcnn", "canonicalization")
ROWS = ("deep_ensemble", "single", "gcnn", "canonicalization")
ROW_NAMES = {"deep_ensemble": "DeepEns + DA", "single": "single model, DA only",
             "gcnn": "E2CNN-style GCNN", "canonicalization": "learned canonicalization"}
#: the paper's table (Gerken & Kessel 2024): OSP out of distribution, mean +- std (which OOD set is not known)
PAPER_OSP = {
    "deep_ensemble": {4: (3.85, 0.12), 8: (7.72, 0.34), 16: (15.24, 0.69)},
    "single": {4: (3.41, 0.18), 8: (6.73, 0.24), 16: (12.77, 0.71)},
    "gcnn": {4: (4.0, 0.0), 8: (7.71, 0.21), 16: (15.08, 0.34)},
    "canonicalization": {4: (4.0, 0.0), 8: (7.45, 0.14), 16: (12.41, 0.85)},
}
EVAL_SETS = ("test", "mnist", "noise")
#: the unrotated sets scored by accuracy only (all test images; the validation images)
ACCURACY_SETS = ("test_all", "val")
#: validation accuracy reported elsewhere from the paper's work (group not stated)
PAPER_ACCURACY = {"deep_ensemble": 0.91, "canonicalization": 0.87}
VS_M_METRICS = ("osp", "relative_std", "invariance_error")


def _check_learning_rate(owner: str, lr) -> None:
    if lr is not None and not lr > 0:
        raise ValueError(f"{owner}.learning_rate must be > 0 or None; got {lr}")


@dataclasses.dataclass(frozen=True)
class GCNNConfig:
    """The E2CNN-style GCNN baseline (:class:`ntkequi.nn.GCNNSpec`) of the table.

    depth: group convolutions after the lifting layer; channels: channels per rotation at C4
    (one int for every layer, or one per layer: lifting, then each group convolution), scaled
    by :func:`~ntkequi.nn.channels_for` for other n (a fixed parameter budget); head: hidden
    units of the invariant readout (0: Dense only); rings: the invariant pooling (0: over all
    of space; k: over k rings about the centre); learning_rate: its (peak) step size (None: the
    table's ``learning_rate``; the He-initialised GCNN wants a smaller one under Adam than the
    NTK-parameterised CNN).
    """
    depth: int = 1
    channels: Union[int, tuple] = 8
    head: int = 0
    rings: int = 0
    learning_rate: Optional[float] = None

    def __post_init__(self):
        _check_learning_rate("gcnn", self.learning_rate)

    def spec(self, n: int, kernel_size: int, out_dim: int) -> GCNNSpec:
        """Its network for C_n."""
        return GCNNSpec(n=n, depth=self.depth, channels=channels_for(n, self.channels), kernel_size=kernel_size,
                        out_dim=out_dim, pool=True, head=self.head, rings=self.rings)


@dataclasses.dataclass(frozen=True)
class CanonConfig:
    """The learned-canonicalization baseline (:class:`ntkequi.nn.CanonSpec`): a C_n GCNN
    canonicalizer in front of the table's CNN.

    depth: group convolutions of the canonicalizer after its lifting layer; channels: as
    :attr:`GCNNConfig.channels`; learning_rate: its (peak) step size (None: the table's).
    """
    depth: int = 0
    channels: Union[int, tuple] = 8
    learning_rate: Optional[float] = None

    def __post_init__(self):
        _check_learning_rate("canon", self.learning_rate)

    def spec(self, n: int, kernel_size: int, classifier: ArchSpec) -> CanonSpec:
        """Its model for C_n, canonicalizing 28x28 images for ``classifier``."""
        return CanonSpec(canonicalizer=GCNNSpec(n=n, depth=self.depth, channels=channels_for(n, self.channels),
                                                kernel_size=kernel_size, out_dim=1),
                         classifier=classifier, image_size=28)


#: the flat fields of the table's config before the baselines became nested configs -> (field, sub-field)
_FLAT_FIELDS = {"gcnn_depth": ("gcnn", "depth"), "gcnn_channels": ("gcnn", "channels"), "gcnn_head": ("gcnn", "head"),
                "gcnn_rings": ("gcnn", "rings"), "gcnn_learning_rate": ("gcnn", "learning_rate"),
                "canon_depth": ("canon", "depth"), "canon_channels": ("canon", "channels"),
                "canon_learning_rate": ("canon", "learning_rate")}


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """Everything that determines the table (saved as the run's config.json).

    cnn: the ensemble members' architecture (and the canonicalization model's classifier);
    gcnn, canon: the two baselines (:class:`GCNNConfig`, :class:`CanonConfig`); kernel_size:
    their filters' size. schedule: the step-size schedule of every model ('constant' or
    'onecycle', peak ``learning_rate`` unless a baseline sets its own; see
    :class:`ntkequi.ensembles.TrainConfig`). n_orbit: how many of the test images (the first
    of the seed's permutation) are evaluated on their orbits (None: all ``split.n_test``);
    accuracy is always over all ``split.n_test`` unrotated test images (``test_all``), and
    over the validation images (``val``) when ``split.n_val > 0``. A config saved with the
    older flat fields (``gcnn_channels``, ``canon_depth``, ...) is read back nested
    (:meth:`upgrade_saved`).
    """
    groups: tuple = (4, 8, 16)
    seeds: tuple = (0, 1)
    split: data.SplitConfig = data.SplitConfig(n_train=2000, n_val=0, n_test=200)
    n_ood: int = 200
    cnn: ArchSpec = ArchSpec(kind="cnn", depth=2, width=16, out_dim=10, pool=True)
    ensemble_size: int = 4
    gcnn: GCNNConfig = GCNNConfig()
    canon: CanonConfig = CanonConfig()
    kernel_size: int = 5
    steps: int = 250
    batch_size: int = 128
    learning_rate: float = 3e-3
    optimizer: str = "adam"
    models: tuple = MODELS
    schedule: str = "constant"
    n_orbit: Optional[int] = None

    def __post_init__(self):
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"unknown models {bad}; available: {MODELS}")
        if any(n < 1 for n in self.groups):
            raise ValueError(f"group orders must be >= 1; got {self.groups}")
        n_test = 10000 if self.split.n_test is None else self.split.n_test
        if self.n_orbit is not None and not 1 <= self.n_orbit <= n_test:
            raise ValueError(f"n_orbit must be in [1, split.n_test={n_test}] or None; got {self.n_orbit}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")

    @staticmethod
    def upgrade_saved(obj: dict) -> dict:
        """A saved config (JSON) in today's layout: the flat ``gcnn_*`` / ``canon_*`` fields
        of configs written before the baselines were nested become ``gcnn`` / ``canon``.

        >>> TableConfig.upgrade_saved({"gcnn_head": 64, "steps": 3})["gcnn"]["head"]
        64
        """
        if not any(k in obj for k in _FLAT_FIELDS):
            return obj
        from ..runs import to_jsonable
        out = {k: v for k, v in obj.items() if k not in _FLAT_FIELDS}
        for name, cls in (("gcnn", GCNNConfig), ("canon", CanonConfig)):
            out.setdefault(name, to_jsonable(cls()))
        for flat, (name, field) in _FLAT_FIELDS.items():
            if flat in obj:
                out[name] = {**out[name], field: obj[flat]}
        return out


Config = TableConfig
PRESETS = {
    # the small check (CPU_TIME has the measured time)
    "small": TableConfig(),
    # all of FashionMNIST on a CPU (3 epochs of every model; CPU_TIME has the measured time): 55,000 train /
    # 5,000 validation, accuracy on all 10,000 test images, orbits of 1,000 of them and of 1,000
    # MNIST / noise images; a width-64 CNN (68,938 parameters) and baselines matched to it (GCNN
    # 69-73k, its readout sees 4 rings x 32 / 23 / 16 channels through a 64-unit head;
    # canonicalizer + the same CNN 75-76k); one-cycle Adam, each model at the peak step size it
    # learnt best with in one-epoch calibration runs on seed 0 (README)
    "cpu": TableConfig(groups=(4, 8, 16), seeds=(0, 1, 2), split=data.SplitConfig(n_train=55000, n_val=5000, n_test=None),
                       n_orbit=1000, n_ood=1000, cnn=ArchSpec(kind="cnn", depth=2, width=64, out_dim=10, pool=True),
                       ensemble_size=5, steps=1290, batch_size=128, schedule="onecycle", learning_rate=2e-1,
                       gcnn=GCNNConfig(depth=2, channels=(8, 16, 32), head=64, rings=4, learning_rate=1e-2),
                       canon=CanonConfig(depth=1, channels=(8, 8), learning_rate=1e-1)),
    # the paper's scale (a GPU): all training data, CNNs of ~118k parameters (the paper's
    # non-invariant CNNs had about 120k), 10 members, 5 seeds
    "paper": TableConfig(seeds=(0, 1, 2, 3, 4), split=data.SplitConfig(n_train=55000, n_val=5000, n_test=2000),
                         n_ood=1000, cnn=ArchSpec(kind="cnn", depth=2, width=90, out_dim=10, pool=True),
                         ensemble_size=10, gcnn=GCNNConfig(depth=2, channels=24), canon=CanonConfig(channels=16),
                         steps=20000, batch_size=128, learning_rate=1e-3),
}


def model_spec(cfg: TableConfig, model: str, n: int):
    """The spec (ArchSpec / GCNNSpec / CanonSpec) of ``model`` for C_n."""
    if model == "deep_ensemble":
        return cfg.cnn
    if model == "gcnn":
        return cfg.gcnn.spec(n, cfg.kernel_size, cfg.cnn.out_dim)
    return cfg.canon.spec(n, cfg.kernel_size, cfg.cnn)


def learning_rate(cfg: TableConfig, model: str) -> float:
    """The (peak) step size ``model`` is trained with under ``cfg``."""
    own = {"gcnn": cfg.gcnn.learning_rate, "canonicalization": cfg.canon.learning_rate}.get(model)
    return cfg.learning_rate if own is None else own


def train_config(cfg: TableConfig, model: str, seed: int, steps: Optional[int] = None) -> ensembles.TrainConfig:
    """How :func:`run` trains ``model`` for ``seed``: the ensemble (or one network) at its
    own peak step size, minibatches of the orbit (one random rotation per image per step),
    softmax cross-entropy, checkpoints every tenth of the run.

    Args:
        cfg: the table's config; model: one of ``MODELS``; seed: the member-key seed.
        steps: the number of steps (None: ``cfg.steps``; calibration runs train shorter).

    Returns:
        The ``ensembles.TrainConfig``.

    >>> train_config(PRESETS["cpu"], "gcnn", 0).learning_rate
    0.01
    """
    steps = cfg.steps if steps is None else steps
    return ensembles.TrainConfig(
        ensemble_size=cfg.ensemble_size if model == "deep_ensemble" else 1,
        steps=steps, learning_rate=learning_rate(cfg, model), optimizer=cfg.optimizer, schedule=cfg.schedule,
        loss="xent", batch_size=cfg.batch_size, augmentation="random",
        record_steps=(steps,), checkpoint_every=max(1, steps // 10), seed=seed)


def parameter_counts(cfg: TableConfig) -> dict:
    """``{(model, n): number of parameters}`` of one network of each model and group."""
    x = jnp.zeros((1, 28, 28, 1))
    count = lambda spec: sum(int(np.prod(p.shape)) for p in                    # shapes only: nothing runs
                             jax.tree_util.tree_leaves(jax.eval_shape(spec.flax().init, jax.random.PRNGKey(0), x)))
    return {(m, n): count(model_spec(cfg, m, n)) for m in cfg.models for n in cfg.groups}


def forward_flops(cfg: TableConfig, batch: int = 8) -> dict:
    """``{(model, n): forward FLOPs per image}`` of one network of each model and group, as
    XLA counts them for a batch of ``batch`` images (what compute each model spends; the
    parameter count alone hides that a C_n feature map is ``n`` times wider)."""
    x = jnp.zeros((batch, 28, 28, 1), jnp.float32)
    out = {}
    for m in cfg.models:
        for n in cfg.groups:
            net = model_spec(cfg, m, n).flax()
            params = jax.eval_shape(net.init, jax.random.PRNGKey(0), x[:1])
            cost = jax.jit(net.apply).lower(params, x).cost_analysis()                # the HLO's count, uncompiled
            out[(m, n)] = float(cost["flops"]) / batch
    return out


def _eval_metrics(logits_orbit, group, labels=None) -> dict:
    """Metrics of one model's orbit logits ``(|G|, N, k)``."""
    osp_mean, osp_std = metrics.orbit_same_predictions(logits_orbit, group)
    out = {"osp": osp_mean, "osp_std": osp_std,
           "invariance_error": metrics.equivariance_error(logits_orbit, group).relative,
           "relative_std": metrics.relative_std(logits_orbit, group)}
    if labels is not None:
        out["accuracy"] = metrics.accuracy(logits_orbit[0], labels)
        out["accuracy_orbit"] = float(np.mean([metrics.accuracy(f, labels) for f in logits_orbit]))
    return out


def ensemble_size_curve(orbit_members, group) -> list:
    """OSP, relative std and logit invariance error of ensembles of 1..M members.

    orbit_members ``(M, |G|, N, k)``: every member's orbit logits. For ``m = 1..M`` the
    members are cut into ``M // m`` disjoint consecutive subsets of ``m`` (the first is
    the first ``m`` members) and each subset's mean logits are scored.

    Returns:
        ``[{"m": m, "osp": [per subset], "relative_std": [...], "invariance_error": [...]}]``.
    """
    out = []
    for m in range(1, orbit_members.shape[0] + 1):
        subsets = [orbit_members[j * m:(j + 1) * m].mean(0) for j in range(orbit_members.shape[0] // m)]
        scored = [_eval_metrics(f, group) for f in subsets]
        out.append({"m": m, **{key: [d[key] for d in scored] for key in ("osp", "relative_std", "invariance_error")}})
    return out


def run(cfg: TableConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Train and evaluate everything in ``cfg`` (resuming what ``out`` holds); returns
    ``{key: record}`` with key ``'{model}/C{n}/seed{seed}'``."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    for seed in cfg.seeds:
        split = dataclasses.replace(cfg.split, seed=seed)
        sets = data.splits(split, "fashion_mnist", data_dir)
        x_tr, y_tr = sets["train"]
        y_onehot = np.eye(cfg.cnn.out_dim, dtype=np.float32)[y_tr]
        x_te, y_te = sets["test"]
        n_orbit = x_te.shape[0] if cfg.n_orbit is None else cfg.n_orbit
        evals = {"test": x_te[:n_orbit],
                 "mnist": data.ood_set("mnist", cfg.n_ood, seed, data_dir),
                 "noise": data.ood_set("noise", cfg.n_ood, seed, data_dir)}
        plain = {"test_all": sets["test"]}                     # unrotated: accuracy only
        if sets["val"][0].shape[0]:
            plain["val"] = sets["val"]
        for n in cfg.groups:
            group = groups.rotations(n, (28, 28))
            ev = metrics.EvalOrbits.of(group, {s: evals[s] for s in EVAL_SETS})
            x_eval = np.concatenate([np.asarray(ev.x)] + [np.asarray(x) for x, _ in plain.values()])
            for key, model in rd.pending(cfg.models, lambda m: f"{m}/C{n}/seed{seed}"):
                spec = model_spec(cfg, model, n)
                tcfg = train_config(cfg, model, seed)
                print(f"[{out.name}] {key}", flush=True)
                res = ensembles.train(spec, tcfg, ensembles.TrainingData(x_tr, y_onehot, x_eval, group),
                                      run_dir=out / "models" / key.replace("/", "_"), progress=progress)
                members = res.members[-1]                       # (M, N_eval, k)
                rec = {"model": model, "n": n, "seed": seed, "n_train": int(x_tr.shape[0])}
                for s in EVAL_SETS:
                    sl = ev.slice(s)
                    lab = y_te[:n_orbit] if s == "test" else None
                    orbit = lambda f: metrics.orbit_predictions(f[sl], group)
                    rec[s] = _eval_metrics(orbit(members.mean(0)), group, lab)
                    if model == "deep_ensemble":
                        rec[s + "_members"] = [_eval_metrics(orbit(m), group, lab) for m in members]
                        rec[s + "_vs_m"] = ensemble_size_curve(np.stack([orbit(m) for m in members]), group)
                start = ev.x.shape[0]
                for s, (x, y) in plain.items():
                    part = members[:, start:start + x.shape[0]]
                    start += x.shape[0]
                    rec[s] = {"accuracy": metrics.accuracy(part.mean(0), y)}
                    if model == "deep_ensemble":
                        rec[s + "_members"] = [{"accuracy": metrics.accuracy(m, y)} for m in part]
                done[key] = rd.record(key, **rec)
    write_csv(cfg, done, out)
    return done


def summarize(cfg: TableConfig, done: dict, eval_set: str, metric: str = "osp") -> dict:
    """``{row: {n: (mean, std, count)}}`` over seeds (and members for 'single')."""
    out = {}
    for row in ROWS:
        model = "deep_ensemble" if row == "single" else row
        if model not in cfg.models:
            continue
        out[row] = {}
        for n in cfg.groups:
            vals = []
            for seed in cfg.seeds:
                rec = done.get(f"{model}/C{n}/seed{seed}")
                if rec is None:
                    continue
                # records written before test_all existed evaluated all test images on orbits
                s = "test" if eval_set == "test_all" and "test_all" not in rec else eval_set
                if s not in rec:
                    continue
                if row == "single":
                    vals += [m[metric] for m in rec[s + "_members"]]
                else:
                    vals.append(rec[s][metric])
            if vals:
                out[row][n] = (float(np.mean(vals)), float(np.std(vals)), len(vals))
    return out


def markdown(cfg: TableConfig, done: dict, eval_set: str, metric: str = "osp", paper: bool = True) -> str:
    """Markdown table of ``metric`` on ``eval_set``, mean +- std, beside the paper's OSP."""
    summ = summarize(cfg, done, eval_set, metric)
    head = "| model | " + " | ".join(f"C{n}" + (f" | C{n} paper" if paper else "") for n in cfg.groups) + " |"
    lines = [head, "|---" * (1 + len(cfg.groups) * (2 if paper else 1)) + "|"]
    for row, vals in summ.items():
        cells = []
        for n in cfg.groups:
            v = vals.get(n)
            cells.append("-" if v is None else f"{v[0]:.3g} +- {v[1]:.2g}")
            if paper:
                p = PAPER_OSP[row].get(n)
                cells.append("-" if p is None else f"{p[0]} +- {p[1]}")
        lines.append(f"| {ROW_NAMES[row]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarize_vs_m(cfg: TableConfig, done: dict, eval_set: str, metric: str = "osp") -> dict:
    """``{n: [(m, mean, std, count)]}``: ``metric`` of the mean of m ensemble members on
    ``eval_set`` orbits, over seeds and disjoint member subsets (:func:`ensemble_size_curve`)."""
    out = {}
    for n in cfg.groups:
        by_m = {}
        for seed in cfg.seeds:
            rec = done.get(f"deep_ensemble/C{n}/seed{seed}")
            for point in (rec or {}).get(eval_set + "_vs_m", []):
                by_m.setdefault(point["m"], []).extend(point[metric])
        if by_m:
            out[n] = [(m, float(np.mean(v)), float(np.std(v)), len(v)) for m, v in sorted(by_m.items())]
    return out


def write_csv(cfg: TableConfig, done: dict, out: Path) -> None:
    """``results.csv`` (one row per model, group, seed and eval set; members as
    ``single[i]``), ``ensemble_size.csv`` (OSP, relative std and invariance error of the
    mean of m members, per group, seed, eval set and member subset) and ``summary.json``
    (mean, std and count over seeds per row and group), in ``out``, for analysis outside
    ntkequi."""
    out = Path(out)
    fields = ["model", "n", "seed", "eval_set", "osp", "osp_std", "invariance_error", "relative_std",
              "accuracy", "accuracy_orbit"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for key in sorted(done):
            rec = done[key]
            for s in EVAL_SETS + ACCURACY_SETS:
                if s not in rec:
                    continue
                w.writerow({"model": rec["model"], "n": rec["n"], "seed": rec["seed"], "eval_set": s, **rec[s]})
                for i, m in enumerate(rec.get(s + "_members", [])):
                    w.writerow({"model": f"single[{i}]", "n": rec["n"], "seed": rec["seed"], "eval_set": s, **m})
    with open(out / "ensemble_size.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "seed", "eval_set", "m", "subset"] + list(VS_M_METRICS))
        for key in sorted(done):
            rec = done[key]
            for s in EVAL_SETS:
                for point in rec.get(s + "_vs_m", []):
                    for j in range(len(point["osp"])):
                        w.writerow([rec["n"], rec["seed"], s, point["m"], j] + [point[k][j] for k in VS_M_METRICS])
    summary_ = {s: {m: summarize(cfg, done, s, m) for m in ("osp", "invariance_error", "relative_std")}
                for s in EVAL_SETS}
    summary_["test"]["accuracy"] = summarize(cfg, done, "test", "accuracy")
    for s in ACCURACY_SETS:
        summary_[s] = {"accuracy": summarize(cfg, done, s, "accuracy")}
    summary_["ensemble_size"] = {s: {m: {str(n): v for n, v in summarize_vs_m(cfg, done, s, m).items()}
                                     for m in VS_M_METRICS} for s in EVAL_SETS}
    (out / "summary.json").write_text(json.dumps(summary_, indent=2, sort_keys=True) + "\n")


def summary(cfg: TableConfig, done: dict) -> str:
    """Markdown: OSP per eval set beside the paper's, test accuracy, logit invariance error."""
    md = ["parameters per network: " + ", ".join(f"{m} C{n}: {c}" for (m, n), c in parameter_counts(cfg).items()), ""]
    for s in EVAL_SETS:
        md += [f"### OSP (out of |G|) on {s} inputs", "", markdown(cfg, done, s), ""]
    md += ["### test accuracy (all unrotated test images of the split)", "",
           markdown(cfg, done, "test_all", "accuracy", paper=False), ""]
    if cfg.split.n_val:
        md += ["### validation accuracy (unrotated)", "", markdown(cfg, done, "val", "accuracy", paper=False), ""]
    md += ["### relative invariance error of the logits, mnist inputs", "",
           markdown(cfg, done, "mnist", "invariance_error", paper=False), ""]
    for s in EVAL_SETS:
        curve = summarize_vs_m(cfg, done, s)
        if curve:
            md += [f"### OSP of the mean of m members, {s} inputs", "",
                   "| m | " + " | ".join(f"C{n}" for n in curve) + " |", "|---" * (1 + len(curve)) + "|"]
            for i in range(max(len(v) for v in curve.values())):
                md.append(f"| {i + 1} | " + " | ".join(f"{v[i][1]:.3g} +- {v[i][2]:.2g}" if i < len(v) else "-"
                                                     for v in curve.values()) + " |")
            md.append("")
    return "\n".join(md)


def figure(cfg: TableConfig, done: dict):
    """(e) the table's models side by side: OSP / |G| (mean +- std over seeds; members and
    seeds for the single model) per group, one panel per evaluation set; crosses: the
    paper's values (its evaluation set is not known). Returns the matplotlib Figure."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(EVAL_SETS), figsize=(5 * len(EVAL_SETS), 4), sharey=True)
    groups_ = list(cfg.groups)
    rows = [r for r in ROWS if ("deep_ensemble" if r == "single" else r) in cfg.models]
    bw = 0.8 / len(rows)
    for ax, s in zip(axes, EVAL_SETS):
        summ = summarize(cfg, done, s, "osp")
        for i, row in enumerate(rows):
            xs = np.arange(len(groups_)) + (i - (len(rows) - 1) / 2) * bw
            vals = [summ.get(row, {}).get(n, (np.nan, 0.0, 0)) for n in groups_]
            ax.bar(xs, [v[0] / n for v, n in zip(vals, groups_)], bw, yerr=[v[1] / n for v, n in zip(vals, groups_)],
                   capsize=2, color=f"C{i}", label=ROW_NAMES[row])
            paper = [PAPER_OSP[row].get(n, (np.nan,))[0] / n for n in groups_]
            ax.plot(xs, paper, "kx", ms=6, label="paper" if i == 0 else None)
        ax.set_xticks(np.arange(len(groups_)), [f"C{n}" for n in groups_])
        ax.set(ylim=(0, 1.05), xlabel="group", title=f"{s} inputs")
    axes[0].set_ylabel("OSP / |G| (1: all orbit predictions agree)")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig




def osp_table(eval_set: str):
    """``fn(cfg, done) -> Table``: OSP on ``eval_set`` (mean +- std over seeds), the paper's
    value in parentheses."""
    def table_(cfg: TableConfig, done: dict) -> Table:
        summ = summarize(cfg, done, eval_set, "osp")
        rows = []
        for row, vals in summ.items():
            cells = []
            for n in cfg.groups:
                v, p = vals.get(n), PAPER_OSP[row].get(n)
                ours = "--" if v is None else PM(v[0], v[1], decimals=2, n=v[2])
                cells.append(ours if p is None else (ours, " (", Num(p[0], decimals=2), ")"))
            rows.append([ROW_NAMES[row]] + cells)
        cap = (f"Orbit same predictions (out of $|G|$) on rotated {eval_set} inputs, mean "
               r"$\pm$ std over seeds [95 \% t-interval of the mean]; the paper's value in parentheses.")
        return Table(["model"] + [f"$C_{{{n}}}$" for n in cfg.groups], rows, cap, f"osp_{eval_set}")
    return table_


def metric_table(eval_set: str, metric: str, what: str, label: str):
    """``fn(cfg, done) -> Table``: ``metric`` on ``eval_set`` per model and group, mean +- std."""
    def table_(cfg: TableConfig, done: dict) -> Table:
        summ = summarize(cfg, done, eval_set, metric)
        rows = [[ROW_NAMES[row]] + [PM(*vals[n][:2], n=vals[n][2]) if n in vals else "--" for n in cfg.groups]
                for row, vals in summ.items()]
        cap = (f"{what}, mean $\\pm$ std over seeds [95 \\% t-interval of the mean] (the single model: over seeds "
               f"and members).")
        return Table(["model"] + [f"$C_{{{n}}}$" for n in cfg.groups], rows, cap, label)
    return table_


def numbers(cfg: TableConfig, done: dict) -> dict:
    """Means over seeds, per model and group: OSP on noise images (``osp<Model><Order>``), on
    MNIST digits (``ospMnist<Model><Order>``) and accuracy on the unrotated test images
    (``ospAcc<Model><Order>``); and the training-set size, seeds and ensemble size."""
    out = {}
    for prefix, eval_set, metric in (("osp", "noise", "osp"), ("ospMnist", "mnist", "osp"),
                                     ("ospAcc", "test_all", "accuracy")):
        summ = summarize(cfg, done, eval_set, metric)
        for row, nm in (("deep_ensemble", "Ens"), ("single", "Single"), ("gcnn", "Gcnn"),
                        ("canonicalization", "Canon")):
            for n in cfg.groups:
                if n in summ.get(row, {}):
                    out[f"{prefix}{nm}{number_word(n)}"] = summ[row][n][0]
    out["ospNTrain"] = str(cfg.split.n_train)
    out["ospSeeds"] = str(len(cfg.seeds))
    out["ospMembers"] = str(cfg.ensemble_size)
    return out


def ensemble_size_figure(cfg: TableConfig, done: dict):
    """OSP / |G|, relative std across the orbit and logit invariance error of the mean of
    the first m members against m (mean +- std over seeds and disjoint member subsets), one
    column per evaluation set, one colour per group; dashed / dotted: the GCNN's and the
    canonicalizer's level (mean over seeds). Returns the matplotlib Figure."""
    plt = pyplot()
    fig, axes = plt.subplots(len(VS_M_METRICS), len(EVAL_SETS), figsize=(4.5 * len(EVAL_SETS), 9), sharex=True)
    labels = {"osp": "OSP / |G|", "relative_std": "relative std across the orbit",
              "invariance_error": "relative invariance error"}
    for j, s in enumerate(EVAL_SETS):
        for i, metric in enumerate(VS_M_METRICS):
            ax = axes[i, j]
            for c, (n, curve) in enumerate(summarize_vs_m(cfg, done, s, metric).items()):
                scale = n if metric == "osp" else 1
                m, mean, std = (np.array([p[k] for p in curve]) for k in range(3))
                ax.errorbar(m, mean / scale, std / scale, marker="o", ms=3, capsize=2, color=f"C{c}", label=f"C{n}")
                for row, style in (("gcnn", "--"), ("canonicalization", ":")):
                    level = summarize(cfg, done, s, metric).get(row, {}).get(n)
                    if level is not None:
                        ax.axhline(level[0] / scale, color=f"C{c}", ls=style, lw=1)
            if metric != "osp":
                ax.set_yscale("log")
            ax.set_ylabel(labels[metric])
            if i == 0:
                ax.set_title(f"{s} inputs")
            if i == len(VS_M_METRICS) - 1:
                ax.set_xlabel("ensemble members m")
    axes[0, 0].plot([], [], "k--", lw=1, label="GCNN")
    axes[0, 0].plot([], [], "k:", lw=1, label="canonicalization")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def ensemble_size_table(cfg: TableConfig, done: dict) -> Table:
    """OSP, relative std and invariance error on MNIST orbits of the mean of m members
    (mean +- std over seeds and disjoint subsets), then the GCNN's and canonicalizer's."""
    s = "mnist"
    curves = {metric: summarize_vs_m(cfg, done, s, metric) for metric in VS_M_METRICS}
    levels = {metric: summarize(cfg, done, s, metric) for metric in VS_M_METRICS}
    rows = []
    for i in range(cfg.ensemble_size):
        cells = [str(i + 1)]
        for n in cfg.groups:
            for metric in VS_M_METRICS:
                v = curves[metric].get(n, [])
                cells.append(PM(v[i][1], v[i][2], decimals=2 if metric == "osp" else None, n=v[i][3]) if i < len(v) else "--")
        rows.append(cells)
    for row in ("gcnn", "canonicalization"):
        if row in cfg.models:
            rows.append([ROW_NAMES[row]] + [
                PM(*levels[metric][row][n][:2], decimals=2 if metric == "osp" else None, n=levels[metric][row][n][2])
                if n in levels[metric].get(row, {}) else "--" for n in cfg.groups for metric in VS_M_METRICS])
    header = ["$m$"] + [f"$C_{{{n}}}$ {h}" for n in cfg.groups for h in ("OSP", "rel. std", "inv. err.")]
    cap = ("The deep ensemble's mean of its first $m$ members on rotated MNIST digits: orbit same "
           "predictions (out of $|G|$), relative standard deviation across the orbit and relative logit "
           r"invariance error, mean $\pm$ std over seeds and disjoint member subsets [95 \% t-interval of the "
           "mean]; last rows: the "
           "invariant baselines (over seeds). The other evaluation sets: the figure and ensemble\\_size.csv.")
    return Table(header, rows, cap, "osp_ensemble_size")


def accuracy_table(cfg: TableConfig, done: dict) -> Table:
    """Per model and group: accuracy on all unrotated test images and OSP on MNIST / noise
    orbits (mean +- std over seeds), the paper's OSP beside them, and the paper's accuracy."""
    acc = summarize(cfg, done, "test_all", "accuracy")
    osp = {s: summarize(cfg, done, s, "osp") for s in ("mnist", "noise")}
    rows = []
    for row, vals in acc.items():
        cells = [ROW_NAMES[row]]
        for n in cfg.groups:
            cells.append(PM(*vals[n][:2], decimals=3, n=vals[n][2]) if n in vals else "--")
            mn, nz, p = osp["mnist"].get(row, {}).get(n), osp["noise"].get(row, {}).get(n), PAPER_OSP[row].get(n)
            cell = ("--" if mn is None else PM(mn[0], mn[1], decimals=2, n=mn[2]), " / ",
                    "--" if nz is None else PM(nz[0], nz[1], decimals=2, n=nz[2]))
            cells.append(cell + (() if p is None else (" (", Num(p[0], decimals=2), ")")))
        pa = PAPER_ACCURACY.get(row)
        cells.append("--" if pa is None else Num(pa, decimals=2))
        rows.append(cells)
    header = ["model"] + [h for n in cfg.groups for h in (f"$C_{{{n}}}$ acc.", f"$C_{{{n}}}$ OSP MNIST / noise")]
    cap = ("Accuracy on the unrotated test images and orbit same predictions (out of $|G|$) on rotated MNIST "
           r"digits / noise images, mean $\pm$ std over seeds [95 \% t-interval of the mean] (the single model: "
           "seeds and members); the "
           "paper's out-of-distribution OSP in parentheses (its evaluation set is not known) and, last column, "
           "the validation accuracy reported from the paper's work (group not stated).")
    return Table(header + ["paper acc."], rows, cap, "osp_summary")


FIGURES = (Figure("osp_models", figure,
                  "The orbit-consistency table's models side by side: OSP (as a fraction of |G|) of the "
                  "deep ensemble, its single members, the GCNN and learned canonicalization, mean and std "
                  "over seeds, for each group and evaluation set; crosses: the paper's values."),
           Figure("osp_ensemble_size", ensemble_size_figure,
                  "OSP (as a fraction of |G|), relative standard deviation across the orbit and relative logit "
                  "invariance error of the mean of the first m deep-ensemble members against m (mean and std "
                  "over seeds and disjoint member subsets), per evaluation set and group; dashed: the GCNN, "
                  "dotted: learned canonicalization (same colour = same group)."))
TABLES = {
    "osp_test": osp_table("test"), "osp_mnist": osp_table("mnist"), "osp_noise": osp_table("noise"),
    "osp_accuracy": metric_table("test_all", "accuracy", "Test accuracy on unrotated test images", "osp_accuracy"),
    "osp_summary": accuracy_table,
    "osp_ensemble_size": ensemble_size_table,
    "osp_invariance": metric_table("mnist", "invariance_error",
                                   "Relative invariance error of the logits on rotated MNIST digits", "osp_invariance"),
}
