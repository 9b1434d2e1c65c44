"""Partial augmentation: NTK ensembles augmented with C4, C8 or C16 rotations, evaluated
under finer rotations.

The theorem makes an ensemble equivariant under the group it was augmented with, not
under the continuous rotations that group approximates. On FashionMNIST, the analytic
NTK mean of a network is trained with no augmentation and with the full C4, C8 and C16
orbits of the training images (bilinear rotations for C8/C16, see
:func:`ntkequi.groups.rotations`), and evaluated on the C_m orbits (m = ``eval_order``,
finer than every training group) of FashionMNIST test images, MNIST digits and noise:
test accuracy (unrotated and over C_m), the relative invariance error of the logits at
every angle of C_m, its mean over the angles of each C_n (n dividing m), and the OSP
under C_m.

How the C8/C16 orbits fit on a CPU: the rotation by ``2 pi k / n`` with
``k = (n/4) a + s`` is the quarter turn ``r^a`` after the bilinear rotation ``R_s`` by
``2 pi s / n`` (exactly: a quarter turn permutes the pixel grid and the zero-padded
square; :func:`quarter_turn_offsets` checks it on the data). So the C_n orbit of ``X`` is
the exact C4 orbit of ``X_n = {R_s x : s < n/4}``, and for a kernel invariant under the
simultaneous quarter turns (the MLP's, the pooled CNN's) the C_n-augmented prediction is
the C4-structured solve on ``X_n`` (:func:`ntkequi.kernels.solve_blocks`): about
``2 (n/4)^2 N^2`` train kernel pairs instead of ``(n N)^2 / 2``. One
:class:`~ntkequi.kernels.TileStore` holds them all: its training inputs are
``[X, R_45 X, R_22.5 X, R_67.5 X]`` (for C16), whose first ``N``, ``2N`` and ``4N``
rows are ``X_4``, ``X_8`` and ``X_16``; its test inputs the ``m/4`` rotations
``R_s e`` (``s < m/4``) of each evaluation image, whose C4 orbits are the C_m orbits.
The tiles are saved as they finish (a killed run resumes without recomputing one).
Times are multiples of ``1 / lambda_max`` of each augmented NTK.

    ntkequi run partial_augmentation --data-dir DIR               # MLP, 64 images: ~35 s on 2 CPU cores
    ntkequi run partial_augmentation --data-dir DIR --preset cnn  # the OSP table's CNN, 256 images: 25 min
    ntkequi run partial_augmentation --data-dir DIR --preset paper

Writes runs/partial_augmentation[-PRESET]/ (one record per training group, resumable).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from .. import data, groups, kernels, metrics
from ..nn import ArchSpec
from ..runs import RunDir
from .protocol import Figure, Num, Table, number_word, pyplot

NAME = "partial_augmentation"
USES_DATA = True
CPU_TIME = {"small": "35 s", "cnn": "25 min", "paper": "not measured (meant for a GPU)"}

EVAL_SETS = ("fashion_mnist_test", "mnist", "noise")

#: the OSP table's ensemble member: conv 3x3 - ReLU - 2x2 average pool twice, flatten, dense
POOLED_CNN = ArchSpec(kind="cnn", depth=2, width=64, out_dim=10, pool=True, readout="flatten")


@dataclasses.dataclass(frozen=True)
class PartialConfig:
    """n_train: training images; n_eval: images per evaluation set; arch: the network (its
    kernel must be invariant under simultaneous quarter turns); train_orders: n of the C_n
    used for augmentation (1: none; the others multiples of 4, each dividing the next);
    eval_order: m of the finer C_m used for evaluation (a multiple of every train order);
    time_multiples: training times in units of 1 / lambda_max of each augmented NTK (inf:
    converged); kernel_dtype: precision of the kernel tiles (the solves are float64);
    tile: kernel tile side."""
    x64: ClassVar[bool] = True
    n_train: int = 64
    n_eval: int = 32
    arch: ArchSpec = ArchSpec(kind="mlp", depth=2, b_std=0.1, out_dim=10)
    train_orders: tuple = (1, 4, 8, 16)
    eval_order: int = 32
    time_multiples: tuple = (10.0, math.inf)
    diag_reg: float = 1e-6
    kernel_dtype: str = "float64"
    tile: int = 256
    seed: int = 0

    def __post_init__(self):
        bad = [n for n in self.train_orders if self.eval_order % n]
        if bad:
            raise ValueError(f"eval_order {self.eval_order} must be a multiple of every train order; "
                             f"{bad} do not divide it")
        if self.eval_order % 4:
            raise ValueError(f"eval_order must be a multiple of 4 (C_m contains the quarter turns); "
                             f"got {self.eval_order}")
        orders = sorted(n for n in self.train_orders if n != 1)
        if any(n % 4 for n in orders) or any(b % a for a, b in zip(orders, orders[1:])):
            raise ValueError(f"train_orders other than 1 must be multiples of 4, each dividing the next; "
                             f"got {self.train_orders!r}")
        if len(set(self.train_orders)) != len(self.train_orders):
            raise ValueError(f"train_orders has repeats: {self.train_orders!r}")
        if self.kernel_dtype not in ("float32", "float64"):
            raise ValueError(f"kernel_dtype must be 'float32' or 'float64'; got {self.kernel_dtype!r}")
        if self.n_train < 1 or self.n_eval < 1:
            raise ValueError(f"need n_train >= 1 and n_eval >= 1; got {self.n_train}, {self.n_eval}")


Config = PartialConfig
PRESETS = {
    "small": PartialConfig(),
    # the first 256 training images of fmnist_ntk_scale's permutation; C8/C16 cost at most
    # 8.7 million kernel pairs in float32 tiles (C16 on 4 x 256 base images, 1536 test inputs)
    "cnn": PartialConfig(n_train=256, n_eval=64, arch=POOLED_CNN, time_multiples=(1.0, 10.0, 100.0, math.inf),
                         kernel_dtype="float32"),
    "paper": PartialConfig(n_train=512, n_eval=256, arch=POOLED_CNN, eval_order=64, kernel_dtype="float32"),
}


def _problem(cfg: PartialConfig, data_dir=None):
    sets = data.splits(data.SplitConfig(n_train=cfg.n_train, n_val=0, n_test=cfg.n_eval, seed=cfg.seed),
                       data_dir=data_dir)
    f64 = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))      # noqa: E731
    x, labels = sets["train"]
    evals = {"fashion_mnist_test": f64(sets["test"][0]),
             "mnist": f64(data.ood_set("mnist", cfg.n_eval, cfg.seed, data_dir)),
             "noise": f64(data.ood_set("noise", cfg.n_eval, cfg.seed))}
    return f64(x), f64(np.eye(10)[labels] - 0.1), evals, np.asarray(sets["test"][1])


def quarter_turn_offsets(orders, x, tol: float = 1e-10) -> list:
    """The bilinear rotations whose C4 orbits make up the C_n orbits of ``x``, in an order
    whose prefixes serve every n of ``orders`` (each dividing the next).

    Args:
        orders: the C_n (1 or multiples of 4).
        x: ``(N, H, W, C)`` images, used to check that the quarter turn of each offset
            rotation is the rotation by 90 degrees more (``tol``: relative, on ``x``).

    Returns:
        ``[(k, n_max), ...]``: rotation ``k`` of ``C_{n_max}`` (``n_max = max(orders)``), so
        that the first ``n / 4`` entries are C_n's offsets (angles ``2 pi s / n``, ``s < n/4``).

    >>> quarter_turn_offsets((1, 4, 8, 16), jnp.ones((1, 8, 8, 1)))
    [(0, 16), (2, 16), (1, 16), (3, 16)]
    """
    orders = sorted(n for n in orders if n > 1)
    if not orders:
        return [(0, 1)]
    n_max = orders[-1]
    out = [0]
    for n in orders:
        out += [s * (n_max // n) for s in range(n // 4) if s * (n_max // n) not in out]
    if n_max > 4:
        g, quarter = groups.rotations(n_max, x.shape[1:3]), n_max // 4
        scale = float(jnp.linalg.norm(x))
        for k in out:
            for a in range(1, 4):
                turned = g.act(a * quarter, g.act(k, x))
                err = float(jnp.linalg.norm(turned - g.act(k + a * quarter, x)))
                if err > tol * max(scale, 1e-300):
                    raise groups.GroupError(
                        f"rotation {k + a * quarter} of C{n_max} is not a quarter turn after rotation {k} "
                        f"(relative difference {err / scale:.1e}): the C4 decomposition does not hold")
    return [(k, n_max) for k in out]


def per_angle_error(f_orbit) -> np.ndarray:
    """``(m,)`` relative invariance error at each element of the evaluation group:
    ``mean_x ||f(g_k x) - f(x)|| / mean_x ||f(x)||`` from orbit predictions ``(m, N, k)``."""
    f = np.asarray(f_orbit)
    return np.linalg.norm(f - f[0], axis=-1).mean(axis=1) / np.linalg.norm(f[0], axis=-1).mean()


def _rotated(offsets, x):
    """``x`` rotated by each offset, concatenated offset-major."""
    return jnp.concatenate([groups.rotations(n, x.shape[1:3]).act(k, x) if n > 1 else x for k, n in offsets])


def _predict(cfg, store, n, y, c4):
    """mu_t of the C_n-augmented NTK (n = 1: none) at the C4 orbit points of the store's
    test inputs: ``(T, 4, M', k)`` (quarter turn major), and lambda_max."""
    order = c4.order
    rows = cfg.n_train * max(n // 4, 1)
    train, test = store.train_blocks(rows)["ntk"], store.test_blocks(rows)["ntk"]
    m = test.shape[1]
    tb = kernels.orbit_point_blocks(c4, test)        # (4, 4 M', rows)
    if n == 1:
        blocks, tb, reps, y_orbit = train[:1], tb[:1], groups.irreps(groups.rotations(1)), y[None]
    else:
        blocks, reps, y_orbit = train, groups.irreps(c4), c4.orbit_out(jnp.tile(y, (n // 4, 1)))
    lam = kernels.max_eigenvalue_of_blocks(blocks, reps)
    ts = np.asarray(cfg.time_multiples, dtype=float) / lam
    pred = kernels.solve_blocks({"ntk": blocks}, {"ntk": tb}, y_orbit, ts, reps, diag_reg=cfg.diag_reg)
    return np.asarray(pred.mean).reshape(len(ts), order, m, -1), lam


def run(cfg: PartialConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``: kernel tiles under ``out/tiles``, one record ``C{n}``
    per training group with, per time and evaluation set, the per-angle error and the OSP
    under C_m (and the accuracies on the test set)."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    x, y, evals, labels = _problem(cfg, data_dir)
    c4, m = groups.rotations(4, (28, 28)), cfg.eval_order
    g_eval = groups.rotations(m, (28, 28))
    e = jnp.concatenate([evals[s] for s in EVAL_SETS])
    train_offsets = quarter_turn_offsets(cfg.train_orders, x[:8])
    eval_offsets = quarter_turn_offsets((m,), e[:8])   # (s, m) for s < m/4, checked
    store = kernels.TileStore(out / "tiles", cfg.arch.kernel_fn, c4, _rotated(train_offsets, x),
                              _rotated(eval_offsets, e), gets=("ntk",),
                              tile=min(cfg.tile, cfg.n_train * len(train_offsets)), dtype=cfg.kernel_dtype)
    bounds = np.cumsum([0] + [evals[s].shape[0] for s in EVAL_SETS])
    for key, n in rd.pending(cfg.train_orders, "C{}".format):
        rows = cfg.n_train * max(n // 4, 1)
        if progress:
            print(f"[{out.name}] NTK, augmentation {key} ({n * cfg.n_train} training images; kernel tiles "
                  f"of {rows} base images: {len(store.missing(rows))} to compute)", flush=True)
        t0 = time.perf_counter()
        tiles = store.compute(rows, progress=progress)
        t1 = time.perf_counter()
        means, lam = _predict(cfg, store, n, y, c4)
        t2 = time.perf_counter()
        # (T, 4, m/4, |E|, k): quarter turn h, offset s -> C_m element (m/4) h + s
        orbits = means.reshape(means.shape[0], m, bounds[-1], -1)
        per_time = []
        for orb_t in orbits:
            per_set = {}
            for j, s in enumerate(EVAL_SETS):
                orb = orb_t[:, bounds[j]:bounds[j + 1]]
                per_set[s] = {"per_angle": per_angle_error(orb),
                              "osp": metrics.orbit_same_predictions(jnp.asarray(orb), g_eval)[0]}
                if s == "fashion_mnist_test":
                    per_set[s]["accuracy"] = metrics.accuracy(orb[0], labels)
                    per_set[s]["orbit_accuracy"] = float(np.mean([metrics.accuracy(o, labels) for o in orb]))
            per_time.append(per_set)
        done[key] = rd.record(key, order=n, lambda_max=lam, time_multiples=list(cfg.time_multiples),
                              per_time=per_time, kernel_seconds=t1 - t0, tiles_computed=tiles,
                              solve_seconds=t2 - t1)
    return done


def mean_error(rec: dict, eval_set: str, sub_order: int, time_index: int = -1) -> float:
    """Mean per-angle error over the elements of C_{sub_order} (a subgroup of C_m)."""
    e = np.asarray(rec["per_time"][time_index][eval_set]["per_angle"])
    return float(e[:: len(e) // sub_order].mean())


def summary(cfg: PartialConfig, done: dict) -> str:
    """Mean invariance error under each C_n and the OSP under C_m, per training group."""
    m = cfg.eval_order
    lines = [f"relative invariance error of the NTK mean (t = {cfg.time_multiples[-1]} / lambda_max) "
             f"under C_n rotations (mean over the angles of C_n), and OSP under C{m}"]
    subs = sorted({n for n in cfg.train_orders if n > 1} | {m})
    for s in EVAL_SETS:
        lines.append(f"{s}:")
        lines.append(f"{'trained':>9} | " + " | ".join(f"{'C' + str(n):>8}" for n in subs)
                     + f" | {'OSP/' + str(m):>8}")
        for n in cfg.train_orders:
            rec = done.get(f"C{n}")
            if rec is None:
                continue
            lines.append(f"{'C' + str(n):>9} | " + " | ".join(f"{mean_error(rec, s, k):8.2e}" for k in subs)
                         + f" | {rec['per_time'][-1][s]['osp']:8.2f}")
    return "\n".join(lines)


def figure(cfg: PartialConfig, done: dict):
    """Left: error at every angle of C_m (FashionMNIST test images), one curve per training group;
    right: mean error under C_m vs the training group's order, per evaluation set."""
    plt = pyplot()
    m = cfg.eval_order
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    angles = 360.0 * np.arange(m) / m
    for i, n in enumerate(cfg.train_orders):
        rec = done.get(f"C{n}")
        if rec is None:
            continue
        e = np.maximum(np.asarray(rec["per_time"][-1]["fashion_mnist_test"]["per_angle"]), 1e-16)  # 0 at exact angles
        label = "no augmentation" if n == 1 else f"C{n} orbit"
        axes[0].plot(angles[1:], e[1:], "o-", ms=3, color=f"C{i}", label=label)
        if n > 1:
            axes[0].plot(angles[:: m // n][1:], e[:: m // n][1:], "s", ms=7, mfc="none", color=f"C{i}")
    axes[0].set(yscale="log", xlabel="rotation angle (degrees)", ylabel="relative invariance error",
                title=f"FashionMNIST test images, every angle of C{m}\n(open squares: angles of the training group)")
    axes[0].legend(fontsize=7)
    orders = [n for n in cfg.train_orders if f"C{n}" in done]
    for j, s in enumerate(EVAL_SETS):
        axes[1].plot(orders, [mean_error(done[f"C{n}"], s, m) for n in orders], "o-", color=f"C{j}",
                     label=s)
    axes[1].set(xscale="log", yscale="log", xlabel="order n of the training group C_n (1: none)",
                ylabel=f"relative invariance error under C{m}",
                title=f"t = {cfg.time_multiples[-1]:g} / lambda_max, {cfg.arch.kind.upper()} NTK, "
                      f"{cfg.n_train} training images")
    axes[1].set_xticks(orders, [str(n) for n in orders])
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def error_table(cfg: PartialConfig, done: dict) -> Table:
    """Per training group at the last time: test accuracy (unrotated and over C_m), the
    mean invariance error over the rotations of each C_k on test images, OSP under C_m on
    test images, and the C_m error on noise images."""
    m = cfg.eval_order
    subs = sorted({n for n in cfg.train_orders if n > 1} | {m})
    header = (["trained on", "accuracy", f"acc. $C_{{{m}}}$"] + [f"$C_{{{k}}}$, test" for k in subs]
              + [f"OSP$/{m}$, test", f"$C_{{{m}}}$, noise"])
    rows = []
    for n in cfg.train_orders:
        rec = done[f"C{n}"]
        last = rec["per_time"][-1]["fashion_mnist_test"]
        acc = [Num(last[k], decimals=3) for k in ("accuracy", "orbit_accuracy")]
        rows.append(["none" if n == 1 else f"$C_{{{n}}}$"] + acc
                    + [mean_error(rec, "fashion_mnist_test", k) for k in subs]
                    + [Num(last["osp"], decimals=1), mean_error(rec, "noise", m)])
    cap = (f"The NTK mean ({_arch_words(cfg)}, {cfg.n_train} training images, $t = "
           f"{_t_words(cfg)}$) trained on the $C_n$ orbits of FashionMNIST images: test accuracy on "
           f"unrotated images and over their $C_{{{m}}}$ orbits, relative invariance error averaged over "
           f"the rotations of $C_k$ on test images, OSP under $C_{{{m}}}$, and (last column) the "
           f"$C_{{{m}}}$ error on noise images.")
    return Table(header, rows, cap, "partial_augmentation")


def _arch_words(cfg) -> str:
    a = cfg.arch
    if a.kind == "cnn":
        return "the OSP table's CNN" if a.pool and a.readout == "flatten" else f"a depth-{a.depth} CNN"
    return f"a depth-{a.depth} ReLU MLP"


def _t_words(cfg) -> str:
    t = cfg.time_multiples[-1]
    return "\\infty" if math.isinf(t) else f"{t:g}/\\lambda_{{\\max}}"


def numbers(cfg: PartialConfig, done: dict) -> dict:
    """Mean error over the evaluation group per training group (``partial<Order>``; order 1:
    ``None``) on test images, MNIST digits and noise; test accuracy unrotated
    (``partialAcc<Order>``) and over the evaluation orbits (``partialOrbitAcc<Order>``);
    ``partialN``: training images."""
    m, out = cfg.eval_order, {"partialN": str(cfg.n_train)}
    for n in cfg.train_orders:
        word = "None" if n == 1 else number_word(n)
        rec = done[f"C{n}"]
        out.update({f"partial{word}": mean_error(rec, "fashion_mnist_test", m),
                    f"partialMnist{word}": mean_error(rec, "mnist", m),
                    f"partialNoise{word}": mean_error(rec, "noise", m)})
        last = rec["per_time"][-1]["fashion_mnist_test"]
        out.update({f"partialAcc{word}": last["accuracy"], f"partialOrbitAcc{word}": last["orbit_accuracy"]})
    return out


FIGURES = (Figure("partial_augmentation", figure,
                  "Partial augmentation on FashionMNIST: the NTK mean trained on the C4, C8 or C16 orbits "
                  "(or none), evaluated at every angle of the finer C32 (left) and on average over C32 "
                  "against the training group's order (right)."),)
TABLES = {"partial_augmentation": error_table}
