"""One worker of a shared TileStore, for tests/test_stored.py: fills the store at argv[1] (a small
C4 CNN kernel on fixed random images) and prints one JSON line: the tiles it computed.
``--hold``: after claiming its first tile, write ``<store>/held`` and sleep instead of computing
(a worker to kill mid-tile). ``--start F``: where in the missing tiles it starts."""
import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

from ntkequi import groups  # noqa: E402
from ntkequi.kernels import TileStore  # noqa: E402
from ntkequi.nn import ArchSpec  # noqa: E402


def store(path) -> TileStore:
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(6, 4, 4, 1)), rng.normal(size=(3, 4, 4, 1))
    spec = ArchSpec(kind="cnn", depth=1, width=1, pool=True, b_std=0.1)
    return TileStore(path, spec.kernel_fn, groups.rotations(4, (4, 4)), x, xt, tile=2)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--start", type=float, default=0.0)
    args = ap.parse_args()
    s = store(args.path)
    computed, original = [], s._compute

    def recorded(*tile):
        if args.hold:
            (Path(args.path) / "held").write_text(json.dumps(tile))
            time.sleep(600)
        computed.append(list(tile))
        return original(*tile)
    s._compute = recorded
    s.compute(progress=False, start=args.start)
    print(json.dumps(computed))
