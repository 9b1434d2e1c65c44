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


__all__ = ["fmt", "parse", "macro", "write_all", "TABLES", "markdown", "md_cell", "update_readme"]


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
_NUMBER = re.compile(_SCI.pattern + r"|(?<![\w_{])(-?\d+(?:\.\d+)?)(?![\w}])")


def parse(cell: str) -> list:
    """The numbers in a table cell written by :func:`fmt` (or ``$a \\pm b$``), as floats, in
    the order they appear; ``--`` is ``[nan]``."""
    cell = cell.strip()
    if cell == "--":
        return [float("nan")]
    return [float(m.group(1)) * 10.0 ** int(m.group(2)) if m.group(1) is not None else float(m.group(3))
            for m in _NUMBER.finditer(cell)]


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
    # shrunk to the line width only when wider (graphicx's \resizebox; \width is the natural width)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}}", rf"\caption{{{caption}}}", rf"\label{{tab:{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def rows_of(tex: str) -> list:
    """The body rows of a table written by :func:`_table`: list of cell lists."""
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    return [_cells(line) for line in body.strip().splitlines() if line.strip()]


def _cells(line: str) -> list:
    r"""The cells of one ``a & b & c \\`` row (empty cells kept; ``\&`` is not a separator)."""
    line = re.sub(r"\\\\\s*$", "", line.strip())
    return [c.strip() for c in re.split(r"(?<!\\)&", line)]


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


_SET_NAMES = {"fashion_mnist_test": "FashionMNIST test", "mnist": "MNIST", "noise": "noise",
              "in_distribution": "in distribution", "fresh": "fresh configurations"}


def _set_name(s: str) -> str:
    from .figures import tex_escape
    return _SET_NAMES.get(s, tex_escape(s))


def _sweep_sets(run, name: str) -> str:
    cfg, done = run.config.sweep, run.done
    width = max(cfg.widths)
    rec = done[f"orbit/width{width}"]
    header = ["orbit augmentation", "members"] + [f"$M={m}$" for m in cfg.ensemble_sizes] + [r"NTK $\mu_t$"]
    rows = []
    for s in rec["eval_sets"]:
        last = rec[s][-1]
        rows.append([f"invariance error, {_set_name(s)}", fmt(last["members"])]
                    + [fmt(v) for v in last["ensemble"]] + [fmt(last["ntk"])])
    for s in rec["eval_sets"]:
        last = rec[s][-1]
        rows.append([rf"distance to $\mu_t$, {_set_name(s)}", ""] + [fmt(v) for v in last["distance_to_ntk"]] + [""])
    cap = (f"Full-orbit ({rec['group']}) augmentation, width {width}, after {cfg.steps} gradient-descent steps: "
           "relative invariance error of single members (mean), of the mean of the first $M$ members and of "
           r"the NTK mean $\mu_t$ at the same time, and the relative distance of the $M$-member mean to $\mu_t$, "
           "on each evaluation set.")
    return _table(header, rows, cap, f"{name}_sets")


def _osp_metric(run, eval_set: str, metric: str, what: str, label: str) -> str:
    from . import orbit_table
    cfg = run.config
    summ = orbit_table.summarize(cfg, run.done, eval_set, metric)
    header = ["model"] + [f"$C_{{{n}}}$" for n in cfg.groups]
    rows = [[orbit_table.ROW_NAMES[row]] + [pm(*vals[n][:2]) if n in vals else "--" for n in cfg.groups]
            for row, vals in summ.items()]
    cap = (f"{what}, mean $\\pm$ std over seeds (the single model: over seeds and members).")
    return _table(header, rows, cap, label)


def _time_label(m: float) -> str:
    """Column label of a training time given as a multiple of 1 / lambda_max."""
    return r"$t=\infty$" if math.isinf(m) else rf"$t\lambda_{{max}}={fmt(m)}$"


