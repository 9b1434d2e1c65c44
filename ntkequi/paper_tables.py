"""The paper's tables and quoted numbers, written from saved results (never typed by hand).

:func:`write_all` (called by ``ntkequi figures``) writes ``tables/<name>.tex`` (LaTeX
``tabular`` bodies wrapped in ``table`` floats) and ``numbers.tex`` (one ``\\newcommand``
per number the paper's text quotes) into ``paper/generated/``. Every number goes through
:func:`fmt`, whose output :func:`parse` reads back; ``tests/test_paper.py`` recomputes
each table's numbers from the raw results and compares.
"""
from __future__ import annotations

import math
import re
from pathlib import Path


__all__ = ["fmt", "parse", "macro", "write_all", "TABLES"]


def fmt(v, digits: int = 2) -> str:
    """A number for LaTeX: ``0.123`` style (``digits`` significant) between 1e-2 and 1e4,
    ``$1.2\\cdot 10^{-15}$`` otherwise, ``--`` for nan, ``$\\infty$`` for inf."""
    v = float(v)
    if math.isnan(v):
        return "--"
    if math.isinf(v):
        return r"$\infty$" if v > 0 else r"$-\infty$"
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e4:
        return f"{v:.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"
    m, e = f"{v:.{digits - 1}e}".split("e")
    return rf"${m}\cdot 10^{{{int(e)}}}$"


_SCI = re.compile(r"\$(-?\d+(?:\.\d+)?)\\cdot 10\^\{(-?\d+)\}\$")
_PM = re.compile(r"\$(-?\d+(?:\.\d+)?) \\pm (\d+(?:\.\d+)?)\$")


def parse(cell: str) -> list:
    """The numbers in a table cell written by :func:`fmt` (or ``$a \\pm b$``), as floats."""
    cell = cell.strip()
    out = []
    for m in _SCI.finditer(cell):
        out.append(float(m.group(1)) * 10.0 ** int(m.group(2)))
    cell = _SCI.sub(" ", cell)
    for m in _PM.finditer(cell):
        out += [float(m.group(1)), float(m.group(2))]
    cell = _PM.sub(" ", cell)
    if cell.strip() == "--":
        return [float("nan")]
    out += [float(x) for x in re.findall(r"(?<![\w_{])-?\d+(?:\.\d+)?(?![\w}])", cell)]
    return out


def pm(mean, std) -> str:
    """``mean $\\pm$ std``, both through :func:`fmt`."""
    return f"{fmt(mean)} $\\pm$ {fmt(std)}"


def macro(name: str, value, digits: int = 3) -> str:
    """``\\newcommand{\\name}{value}``; ``name`` letters only (LaTeX macro names); numbers
    through :func:`fmt` with ``digits`` significant digits."""
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"LaTeX macro names are letters only; got {name!r}")
    text = value if isinstance(value, str) else fmt(value, digits)
    return rf"\newcommand{{\{name}}}{{{text}}}"


