"""Kernel tiles in float32 vs float64: the pooled flatten CNN kernel (the OSP table's member,
ArchSpec depth 2, 2x2 pool + flatten, 28x28) on x1 != x2 tiles of N x N images, both dtypes
side by side in one process, per pair = seconds / N^2 (the fastest of 2 calls after a
warm-up). fmnist_ntk_scale computes its flatten tiles in float32 (ArchCase.kernel_dtype) and
solves in float64; this is the speed that buys, and how it depends on the tile size.

    python benchmarks/tile_dtype.py              # N = 16, 64, 128: about 2 minutes on 2 CPU cores
    python benchmarks/tile_dtype.py --out ''     # print only

Prepends a section to benchmarks/RESULTS.md with machine, date and versions.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from run import _timed, machine, versions  # noqa: E402  (benchmarks/run.py: x64 on, helpers)

from ntkequi.nn import ArchSpec  # noqa: E402

SPEC = ArchSpec(kind="cnn", depth=2, width=64, out_dim=10, pool=True, readout="flatten")


def measure(n: int) -> dict:
    """Per-pair microseconds in float64 and float32 for an n x n tile, and their largest
    relative difference."""
    rng = np.random.default_rng(n)
    a, b = rng.random((n, 28, 28, 1)), rng.random((n, 28, 28, 1))
    out = {}
    vals = {}
    for dt in ("float64", "float32"):
        x1, x2 = jnp.asarray(a, dt), jnp.asarray(b, dt)
        out[dt] = _timed(lambda: SPEC.kernel_fn(x1, x2, ("nngp", "ntk")).ntk) / n ** 2 * 1e6
        vals[dt] = np.asarray(SPEC.kernel_fn(x1, x2, ("nngp", "ntk")).ntk, np.float64)
    out["rel_diff"] = float(np.max(np.abs(vals["float32"] - vals["float64"]) / np.abs(vals["float64"])))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[16, 64, 128], help="tile sides N")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="markdown file to prepend to ('' = print only)")
    args = ap.parse_args(argv)
    rows = []
    for n in args.sizes:
        r = measure(n)
        rows.append((n, r))
        print(f"N = {n}: float64 {r['float64']:.1f} us/pair, float32 {r['float32']:.1f} us/pair, "
              f"float64/float32 {r['float64'] / r['float32']:.2f}x, rel. diff {r['rel_diff']:.0e}", flush=True)
    if not args.out:
        return
    lines = [f"## Kernel tiles, float32 vs float64 (CPU): {datetime.date.today().isoformat()}", "",
             f"Machine: {machine()}.  ", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".  ",
             "Command: `python benchmarks/tile_dtype.py`.", "",
             "ntkequi's kernel of the OSP table's member (depth 2, 2x2 pool + flatten, 28x28), NTK with its "
             "NNGP, on an N x N tile of two different image sets, both dtypes in one process; per pair = "
             "time / N^2; rel. diff: largest relative difference of the float32 NTK from the float64 one.", "",
             "| N | float64 us/pair | float32 us/pair | float64 / float32 | rel. diff |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {r['float64']:.1f} | {r['float32']:.1f} | **{r['float64'] / r['float32']:.2f}** | "
              f"{r['rel_diff']:.0e} |" for n, r in rows]
    path = Path(args.out)
    old = path.read_text() if path.exists() else "# ntkequi benchmark results\n"
    head, _, body = old.partition("\n## ")
    path.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + "\n" + ("\n## " + body if body else ""))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
