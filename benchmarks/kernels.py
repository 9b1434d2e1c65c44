"""Analytic CNN kernels: ntkequi's recursions (ArchSpec.kernel_fn) against neural-tangents'
kernel of the same spec (ArchSpec.kernel_fn_nt), side by side on the same inputs.

    python benchmarks/kernels.py                  # full table (about 10 minutes on 2 CPU cores)
    python benchmarks/kernels.py --quick          # 14x14 only
    python benchmarks/kernels.py --out ''         # print only

Each configuration (depth 2 / 4; flatten, 2x2 pool + flatten, GAP, 2x2 pool + GAP; 14x14 / 28x28;
float64 / float32) runs in its own process (neural-tangents' jitted pooled kernel has crashed
XLA:CPU with a segfault; a crash marks the row instead of ending the run), timing both
implementations there on the same x1 (N x H x W x 1) and x2 (N x ...), NTK (with the NNGP it
needs). Per kernel entry = seconds / (N1 N2); 'symmetric' is ntkequi's kernel_fn(x, None), which
computes each unordered pair once. Also printed: the machine's measured matmul and elementwise
rates, and ntkequi's achieved rate on the arithmetic its recursion needs (counted below), as a
fraction of the elementwise rate (the recursion is elementwise arithmetic, not matmuls).
Results are prepended to benchmarks/RESULTS.md with machine, date and versions.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
from pathlib import Path

from run import _timed, machine, matmul_rate, versions  # noqa: E402  (benchmarks/run.py: x64, helpers)

HERE = Path(__file__).resolve().parent

CONFIGS = [(depth, readout, pool, side, dtype)
           for dtype in ("float64", "float32")
           for side in (14, 28)
           for depth in (2, 4)
           for readout, pool in (("flatten", False), ("flatten", True), ("gap", False), ("gap", True))]

#: arithmetic counted per covariance entry (NNGP and NTK together): a conv step is k adds per
#: spatial axis (2 axes) plus a scale and a bias, for each of the two kernels; the ReLU step is
#: about 40 operations (the 12-term arcsin polynomial, a square root, a division and the
#: products); a 2x2 pool is 4 adds per axis per output entry for each kernel
FLOPS_CONV, FLOPS_ACT, FLOPS_POOL = 2 * (2 * 3 + 2), 40, 2 * 8


def needed_flops(plan) -> float:
    """Arithmetic ntkequi's recursion needs per kernel entry (see the constants above)."""
    total = 0.0
    for layer, size, (rh, rw) in zip(plan.layers, plan.sizes, plan.radii):
        if not size:
            continue
        h, w = size
        entries = (h * w) ** 2 if plan.rep == "full" else h * w * (2 * rh + 1) * (2 * rw + 1)
        total += {"conv": FLOPS_CONV, "act": FLOPS_ACT, "pool": FLOPS_POOL / 4}.get(layer.kind, 0) * entries
    return total


def rates() -> dict:
    """Measured float64/float32 dense matmul and elementwise (fused multiply-add chain) rates."""
    import jax
    out = {}
    for dt in ("float64", "float32"):
        out[f"matmul_{dt}"] = matmul_rate(dt, 2048)
        v = jax.random.normal(jax.random.PRNGKey(0), (1 << 18,), dtype=dt)     # in cache

        def chain(v):
            return jax.lax.fori_loop(0, 200, lambda i, u: u * 0.999 + 0.001, v)
        ch = jax.jit(chain)
        out[f"elementwise_{dt}"] = 2 * 200 * v.size / _timed(lambda: ch(v), 3)
    return out


