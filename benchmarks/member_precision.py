"""Members in float32 against float64, side by side in one run: the training step of the
NTK-comparison experiments' members (``ntkequi.ensembles.train``: full-batch gradient descent
on the summed MSE, the full orbit, members unrolled in one jitted step) in each precision,
as member-images per second and as a fraction of the float32 (and float64) matmul rate
measured at the start of the same run (FLOPs per member-image: XLA's count of one network's
loss gradient). Each step time is that of ``ensembles.train``'s own jitted step, after a
warm-up step, over ``--steps`` steps; the fastest of ``--rounds`` rounds over all rows.

Rows: fmnist_ntk's ``cpu`` member CNN (conv 3x3-ReLU-2x2 pool twice, flatten, dense; 28x28
images, C4 orbit) in float32 and float64 with XLA's convolution, and in float64 with the
other formulations of :mod:`ntkequi.nn.conv` (im2col: patches times one matmul, but the
patches' transpose in the gradient is a convolution again; 'shifts': a sum of shifted slices
times matmuls, no convolution at all), the question being whether anything short of float32
recovers the speed; the toy sweeps' MLP (2 hidden layers, planar C8 orbit) in both precisions. Then one
3x3 64->64 convolution of 32 28x28 images alone, forward, in each precision: XLA:CPU calls
Eigen's convolution only for F16 and F32 (``PotentiallyImplementedAsEigenConvolution`` in
xla/service/cpu/ir_emission_utils.cc) and emits anything else as a plain loop nest, so a
float64 convolution runs at a small fraction of the float64 matmul rate.

    python benchmarks/member_precision.py [--steps 4] [--rounds 2] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ntkequi  # noqa: F401,E402
from ntkequi import ensembles, groups  # noqa: E402
from ntkequi.nn import ArchSpec  # noqa: E402
from ntkequi.nn.conv import using_conv_impl  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from osp_models import matmul_rate as _matmul_rate  # noqa: E402
from run import machine, versions  # noqa: E402


def matmul_rate(dtype) -> float:
    """FLOP/s of a 1024 x 1024 matmul in ``dtype``: the fastest of 10 calls."""
    return _matmul_rate(1024, 10, dtype)


def grad_flops(spec, x, out_dim: int, dtype) -> float:
    """XLA's FLOP count of one network's summed-MSE gradient on the batch ``x``."""
    net = spec.flax()
    xd = jnp.asarray(x, dtype)
    p = ensembles.init_ensemble(spec, jax.random.PRNGKey(0), 1, xd, dtype)
    p = jax.tree_util.tree_map(lambda v: v[0], p)
    y = jnp.zeros((x.shape[0], out_dim), dtype)
    g = jax.jit(jax.grad(lambda q: 0.5 * jnp.sum((net.apply(q, xd) - y) ** 2)),
                compiler_options=ensembles.xla_options_for("auto"))
    return float(g.lower(p).compile().cost_analysis()["flops"])


def step_seconds(spec, members: int, steps: int, x, y, group, dtype: str) -> float:
    """Seconds per step of ``ensembles.train``'s jitted training step (the same function
    ``train`` builds: full batch, the orbit, its member map and XLA options), after one
    warm-up step, timed over ``steps`` steps."""
    cfg = ensembles.TrainConfig(ensemble_size=members, steps=steps, learning_rate=1e-3, augmentation="orbit",
                                record_steps=(steps,), dtype=dtype)
    dt = ensembles.member_dtype(cfg)
    xs, ys = ensembles.training_set(group, cfg, jnp.asarray(x), jnp.asarray(y))
    xs, ys = jnp.asarray(xs, dt), jnp.asarray(ys, dt)
    how = ensembles.member_map_for(False, members)
    opt, run_steps = ensembles._make_step(spec, cfg, group, xs, ys, how, None, ensembles.xla_options_for("auto"), dt)
    params = ensembles.init_ensemble(spec, jax.random.PRNGKey(0), members, xs, dt)
    state = run_steps((params, jax.vmap(opt.init)(params), jax.random.PRNGKey(1)), 1)
    jax.block_until_ready(state)
    t = time.perf_counter()
    jax.block_until_ready(run_steps(state, steps))
    return (time.perf_counter() - t) / steps


def conv_rates(n: int = 32, size: int = 28, channels: int = 64) -> dict:
    """GFLOP/s of one forward 3x3 ``channels -> channels`` convolution of ``n`` images per dtype."""
    out = {}
    for dt in (jnp.float32, jnp.float64):
        x = jnp.asarray(np.random.default_rng(0).random((n, size, size, channels)), dt)
        w = jnp.asarray(np.random.default_rng(1).random((3, 3, channels, channels)), dt)
        f = jax.jit(lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME",
                                                               dimension_numbers=("NHWC", "HWIO", "NHWC")),
                    compiler_options=ensembles.xla_options_for("auto"))
        f(x, w).block_until_ready()
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            f(x, w).block_until_ready()
            best = min(best, time.perf_counter() - t)
        out[jnp.dtype(dt).name] = 2 * n * size * size * channels * channels * 9 / best
    return out


def rows(quick: bool):
    """(label, spec, members, x, y, group, [(dtype, conv impl), ...]) of each model."""
    rng = np.random.default_rng(0)
    c4 = groups.rotations(4, (28, 28))
    n_img = 8 if quick else 32
    x_img = rng.random((n_img, 28, 28, 1))
    y_img = np.eye(10)[rng.integers(0, 10, n_img)] - 0.1
    width = 16 if quick else 32
    cnn = ArchSpec(kind="cnn", depth=2, width=width, out_dim=10, pool=True)
    c8 = groups.planar_rotations(8)
    n_pts = 16 if quick else 64
    x_pts = rng.standard_normal((n_pts, 2))
    y_pts = np.cos(2 * np.linalg.norm(x_pts, axis=1, keepdims=True))
    mlp = ArchSpec(kind="mlp", depth=2, width=128 if quick else 512, b_std=1.0)
    return [
        (f"fmnist_ntk cpu CNN, width {width}, C4 orbit of {n_img}", cnn, 8, x_img, y_img, c4,
         [("float32", "xla"), ("float64", "xla"), ("float64", "im2col"), ("float64", "shifts")]),
        (f"toy MLP, width {mlp.width}, C8 orbit of {n_pts}", mlp, 32, x_pts, y_pts, c8,
         [("float32", "xla"), ("float64", "xla")]),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="rounds over all rows; the fastest of each row is shown")
    ap.add_argument("--quick", action="store_true", help="smaller models (a smoke run)")
    args = ap.parse_args(argv)
    r32, r64 = matmul_rate(jnp.float32), matmul_rate(jnp.float64)
    print(f"{machine()}\n{versions()}")
    print(f"matmul 1024^2: float32 {r32 / 1e9:.0f} GFLOP/s, float64 {r64 / 1e9:.0f} GFLOP/s "
          f"(ratio {r32 / r64:.2f})")
    best = {}
    models = rows(args.quick)
    for _ in range(max(1, args.rounds)):
        for label, spec, members, x, y, group, variants in models:
            for dt, impl in variants:
                with using_conv_impl(impl):
                    sec = step_seconds(spec, members, args.steps, x, y, group, dt)
                best[(label, dt, impl)] = min(best.get((label, dt, impl), float("inf")), sec)
    print("| members | precision | convolution | s/step | member-images/s | fraction of f32 matmul "
          "| fraction of f64 matmul | float32 speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for label, spec, members, x, y, group, variants in models:
        n = x.shape[0] * group.order
        xs = group.orbit(jnp.asarray(x)).reshape((-1,) + x.shape[1:])
        for dt, impl in variants:
            with using_conv_impl(impl):
                flops = grad_flops(spec, xs, y.shape[1], dt) / n
            sec = best[(label, dt, impl)]
            ips = members * n / sec
            speed = best[(label, "float32", "xla")]
            conv = impl if spec.kind == "cnn" else "-"
            print(f"| {label}, M = {members} | {dt} | {conv} | {sec:.3f} | {ips:.0f} | {ips * flops / r32:.2f} "
                  f"| {ips * flops / r64:.2f} | {sec / speed:.1f} |", flush=True)
    rates = conv_rates()
    print(f"one 3x3 64->64 convolution, 32 images of 28x28, forward: float32 {rates['float32'] / 1e9:.1f} GFLOP/s "
          f"({rates['float32'] / r32:.2f} of its matmul), float64 {rates['float64'] / 1e9:.2f} GFLOP/s "
          f"({rates['float64'] / r64:.3f} of its matmul)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
