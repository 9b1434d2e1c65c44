"""Every figure and table of the README and the paper, from saved results, in one command.

``ntkequi figures`` reads the saved run directories in ``results/`` (each holds the
``config.json``, ``versions.json`` and ``results.jsonl`` an experiment script wrote; see
:mod:`ntkequi.results`), and writes, without retraining anything:

* ``figures/<name>.png`` (for the README) and ``figures/<name>.pdf`` (for the paper),
* ``figures/captions.md`` and ``paper/generated/captions/<name>.tex``: what was run, with
  which preset, on which machine,
* ``paper/generated/tables/*.tex`` and ``paper/generated/numbers.tex`` (the tables and the
  numbers the paper's text quotes, as LaTeX macros; see :mod:`ntkequi.paper_tables`),
* the README's tables and quoted numbers: every block between ``<!-- table NAME: ... -->``
  and ``<!-- end table NAME -->`` in ``README.md`` is rewritten from the same table as
  Markdown, every ``<!-- num NAME -->...<!-- /num -->`` from the macro ``NAME``.

``ntkequi figures --collect runs`` first copies those three files of every experiment
found in ``runs/`` (where the experiment scripts write) into ``results/`` (which is
committed), so that the figures, the tables and the paper always come from the committed
results. A figure whose results are missing is an error that names the command producing
them (``--allow-missing`` skips it instead).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

__all__ = ["SavedRun", "FigureSpec", "FIGURES", "RUNS", "load_run", "namespace", "save", "collect",
           "make_all", "cli"]

RUN_FILES = ("config.json", "versions.json", "results.jsonl", "command.json")


def namespace(obj):
    """JSON config -> attribute access (``cfg.sweep.widths``); lists become tuples and the
    strings 'inf', '-inf', 'nan' (how :func:`ntkequi.results.to_jsonable` writes them) floats."""
    if isinstance(obj, dict):
        return SimpleNamespace(**{k: namespace(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return tuple(namespace(v) for v in obj)
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    return obj


@dataclasses.dataclass
class SavedRun:
    """A run directory read back: ``config`` (namespace), ``versions``,
    ``command`` (the command line and preset, if the script recorded them) and ``done``
    (``{key: record}``)."""
    path: Path
    config: SimpleNamespace
    versions: dict
    command: dict
    done: dict


def load_run(path) -> SavedRun:
    """Read a run directory written by :class:`ntkequi.results.RunDir`."""
    from .results import read_records
    path = Path(path)
    missing = [f for f in ("config.json", "results.jsonl") if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a saved run: {', '.join(missing)} missing")
    cfg = json.loads((path / "config.json").read_text())
    read = lambda f: json.loads((path / f).read_text()) if (path / f).exists() else {}
    done = {r["key"]: r for r in read_records(path / "results.jsonl") if "key" in r}
    if not done:
        raise ValueError(f"{path / 'results.jsonl'} holds no finished results")
    return SavedRun(path, namespace(cfg), read("versions.json"), read("command.json"), done)


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One figure: ``draw(cfg, done) -> matplotlib Figure`` from the run ``run``;
    ``caption``: what it shows (the run's command, preset and machine are appended)."""
    name: str
    run: str
    draw: Callable
    caption: str


def _draw(module: str, fn: str = "figure", sub: Optional[str] = None):
    """``draw(cfg, done)`` calling ``ntkequi.<module>.<fn>(cfg[.sub], done)``."""
    def draw(cfg, done):
        import importlib
        return getattr(importlib.import_module(f"ntkequi.{module}"), fn)(getattr(cfg, sub) if sub else cfg, done)
    return draw


def _sweep(kind: str):
    return _draw("ensemble_sweep", f"figure_{kind}", "sweep")


