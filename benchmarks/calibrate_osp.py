"""Step-size calibration for the orbit table's models: one network of ``--model`` at C_n,
trained exactly as ``ntkequi run fmnist_osp_table --preset cpu`` trains it
(``fmnist_osp_table.train_config``: one-cycle Adam, minibatches of 128 with one random
rotation per image per step) but for ``--epochs`` over the 55,000 training images of seed
0's split, once per peak step size in ``--lr``, side by side in one run. Prints test
accuracy on the first ``--n-test`` unrotated test images of that split (validation is
not used, so it stays untouched for later checks) and the wall time of each.

This is where the cpu preset's peak step sizes come from (docs/guide.md, benchmarks/RESULTS.md):

    python benchmarks/calibrate_osp.py --model deep_ensemble --n 4 --lr 0.03 0.1 0.3
    python benchmarks/calibrate_osp.py --model gcnn --n 16 --lr 2e-3 5e-3 1e-2 --rings 0
    python benchmarks/calibrate_osp.py --model gcnn --n 16 --lr 1e-2
    python benchmarks/calibrate_osp.py --model canonicalization --n 8 --lr 0.03
    python benchmarks/calibrate_osp.py --model canonicalization --n 16 --lr 0.1

Each run takes 1-3 min on a 2-core CPU. ``--data-dir`` or NTKEQUI_DATA_DIR: the IDX files.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import ntkequi  # noqa: F401
from ntkequi import data, ensembles, groups, metrics
from ntkequi.experiments import fmnist_osp_table as osp


def calibrate(cfg: osp.TableConfig, model: str, n: int, lr: float, epochs: float, n_test: int,
              data_dir=None) -> dict:
    """Test accuracy of one network of ``model`` at C_n trained for ``epochs`` at peak ``lr``.

    Returns:
        ``{"accuracy", "steps", "seconds"}``.
    """
    split = dataclasses.replace(cfg.split, n_test=n_test, seed=0)
    sets = data.splits(split, "fashion_mnist", data_dir)
    x, y = sets["train"]
    xt, yt = sets["test"]
    steps = max(1, int(epochs * x.shape[0] / cfg.batch_size))
    if model == "gcnn":
        cfg = dataclasses.replace(cfg, gcnn=dataclasses.replace(cfg.gcnn, learning_rate=lr))
    elif model == "canonicalization":
        cfg = dataclasses.replace(cfg, canon=dataclasses.replace(cfg.canon, learning_rate=lr))
    else:
        cfg = dataclasses.replace(cfg, learning_rate=lr)
    tcfg = dataclasses.replace(osp.train_config(cfg, model, seed=0, steps=steps), ensemble_size=1,
                               checkpoint_every=0)
    t = time.perf_counter()
    res = ensembles.train(osp.model_spec(cfg, model, n), tcfg, ensembles.TrainingData(x, np.eye(cfg.cnn.out_dim, dtype=np.float32)[y], xt, groups.rotations(n, (28, 28))),
                          progress=False)
    return {"accuracy": metrics.accuracy(res.members[-1][0], yt), "steps": steps,
            "seconds": time.perf_counter() - t}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=osp.MODELS)
    ap.add_argument("--n", type=int, required=True, help="group order C_n")
    ap.add_argument("--lr", type=float, nargs="+", required=True, help="peak step sizes to compare")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--rings", type=int, default=None, help="override the GCNN's ring pooling (0: global)")
    ap.add_argument("--preset", default="cpu", choices=sorted(osp.PRESETS))
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    if any(not lr > 0 for lr in args.lr):
        ap.error(f"--lr must be > 0; got {args.lr}")
    if not args.epochs > 0:
        ap.error(f"--epochs must be > 0; got {args.epochs}")
    cfg = osp.PRESETS[args.preset]
    if args.rings is not None:
        cfg = dataclasses.replace(cfg, gcnn=dataclasses.replace(cfg.gcnn, rings=args.rings))
    print(f"{args.model} C{args.n}, preset {args.preset}, GCNN rings {cfg.gcnn.rings}, {args.epochs:g} epoch(s), "
          f"one-cycle Adam, seed 0, accuracy on {args.n_test} unrotated test images")
    print("| model | group | peak step size | steps | test accuracy | seconds |")
    print("|---|---|---|---|---|---|")
    for lr in args.lr:
        r = calibrate(cfg, args.model, args.n, lr, args.epochs, args.n_test, args.data_dir)
        print(f"| {args.model} | C{args.n} | {lr:g} | {r['steps']} | {r['accuracy']:.3f} | {r['seconds']:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
