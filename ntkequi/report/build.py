"""Every figure, table and quoted number of the README, the results pages and the paper,
from saved results, in one command: ``ntkequi figures``.

The build walks the experiment registry (:mod:`ntkequi.experiments`) and knows no
experiment by name. For each experiment whose results are saved in ``results/<NAME>``
(``config.json``, ``versions.json``, ``results.jsonl``, ``command.json``; see
:mod:`ntkequi.runs`), read back with the experiment's own config class, it writes,
without retraining anything:

* ``figures/<figure>.png`` (README, results pages) and ``.pdf`` (paper) from its ``FIGURES``;
* ``figures/captions.md`` and ``paper/generated/captions/<figure>.tex``: each caption with
  what was run, with which preset, on which machine;
* ``paper/generated/tables/<table>.tex`` from its ``TABLES`` (:func:`ntkequi.report.tables.latex`)
  and ``paper/generated/numbers.tex`` from its ``numbers`` (one macro per quoted number);
* ``docs/results/<NAME>.md``: one page per experiment with its figures, tables and numbers;
* the README's generated tables and numbers (``<!-- table NAME: ... -->`` blocks and
  ``<!-- num NAME -->`` values; :func:`ntkequi.report.tables.update_readme`).

``ntkequi figures --collect runs`` first copies the small files of every finished run in
``runs/`` (``runs/<NAME>`` or ``runs/<NAME>-<PRESET>``, the last finished) into ``results/``. A figure whose results are missing is an error naming the
command that makes them (``--allow-missing`` skips it).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Optional

from .. import experiments
from ..experiments.protocol import tex_escape
from ..runs import SavedRun, load_run
from . import tables as T

__all__ = ["RUN_FILES", "command_of", "load_results", "save", "draw_run", "provenance", "collect",
           "write_tables", "write_pages", "make_all", "cli"]

RUN_FILES = ("config.json", "versions.json", "results.jsonl", "command.json")


def command_of(module) -> str:
    """The command that produces an experiment's results (from the repository root)."""
    return f"ntkequi run {module.NAME}" + (" --data-dir DIR" if module.USES_DATA else "")


def _reported(module) -> bool:
    return bool(getattr(module, "FIGURES", ()) or getattr(module, "TABLES", {}) or hasattr(module, "numbers"))


def load_results(results_dir) -> tuple:
    """``({name: SavedRun}, [names missing])`` for every reported experiment, configs read
    back as the experiment's config dataclass."""
    results_dir = Path(results_dir)
    runs, missing = {}, []
    for module in experiments.all_modules():
        if not _reported(module):
            continue
        d = results_dir / module.NAME
        if (d / "results.jsonl").exists():
            runs[module.NAME] = load_run(d, experiments.config_class(module))
        else:
            missing.append(module.NAME)
    return runs, missing


def save(fig, stem, dpi: int = 110) -> list:
    """Write ``stem.png`` and ``stem.pdf`` (parents created, PDF byte-stable) and close the figure."""
    import matplotlib.pyplot as plt
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=dpi)
    fig.savefig(paths[1], metadata={"CreationDate": None})      # byte-stable across runs
    plt.close(fig)
    return paths


def _incomplete(run: SavedRun, module, what: str, err) -> ValueError:
    return ValueError(f"{run.path} lacks the results {err} that {what} needs: the run did not finish; "
                      f"resume it with `{command_of(module)}`")


def draw_run(name: str, run_dir) -> list:
    """Draw experiment ``name``'s figures from the run saved in ``run_dir`` into ``run_dir``
    itself (PNG and PDF); returns the PNG paths."""
    import matplotlib
    matplotlib.use("Agg")
    module = experiments.get(name)
    run = load_run(run_dir, experiments.config_class(module))
    out = []
    for spec in getattr(module, "FIGURES", ()):
        out.append(save(spec.draw(run.config, run.done), Path(run_dir) / spec.name)[0])
        print(f"wrote {out[-1]}")
    return out


def provenance(run: SavedRun, module) -> str:
    """One sentence: the command and preset that made the run, and the machine."""
    cmd = run.command.get("command") or command_of(module)
    preset = run.command.get("preset")
    v = run.versions
    dev = ", ".join(v.get("devices", [])) or "unknown devices"
    return (f"Results: `{cmd}`" + (f" (preset {preset})" if preset else "") +
            f", saved in results/{run.path.name}; computed with jax {v.get('jax', '?')} on "
            f"{v.get('jax_backend', '?')} ({dev}), {v.get('platform', 'unknown platform')}, "
            f"float64: {v.get('x64', '?')}.")


def _finished(src: Path) -> str:
    """When the run in ``src`` finished (its ``command.json``), '' if unreadable."""
    import json
    try:
        return str(json.loads((src / "command.json").read_text()).get("finished", ""))
    except (OSError, ValueError):
        return ""