#: run directory name -> the command that writes it (from the repository root)
RUNS = {
    "demo": "ntkequi demo",
    "toy_ensembles": "python experiments/toy_ensembles.py",
    "ising": "python experiments/ising.py",
    "fmnist_ntk": "python experiments/fmnist_ntk.py --data-dir DIR",
    "fmnist_osp_table-small": "python experiments/fmnist_osp_table.py --data-dir DIR",
    "kernel_symmetry": "python experiments/kernel_symmetry.py --data-dir DIR",
    "cross_product": "python experiments/cross_product.py",
    "partial_augmentation": "python experiments/partial_augmentation.py --data-dir DIR",
    "width_convergence": "python experiments/width_convergence.py --data-dir DIR",
    "force_fields": "python experiments/force_fields.py",
    "molecules": "python experiments/molecules.py",
}

_SIZE = ("Relative invariance error of the ensemble mean against ensemble size M, with no augmentation, "
         "the full orbit and a subgroup: mean of the first M members (error bars: spread over disjoint "
         "groups of M members), single members (dashed; band: std over members) and the analytic NTK mean "
         "at the same training time (dotted).")
_WIDTH = ("Full-orbit augmentation against width: invariance error of single members, of the mean of "
          "all members and of the NTK mean (left), and distance of the ensemble mean from the NTK mean "
          "for each ensemble size (right).")
_TIME = ("Full-orbit augmentation over training: invariance error of the ensemble mean, of single "
         "members and of the NTK mean mu_t at the same time, on in-distribution and off-manifold inputs.")

FIGURES = (
    FigureSpec("demo", "demo", _draw("demo"),
               "Analytic NTK ensembles on the plane: invariance error of mu_t under C8 against training "
               "time, plain and C8-augmented (left), and the converged means around a circle (right)."),
    FigureSpec("toy_ensembles_size", "toy_ensembles", _sweep("size"), "Toy problem (planar C8). " + _SIZE),
    FigureSpec("toy_ensembles_width", "toy_ensembles", _sweep("width"), "Toy problem (planar C8). " + _WIDTH),
    FigureSpec("toy_ensembles_time", "toy_ensembles", _sweep("time"), "Toy problem (planar C8). " + _TIME),
    FigureSpec("ising_size", "ising", _sweep("size"), "Ising energies, lattice translations. " + _SIZE),
    FigureSpec("ising_time", "ising", _sweep("time"), "Ising energies, lattice translations. " + _TIME),
    FigureSpec("fmnist_ntk_size", "fmnist_ntk", _sweep("size"), "FashionMNIST, C4, CNN ensembles. " + _SIZE),
    FigureSpec("fmnist_ntk_width", "fmnist_ntk", _sweep("width"), "FashionMNIST, C4, CNN ensembles. " + _WIDTH),
    FigureSpec("fmnist_ntk_time", "fmnist_ntk", _sweep("time"), "FashionMNIST, C4, CNN ensembles. " + _TIME),
    FigureSpec("partial_augmentation", "partial_augmentation", _draw("partial_augmentation"),
               "Partial augmentation on FashionMNIST: the NTK mean trained on the C4, C8 or C16 orbits "
               "(or none), evaluated at every angle of the finer C32 (left) and on average over C32 "
               "against the training group's order (right)."),
    FigureSpec("osp_models", "fmnist_osp_table-small", _draw("orbit_table"),
               "The orbit-consistency table's models side by side: OSP (as a fraction of |G|) of the "
               "deep ensemble, its single members, the GCNN and learned canonicalization, mean and std "
               "over seeds, for each group and evaluation set; crosses: the paper's values."),
    FigureSpec("width_convergence", "width_convergence", _draw("width_convergence"),
               "Empirical NTK of finite Flax networks against the analytic NTK of the same "
               "architecture specification, over width (error bars: std over initialisations)."),
    FigureSpec("kernel_symmetry", "kernel_symmetry", _draw("kernel_symmetry"),
               "Kernel-side symmetry on 7x7 FashionMNIST: the C4-augmented CNN NTK, the symmetrized "
               "kernel and the group-convolutional NTK over training time; finite ensembles approach "
               "the augmented NTK."),
    FigureSpec("force_fields", "force_fields", _draw("force_fields"),
               "Force field of the 2D potential learned from Brownian-dynamics samples: the potential "
               "with the training samples; learned fields of independent Gaussian kernels and of the "
               "energy-conserving Hessian kernel (colour: error against the true force); learning "
               "curves (error bars: std over draws of the training set); curl of the learned fields; "
               "x-marginals of Brownian dynamics on each field against exp(-V)."),
    FigureSpec("molecules", "molecules", _draw("molecules"),
               "Molecule-like toy (identical atoms, Morse pairs plus a three-body term): energy error on "
               "held-out configurations against training size for a Gaussian kernel on pairwise distances, "
               "its symmetrized kernel over atom relabellings, the same kernel trained on the full "
               "relabelling orbit, and a Gaussian on sorted distances (left; error bars: std over "
               "training draws), and their invariance error under relabelling (right)."),
    FigureSpec("cross_product", "cross_product", _draw("cross_product"),
               "Vector targets (cross product in R^3): SO(3) equivariance error of the NTK mean over "
               "time for each augmentation group, at convergence against the group's order, and "
               "finite ensembles against members."),
)


