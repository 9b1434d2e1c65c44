"""The command line every experiment module shares: preset, output directory, progress,
data directory; run (resumable), record the command, draw the run's figures, print its table."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from .results import write_command

__all__ = ["cli"]


def cli(name: str, presets: dict, run: Callable, report: Callable, doc: str, uses_data: bool = False,
        argv=None) -> int:
    """``python experiments/<name>.py [--preset P] [--out DIR] [--no-progress] [--data-dir D]``.

    ``run(cfg, out, progress=..., [data_dir=...]) -> done``; ``report(cfg, done) -> str`` is
    printed. The default run directory is ``runs/<name>`` for the 'small' preset and
    ``runs/<name>-<preset>`` otherwise; figures of ``name`` (see :data:`ntkequi.figures.RUNS`)
    are drawn into it."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(presets), default="small")
    p.add_argument("--out", default=None, help=f"run directory (default runs/{name}[-PRESET])")
    p.add_argument("--no-progress", action="store_true")
    if uses_data:
        p.add_argument("--data-dir", default=None,
                       help="folder with the FashionMNIST/MNIST IDX files (default $NTKEQUI_DATA_DIR)")
    args = p.parse_args(argv)
    cfg = presets[args.preset]
    out = Path(args.out or f"runs/{name}" + ("" if args.preset == "small" else f"-{args.preset}"))
    kwargs = {"data_dir": args.data_dir} if uses_data else {}
    done = run(cfg, out, progress=not args.no_progress, **kwargs)
    write_command(out, args.preset)
    from .figures import draw_run
    draw_run(name, out)
    print(report(cfg, done))
    return 0
