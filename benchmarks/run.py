"""ntkequi benchmarks: every ratio measured in one run on one machine.

    python benchmarks/run.py                 # full (about 10-15 minutes on 2 CPU cores)
    python benchmarks/run.py --quick         # smaller sizes (about 2 minutes)
    python benchmarks/run.py --out benchmarks/RESULTS.md --label "2-core CPU"

Sections:
  1. orbit-augmented NTK prediction: group-structured solve vs the direct |G|N x |G|N
     solve (time and peak memory, each in its own process) for C4, C8, C16 acting
     exactly on points (MLP NTK), and the unaugmented solve on the same N;
  2. ensemble training: one vmapped step of M members vs a Python loop over the members
     (same total work);
  3. achieved FLOP rate of ensemble training and of analytic kernel computation, as a
     fraction of this machine's dense matmul rate (measured here; FLOPs from XLA's
     cost analysis of the compiled computation);
  4. analytic CNN kernel cost per kernel entry with flatten readout vs global average
     pooling, against the arithmetic each needs.
Results are printed and written (markdown, with machine, date and versions) to --out.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import ntkequi  # noqa: E402,F401
from ntkequi import ensembles, groups  # noqa: E402
from ntkequi.kernels import ntk, structured  # noqa: E402
from ntkequi.nn import ArchSpec  # noqa: E402

HERE = Path(__file__).resolve().parent


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _device_bytes(key: str) -> int:
    """``bytes_in_use`` / ``peak_bytes_in_use`` of the first accelerator (0 on CPU)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return int(stats.get(key, 0))


def _memory_kind() -> str:
    return "host RSS" if jax.default_backend() == "cpu" else "device memory"


def _timed(fn, repeats: int = 2) -> float:
    """Seconds of the fastest of ``repeats`` calls after one warm-up (compilation)."""
    jax.block_until_ready(fn())
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def _flops(compiled) -> float:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0]
    return float(ca.get("flops", float("nan")))


# ----------------------------------------------------------------------------
# 1. structured vs direct (each measurement in a child process: peak memory)
# ----------------------------------------------------------------------------

def _prediction_child(order: int, n: int, method: str) -> dict:
    """One prediction in this process: ``method`` in direct / structured / plain; the
    same jitted kernel_fn for all three, and the kernel evaluations timed separately
    (the solve is the rest)."""
    arch = ntk.jit_kernel(ArchSpec(kind="mlp", depth=2, b_std=0.5).kernel_fn)
    g = groups.planar_rotations(order)
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (n, 2))
    y = jnp.sin(jnp.linalg.norm(x, axis=1, keepdims=True))
    xt = jax.random.normal(jax.random.PRNGKey(1), (n, 2))
    ts = [1.0, 10.0, math.inf]
    if method == "plain":
        fn = lambda: ntk.predict(arch, x, y, xt, ts, diag_reg=1e-4).mean  # noqa: E731
    else:
        fn = lambda: ntk.predict(arch, x, y, xt, ts, group=g, diag_reg=1e-4,  # noqa: E731
                                 solver=method).mean
    if method == "plain":
        kern = lambda: (arch(x, None, "ntk"), arch(xt, x, "ntk"))  # noqa: E731
    elif method == "direct":
        xa, _ = ntk.augment(g, x, y)
        kern = lambda: (arch(xa, None, "ntk"), arch(xt, xa, "ntk"))  # noqa: E731
    else:
        kern = lambda: (structured.kernel_blocks(arch, g, x, None, ("ntk",)),  # noqa: E731
                        structured.kernel_blocks(arch, g, xt, x, ("ntk",)))
    on_cpu = jax.default_backend() == "cpu"
    base = _rss_bytes() if on_cpu else _device_bytes("bytes_in_use")
    jax.block_until_ready(fn())              # warm-up: compilation
    t = time.perf_counter()
    mean = jax.block_until_ready(fn())
    sec = time.perf_counter() - t
    # peak over the process (its own child): host RSS on CPU, the accelerator's allocator elsewhere
    peak = ((_peak_rss_bytes() if on_cpu else _device_bytes("peak_bytes_in_use")) - base) / 2 ** 20
    jax.block_until_ready(kern())
    t = time.perf_counter()
    jax.block_until_ready(kern())
    ksec = time.perf_counter() - t
    return {"seconds": sec, "kernel_s": ksec, "solve_s": max(sec - ksec, 0.0), "peak_mib": peak,
            "mean": np.asarray(mean).ravel()[:64].tolist()}