def save(fig, stem, dpi: int = 110) -> list:
    """Write ``stem.png`` and ``stem.pdf`` (parents created) and close the figure."""
    import matplotlib.pyplot as plt
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=dpi)
    fig.savefig(paths[1], metadata={"CreationDate": None})      # byte-stable across runs
    plt.close(fig)
    return paths


def draw_run(run_name: str, run_dir) -> list:
    """Draw the figures of experiment ``run_name`` (a key of :data:`RUNS`) from the saved
    run in ``run_dir`` into ``run_dir`` itself (PNG and PDF); returns the PNG paths. The
    figures in figures/ come from ``ntkequi figures``."""
    run = load_run(run_dir)
    out = []
    for spec in FIGURES:
        if spec.run == run_name:
            out.append(save(spec.draw(run.config, run.done), Path(run_dir) / spec.name)[0])
            print(f"wrote {out[-1]}")
    return out


def provenance(run: SavedRun) -> str:
    """One sentence: the command and preset that made the run, and the machine."""
    name = run.path.name
    cmd = run.command.get("command") or RUNS.get(name, f"(the script that wrote {name})")
    preset = run.command.get("preset")
    v = run.versions
    dev = ", ".join(v.get("devices", [])) or "unknown devices"
    return (f"Results: `{cmd}`" + (f" (preset {preset})" if preset else "") +
            f", saved in results/{name}; computed with jax {v.get('jax', '?')} on {v.get('jax_backend', '?')} "
            f"({dev}), {v.get('platform', 'unknown platform')}, float64: {v.get('x64', '?')}.")


_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def tex_escape(s: str) -> str:
    """Plain text -> LaTeX (special characters escaped; `code` -> \\texttt{code})."""
    import re
    out = []
    for part in re.split(r"(`[^`]*`)", s):
        code = len(part) >= 2 and part[0] == part[-1] == "`"
        body = "".join(_TEX.get(c, c) for c in (part[1:-1] if code else part))
        out.append(r"\texttt{" + body + "}" if code else body)
    return "".join(out)


def collect(runs_dir, results_dir) -> list:
    """Copy the small files (config, versions, results, command) of every known run that
    finished in ``runs_dir`` (its script wrote ``command.json`` at the end) into
    ``results_dir``; returns the run names copied."""
    runs_dir, results_dir = Path(runs_dir), Path(results_dir)
    copied = []
    for name in RUNS:
        src = runs_dir / name
        if not (src / "results.jsonl").exists():
            continue
        if not (src / "command.json").exists():
            print(f"not collected: {src} has not finished (no command.json); rerun its command to resume it")
            continue
        dst = results_dir / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in RUN_FILES:
            if (src / f).exists():
                shutil.copy2(src / f, dst / f)
        copied.append(name)
    return copied