def child(depth: int, readout: str, pool: bool, side: int, dtype: str) -> dict:
    import jax
    import numpy as np

    from ntkequi.nn import ArchSpec
    spec = ArchSpec(kind="cnn", depth=depth, readout=readout, pool=pool)
    kfn = spec.kernel_fn
    plan = kfn.plan((side, side, 1))
    per_pair = plan.floats_per_pair
    n = int(max(2, min(128, math.isqrt(int(4e6 // per_pair)))))   # pairs enough to time, not too many
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(n, side, side, 1)).astype(dtype)
    x2 = rng.normal(size=(n, side, side, 1)).astype(dtype)
    ours = _timed(lambda: kfn(x1, x2, "ntk"))
    sym = _timed(lambda: kfn(x1, None, "ntk"))
    nt = jax.jit(spec.kernel_fn_nt, static_argnums=2)
    theirs = _timed(lambda: nt(x1, x2, "ntk"), repeats=1)
    err = float(np.max(np.abs(np.asarray(kfn(x1, x2, "ntk"), np.float64) - np.asarray(nt(x1, x2, "ntk"), np.float64)))
                / np.max(np.abs(np.asarray(nt(x1, x2, "ntk"), np.float64))))
    entries = n * n
    return dict(n=n, rep=plan.rep, floats_per_pair=per_pair, ours_us=ours / entries * 1e6,
                sym_us=sym / entries * 1e6, nt_us=theirs / entries * 1e6, ratio=theirs / ours,
                rel_diff=err, needed_flops=needed_flops(plan))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="14x14 only")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="markdown file to prepend to ('' = print only)")
    ap.add_argument("--label", default="", help="heading for this run (default: the backend)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(*json.loads(args.child))))
        return
    r = rates()
    print(f"machine: {machine()}", flush=True)
    print("rates: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in r.items()), flush=True)
    rows = []
    for cfg in CONFIGS:
        if args.quick and cfg[3] != 14:
            continue
        depth, readout, pool, side, dtype = cfg
        if pool and side >> depth < 1:
            continue                      # depth pools leave nothing of the image
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        row = dict(depth=depth, readout=readout, pool=pool, side=side, dtype=dtype)
        if line:
            row.update(json.loads(line[0][7:]))
            row["rate"] = row["needed_flops"] / (row["ours_us"] * 1e-6)
            row["frac"] = row["rate"] / r[f"elementwise_{dtype}"]
        else:
            row["error"] = f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        rows.append(row)
        name = f"depth {depth} {'pool+' if pool else ''}{readout} {side}x{side} {dtype}"
        if "error" in row:
            print(f"  {name}: {row['error']}", flush=True)
        else:
            print(f"  {name}: nt {row['nt_us']:.1f} us/entry, ntkequi {row['ours_us']:.2f} (symmetric "
                  f"{row['sym_us']:.2f}), nt/ntkequi {row['ratio']:.1f}x, rel. diff {row['rel_diff']:.1e}, "
                  f"{row['rate'] / 1e9:.2f} GFLOP/s = {row['frac']:.0%} of elementwise", flush=True)
    if args.out:
        write(Path(args.out), args.label or jax_backend(), r, rows)
        print(f"wrote {args.out}")


def jax_backend() -> str:
    import jax
    return jax.default_backend().upper()


def write(path: Path, label: str, r: dict, rows: list):
    lines = [f"## Analytic CNN kernels, ntkequi vs neural-tangents ({label}): {datetime.date.today().isoformat()}", "",
             f"Machine: {machine()}.  ", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".  ",
             "Command: `python benchmarks/kernels.py`.  ",
             "Rates measured here: " + ", ".join(f"{k.replace('_', ' ')} {v / 1e9:.1f} GFLOP/s" for k, v in r.items())
             + ".", "",
             "NTK (with its NNGP) between two different sets of N images, both implementations in one process "
             "on the same inputs; per entry = time / N^2. 'symmetric': ntkequi's `kernel_fn(x, None)`. "
             "'needed': arithmetic ntkequi's recursion does per entry (benchmarks/kernels.py), and the rate "
             "at which it does it as a fraction of the measured elementwise rate.", "",
             "| depth | readout | image | dtype | N | per pair (floats) | neural-tangents us/entry | ntkequi us/entry "
             "| symmetric us/entry | nt / ntkequi | rel. diff | needed kFLOP/entry | GFLOP/s | of elementwise |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in rows:
        ro = ("2x2 pool + " if w["pool"] else "") + w["readout"]
        head = f"| {w['depth']} | {ro} | {w['side']}x{w['side']} | {w['dtype']} "
        if "error" in w:
            lines.append(head + f"| | | {w['error']} | | | | | | | |")
            continue
        lines.append(head + f"| {w['n']} | {w['floats_per_pair']:,} ({w['rep']}) | {w['nt_us']:.1f} | "
                     f"{w['ours_us']:.2f} | {w['sym_us']:.2f} | **{w['ratio']:.1f}** | {w['rel_diff']:.0e} | "
                     f"{w['needed_flops'] / 1e3:,.0f} | {w['rate'] / 1e9:.2f} | {w['frac']:.0%} |")
    text = "\n".join(lines) + "\n"
    old = path.read_text() if path.exists() else "# ntkequi benchmark results\n"
    head, _, body = old.partition("\n## ")
    path.write_text(head.rstrip() + "\n\n" + text + ("\n## " + body if body else ""))


if __name__ == "__main__":
    main()