def _child(order: int, n: int, method: str) -> dict:
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}   # GPU: allocate what is used
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps([order, n, method])],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(order, n, d, s, p):
    agree = (float(np.abs(np.subtract(d["mean"], s["mean"])).max() / np.abs(d["mean"]).max())
             if d else float("nan"))
    nan = float("nan")
    return dict(group=f"C{order}", n=n,
                direct_s=d["seconds"] if d else nan, direct_solve_s=d["solve_s"] if d else nan,
                direct_mib=d["peak_mib"] if d else nan,
                structured_s=s["seconds"], structured_kernel_s=s["kernel_s"], structured_solve_s=s["solve_s"],
                structured_mib=s["peak_mib"], plain_s=p["seconds"], plain_kernel_s=p["kernel_s"],
                plain_solve_s=p["solve_s"], plain_mib=p["peak_mib"],
                speedup=d["seconds"] / s["seconds"] if d else nan,
                vs_plain=s["seconds"] / p["seconds"],
                solve_vs_plain=s["solve_s"] / max(p["solve_s"], 1e-9), rel_diff=agree)


def bench_structured(quick: bool) -> list:
    rows = []
    sizes = [(4, 64), (8, 64), (16, 64)] if quick else [(4, 256), (8, 256), (16, 256)]
    for order, n in sizes:
        d, s, p = (_child(order, n, m) for m in ("direct", "structured", "plain"))
        r = _row(order, n, d, s, p)
        rows.append(r)
        print(f"  C{order:<2} N={n}: direct {r['direct_s']:.2f} s / {r['direct_mib']:.0f} MiB; structured "
              f"{r['structured_s']:.3f} s (kernels {r['structured_kernel_s']:.3f} + solve "
              f"{r['structured_solve_s']:.3f}) / {r['structured_mib']:.0f} MiB; unaugmented "
              f"{r['plain_s']:.3f} s (solve {r['plain_solve_s']:.3f}); direct/structured "
              f"{r['speedup']:.1f}x; structured/unaugmented total {r['vs_plain']:.2f}, solve "
              f"{r['solve_vs_plain']:.2f}; max rel diff {r['rel_diff']:.1e}", flush=True)
    big = 1024 if quick else 2048
    for order in (16,):
        s, p = _child(order, big, "structured"), _child(order, big, "plain")
        r = _row(order, big, None, s, p)
        rows.append(r)
        direct_gib = 3 * (order * big) ** 2 * 8 / 2 ** 30
        print(f"  C{order:<2} N={big}: structured {r['structured_s']:.2f} s (kernels "
              f"{r['structured_kernel_s']:.2f} + solve {r['structured_solve_s']:.2f}) / "
              f"{r['structured_mib']:.0f} MiB; unaugmented {r['plain_s']:.2f} s (solve "
              f"{r['plain_solve_s']:.2f}); structured/unaugmented total {r['vs_plain']:.2f}, solve "
              f"{r['solve_vs_plain']:.2f} (direct not run: its kernels alone need ~{direct_gib:.0f} GiB)",
              flush=True)
    return rows


# ----------------------------------------------------------------------------
# 2. + 3. ensembles: vmap vs loop; FLOP rate
# ----------------------------------------------------------------------------