def make_all(results_dir="results", figures_dir="figures", tables_dir="paper/generated",
             only: Optional[list] = None, allow_missing: bool = False, log=print, readme=None) -> dict:
    """Draw every figure (or those named in ``only``) and write every table and the
    numbers file from the runs in ``results_dir``; with ``readme`` (a path), also rewrite
    the README's generated tables and quoted numbers (:func:`ntkequi.paper_tables.update_readme`).
    Returns ``{'figures': [...], 'tables': [...], 'readme': [...], 'skipped': [...]}``
    (paths written, README tables and numbers rewritten, runs missing)."""
    import matplotlib
    matplotlib.use("Agg")
    from . import paper_tables
    results_dir, figures_dir, tables_dir = Path(results_dir), Path(figures_dir), Path(tables_dir)
    runs, missing = {}, []
    for name in RUNS:
        if (results_dir / name / "results.jsonl").exists():
            runs[name] = load_run(results_dir / name)
        else:
            missing.append(name)
    wanted = [f for f in FIGURES if only is None or f.name in only]
    if only:
        unknown = sorted(set(only) - {f.name for f in FIGURES})
        if unknown:
            raise ValueError(f"unknown figure(s) {unknown}; known: {[f.name for f in FIGURES]}")
    needed = sorted({f.run for f in wanted} if only else set(RUNS))
    absent = [n for n in needed if n in missing]
    if absent and not allow_missing:
        raise FileNotFoundError(
            f"no saved results in {results_dir} for: {', '.join(absent)}. Produce them with\n"
            + "\n".join(f"  {RUNS[n]}" for n in absent)
            + "\nthen `ntkequi figures --collect runs` (or pass --allow-missing to skip those figures)")
    written = {"figures": [], "tables": [], "readme": [], "skipped": absent}
    captions_md = ["# Figure captions", "", "Written by `ntkequi figures` from the saved results in "
                   f"`{results_dir.name}/`; do not edit by hand.", ""]
    cap_dir = tables_dir / "captions"
    cap_dir.mkdir(parents=True, exist_ok=True)
    for spec in wanted:
        if spec.run not in runs:
            log(f"skipped {spec.name}: no results for {spec.run}")
            continue
        run = runs[spec.run]
        try:
            fig = spec.draw(run.config, run.done)
        except KeyError as e:
            raise ValueError(f"{run.path} lacks results for {e} that figure {spec.name} needs: the run did "
                             f"not finish; resume it with `{RUNS[spec.run]}`") from None
        paths = save(fig, figures_dir / spec.name)
        text = f"{spec.caption} {provenance(run)}"
        (cap_dir / f"{spec.name}.tex").write_text(
            "\\caption{" + tex_escape(text) + "}\\label{fig:" + spec.name + "}\n")
        captions_md += [f"## {spec.name}", "", f"![{spec.name}]({spec.name}.png)", "", text, ""]
        written["figures"] += paths
        log(f"wrote {paths[0]} and .pdf")
    if only is None:
        (figures_dir / "captions.md").write_text("\n".join(captions_md))
        written["tables"] = paper_tables.write_all(runs, tables_dir)
        for p in written["tables"]:
            log(f"wrote {p}")
        if readme is not None:
            written["readme"] = paper_tables.update_readme(readme, tables_dir, missing_ok=allow_missing)
            log(f"updated {len(written['readme'])} generated tables and numbers in {readme}")
    return written


def cli(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="ntkequi figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="saved run directories (default results/)")
    p.add_argument("--collect", metavar="RUNS_DIR", default=None,
                   help="first copy the saved results of every experiment found in RUNS_DIR into --results")
    p.add_argument("--figures-dir", default="figures")
    p.add_argument("--tables-dir", default="paper/generated")
    p.add_argument("--only", nargs="+", default=None, help="only these figures (no tables)")
    p.add_argument("--allow-missing", action="store_true", help="skip figures whose results are missing")
    p.add_argument("--readme", default="README.md",
                   help="README whose generated tables and numbers are rewritten (default README.md, if it exists; "
                        "'' for none)")
    args = p.parse_args(argv)
    if args.collect:
        copied = collect(args.collect, args.results)
        print(f"collected {', '.join(copied) or 'nothing'} from {args.collect} into {args.results}")
    try:
        readme = Path(args.readme) if args.readme and Path(args.readme).exists() else None
        make_all(args.results, args.figures_dir, args.tables_dir, args.only, args.allow_missing, readme=readme)
    except (FileNotFoundError, ValueError) as e:
        print(f"ntkequi figures: {e}", file=sys.stderr)
        return 2
    return 0
