"""Rotated FashionMNIST in the infinite-width limit at real size: the analytic CNN NTK
trained on N = 256 ... thousands of 28x28 images, without augmentation and on the full C4
orbit, evaluated on the C4 orbits of test images, MNIST digits and noise images.

Per architecture (the OSP table's ensemble members, conv 3x3 -> ReLU -> 2x2 average pool
twice -> flatten -> dense, and the same with global average pooling instead of flatten),
training-set size N (nested subsets of one permutation of the training set: the first N)
and time t (multiples of ``1 / lambda_max`` of the unaugmented N x N NTK, and t = inf):
test accuracy (unrotated test images and all their rotations), OSP (out of 4) and the
relative invariance error of mu_t on each evaluation set, with and without augmentation,
and the invariance error an M-member ensemble of the augmented network is predicted to
have from the NTK covariance (:func:`ntkequi.metrics.predicted_invariance_error`: with the
full orbit mu_t is invariant, so that error is pure sampling noise).

Kernels: ``ArchSpec.kernel_fn`` (ntkequi's recursions), tiles of the C4 orbit blocks saved
as they finish (:class:`ntkequi.kernels.TileStore`, under ``<run dir>/tiles/``): an
interrupted run resumes without recomputing any finished tile, and a size whose blocks
would not fit in memory is refused before anything starts. Solves: the structured solve
from the saved blocks (:func:`ntkequi.kernels.solve_blocks`).

    ntkequi run fmnist_ntk_scale --data-dir DIR                 # small (tests), ~2.5 min
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset cpu    # flatten4096 + gap1024: ~2.5 h on 2 CPU cores
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset flatten4096  # flatten N = 256, 1024, 4096 (float32 kernel tiles): ~1.5 h
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset gap    # GAP N = 256: ~14 min
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset flatten  # flatten N = 256, 1024, float64 kernel tiles: ~35 min
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset gap1024  # GAP N = 256, 1024 (float32 kernel tiles): ~1 h
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset large  # cpu with more test points: ~3.5 h (estimate)
    ntkequi run fmnist_ntk_scale --data-dir DIR --preset paper  # flatten to N = 8192, GAP to 4096 (a GPU)

(``large``'s estimate: kernel pairs times the per-entry costs recorded in benchmarks/RESULTS.md)
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
from .protocol import Figure, Num, Table, pyplot

NAME = "fmnist_ntk_scale"
USES_DATA = True
CPU_TIME = {"small": "2.5 min", "cpu": "2.5 h", "flatten4096": "1.5 h", "gap": "14 min",
            "gap1024": "1 h", "flatten": "35 min",
            "large": "3.5 h (estimate)", "paper": "not measured (meant for a GPU)"}
EVAL_SETS = ("fashion_mnist_test", "mnist", "noise")
AUGS = ("none", "C4")
KINDS = {"cnn": AUGS, "gcnn": ("none",)}          # kind -> the trainings recorded


@dataclasses.dataclass(frozen=True)
class ArchCase:
    """One architecture of the experiment: ``readout`` 'flatten' or 'gap' after two
    conv -> ReLU -> 2x2 average pool blocks (``kind`` 'cnn'), or after a C4 lifting convolution and
    a C4 group convolution with the same pools (``kind`` 'gcnn', trained on the images themselves:
    with 'gap' the network and its kernel are invariant, so orbit augmentation adds nothing);
    ``sizes`` the training-set sizes N (ascending,
    nested); ``n_test`` FashionMNIST test images and ``n_ood`` MNIST digits and noise images
    (each) whose C4 orbits are evaluated; ``kernel_dtype`` the precision its kernel tiles are
    computed in ('float32' is faster for the pooled flatten kernel, benchmarks/tile_dtype.py; the solves are float64 either way. Checked on the real data with
    tests/scripts/compare_records.py: flatten, every accuracy and OSP as in float64, other
    numbers within 4e-5; GAP, the same at finite t, about two digits at t = inf)."""
    name: str
    readout: str
    sizes: tuple
    n_test: int
    n_ood: int
    kernel_dtype: str = "float64"
    kind: str = "cnn"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {tuple(KINDS)}; got {self.kind!r}")
        if self.readout not in ("flatten", "gap"):
            raise ValueError(f"readout must be 'flatten' or 'gap'; got {self.readout!r}")
        if not self.sizes or list(self.sizes) != sorted(set(self.sizes)) or self.sizes[0] < 1:
            raise ValueError(f"sizes must be ascending distinct positive training-set sizes; got {self.sizes!r}")
        if self.sizes[-1] > 60000:
            raise ValueError(f"FashionMNIST has 60000 training images; sizes {self.sizes!r} ask for more")
        if self.n_test < 1 or self.n_ood < 0:
            raise ValueError(f"need n_test >= 1 and n_ood >= 0; got {self.n_test}, {self.n_ood}")
        if self.kernel_dtype not in ("float32", "float64"):
            raise ValueError(f"kernel_dtype must be 'float32' or 'float64'; got {self.kernel_dtype!r}")

    def spec(self) -> ArchSpec:
        """The network (its width does not enter the kernel)."""
        return ArchSpec(kind=self.kind, depth=2, width=64, out_dim=10, pool=True, readout=self.readout)

    @property
    def augmentations(self) -> tuple:
        """The trainings recorded: without augmentation and on the C4 orbit (CNN); without (GCNN)."""
        return KINDS[self.kind]

    def network(self, aug: str) -> str:
        """The record's name for this network trained with ``aug``: 'cnn', 'cnn-augmented' or 'gcnn'."""
        return {("cnn", "none"): "cnn", ("cnn", "C4"): "cnn-augmented", ("gcnn", "none"): "gcnn"}[(self.kind, aug)]