def matmul_rate(dtype, n: int) -> float:
    """Measured dense matmul FLOP/s (``2 n^3`` per product)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype=dtype)
    f = jax.jit(lambda a: a @ a)
    return 2 * n ** 3 / _timed(lambda: f(a), 3)


def _ensemble_setup(spec, members, n, dtype):
    net = spec.flax()
    shape = (n, 8, 8, 1) if spec.kind == "cnn" else (n, 32)
    x = jax.random.normal(jax.random.PRNGKey(0), shape, dtype=dtype)
    y = jax.random.normal(jax.random.PRNGKey(1), (n, spec.out_dim), dtype=dtype)
    opt = optax.sgd(1e-3)
    loss = lambda p, xb, yb: 0.5 * jnp.sum((net.apply(p, xb) - yb) ** 2)  # noqa: E731

    def member(p, s):
        u, s = opt.update(jax.grad(loss)(p, x, y), s, p)
        return optax.apply_updates(p, u), s

    keys = jax.random.split(jax.random.PRNGKey(2), members)
    params = jax.vmap(lambda k: net.init(k, x[:1]))(keys)
    params = jax.tree_util.tree_map(lambda v: v.astype(dtype), params)
    return member, params, jax.vmap(opt.init)(params)


def bench_ensembles(quick: bool, rate32: float) -> list:
    rows = []
    members = 16 if quick else 32
    for name, spec in [("MLP 32-16-16-1 (small)", ArchSpec(kind="mlp", depth=2, width=16)),
                       ("MLP 32-128-128-1", ArchSpec(kind="mlp", depth=2, width=128)),
                       ("CNN 8x8, 2x16ch", ArchSpec(kind="cnn", depth=2, width=16))]:
        member, params, state = _ensemble_setup(spec, members, 256, jnp.float32)
        vstep = jax.jit(jax.vmap(member))
        one = jax.jit(member)
        t_vmap = _timed(lambda: vstep(params, state))
        slices = [(jax.tree_util.tree_map(lambda v: v[i], params),
                   jax.tree_util.tree_map(lambda v: v[i], state)) for i in range(members)]
        t_loop = _timed(lambda: [one(p, s) for p, s in slices])
        unrolled = jax.jit(ensembles.map_members(member, members, "unroll"))
        t_unroll = _timed(lambda: unrolled(params, state))
        flops = _flops(vstep.lower(params, state).compile())
        rate = flops / t_vmap
        rate_u = flops / t_unroll
        rows.append(dict(net=name, members=members, vmap_s=t_vmap, loop_s=t_loop, unroll_s=t_unroll,
                         ratio=t_loop / t_vmap, flops=flops, rate=rate, frac=rate / rate32,
                         rate_unroll=rate_u, frac_unroll=rate_u / rate32))
        print(f"  {name}, M={members}: vmapped step {t_vmap * 1e3:.2f} ms, loop over members "
              f"{t_loop * 1e3:.2f} ms, loop/vmap {t_loop / t_vmap:.1f}x, unrolled in one jit "
              f"{t_unroll * 1e3:.2f} ms; {flops / 1e9:.3f} GFLOP/step, "
              f"vmapped {rate / 1e9:.1f} GFLOP/s = {rate / rate32:.1%} of float32 matmul, unrolled "
              f"{rate_u / 1e9:.1f} GFLOP/s = {rate_u / rate32:.1%}", flush=True)
    return rows


# ----------------------------------------------------------------------------
# 4. analytic kernels: cost per entry, FLOP rate
# ----------------------------------------------------------------------------

def bench_kernels(quick: bool, rate64: float) -> list:
    rows = []
    side, n = (8, 16) if quick else (12, 32)
    x = jax.random.normal(jax.random.PRNGKey(0), (n, side, side, 1))
    p = side * side
    for readout in ("flatten", "gap"):
        spec = ArchSpec(kind="cnn", depth=2, width=8, readout=readout)
        kf = jax.jit(spec.kernel_fn, static_argnums=(2,))
        sec = _timed(lambda: kf(x, x, "ntk"))
        flops = _flops(kf.lower(x, x, "ntk").compile())
        entries = n * n
        # arithmetic the recursion needs per pair: each of `depth` conv layers sums
        # k^2 = 9 shifted terms per covariance entry, for NNGP and NTK; flatten keeps
        # the P same-pixel entries, GAP the full P x P spatial covariance
        cov_entries = p if readout == "flatten" else p * p
        need = spec.depth * 2 * 2 * 9 * cov_entries
        rows.append(dict(readout=readout, pixels=p, n=n, seconds=sec, per_entry_us=sec / entries * 1e6,
                         xla_flops_per_entry=flops / entries, needed_flops_per_entry=need,
                         rate=flops / sec, frac=flops / sec / rate64))
        print(f"  CNN NTK {side}x{side}, {readout:7s}: {sec / entries * 1e6:9.2f} us per entry, "
              f"XLA {flops / entries:,.0f} FLOP/entry vs ~{need:,} needed by the conv sums; "
              f"{flops / sec / 1e9:.2f} GFLOP/s = {flops / sec / rate64:.1%} of float64 matmul", flush=True)
    r = rows[1]["per_entry_us"] / rows[0]["per_entry_us"]
    print(f"  GAP / flatten time per entry: {r:.0f}x (pixel count {p}: the GAP kernel tracks P^2 "
          f"pixel pairs instead of P)", flush=True)
    return rows


# ----------------------------------------------------------------------------

def versions() -> dict:
    """The installed versions of the stack, read from the packages' metadata (nothing imported:
    neural-tangents itself would need ``ntkequi.nt``'s patches, or tensorflow)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"
    return {"python": platform.python_version(), **{n: of(n) for n in (
        "jax", "jaxlib", "flax", "optax", "neural-tangents", "numpy")}}


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devs = jax.devices()
    return (f"{jax.default_backend()} backend, {len(devs)} device(s) ({devs[0].device_kind}); "
            f"{cpu}, {len(os.sched_getaffinity(0))} cores available")


def _fmt(v, f):
    return "n/a" if isinstance(v, float) and math.isnan(v) else format(v, f)


