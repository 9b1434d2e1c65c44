"""The C4 group-convolutional network's NTK: ntkequi's own recursion (ArchSpec(kind='gcnn').kernel_fn,
rotation blocks m = r' - r) against neural-tangents' layers of the same network
(kernels.group_stax: the covariance of every pair of (rotation, pixel)), side by side on the same
inputs, at 7x7, 14x14 and 28x28.

    python benchmarks/gcnn_kernels.py            # 7x7, 14x14, 28x28
    python benchmarks/gcnn_kernels.py --quick    # 7x7 and 14x14

Networks: lifting convolution, ReLU, 2x2 pool, group convolution, ReLU, 2x2 pool, then invariant
pooling (GAP over rotations and positions: the full spatial covariance) or a flatten readout
(ntkequi: the band of offsets it needs). Both kernels jitted, NTK with the NNGP, float64,
``kernel_fn(x1, x2)`` with N1 = N2 = N; fastest of 2 warm calls; seconds per kernel entry
(per input pair) and the ratio; beside them ntkequi's kernel of the plain CNN with the same layers
(``kind='cnn'``), whose 4 rotation blocks are the GCNN's floor. Prints a markdown table for
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _timed, machine, versions  # noqa: E402  (benchmarks/run.py: x64, helpers)

import ntkequi.nt  # noqa: E402,F401
from ntkequi.nn import ArchSpec  # noqa: E402

#: (side, N) per size: N small enough for neural-tangents' (4 H W)^2 floats per pair
SIZES = ((7, 8), (14, 4), (28, 2))


def row(side: int, n: int, readout: str) -> dict:
    spec = ArchSpec(kind="gcnn", depth=2, width=1, pool=True, readout=readout, b_std=0.1)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(n, side, side, 1)), rng.normal(size=(n, side, side, 1))
    ours, ref = spec.kernel_fn, jax.jit(spec.kernel_fn_nt, static_argnames="get")
    t_ours = _timed(lambda: ours(x1, x2, "ntk"))
    t_ref = _timed(lambda: ref(x1, x2, get="ntk"))
    cnn = ArchSpec(kind="cnn", depth=2, width=1, pool=True, readout=readout, b_std=0.1).kernel_fn
    t_cnn = _timed(lambda: cnn(x1, x2, "ntk"))
    diff = float(np.max(np.abs(np.asarray(ours(x1, x2, "ntk")) - np.asarray(ref(x1, x2, get="ntk")))))
    return {"side": side, "n": n, "readout": readout, "ours": t_ours / n ** 2, "ref": t_ref / n ** 2,
            "rep": ours.plan((side, side, 1)).rep, "diff": diff, "cnn": t_cnn / n ** 2}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="7x7 and 14x14 only")
    args = ap.parse_args(argv)
    print(f"{machine()}\n{versions()}")
    print("| input | readout | ntkequi representation | N | ntkequi s/entry | group_stax s/entry | ratio "
          "| max abs difference | plain CNN s/entry (ntkequi) | GCNN / CNN |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for side, n in SIZES[:2] if args.quick else SIZES:
        for readout in ("gap", "flatten"):
            r = row(side, n, readout)
            print(f"| {side}x{side} | {readout} | {r['rep']} | {n} | {r['ours']:.3g} | {r['ref']:.3g} "
                  f"| {r['ref'] / r['ours']:.1f} | {r['diff']:.1e} | {r['cnn']:.3g} | {r['ours'] / r['cnn']:.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