@dataclasses.dataclass(frozen=True)
class FmnistNTKScaleConfig:
    """``archs``: the :class:`ArchCase` s; ``time_multiples``: t lambda_max (inf: converged);
    ``ensemble_sizes``: M for the predicted ensemble invariance error; ``tile``: kernel tile
    side; ``seed``: the data permutation; ``pairs``: ``(gcnn, cnn)`` names of a GAP GCNN case and
    the GAP CNN case with the same data, whose analytic means are compared (the correspondence:
    the GCNN trained for time ``4 t`` on the images against the CNN trained for ``t`` on their
    C4 orbits; records ``pair/<gcnn>/<cnn>/N<n>``)."""
    x64: ClassVar[bool] = True
    archs: tuple[ArchCase, ...] = (ArchCase("pool_flatten", "flatten", (16, 32), 8, 4),
                    ArchCase("pool_gap", "gap", (8,), 4, 2))
    time_multiples: tuple = (1.0, 10.0, 100.0, 1000.0, math.inf)
    ensemble_sizes: tuple = (1, 4, 16, 64)
    tile: int = 256
    seed: int = 0
    pairs: tuple = ()

    def __post_init__(self):
        if not self.archs:
            raise ValueError("archs is empty: give at least one ArchCase")
        names = [a.name for a in self.archs]
        if len(set(names)) != len(names):
            raise ValueError(f"arch names must be distinct; got {names}")
        if any(not (m > 0) for m in self.time_multiples):
            raise ValueError(f"time_multiples must be positive (inf allowed); got {self.time_multiples!r}")
        if any(m < 1 for m in self.ensemble_sizes):
            raise ValueError(f"ensemble_sizes must be >= 1; got {self.ensemble_sizes!r}")
        cases = {a.name: a for a in self.archs}
        for pair in self.pairs:
            if len(pair) != 2 or any(p not in cases for p in pair):
                raise ValueError(f"each pair must name (gcnn, cnn) cases of archs {tuple(cases)}; got {pair!r}")
            g, c = cases[pair[0]], cases[pair[1]]
            if (g.kind, g.readout, c.kind, c.readout) != ("gcnn", "gap", "cnn", "gap"):
                raise ValueError(f"pair {pair!r} must be a GAP GCNN and a GAP CNN (the corresponding pair); got "
                                 f"({g.kind}, {g.readout}) and ({c.kind}, {c.readout})")
            diff = [f for f in ("sizes", "n_test", "n_ood") if getattr(g, f) != getattr(c, f)]
            if diff:
                raise ValueError(f"pair {pair!r} must share the data; {diff} differ: "
                                 f"{[(getattr(g, f), getattr(c, f)) for f in diff]}")


