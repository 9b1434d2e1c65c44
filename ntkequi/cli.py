"""The ``ntkequi`` command: ``run``, ``list``, ``demo``, ``figures``.

    ntkequi list                                   # experiments, presets, CPU time
    ntkequi run NAME [--preset P] [--set FIELD=VALUE ...] [--data-dir D] [--out O] [--no-progress] [--overwrite]
    ntkequi demo [--group-order N ...]             # the demo with its own knobs
    ntkequi figures [--collect runs] ...           # figures, tables, pages from results/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import experiments
from .report import build


def run_and_report(name: str, preset: str = "small", out=None, *, cfg=None, data_dir=None,
                   progress: bool = True, overwrite: bool = False, argv=None, overrides=()) -> int:
    """Run (or resume) an experiment (:func:`ntkequi.experiments.run_experiment`), draw its
    figures into its run directory and print its summary."""
    module = experiments.get(name)
    cfg, out, done = experiments.run_experiment(name, preset, out, cfg=cfg, data_dir=data_dir,
                                                progress=progress, overwrite=overwrite, argv=argv,
                                                overrides=overrides)
    build.draw_run(name, out)
    print(module.summary(cfg, done))
    return 0


def _run(args) -> int:
    if args.distributed or args.coordinator is not None:
        return _run_distributed(args)
    if args.worker is not None:
        computed = experiments.fill_tiles(args.name, args.preset, args.out, worker=args.worker,
                                          data_dir=args.data_dir, progress=not args.no_progress, overrides=args.set)
        print(f"worker {args.worker[0]}/{args.worker[1]}: computed {computed} tile(s); every tile of the run is on disk")
        return 0
    return run_and_report(args.name, args.preset, args.out, data_dir=args.data_dir,
                          progress=not args.no_progress, overwrite=args.overwrite, argv=args.argv,
                          overrides=args.set)


def _run_distributed(args) -> int:
    """Every process fills its share of the run's tiles; after a barrier, process 0 runs (solves
    from the tiles and records)."""
    from . import distributed
    index, count = distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    computed = experiments.fill_tiles(args.name, args.preset, args.out, worker=(index + 1, count),
                                      data_dir=args.data_dir, progress=not args.no_progress and index == 0,
                                      overrides=args.set)
    print(f"process {index}/{count}: computed {computed} tile(s)", flush=True)
    distributed.barrier("ntkequi-tiles")
    if index != 0:
        return 0
    return run_and_report(args.name, args.preset, args.out, data_dir=args.data_dir, progress=not args.no_progress,
                          overwrite=args.overwrite, argv=args.argv, overrides=args.set)


def _list(args) -> int:
    print(f"{'experiment':<22} {'data':<5} presets (wall time last measured on 2 CPU cores)")
    for m in experiments.all_modules():
        presets = ", ".join(f"{p} ({m.CPU_TIME.get(p, '?')})" for p in m.PRESETS)
        print(f"{m.NAME:<22} {'yes' if m.USES_DATA else '':<5} {presets}")
    print("\nntkequi run NAME [--preset P] [--data-dir DIR] [--out DIR]; results go to runs/NAME[-PRESET]/")
    return 0


def _demo(args) -> int:
    from .experiments import demo
    from .nn import ArchSpec
    cfg = demo.DemoConfig(
        arch=ArchSpec(kind="mlp", depth=args.depth, activation=args.activation, b_std=1.0),
        group_order=args.group_order, n_train=args.n_train, n_eval=args.n_eval,
        seed=args.seed)
    print(f"ntkequi demo -> {args.out}  (config: group C{cfg.group_order} on the plane, "
          f"{cfg.n_train} training points, {cfg.arch.depth}-layer {cfg.arch.activation} MLP NTK)")
    rc = run_and_report("demo", "small", args.out, cfg=cfg, progress=not args.no_progress,
                        overwrite=args.overwrite, argv=["ntkequi"] + list(args.argv))
    print(f"\nwrote {args.out}/config.json, versions.json, results.jsonl, demo.png, demo.pdf")
    if args.figures_dir:
        from .runs import load_run
        paths = build.save(demo.figure(cfg, load_run(args.out, demo.Config).done), Path(args.figures_dir) / "demo")
        print(f"wrote {paths[0]} and .pdf")
    return rc


def _positive(name):
    def parse(v):
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} must be an integer; got {v!r}") from None
        if n < 1:
            raise argparse.ArgumentTypeError(f"--{name} must be >= 1; got {n}")
        return n
    return parse


def main(argv=None) -> int:
    """Entry point of the ``ntkequi`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["figures"]:
        return build.cli(argv[1:])
    p = argparse.ArgumentParser(prog="ntkequi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run (or resume) an experiment")
    r.add_argument("name", choices=experiments.NAMES, metavar="NAME", help="an experiment (ntkequi list)")
    r.add_argument("--preset", default="small")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change one field of the preset's config, parsed as its type: --set seeds='(0, 1)', "
                        "--set problems.0.widths='(64, 128)' (repeatable; recorded in command.json and "
                        "config.json; a run directory refuses a resumed run with other overrides)")
    r.add_argument("--out", default=None, help="run directory (default runs/NAME[-PRESET])")
    r.add_argument("--data-dir", default=None,
                   help="folder with the FashionMNIST/MNIST IDX files (default $NTKEQUI_DATA_DIR)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--overwrite", action="store_true", help="discard results in --out made with another config")
    r.add_argument("--worker", default=None, metavar="K/N",
                   help="be worker K of N of the run in --out: only fill its shared kernel tiles (each claimed, "
                        "computed once), beside the other workers and the run itself, then exit; no lock, no "
                        "records (fmnist_ntk_scale; start them with the run's --preset and --set)")
    r.add_argument("--distributed", action="store_true",
                   help="one process of a multi-process run (jax.distributed), its coordinator, count and index "
                        "read from the environment (Slurm, Open MPI): every process fills its share of the "
                        "kernel tiles, then process 0 solves and records (fmnist_ntk_scale)")
    r.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="as --distributed, with process 0's address given (with --num-processes, --process-id)")
    r.add_argument("--num-processes", type=int, default=None)
    r.add_argument("--process-id", type=int, default=None)
    r.set_defaults(func=_run)
    sub.add_parser("list", help="experiments and presets with their expected CPU time").set_defaults(func=_list)
    d = sub.add_parser("demo", help="analytic NTK ensembles with/without orbit augmentation on toy data")
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--group-order", type=_positive("group-order"), default=8, help="n of the rotation group C_n")
    d.add_argument("--n-train", type=_positive("n-train"), default=64)
    d.add_argument("--n-eval", type=_positive("n-eval"), default=32)
    d.add_argument("--depth", type=_positive("depth"), default=2)
    d.add_argument("--activation", default="relu", choices=["relu", "erf", "gelu"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true",
                   help="discard results in --out made with a different config")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--figures-dir", default=None,
                   help="also write the figure (PNG and PDF) there (the README's figures/demo.png "
                        "comes from results/demo by `ntkequi figures`)")
    d.set_defaults(func=_demo)
    sub.add_parser("figures", add_help=False,
                   help="every figure, caption, table and results page from the saved results (no retraining)")
    args = p.parse_args(argv)
    args.argv = argv
    if args.command == "run":
        module = experiments.get(args.name)
        if args.preset not in module.PRESETS:
            p.error(f"experiment {args.name!r} has no preset {args.preset!r}; presets: {', '.join(module.PRESETS)}")
        from .runs import with_overrides
        try:
            with_overrides(module.PRESETS[args.preset], args.set)      # bad overrides fail before any work
        except ValueError as e:
            p.error(str(e))
        args.argv = ["ntkequi"] + argv          # recorded in command.json
        if args.worker is not None:
            try:
                k, total = (int(v) for v in args.worker.split("/"))
            except ValueError:
                p.error(f"--worker must be K/N (e.g. 2/8); got {args.worker!r}")
            if not 1 <= k <= total:
                p.error(f"--worker K/N needs 1 <= K <= N; got {args.worker!r}")
            if args.name not in experiments.tiled():
                p.error(f"experiment {args.name!r} has no shared kernel tiles; --worker runs for: "
                        f"{', '.join(experiments.tiled())}")
            args.worker = (k, total)
        if args.distributed or args.coordinator is not None:
            if args.worker is not None:
                p.error("--worker and --distributed/--coordinator exclude each other (a multi-process run "
                        "numbers its workers itself)")
            if args.name not in experiments.tiled():
                p.error(f"multi-process runs share kernel tiles; experiment {args.name!r} has none "
                        f"(multi-process runs: {', '.join(experiments.tiled())})")
            explicit = [args.coordinator, args.num_processes, args.process_id]
            if args.distributed and any(v is not None for v in explicit):
                p.error("--distributed reads the processes from the environment; give either it or "
                        "--coordinator/--num-processes/--process-id")
            if args.coordinator is not None and None in explicit:
                p.error("--coordinator needs --num-processes and --process-id")
        elif args.num_processes is not None or args.process_id is not None:
            p.error("--num-processes/--process-id need --coordinator HOST:PORT")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
