"""One worker of a shared TileStore, for tests/test_stored.py: fills the store at argv[1] (a small
C4 CNN kernel on fixed random images) and prints one JSON line: the tiles it computed.
``--hold``: after claiming its first tile, write ``<store>/held`` and sleep instead of computing
(a worker to kill mid-tile). ``--start F``: where in the missing tiles it starts.
``--distributed PORT N I``: process I of N under ``ntkequi.distributed`` (coordinator on
localhost:PORT), starting at I / N, and a barrier after its tiles."""
import argparse
import json
import time
from pathlib import Path

import sys

import jax

jax.config.update("jax_enable_x64", True)
if "--distributed" in sys.argv:             # before any JAX computation
    from ntkequi import distributed
    i = sys.argv.index("--distributed")
    port, n, pid = sys.argv[i + 1:i + 4]
    distributed.initialize(f"localhost:{port}", int(n), int(pid))
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
    ap.add_argument("--distributed", nargs=3, type=int, default=None)
    args = ap.parse_args()
    if args.distributed:
        args.start = jax.process_index() / jax.process_count()
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
    if args.distributed:
        from ntkequi import distributed
        distributed.barrier("tiles")
        computed = {"process": jax.process_index(), "processes": jax.process_count(), "tiles": computed}
    print(json.dumps(computed))