def _kernel_symmetry_time(run) -> str:
    cfg, done = run.config, run.done
    mult = cfg.time_multiples
    header = [""] + [_time_label(m) for m in mult]
    c, ens = done["comparison"], done["ensemble"]
    rows = [["(i) vs (ii), relative distance"] + [fmt(v) for v in c["augmented_vs_symmetrized"]],
            ["(i) vs (iii), relative distance"] + [fmt(v) for v in c["augmented_vs_gcnn"]]]
    for key, label in (("augmented", "(i)"), ("symmetrized", "(ii)"), ("gcnn", "(iii)")):
        rows.append([f"invariance error on noise, {label}"] + [fmt(r["noise"]) for r in done[key]["per_time"]])
    for key, label in (("augmented", "(i)"), ("gcnn", "(iii)")):
        rows.append([f"test accuracy, {label}"] + [fmt(r["accuracy"], 3) for r in done[key]["per_time"]])
    m = max(cfg.ensemble_sizes)
    dist = [fmt(d[-1]) for d in ens["distance_to_augmented"]]
    rows.append([f"CNN ensemble, $M={m}$, distance to (i)"] + dist + ["--"] * (len(mult) - len(dist)))
    cap = ("Three C4-invariant kernel predictors on 7x7 FashionMNIST over training time: (i) the CNN NTK "
           "trained on the C4 orbit, (ii) the symmetrized CNN NTK at $|G|t$, (iii) the group-CNN NTK; "
           f"relative distances, invariance error on noise orbits, test accuracy, and the distance of a finite "
           f"CNN ensemble (width {cfg.ensemble_width}) to (i).")
    return _table(header, rows, cap, "kernel_symmetry_time")


def _cross_time(run) -> str:
    cfg, done = run.config, run.done
    mult = cfg.time_multiples
    header = ["augmentation", "$|G|$", "own group, max over $t$"] + [f"SO(3), {_time_label(m)}" for m in mult]
    rows = []
    for aug in cfg.augmentations:
        r = done[aug]
        own = (fmt(max(p["flipped"]["group"] for p in r["per_time"])) if "group" in r["per_time"][0]["flipped"]
               else "--")
        rows.append([aug, str(r["order"]), own] + [fmt(p["flipped"]["so3"]) for p in r["per_time"]])
    cap = ("Relative equivariance error of the NTK mean for the cross product on flipped (lower half-space) "
           "inputs over training time: under the augmentation group (largest over $t$) and under random "
           "rotations from SO(3).")
    return _table(header, rows, cap, "cross_product_time")


def _cross_ensembles(run) -> str:
    cfg, done = run.config, run.done
    header = ["training", "group: members / ensemble / NTK", "SO(3): members / ensemble / NTK",
              r"distance to $\mu_t$"]
    rows = []
    for aug in cfg.ensemble_augmentations:
        rec = done[f"ensemble_{aug}"]["records"][-1]
        cells = []
        for kind in ("group", "so3"):
            mem = sum(m["flipped"][kind] for m in rec["members"]) / len(rec["members"])
            cells.append(" / ".join(fmt(v) for v in (mem, rec["ensemble"][-1]["flipped"][kind],
                                                      rec["ntk"]["flipped"][kind])))
        rows.append([aug] + cells + [fmt(rec["distance_to_ntk"][-1])])
    last = done[f"ensemble_{cfg.ensemble_augmentations[0]}"]["records"][-1]
    cap = (f"Finite MLP ensembles (width {cfg.ensemble_width}, $M={max(cfg.ensemble_sizes)}$) for the cross "
           rf"product at $t\lambda_{{max}}={fmt(last['t_lambda_max'])}$, flipped inputs: relative equivariance "
           f"error of single members (mean), the ensemble mean and the NTK mean, under the augmentation group "
           f"({cfg.reference_group} for none and random rotations) and under SO(3); relative distance of the "
           r"ensemble mean to $\mu_t$.")
    return _table(header, rows, cap, "cross_product_ensembles")