def _table(header: list, rows: list, caption: str, label: str) -> str:
    cols = "l" + "c" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", rf"\label{{tab:{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def rows_of(tex: str) -> list:
    """The body rows of a table written by :func:`_table`: list of cell lists."""
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    return [[c.strip() for c in line.rstrip("\\ ").split(" & ")]
            for line in body.strip().splitlines() if line.strip()]


# ---------------------------------------------------------------- tables per run
def _sweep(run, name: str) -> tuple:
    from .figures import tex_escape
    cfg, done = run.config.sweep, run.done
    first = next(iter(done.values()))
    group, names = first["group"], first["eval_sets"]
    s, width = names[-1], max(cfg.widths)
    header = ["augmentation", "members"] + [f"$M={m}$" for m in cfg.ensemble_sizes] + ["NTK"]
    rows = []
    for mode in ("none", "orbit", "subgroup"):
        last = done[f"{mode}/width{width}"][s][-1]
        rows.append([mode, fmt(last["members"])] + [fmt(v) for v in last["ensemble"]] + [fmt(last["ntk"])])
    cap = (f"Relative {group} invariance error on {tex_escape(s)} inputs after {cfg.steps} gradient-descent "
           f"steps, width {width}: single members (mean), the mean of the first $M$ members, and the NTK mean "
           f"$\\mu_t$ at the same time.")
    return _table(header, rows, cap, name)


def _osp(run, eval_set: str) -> str:
    from . import orbit_table
    cfg = run.config
    tex = orbit_table.latex(cfg, run.done, eval_set,
                            f"Orbit same predictions (out of $|G|$) on rotated {eval_set} inputs, mean "
                            r"$\pm$ std over seeds; the paper's value in parentheses.")
    return tex.replace(r"\end{table}", rf"\label{{tab:osp_{eval_set}}}" + "\n" + r"\end{table}")


def _cross(run) -> str:
    cfg, done = run.config, run.done
    header = ["augmentation", "$|G|$", "own group, flipped", "SO(3), in", "SO(3), far", "SO(3), flipped"]
    rows = []
    for aug in cfg.augmentations:
        r = done[aug]
        p = r["per_time"][-1]
        own = fmt(p["flipped"]["group"]) if "group" in p["flipped"] else "--"
        rows.append([aug, str(r["order"]), own] + [fmt(p[s]["so3"]) for s in ("in_dist", "far", "flipped")])
    cap = ("Relative equivariance error of the converged ($t=\\infty$) NTK mean for the cross product, "
           "under the augmentation group and under random rotations from SO(3), on in-distribution, "
           "larger (far) and lower-half-space (flipped) inputs.")
    return _table(header, rows, cap, "cross_product")


def _partial(run) -> str:
    from .partial_augmentation import mean_error
    cfg, done = run.config, run.done
    subs = sorted({n for n in cfg.train_orders if n > 1} | {cfg.eval_order})
    header = ["trained on"] + [f"$C_{{{k}}}$, test" for k in subs] + [f"$C_{{{cfg.eval_order}}}$, noise"]
    rows = []
    for n in cfg.train_orders:
        rec = done[f"C{n}"]
        rows.append(["none" if n == 1 else f"$C_{{{n}}}$"] + [fmt(mean_error(rec, "fashion_mnist_test", k))
                                                             for k in subs]
                    + [fmt(mean_error(rec, "noise", cfg.eval_order))])
    cap = ("Relative invariance error of the NTK mean trained on the $C_n$ orbits of FashionMNIST images, "
           "averaged over the rotations of $C_k$, on test images and (last column) noise images.")
    return _table(header, rows, cap, "partial_augmentation")


def _width(run) -> str:
    from .width_convergence import widths_and_errors
    done = run.done
    header = ["architecture", "width", "relative error", "std over seeds"]
    rows = []
    for arch in ("mlp", "cnn"):
        w, e = widths_and_errors(done, arch)
        rows += [[arch.upper(), str(int(wi)), fmt(ei.mean()), fmt(ei.std())] for wi, ei in zip(w, e)]
    cap = ("Relative Frobenius distance of the empirical NTK of finite networks from the analytic NTK of "
           "the same architecture specification.")
    return _table(header, rows, cap, "width_convergence")


def _kernel_symmetry(run) -> str:
    done = run.done
    header = ["predictor", "test", "MNIST", "noise", "accuracy"]
    rows = []
    for name, label in (("augmented", "(i) CNN NTK, C4 orbit"), ("symmetrized", "(ii) symmetrized CNN NTK"),
                        ("gcnn", "(iii) GCNN NTK")):
        r = done[name]["per_time"][-1]
        rows.append([label] + [fmt(r[s]) for s in ("fashion_mnist_test", "mnist", "noise")] + [fmt(r["accuracy"], 3)])
    cap = ("Relative C4 invariance error (test images, MNIST digits, noise) and test accuracy of three "
           "kernel predictors at $t=\\infty$ on 7x7 FashionMNIST.")
    return _table(header, rows, cap, "kernel_symmetry")


def _demo(run) -> str:
    cfg, done = run.config, run.done
    sets = ("in_distribution", "ring", "noise")
    header = ["$t$"] + [f"{s.replace('_', ' ')}, {m}" for s in sets for m in ("plain", "augmented")]
    rows = [[fmt(t)] + [fmt(done[f"{m}/{s}"]["invariance_rel"][i]) for s in sets for m in ("plain", "augmented")]
            for i, t in enumerate(cfg.times)]
    cap = (f"Relative C{cfg.group_order} invariance error of the NTK mean $\\mu_t$ on the plane, without "
           "(plain) and with full-orbit augmentation.")
    return _table(header, rows, cap, "demo")


def _forces(run) -> str:
    from .force_fields import MODELS, curve
    done = run.done
    header = ["$N$", "independent", "conserving", "independent, smooth part", "conserving, smooth part",
              "energy (conserving)"]
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m)[1:] for m in MODELS] + [curve(done, m, "smooth_force_rmse")[1:] for m in MODELS]
    e = curve(done, "conserving", "energy_rmse")[1:]
    rows = [[str(int(n))] + [pm(mu[i], sd[i]) for mu, sd in cols] + [pm(e[0][i], e[1][i])]
            for i, n in enumerate(ns)]
    cap = ("Force-field learning on the 2D potential: RMS force error on held-out Brownian-dynamics samples "
           "(against the full force and against its smooth part, without the oscillating term), and the "
           "RMS error of the conserving model's energy up to a constant, mean $\\pm$ std over draws of "
           "the training set.")
    return _table(header, rows, cap, "force_fields")


def _molecules(run) -> str:
    from .molecules import MODELS, curve
    done = run.done
    header = ["$N$"] + list(MODELS)
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m)[1:] for m in MODELS]
    rows = [[str(int(n))] + [pm(mu[i], sd[i]) for mu, sd in cols] for i, n in enumerate(ns)]
    cap = ("Energy RMSE on held-out configurations of the molecule-like toy, mean $\\pm$ std over draws "
           "of the training set, for kernels on pairwise distances: plain, symmetrized over atom "
           "relabellings, trained on the full relabelling orbit, and on sorted distances.")
    return _table(header, rows, cap, "molecules")