Config = FmnistNTKScaleConfig
PRESETS = {
    "small": FmnistNTKScaleConfig(tile=8),
    # the networks' records are independent (own data split, own tiles): "cpu" is
    # "flatten4096" and "gap1024" together. float32 kernel tiles for the flatten network
    # (checked: the float64 "flatten" preset's records at N = 256 and 1024 agree within 4e-5,
    # accuracies and OSPs exactly), float64 solves.
    "cpu": FmnistNTKScaleConfig(archs=(ArchCase("pool_flatten", "flatten", (256, 1024, 4096), 200, 50, "float32"),
                                       ArchCase("pool_gap", "gap", (256, 1024), 100, 25, "float32"))),
    "flatten4096": FmnistNTKScaleConfig(archs=(ArchCase("pool_flatten", "flatten", (256, 1024, 4096), 200, 50,
                                                        "float32"),)),
    "gap": FmnistNTKScaleConfig(archs=(ArchCase("pool_gap", "gap", (256,), 100, 25),)),
    # GAP at N = 1024 (the N = 256 record comes from the same tiles, float32 here)
    "gap1024": FmnistNTKScaleConfig(archs=(ArchCase("pool_gap", "gap", (256, 1024), 100, 25, "float32"),)),
    "flatten": FmnistNTKScaleConfig(archs=(ArchCase("pool_flatten", "flatten", (256, 1024), 200, 50),)),
    # for a GPU machine (not run here): flatten to N = 8192, GAP to 4096, 5x the evaluation images
    "paper": FmnistNTKScaleConfig(archs=(ArchCase("pool_flatten", "flatten", (256, 1024, 4096, 8192), 1000, 250,
                                                  "float32"),
                                         ArchCase("pool_gap", "gap", (256, 1024, 4096), 500, 125, "float32"))),
    "large": FmnistNTKScaleConfig(archs=(ArchCase("pool_flatten", "flatten", (256, 1024, 4096), 300, 100, "float32"),
                                         ArchCase("pool_gap", "gap", (256, 1024), 100, 50, "float32"))),
}


def _problem(case: ArchCase, seed: int, data_dir=None):
    """Training images and centred one-hot targets (the first ``sizes[-1]`` of a
    permutation), the evaluation images (set after set) and the test labels."""
    sets = data.splits(data.SplitConfig(n_train=case.sizes[-1], n_val=0, n_test=case.n_test, seed=seed),
                       data_dir=data_dir)
    f64 = lambda a: np.asarray(a, dtype=np.float64)        # noqa: E731
    x, labels = sets["train"]
    y = np.eye(10)[labels] - 0.1
    evals = {"fashion_mnist_test": f64(sets["test"][0]),
             "mnist": f64(data.ood_set("mnist", case.n_ood, seed, data_dir)),
             "noise": f64(data.ood_set("noise", case.n_ood, seed, data_dir))}
    return f64(x), y, evals, np.asarray(sets["test"][1])