def collect(runs_dir, results_dir) -> list:
    """Copy the small files (:data:`RUN_FILES`) of every experiment's finished run in
    ``runs_dir`` (its runner wrote ``command.json`` at the end) into ``results_dir``, and the
    files its module's optional ``kept_files(run_dir)`` names (paths relative to the run).

    An experiment's runs are ``runs_dir/<NAME>`` and ``runs_dir/<NAME>-<PRESET>`` (the
    default run directories of ``ntkequi run``); of several finished ones the one that
    finished last is copied, and the others are named in what is printed.

    Returns:
        The names copied.
    """
    runs_dir, results_dir = Path(runs_dir), Path(results_dir)
    copied = []
    for name in experiments.NAMES:
        dirs = dict.fromkeys([runs_dir / name] + [runs_dir / experiments.default_out(name, p).name
                                                   for p in experiments.get(name).PRESETS])
        finished = []
        for src in dirs:
            if not (src / "results.jsonl").exists():
                continue
            if not (src / "command.json").exists():
                print(f"not collected: {src} has not finished (no command.json); rerun its command to resume it")
                continue
            finished.append((_finished(src), str(src), src))
        if not finished:
            continue
        finished.sort()
        src = finished[-1][2]
        for _, _, other in finished[:-1]:
            print(f"not collected: {other} (finished before {src}, which is collected as results/{name})")
        dst = results_dir / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in RUN_FILES:
            if (src / f).exists():
                shutil.copy2(src / f, dst / f)
        for f in getattr(experiments.get(name), "kept_files", lambda _: [])(src):     # e.g. per-member predictions
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / f, dst / f)
        copied.append(name)
    return copied


def _tables_of(run: SavedRun, module) -> dict:
    """``{table name: LaTeX}`` of one experiment."""
    out = {}
    for name, fn in getattr(module, "TABLES", {}).items():
        try:
            out[name] = T.latex(fn(run.config, run.done))
        except (KeyError, IndexError) as e:
            raise _incomplete(run, module, f"table {name}", e) from None
    return out


def _numbers_of(run: SavedRun, module) -> dict:
    if not hasattr(module, "numbers"):
        return {}
    try:
        return module.numbers(run.config, run.done)
    except (KeyError, IndexError) as e:
        raise _incomplete(run, module, "the paper's numbers", e) from None


def write_tables(runs: dict, out_dir) -> list:
    """Write every table of the experiments in ``runs`` (name -> SavedRun) to
    ``out_dir/tables/<table>.tex`` and all their numbers to ``out_dir/numbers.tex``
    (registry order); returns the paths."""
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    paths, macros = [], []
    for name, run in runs.items():
        module = experiments.get(name)
        for table, tex in _tables_of(run, module).items():
            p = out_dir / "tables" / f"{table}.tex"
            p.write_text(tex)
            paths.append(p)
        macros += [T.macro(k, v) for k, v in _numbers_of(run, module).items()]
    p = out_dir / "numbers.tex"
    p.write_text("% written by `ntkequi figures` from results/; do not edit\n" + "\n".join(macros) + "\n")
    return paths + [p]


def write_pages(runs: dict, tables_dir, pages_dir, figures_rel: str = "../../figures") -> list:
    """One Markdown page per experiment, ``pages_dir/<NAME>.md``: its docstring's first
    paragraph, the command, its figures with their captions, its tables and quoted numbers
    (the same strings as the paper's); returns the paths."""
    tables_dir, pages_dir = Path(tables_dir), Path(pages_dir)
    pages_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, run in runs.items():
        module = experiments.get(name)
        intro = (module.__doc__ or "").strip().split("\n\n")[0]
        presets = ", ".join(f"{p} ({module.CPU_TIME.get(p, '?')})" for p in module.PRESETS)
        lines = [f"# {name}", "", "Written by `ntkequi figures` from `results/" + name + "`; do not edit.", "",
                 " ".join(intro.split()), "", f"Reproduce: `{command_of(module)}` (presets, wall time last measured on "
                 f"2 CPU cores: {presets}), then `ntkequi figures --collect runs`.", "", provenance(run, module), ""]
        for spec in getattr(module, "FIGURES", ()):
            lines += [f"## {spec.name}", "", f"![{spec.name}]({figures_rel}/{spec.name}.png)", "", spec.caption, ""]
        for table in getattr(module, "TABLES", {}):
            lines += [f"## Table: {table}", "", T.markdown((tables_dir / "tables" / f"{table}.tex").read_text()), ""]
        nums = _numbers_of(run, module)
        if nums:
            lines += ["## Quoted numbers", "", "| macro | value |", "|---|---|"]
            lines += [f"| `\\{k}` | {T.md_cell(T.macro(k, v).split('}{', 1)[1][:-1])} |" for k, v in nums.items()]
            lines.append("")
        p = pages_dir / f"{name}.md"
        p.write_text("\n".join(lines))
        paths.append(p)
    return paths