def _forces_curl(run) -> str:
    from .force_fields import MODELS, curve
    done = run.done
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m, "curl_mean_abs")[1] for m in MODELS]
    rows = [[str(int(n))] + [fmt(c[i]) for c in cols] for i, n in enumerate(ns)]
    cap = "Mean absolute curl of the learned force field over the held-out samples, mean over draws."
    return _table(["$N$"] + list(MODELS), rows, cap, "force_fields_curl")


def _molecules_invariance(run) -> str:
    from .molecules import MODELS, curve
    done = run.done
    ns = curve(done, MODELS[0])[0]
    cols = [curve(done, m, "invariance")[1] for m in MODELS]
    rows = [[str(int(n))] + [fmt(c[i]) for c in cols] for i, n in enumerate(ns)]
    cap = ("Relative invariance error of the learned energy under relabelling the atoms (held-out "
           "configurations), mean over draws.")
    return _table(["$N$"] + list(MODELS), rows, cap, "molecules_invariance")


#: table name -> (run name, writer)
TABLES = {
    "demo": ("demo", _demo),
    "toy_ensembles": ("toy_ensembles", lambda r: _sweep(r, "toy_ensembles")),
    "ising": ("ising", lambda r: _sweep(r, "ising")),
    "fmnist_ntk": ("fmnist_ntk", lambda r: _sweep(r, "fmnist_ntk")),
    "osp_test": ("fmnist_osp_table-small", lambda r: _osp(r, "test")),
    "osp_mnist": ("fmnist_osp_table-small", lambda r: _osp(r, "mnist")),
    "osp_noise": ("fmnist_osp_table-small", lambda r: _osp(r, "noise")),
    "osp_accuracy": ("fmnist_osp_table-small",
                     lambda r: _osp_metric(r, "test", "accuracy", "Test accuracy on unrotated test images",
                                           "osp_accuracy")),
    "osp_invariance": ("fmnist_osp_table-small",
                       lambda r: _osp_metric(r, "mnist", "invariance_error",
                                             "Relative invariance error of the logits on rotated MNIST digits",
                                             "osp_invariance")),
    "fmnist_ntk_sets": ("fmnist_ntk", lambda r: _sweep_sets(r, "fmnist_ntk")),
    "ising_sets": ("ising", lambda r: _sweep_sets(r, "ising")),
    "toy_ensembles_sets": ("toy_ensembles", lambda r: _sweep_sets(r, "toy_ensembles")),
    "kernel_symmetry_time": ("kernel_symmetry", _kernel_symmetry_time),
    "cross_product_time": ("cross_product", _cross_time),
    "cross_product_ensembles": ("cross_product", _cross_ensembles),
    "force_fields_curl": ("force_fields", _forces_curl),
    "molecules_invariance": ("molecules", _molecules_invariance),
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
    for name, nm in (("ising", "ising"), ("fmnist_ntk", "fmnist")):
        if name in runs:
            cfg, d = runs[name].config.sweep, runs[name].done
            w = max(cfg.widths)
            orbit, none, sub = (d[f"{m}/width{w}"] for m in ("orbit", "none", "subgroup"))
            first, last = orbit["eval_sets"][0], orbit["eval_sets"][-1]
            out += [macro(f"{nm}Mmax", str(max(cfg.ensemble_sizes))),
                    macro(f"{nm}DistOne", orbit[first][-1]["distance_to_ntk"][0]),
                    macro(f"{nm}DistMax", orbit[first][-1]["distance_to_ntk"][-1]),
                    macro(f"{nm}NoneEns", none[first][-1]["ensemble"][-1]),
                    macro(f"{nm}NoneNtk", none[first][-1]["ntk"]),
                    macro(f"{nm}SubgroupNtk", sub[first][-1]["ntk"]),
                    macro(f"{nm}OffOrbitEns", orbit[last][-1]["ensemble"][-1]),
                    macro(f"{nm}OffNoneEns", none[last][-1]["ensemble"][-1])]
    if "kernel_symmetry" in runs:
        d = runs["kernel_symmetry"].done
        out += [macro("ksGcnnInf", d["comparison"]["augmented_vs_gcnn"][-1]),
                macro("ksToyMax", max(d["toy"]["augmented_vs_symmetrized"]))]
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
        if "ensemble_O" in d:
            rec = d["ensemble_O"]["records"][0]
            out += [macro("crossEnsFirstT", rec["t_lambda_max"]),
                    macro("crossEnsFirstO", rec["ensemble"][-1]["flipped"]["so3"]),
                    macro("crossMembersFirstO",
                          sum(m["flipped"]["so3"] for m in rec["members"]) / len(rec["members"]))]
    if "partial_augmentation" in runs:
        from .partial_augmentation import mean_error
        r = runs["partial_augmentation"]
        m = r.config.eval_order
        for n in r.config.train_orders:
            word = {1: "None", 4: "Four", 8: "Eight", 16: "Sixteen"}.get(n)
            if word:
                out += [macro(f"partial{word}", mean_error(r.done[f"C{n}"], "fashion_mnist_test", m)),
                        macro(f"partialMnist{word}", mean_error(r.done[f"C{n}"], "mnist", m)),
                        macro(f"partialNoise{word}", mean_error(r.done[f"C{n}"], "noise", m))]
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
        out.append(macro("forceScale", next(r for k, r in d.items() if k.startswith("curve/"))["force_scale"]))
        for k, nm in (("true", "True"), ("independent", "Indep"), ("conserving", "Cons")):
            if f"bd/{k}" in d:
                out.append(macro(f"forceTV{nm}", d[f"bd/{k}"]["tv_to_boltzmann"]))
    if "molecules" in runs:
        from .molecules import curve
        d = runs["molecules"].done
        ns = list(curve(d, "plain")[0])
        i = len(ns) - 1
        out += [macro("molN", str(int(ns[i]))), macro("molEnergyStd", next(iter(d.values()))["energy_std"])]
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
    into ``out_dir``; returns the paths. A run that lacks records a table needs (it did not
    finish) is a ``ValueError`` naming the run and the command that resumes it."""
    from .figures import RUNS
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    paths = []

    def _incomplete(run_name, err):
        return ValueError(f"{runs[run_name].path} lacks the results {err} needed for the paper's tables: "
                          f"the run did not finish; resume it with `{RUNS.get(run_name, run_name)}`")

    for name, (run_name, writer) in TABLES.items():
        if run_name in runs:
            try:
                tex = writer(runs[run_name])
            except (KeyError, IndexError) as e:
                raise _incomplete(run_name, e) from None
            p = out_dir / "tables" / f"{name}.tex"
            p.write_text(tex)
            paths.append(p)
    try:
        nums = numbers(runs)
    except (KeyError, IndexError) as e:
        raise ValueError(f"a saved run lacks the results {e} the paper's numbers need: it did not finish; "
                         f"resume it with its command (ntkequi.figures.RUNS)") from None
    p = out_dir / "numbers.tex"
    p.write_text("% written by `ntkequi figures` from results/; do not edit\n" + "\n".join(nums) + "\n")
    paths.append(p)
    return paths


# ---------------------------------------------------------------- the README's copies
_MD = [(re.compile(r"C_\{(\d+)\}"), r"C\1"), (re.compile(r"\\texttt\{([^}]*)\}"), r"`\1`"),
       (re.compile(r"_\{([^}]*)\}"), r"_\1")]
_MD_WORDS = {r"\pm": "+-", r"\infty": "inf", r"\mu": "mu", r"\lambda": " lambda", r"\_": "_", r"\%": "%",
             r"\&": "&"}


def md_cell(cell: str) -> str:
    """A LaTeX table cell or caption (as written here) as Markdown text: ``$2.6\\cdot 10^{-15}$``
    -> ``2.6e-15``, ``$\\pm$`` -> ``+-``, ``$C_{4}$`` -> ``C4``, ``|`` escaped."""
    s = _SCI.sub(lambda m: f"{m.group(1)}e{int(m.group(2))}", cell)
    for tex, text in _MD_WORDS.items():
        s = s.replace(tex, text)
    for pat, rep in _MD:
        s = pat.sub(rep, s)
    s = s.replace("$", "").replace("{", "").replace("}", "").replace("|", r"\|")
    return " ".join(s.split())


def markdown(tex: str) -> str:
    """A table written by this module (or :func:`ntkequi.orbit_table.latex`) as a Markdown
    table followed by its caption; the numbers are the same strings."""
    head = tex.split(r"\toprule", 1)[1].split(r"\midrule", 1)[0].strip()
    header = [md_cell(c) for c in _cells(head)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows_of(tex)]
    cap = next((ln.strip()[len(r"\caption{"):-1] for ln in tex.splitlines() if ln.strip().startswith(r"\caption{")),
               None)
    if cap:
        lines += ["", "*" + md_cell(cap) + "*"]
    return "\n".join(lines) + "\n"


# markers inside `inline code` (the README explaining them) are not markers
_README_BLOCK = re.compile(r"(?<!`)(<!-- table (\w+): [^>]*-->\n)(.*?)(<!-- end table \2 -->)", re.S)
_README_NUM = re.compile(r"(?<!`)<!-- num (\w+) -->(.*?)<!-- /num -->")
README_BEGIN = "<!-- table {name}: written by `ntkequi figures` from results/; do not edit -->"


def update_readme(readme, tables_dir, missing_ok: bool = False) -> list:
    """Rewrite every block of ``readme`` that starts with :data:`README_BEGIN` (with the
    table's name) and ends with ``<!-- end table NAME -->`` from ``tables_dir/tables/NAME.tex``
    (as :func:`markdown`), and every quoted number ``<!-- num NAME -->...<!-- /num -->`` from
    the macro ``NAME`` of ``tables_dir/numbers.tex``; returns the table and number names. An
    unknown name, a table that was not written, or an unclosed block is a ``ValueError``
    (``missing_ok``: tables and numbers whose results are missing are left as they are)."""
    readme, tables = Path(readme), Path(tables_dir) / "tables"
    text = readme.read_text()
    names = []

    def repl(m):
        name = m.group(2)
        if name not in TABLES:
            raise ValueError(f"{readme}: unknown table {name!r} in a generated block; known: {sorted(TABLES)}")
        src = tables / f"{name}.tex"
        if not src.exists() and missing_ok:
            return m.group(0)
        if not src.exists():
            raise ValueError(f"{readme} shows table {name!r}, which was not written (its results are missing)")
        names.append(name)
        return m.group(1) + "\n" + markdown(src.read_text()) + "\n" + m.group(4)

    new = _README_BLOCK.sub(repl, text)
    opened = len(re.findall(r"(?<!`)<!-- table \w+: ", text))
    if opened != len(names):
        raise ValueError(f"{readme}: {opened} generated-table blocks opened, {len(names)} closed "
                         "(each needs `<!-- end table NAME -->`)")
    values = dict(re.findall(r"^\\newcommand\{\\(\w+)\}\{(.*)\}$",
                             (Path(tables_dir) / "numbers.tex").read_text(), re.M))

    def num(m):
        if m.group(1) not in values and missing_ok:
            return m.group(0)
        if m.group(1) not in values:
            raise ValueError(f"{readme} quotes number {m.group(1)!r}, which numbers.tex does not define "
                             f"(see ntkequi.paper_tables.numbers)")
        names.append(m.group(1))
        return f"<!-- num {m.group(1)} -->{md_cell(values[m.group(1)])}<!-- /num -->"

    new = _README_NUM.sub(num, new)
    if len(re.findall(r"(?<!`)<!-- num ", new)) != len(re.findall(r"(?<!`)<!-- /num -->", new)):
        raise ValueError(f"{readme}: a `<!-- num NAME -->` without its `<!-- /num -->`")
    if new != text:
        readme.write_text(new)
    return names