def _evaluate(case, n, store, y, evals, test_labels, cfg, c4, trivial):
    """One record's payload: metrics per augmentation, time and evaluation set."""
    order, m = c4.order, sum(v.shape[0] for v in evals.values())
    train, test = store.train_blocks(n), store.test_blocks(n)
    lam = float(jnp.linalg.eigvalsh(train["ntk"][0]).max())
    ts = [mult / lam for mult in cfg.time_multiples]
    if case.kind == "gcnn":
        points = test                       # (1, |G| M, N): the store's test inputs are the orbit points
    else:
        points = {g: kernels.orbit_point_blocks(c4, v) for g, v in test.items()}      # (a, |G| M, N)
    bounds = np.cumsum([0] + [v.shape[0] for v in evals.values()])
    out = {"lambda_max": lam, "times": ts}
    solve_s = {}
    for aug in case.augmentations:
        t0 = time.perf_counter()
        if aug == "C4":
            # test points: all orbit points, group-major; the NNGP between the points of each
            # orbit (the only test-test entries the predicted invariance error reads)
            tb = points
            nngp_tt = np.zeros((order * m, order * m))
            self_orbit = np.asarray(store.self_orbit())                              # (a, M)
            for g in range(order):
                for h in range(order):
                    a = int(c4.table[c4.inverses[g], h])
                    nngp_tt[g * m + np.arange(m), h * m + np.arange(m)] = self_orbit[a]
            pred = kernels.solve_blocks(train, tb, c4.orbit_out(jnp.asarray(y[:n])), ts, groups.irreps(c4),
                                        nngp_tt=jnp.asarray(nngp_tt))
        else:
            tb = {g: v[:1] for g, v in points.items()}
            pred = kernels.solve_blocks({g: v[:1] for g, v in train.items()}, tb, jnp.asarray(y[:n])[None], ts,
                                        groups.irreps(trivial))
        solve_s[aug] = time.perf_counter() - t0
        means = np.asarray(pred.mean).reshape(len(ts), order, m, -1)
        per_t = []
        for i in range(len(ts)):
            per_set = {}
            for j, s in enumerate(EVAL_SETS):
                orb = jnp.asarray(means[i][:, bounds[j]:bounds[j + 1]])
                inv_err = metrics.equivariance_error(orb, c4)
                row = {"osp": metrics.orbit_same_predictions(orb, c4)[0], "invariance_error": inv_err.relative,
                       "invariance_abs": inv_err.absolute,
                       "msq_invariance": metrics.mean_squared_invariance_error(orb, c4)}
                if s == "fashion_mnist_test":
                    row["accuracy"] = metrics.accuracy(orb[0], test_labels)
                    row["orbit_accuracy"] = float(np.mean([metrics.accuracy(orb[g], test_labels)
                                                           for g in range(order)]))
                if aug == "C4":
                    cov = metrics.orbit_covariance(pred.cov[i], order, m)[:, :, bounds[j]:bounds[j + 1]]
                    row["predicted_msq_invariance"] = {
                        str(mm): metrics.predicted_invariance_error(cov, 10, mm) for mm in cfg.ensemble_sizes}
                per_set[s] = row
            per_t.append(per_set)
        out[aug] = per_t
    out["solve_seconds"] = solve_s
    return out


def _stores(cfg: FmnistNTKScaleConfig, out: Path, data_dir) -> list:
    """``[(case, store, y, evals, labels)]``: each architecture's tile store under
    ``out/tiles/<arch>`` and its problem (every size checked against the memory budget first)."""
    c4, trivial = groups.rotations(4, (28, 28)), groups.rotations(1, (28, 28))
    stores = []
    for case in cfg.archs:
        x, y, evals, labels = _problem(case, cfg.seed, data_dir)
        xt = jnp.asarray(np.concatenate([evals[s] for s in EVAL_SETS]))
        if case.kind == "gcnn":
            # trained without augmentation: the blocks of the images, evaluated at every orbit point
            group, xt = trivial, c4.orbit(xt).reshape((-1,) + xt.shape[1:])           # group-major
        else:
            group = c4
        store = kernels.TileStore(out / "tiles" / case.name, case.spec().kernel_fn, group, jnp.asarray(x),
                                  xt, tile=min(cfg.tile, case.sizes[-1]), dtype=case.kernel_dtype)
        stores.append((case, store, y, evals, labels))
    return stores