def make_all(results_dir="results", figures_dir="figures", tables_dir="paper/generated",
             only: Optional[list] = None, allow_missing: bool = False, log=print, readme=None,
             pages_dir=None) -> dict:
    """Draw every figure (or those named in ``only``) and, when ``only`` is None, write every
    table, the numbers file, the results pages (``pages_dir``) and the generated blocks of
    ``readme`` (a Markdown file or a list of them: the README, the guide) from the runs in
    ``results_dir``.

    Returns:
        ``{'figures': [...], 'tables': [...], 'pages': [...], 'readme': [...], 'skipped': [...]}``
        (paths written, README names rewritten, experiments whose results are missing).

    Raises:
        FileNotFoundError: results are missing and ``allow_missing`` is False (the message
            names the commands that make them).
        ValueError: an unknown figure in ``only``, or a run that did not finish.
    """
    import matplotlib
    matplotlib.use("Agg")
    results_dir, figures_dir, tables_dir = Path(results_dir), Path(figures_dir), Path(tables_dir)
    runs, missing = load_results(results_dir)
    all_figures = [(m, f) for m in experiments.all_modules() for f in getattr(m, "FIGURES", ())]
    if only:
        unknown = sorted(set(only) - {f.name for _, f in all_figures})
        if unknown:
            raise ValueError(f"unknown figure(s) {unknown}; known: {[f.name for _, f in all_figures]}")
    wanted = [(m, f) for m, f in all_figures if only is None or f.name in only]
    needed = sorted({m.NAME for m, _ in wanted}) if only else missing
    absent = [n for n in needed if n in missing]
    if absent and not allow_missing:
        raise FileNotFoundError(
            f"no saved results in {results_dir} for: {', '.join(absent)}. Produce them with\n"
            + "\n".join(f"  {command_of(experiments.get(n))}" for n in absent)
            + "\nthen `ntkequi figures --collect runs` (or pass --allow-missing to skip those figures)")
    written = {"figures": [], "tables": [], "pages": [], "readme": [], "skipped": absent}
    captions_md = ["# Figure captions", "", "Written by `ntkequi figures` from the saved results in "
                   f"`{results_dir.name}/`; do not edit by hand.", ""]
    cap_dir = tables_dir / "captions"
    cap_dir.mkdir(parents=True, exist_ok=True)
    for module, spec in wanted:
        if module.NAME not in runs:
            log(f"skipped {spec.name}: no results for {module.NAME}")
            continue
        run = runs[module.NAME]
        try:
            fig = spec.draw(run.config, run.done)
        except (KeyError, IndexError) as e:
            raise _incomplete(run, module, f"figure {spec.name}", e) from None
        paths = save(fig, figures_dir / spec.name)
        text = f"{spec.caption} {provenance(run, module)}"
        (cap_dir / f"{spec.name}.tex").write_text(
            "\\caption{" + tex_escape(text) + "}\\label{fig:" + spec.name + "}\n")
        captions_md += [f"## {spec.name}", "", f"![{spec.name}]({spec.name}.png)", "", text, ""]
        written["figures"] += paths
        log(f"wrote {paths[0]} and .pdf")
    if only is None:
        (figures_dir / "captions.md").write_text("\n".join(captions_md))
        written["tables"] = write_tables(runs, tables_dir)
        for p in written["tables"]:
            log(f"wrote {p}")
        if pages_dir is not None:
            written["pages"] = write_pages(runs, tables_dir, pages_dir)
            log(f"wrote {len(written['pages'])} results pages in {pages_dir}")
        known = {t for m in experiments.all_modules() for t in getattr(m, "TABLES", {})}
        docs = [] if readme is None else [readme] if isinstance(readme, (str, Path)) else list(readme)
        for doc in docs:
            names = T.update_readme(doc, tables_dir, known, missing_ok=allow_missing)
            written["readme"] += names
            log(f"updated {len(names)} generated tables and numbers in {doc}")
    return written


def cli(argv=None) -> int:
    """``ntkequi figures [--results R] [--collect RUNS] [--only F ...] [--allow-missing] ...``."""
    import argparse
    p = argparse.ArgumentParser(prog="ntkequi figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="saved run directories (default results/)")
    p.add_argument("--collect", metavar="RUNS_DIR", default=None,
                   help="first copy the saved results of every experiment found in RUNS_DIR into --results")
    p.add_argument("--figures-dir", default="figures")
    p.add_argument("--tables-dir", default="paper/generated")
    p.add_argument("--pages-dir", default="docs/results", help="results pages ('' for none)")
    p.add_argument("--only", nargs="+", default=None, help="only these figures (no tables)")
    p.add_argument("--allow-missing", action="store_true", help="skip figures whose results are missing")
    p.add_argument("--readme", nargs="*", default=["README.md", "docs/guide.md"],
                   help="Markdown files whose generated tables and numbers are rewritten (default README.md and "
                        "docs/guide.md, those that exist; '' for none)")
    args = p.parse_args(argv)
    if args.collect:
        copied = collect(args.collect, args.results)
        print(f"collected {', '.join(copied) or 'nothing'} from {args.collect} into {args.results}")
    try:
        readme = [Path(r) for r in args.readme if r and Path(r).exists()]
        make_all(args.results, args.figures_dir, args.tables_dir, args.only, args.allow_missing, readme=readme,
                 pages_dir=Path(args.pages_dir) if args.pages_dir else None)
    except (FileNotFoundError, ValueError) as e:
        print(f"ntkequi figures: {e}", file=sys.stderr)
        return 2
    return 0