def write_markdown(path: Path, label: str, quick: bool, rates: dict, st, en, ke):
    lines = [f"## {label}: {datetime.date.today().isoformat()}{' (--quick)' if quick else ''}", "",
             f"Machine: {machine()}.  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".  ",
             f"Command: `python benchmarks/run.py{' --quick' if quick else ''}`.  ",
             f"Dense matmul rate measured here: float32 {rates['f32'] / 1e9:.1f} GFLOP/s, "
             f"float64 {rates['f64'] / 1e9:.1f} GFLOP/s.", "",
             "### 1. Orbit-augmented NTK prediction (MLP NTK, points, C_n exact; mean at t = 1, 10, inf)", "",
             "Invariant targets; the same jitted kernel_fn on every path; 'kernels' is the kernel "
             "evaluation timed alone, 'solve' the rest.", "",
             "| group | N | direct s | structured s (kernels + solve) | unaugmented s (kernels + solve) | "
             "direct / structured | structured / unaugmented, total | same, solve only | "
             f"peak MiB ({_memory_kind()}) direct / structured / unaugmented | rel. diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in st:
        lines.append(f"| {r['group']} | {r['n']} | {_fmt(r['direct_s'], '.2f')} | {r['structured_s']:.3f} "
                     f"({r['structured_kernel_s']:.3f} + {r['structured_solve_s']:.3f}) | {r['plain_s']:.3f} "
                     f"({r['plain_kernel_s']:.3f} + {r['plain_solve_s']:.3f}) | {_fmt(r['speedup'], '.1f')} | "
                     f"{r['vs_plain']:.2f} | {r['solve_vs_plain']:.2f} | "
                     f"{_fmt(r['direct_mib'], '.0f')} / {r['structured_mib']:.0f} / {r['plain_mib']:.0f} | "
                     f"{_fmt(r['rel_diff'], '.1e')} |")
    lines += ["", "### 2.-3. Ensemble training step (float32, full batch of 256, SGD)", "",
              "| network | M | vmapped step ms | Python loop over members ms | loop / vmap | "
              "members unrolled in one jit ms | GFLOP/step (XLA) | GFLOP/s vmapped / unrolled | "
              "fraction of float32 matmul, vmapped / unrolled |", "|---|---|---|---|---|---|---|---|---|"]
    for r in en:
        lines.append(f"| {r['net']} | {r['members']} | {r['vmap_s'] * 1e3:.2f} | {r['loop_s'] * 1e3:.2f} | "
                     f"{r['ratio']:.1f} | {r['unroll_s'] * 1e3:.2f} | {r['flops'] / 1e9:.3f} | {r['rate'] / 1e9:.1f} / "
                     f"{r['rate_unroll'] / 1e9:.1f} | {r['frac']:.1%} / {r['frac_unroll']:.1%} |")
    lines += ["", "### 3.-4. Analytic CNN NTK (depth 2, float64, jitted)", "",
              "| readout | pixels P | us per kernel entry | XLA FLOP per entry | FLOP per entry the conv "
              "sums need | GFLOP/s | fraction of float64 matmul |", "|---|---|---|---|---|---|---|"]
    for r in ke:
        lines.append(f"| {r['readout']} | {r['pixels']} | {r['per_entry_us']:.2f} | "
                     f"{r['xla_flops_per_entry']:,.0f} | {r['needed_flops_per_entry']:,} | "
                     f"{r['rate'] / 1e9:.2f} | {r['frac']:.1%} |")
    lines.append("")
    text = "\n".join(lines) + "\n"
    header = "# ntkequi benchmark results\n\nWritten by `python benchmarks/run.py`; newest first.\n\n"
    old = path.read_text() if path.exists() else ""
    body = old[len(header):] if old.startswith(header) else old
    path.write_text(header + text + ("\n" + body if body else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="markdown file to prepend results to "
                    "('' = print only)")
    ap.add_argument("--label", default="", help="heading for this run (default: the backend)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        order, n, method = json.loads(args.child)
        print(json.dumps(_prediction_child(order, n, method)))
        return
    print(f"machine: {machine()}", flush=True)
    rates = {"f32": matmul_rate(jnp.float32, 2048), "f64": matmul_rate(jnp.float64, 2048)}
    print(f"dense matmul: float32 {rates['f32'] / 1e9:.1f} GFLOP/s, float64 {rates['f64'] / 1e9:.1f} GFLOP/s")
    print("1. orbit-augmented NTK prediction: structured vs direct", flush=True)
    st = bench_structured(args.quick)
    print("2.-3. ensemble training: vmap vs loop, FLOP rate", flush=True)
    en = bench_ensembles(args.quick, rates["f32"])
    print("3.-4. analytic CNN kernel cost", flush=True)
    ke = bench_kernels(args.quick, rates["f64"])
    if args.out:
        write_markdown(Path(args.out), args.label or jax.default_backend().upper(), args.quick, rates, st, en, ke)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