def tiles(cfg: FmnistNTKScaleConfig, out, *, data_dir=None, progress: bool = True, start: float = 0.0) -> int:
    """One worker of run ``out``: fill its kernel tiles beside other workers and the run itself
    (each tile claimed, computed once; :meth:`ntkequi.kernels.TileStore.compute`), waiting
    until every tile is on disk. Takes no run-directory lock and writes no record: the run
    (``ntkequi run``) then finds every tile and only solves. Returns the tiles this worker
    computed."""
    return sum(store.compute(progress=progress, start=start) for _, store, *_ in _stores(cfg, Path(out), data_dir))


def run(cfg: FmnistNTKScaleConfig, out, *, data_dir=None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) into ``out``: kernel tiles under ``out/tiles/<arch>``, one record
    ``<arch>/N<n>`` per architecture and training-set size and one ``pair/<gcnn>/<cnn>/N<n>``
    per pair and size (:func:`pair_difference`), smallest N first."""
    out = Path(out)
    rd = RunDir(out, cfg, overwrite=overwrite)
    done = rd.done()
    c4, trivial = groups.rotations(4, (28, 28)), groups.rotations(1, (28, 28))
    stores = _stores(cfg, out, data_dir)
    by_name = {case.name: (case, store, y, evals) for case, store, y, evals, _ in stores}
    units = [(case.name, n) for case in cfg.archs for n in case.sizes] + \
        [(pair, n) for pair in cfg.pairs for n in by_name[pair[0]][0].sizes]
    # size by size (every network at the smallest N first), each pair after its two networks
    units.sort(key=lambda u: (u[1], isinstance(u[0], tuple)))
    key_of = lambda u: f"{u[0]}/N{u[1]}" if isinstance(u[0], str) else f"pair/{u[0][0]}/{u[0][1]}/N{u[1]}"  # noqa: E731
    for key, (name, n) in rd.pending(units, key_of):
        if isinstance(name, tuple):
            gname, cname = name
            done[key] = rd.record(key, gcnn=gname, cnn=cname, n_train=n,
                                  **pair_difference(by_name[gname], by_name[cname], n, cfg, c4))
            continue
        case, store, y, evals, labels = next(st for st in stores if st[0].name == name)
        if progress:
            print(f"[{out.name}] {case.name}: kernel tiles for N = {n} "
                  f"({len(store.missing(n))} to compute)", flush=True)
        t0 = time.perf_counter()
        entries = store.compute(n, progress=progress)
        kernel_s = time.perf_counter() - t0
        payload = _evaluate(case, n, store, y, evals, labels, cfg, c4, trivial)
        done[key] = rd.record(key, arch=case.name, kind=case.kind, readout=case.readout, n_train=n,
                              networks={aug: case.network(aug) for aug in case.augmentations},
                              n_eval={s: int(v.shape[0]) for s, v in evals.items()},
                              kernel_seconds=kernel_s, tiles_computed=entries, **payload)
    return done


def kernel_pairs(case: ArchCase, n: int) -> int:
    """Distinct input pairs whose kernel the run computes for the first ``n`` training images of
    ``case``: a CNN, the C4 orbit blocks ``k(X, a X)`` (a block whose element is its own inverse
    is symmetric: half; of ``a`` and ``a^-1`` one) and ``k(x, a X)`` for the ``n_test + 2 n_ood``
    evaluation images; a GCNN, the symmetric N x N block and the kernel to every orbit point.

    >>> kernel_pairs(ArchCase("g", "gap", (256,), 100, 25, kind="gcnn"), 256)
    186496
    """
    m, c4 = case.n_test + 2 * case.n_ood, groups.rotations(4, (28, 28))
    sym = n * (n + 1) // 2
    if case.kind == "gcnn":
        return sym + c4.order * m * n
    inv = np.asarray(c4.inverses)
    return sum(sym if inv[a] == a else n * n for a in range(c4.order) if a <= inv[a]) + c4.order * m * n


def pair_difference(gcnn, cnn, n: int, cfg, c4) -> dict:
    """The correspondence at training-set size ``n``: the CNN's mean trained on the C4 orbit for
    time ``t`` (``t lambda_max`` = the config's multiples, lambda_max of its unaugmented NTK)
    and the GCNN's trained on the images for ``|G| t``, both solved from their stores, on the
    orbit points of every evaluation set. Returns ``times``, ``time_factor`` and
    ``max_rel_diff[set]``: per time, the largest difference relative to the largest |mean|
    of the CNN's on that set (the means are 0 nowhere on these sets at these times)."""
    (_, gstore, y, evals), (_, cstore, _, _) = gcnn, cnn
    order, m = c4.order, sum(v.shape[0] for v in evals.values())
    ctrain = cstore.train_blocks(n)
    lam = float(jnp.linalg.eigvalsh(ctrain["ntk"][0]).max())
    ts = np.asarray([mult / lam for mult in cfg.time_multiples])
    ctest = {g: kernels.orbit_point_blocks(c4, v) for g, v in cstore.test_blocks(n).items()}
    aug = kernels.solve_blocks(ctrain, ctest, c4.orbit_out(jnp.asarray(y[:n])), ts, groups.irreps(c4))
    gtrain, gtest = gstore.train_blocks(n), gstore.test_blocks(n)
    trivial = groups.rotations(1, (28, 28))
    own = kernels.solve_blocks(gtrain, gtest, jnp.asarray(y[:n])[None], ts * order, groups.irreps(trivial))
    a = np.asarray(aug.mean).reshape(len(ts), order * m, -1)
    b = np.asarray(own.mean).reshape(len(ts), order * m, -1)
    bounds = np.cumsum([0] + [v.shape[0] for v in evals.values()])
    diff = {}
    for j, s in enumerate(EVAL_SETS):
        rows = np.concatenate([np.arange(bounds[j], bounds[j + 1]) + h * m for h in range(order)])
        diff[s] = [float(np.abs(a[i, rows] - b[i, rows]).max() / np.abs(a[i, rows]).max()) for i in range(len(ts))]
    return {"times": ts.tolist(), "time_factor": order, "max_rel_diff": diff}


def _rows(cfg, done, aug, t_index=-1):
    for case in cfg.archs:
        if aug not in case.augmentations:
            continue
        for n in case.sizes:
            rec = done.get(f"{case.name}/N{n}")
            if rec is not None:
                yield case, n, rec, rec[aug][t_index]


def summary(cfg: FmnistNTKScaleConfig, done: dict) -> str:
    """Accuracy, OSP and invariance error of mu_t at the last time, per architecture, N and augmentation."""
    lines = [f"NTK mean mu_t at t = {cfg.time_multiples[-1]:g} / lambda_max (FashionMNIST, C4 orbits)",
             f"{'arch':>13} {'N':>5} {'aug':>4} | {'acc':>5} {'orbit':>5} | "
             + " | ".join(f"{s[:12]:>12} OSP  inv.err" for s in EVAL_SETS)]
    for aug in AUGS:
        for case, n, rec, r in _rows(cfg, done, aug):
            f = r["fashion_mnist_test"]
            lines.append(f"{case.name:>13} {n:5d} {aug:>4} | {f['accuracy']:5.3f} {f['orbit_accuracy']:5.3f} | "
                         + " | ".join(f"{r[s]['osp']:12.2f} {r[s]['invariance_error']:8.1e}" for s in EVAL_SETS))
    return "\n".join(lines)


def figure(cfg: FmnistNTKScaleConfig, done: dict):
    """Left: test accuracy of mu_t over t, per architecture, N and augmentation; right: the
    relative invariance error over t on each evaluation set (without augmentation; with
    the full orbit it is at rounding level, drawn as well)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    mults = np.asarray(cfg.time_multiples, dtype=float)
    finite = np.isfinite(mults)
    xs = np.where(finite, mults, (mults[finite].max() if finite.any() else 1.0) * 10)
    k = 0
    for case in cfg.archs:
        for n in case.sizes:
            rec = done.get(f"{case.name}/N{n}")
            if rec is None:
                continue
            for aug, ls in (("none", "--"), ("C4", "-")):
                if aug not in rec:
                    continue
                acc = [p["fashion_mnist_test"]["accuracy"] for p in rec[aug]]
                axes[0].plot(xs, acc, "o" + ls, ms=3, color=f"C{k}", label=f"{case.name}, N={n}, {aug}")
                for j, s in enumerate(EVAL_SETS):
                    err = [max(p[s]["invariance_error"], 1e-17) for p in rec[aug]]
                    axes[1].plot(xs, err, ls, marker="osx"[j], ms=3, color=f"C{k}",
                                 label=f"{case.name}, N={n}, {aug}" if j == 0 else None)
            k += 1
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("t lambda_max (rightmost: t = inf)")
    axes[0].set(ylabel="test accuracy (unrotated)", title="mu_t on FashionMNIST test images")
    axes[1].set(yscale="log", ylabel="relative invariance error under C4",
                title="o test, s MNIST, x noise; dashed: no augmentation")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def table(cfg: FmnistNTKScaleConfig, done: dict) -> Table:
    """Per architecture, N and augmentation at t = inf: accuracy, OSP per set, invariance error per set."""
    header = ["network", "$N$", "augmentation", "accuracy", "orbit acc."] + \
             [f"OSP {s}" for s in ("test", "MNIST", "noise")] + [f"inv. err. {s}" for s in ("test", "MNIST", "noise")]
    rows = []
    for aug in AUGS:
        for case, n, rec, r in _rows(cfg, done, aug):
            f = r["fashion_mnist_test"]
            rows.append([case.name.replace("_", " "), f"{n}", "none" if aug == "none" else "$C_4$ orbit",
                         Num(f["accuracy"], decimals=3), Num(f["orbit_accuracy"], decimals=3)]
                        + [Num(r[s]["osp"], decimals=2) for s in EVAL_SETS]
                        + [r[s]["invariance_error"] for s in EVAL_SETS])
    cap = ("The analytic NTK mean $\\mu_\\infty$ of the CNNs of the run (two conv-ReLU-pool blocks, then flatten or GAP) trained on $N$ FashionMNIST images, without "
           "augmentation and on the full $C_4$ orbit, on the $C_4$ orbits of test images, MNIST digits and "
           "noise images: accuracy on unrotated test images and on all rotations, OSP (out of 4) and "
           "relative invariance error.")
    return Table(header, rows, cap, NAME)


FIGURES = (Figure(NAME, figure, "The analytic CNN NTK on FashionMNIST at real size: accuracy and C4 invariance "
                                "error of mu_t over training time, with and without orbit augmentation."),)
TABLES = {NAME: table}


def numbers(cfg: FmnistNTKScaleConfig, done: dict) -> dict:
    """At t = inf and each architecture's largest N: N, test accuracy without and with the
    C4 orbit, accuracy over rotated test images without it, and the largest invariance error
    with the orbit (``scaleFlat...`` for the flatten network, ``scaleGap...`` for GAP)."""
    out = {}
    for case in cfg.archs:
        recs = [done[f"{case.name}/N{n}"] for n in case.sizes if f"{case.name}/N{n}" in done]
        if not recs:
            continue
        rec = recs[-1]
        p = "scaleGcnn" if case.kind == "gcnn" else "scaleFlat" if case.readout == "flatten" else "scaleGap"
        none = rec["none"][-1]
        out.update({f"{p}N": str(rec["n_train"]),
                    f"{p}AccNone": none["fashion_mnist_test"]["accuracy"],
                    f"{p}OrbitAccNone": none["fashion_mnist_test"]["orbit_accuracy"]})
        if "C4" in rec:
            aug = rec["C4"][-1]
            out.update({f"{p}AccAug": aug["fashion_mnist_test"]["accuracy"],
                        f"{p}InvAug": max(aug[s]["invariance_error"] for s in EVAL_SETS)})
        out[f"{p}InvNone"] = min(none[s]["invariance_error"] for s in EVAL_SETS)
    return out