#: table name -> (run name, writer)
TABLES = {
    "demo": ("demo", _demo),
    "toy_ensembles": ("toy_ensembles", lambda r: _sweep(r, "toy_ensembles")),
    "ising": ("ising", lambda r: _sweep(r, "ising")),
    "fmnist_ntk": ("fmnist_ntk", lambda r: _sweep(r, "fmnist_ntk")),
    "osp_test": ("fmnist_osp_table-small", lambda r: _osp(r, "test")),
    "osp_mnist": ("fmnist_osp_table-small", lambda r: _osp(r, "mnist")),
    "osp_noise": ("fmnist_osp_table-small", lambda r: _osp(r, "noise")),
    "cross_product": ("cross_product", _cross),
    "partial_augmentation": ("partial_augmentation", _partial),
    "width_convergence": ("width_convergence", _width),
    "kernel_symmetry": ("kernel_symmetry", _kernel_symmetry),
    "force_fields": ("force_fields", _forces),
    "molecules": ("molecules", _molecules),
}


def numbers(runs: dict) -> list:
    """The numbers the paper's prose quotes, as macros (only for runs present)."""
    out = []
    if "toy_ensembles" in runs:
        r = runs["toy_ensembles"]
        cfg, s = r.config.sweep, "noise"
        last = r.done[f"orbit/width{max(cfg.widths)}"][s][-1]
        out += [macro("toyWidth", str(max(cfg.widths))), macro("toyMmax", str(max(cfg.ensemble_sizes))),
                macro("toyMembers", last["members"]), macro("toyEnsembleOne", last["ensemble"][0]),
                macro("toyEnsembleMax", last["ensemble"][-1]), macro("toyNtk", last["ntk"]),
                macro("toyNoneNtk", r.done[f"none/width{max(cfg.widths)}"][s][-1]["ntk"]),
                macro("toySubgroupNtk", r.done[f"subgroup/width{max(cfg.widths)}"][s][-1]["ntk"])]
    if "width_convergence" in runs:
        from .width_convergence import slope
        d = runs["width_convergence"].done
        out += [macro("widthSlopeMLP", slope(d, "mlp")), macro("widthSlopeCNN", slope(d, "cnn"))]
    if "cross_product" in runs:
        d = runs["cross_product"].done
        for aug, nm in (("T", "T"), ("O", "O"), ("I", "I"), ("none", "None")):
            if aug in d:
                out.append(macro(f"crossSO{nm}", d[aug]["per_time"][-1]["flipped"]["so3"]))
        grp = [d[a]["per_time"][-1][s]["group"] for a in ("C4", "T", "O", "I") if a in d
               for s in ("in_dist", "far", "flipped")]
        if grp:
            out.append(macro("crossGroupMax", max(grp)))
    if "partial_augmentation" in runs:
        from .partial_augmentation import mean_error
        r = runs["partial_augmentation"]
        m = r.config.eval_order
        for n in r.config.train_orders:
            word = {1: "None", 4: "Four", 8: "Eight", 16: "Sixteen"}.get(n)
            if word:
                out.append(macro(f"partial{word}", mean_error(r.done[f"C{n}"], "fashion_mnist_test", m)))
    if "fmnist_osp_table-small" in runs:
        from . import orbit_table
        r = runs["fmnist_osp_table-small"]
        summ = orbit_table.summarize(r.config, r.done, "noise", "osp")
        for row, nm in (("deep_ensemble", "Ens"), ("single", "Single"), ("gcnn", "Gcnn"),
                        ("canonicalization", "Canon")):
            for n, word in ((4, "Four"), (8, "Eight"), (16, "Sixteen")):
                if n in summ.get(row, {}):
                    out.append(macro(f"osp{nm}{word}", summ[row][n][0]))
        out.append(macro("ospNTrain", str(r.config.split.n_train)))
    if "force_fields" in runs:
        from .force_fields import curve
        d = runs["force_fields"].done
        n = runs["force_fields"].config.bd_n_train
        ns = list(curve(d, "independent")[0])
        if n in ns:
            i = ns.index(n)
            out += [macro("forceN", str(n)), macro("forceIndep", curve(d, "independent")[1][i]),
                    macro("forceCons", curve(d, "conserving")[1][i]),
                    macro("forceIndepSmooth", curve(d, "independent", "smooth_force_rmse")[1][i]),
                    macro("forceConsSmooth", curve(d, "conserving", "smooth_force_rmse")[1][i]),
                    macro("forceEnergy", curve(d, "conserving", "energy_rmse")[1][i]),
                    macro("forceCurlIndep", curve(d, "independent", "curl_mean_abs")[1][i]),
                    macro("forceCurlCons", max(curve(d, "conserving", "curl_mean_abs")[1]))]
        for k, nm in (("true", "True"), ("independent", "Indep"), ("conserving", "Cons")):
            if f"bd/{k}" in d:
                out.append(macro(f"forceTV{nm}", d[f"bd/{k}"]["tv_to_boltzmann"]))
    if "molecules" in runs:
        from .molecules import curve
        d = runs["molecules"].done
        ns = list(curve(d, "plain")[0])
        i = len(ns) - 1
        out.append(macro("molN", str(int(ns[i]))))
        for m, nm in (("plain", "Plain"), ("symmetrized", "Sym"), ("augmented", "Aug"), ("sorted", "Sorted")):
            out.append(macro(f"mol{nm}", curve(d, m)[1][i]))
            out.append(macro(f"mol{nm}Inv", curve(d, m, "invariance")[1][i]))
    if "demo" in runs:
        d = runs["demo"].done
        aug = max(max(float(v) for v in d[f"augmented/{s}"]["invariance_rel"]) for s in ("in_distribution", "ring", "noise"))
        plain = min(min(float(v) for v in d[f"plain/{s}"]["invariance_rel"]) for s in ("in_distribution", "ring", "noise"))
        out += [macro("demoAugMax", aug), macro("demoPlainMin", plain)]
    return out


def write_all(runs: dict, out_dir) -> list:
    """Write every table whose run is in ``runs`` (name -> SavedRun) and ``numbers.tex``
    into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (run_name, writer) in TABLES.items():
        if run_name in runs:
            p = out_dir / "tables" / f"{name}.tex"
            p.write_text(writer(runs[run_name]))
            paths.append(p)
    p = out_dir / "numbers.tex"
    p.write_text("% written by `ntkequi figures` from results/; do not edit\n" + "\n".join(numbers(runs)) + "\n")
    paths.append(p)
    return paths
