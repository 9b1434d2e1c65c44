"""The ``ntkequi`` command."""
from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from . import demo
    from .arch import ArchSpec
    cfg = demo.DemoConfig(
        arch=ArchSpec(kind="mlp", depth=args.depth, activation=args.activation, b_std=1.0),
        group_order=args.group_order, n_train=args.n_train, n_eval=args.n_eval,
        seed=args.seed)
    print(f"ntkequi demo -> {args.out}  (config: group C{cfg.group_order} on the plane, "
          f"{cfg.n_train} training points, {cfg.arch.depth}-layer {cfg.arch.activation} MLP NTK)")
    done = demo.run(cfg, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    print(demo.table(done, cfg))
    from .results import write_command
    write_command(args.out, "default" if cfg == demo.DemoConfig() else "custom", ["ntkequi"] + sys.argv[1:])
    print(f"\nwrote {args.out}/config.json, versions.json, results.jsonl, demo.png, demo.pdf")
    if args.figures_dir:
        from pathlib import Path
        from .figures import save
        paths = save(demo.figure(cfg, done), Path(args.figures_dir) / "demo")
        print(f"wrote {paths[0]} and .pdf")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ntkequi", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="analytic NTK ensembles with/without orbit augmentation on toy data")
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--group-order", type=int, default=8, help="n of the rotation group C_n")
    d.add_argument("--n-train", type=int, default=64)
    d.add_argument("--n-eval", type=int, default=32)
    d.add_argument("--depth", type=int, default=2)
    d.add_argument("--activation", default="relu", choices=["relu", "erf", "gelu"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true",
                   help="discard results in --out made with a different config")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--figures-dir", default=None,
                   help="also write the figure (PNG and PDF) there (the README's figures/demo.png "
                        "comes from results/demo by `ntkequi figures`)")
    d.set_defaults(func=_demo)
    f = sub.add_parser("figures", add_help=False,
                       help="every figure, caption and paper table from the saved results (no retraining)")
    f.set_defaults(func=None)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["figures"]:
        from . import figures
        return figures.cli(argv[1:])
    args = p.parse_args(argv)
    for name in ("group_order", "n_train", "n_eval", "depth"):
        if getattr(args, name, 1) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
