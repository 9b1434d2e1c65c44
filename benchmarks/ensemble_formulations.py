"""The orbit table's ensemble training step in each formulation, side by side in one run:
members unrolled in one jitted step or vmapped (batched matmuls / grouped convolutions),
XLA's convolution or im2col (:mod:`ntkequi.nn.conv`), each member's gradient over the
whole minibatch or over micro-batches (``ensembles.batch_grad``), compiled with XLA's options as
JAX sets them or with ``ensembles.CPU_XLA_OPTIONS`` (YNNPACK for single dots only, so that
convolutions and pooling are XLA's; the default on a CPU). Each is timed through
``ntkequi.ensembles.train`` itself (random minibatches of 128 from 55,000 images, one
random C4 rotation per image, Adam, softmax cross-entropy), as the difference of a
``--steps``-long and a short run (compilation and evaluation cancel), in ``--rounds`` rounds
over all rows (the fastest round of each row is reported: these shared machines slow whole
runs down by up to 2x at times). Prints the cost of
drawing a minibatch's indices, then member-images per second and the fraction of the
float32 matmul rate measured in the same run (FLOPs per member-image: XLA's count of one network's forward and backward).

    python benchmarks/ensemble_formulations.py [--members 5] [--steps 40] [--rounds 2]
        [--model deep_ensemble|gcnn|canonicalization] [--n 4] [--no-im2col]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ntkequi  # noqa: F401
from ntkequi import ensembles, groups
from ntkequi.experiments import fmnist_osp_table as osp
from ntkequi.nn.conv import using_conv_impl

sys.path.insert(0, str(Path(__file__).parent))
from osp_models import CONFIGS, matmul_rate  # noqa: E402


def step_flops(spec, batch: int) -> float:
    """XLA's FLOP count of one network's loss gradient on ``batch`` images."""
    net = spec.flax()
    x = jnp.zeros((batch, 28, 28, 1), jnp.float32)
    y = jnp.zeros((batch, 10))
    p = net.init(jax.random.PRNGKey(0), x[:1])
    g = jax.jit(jax.grad(lambda q: optax.softmax_cross_entropy(net.apply(q, x), y).mean()))
    return float(g.lower(p).compile().cost_analysis()["flops"])


FORMULATIONS = (  # (member map, convolution, micro-batch, XLA options); the first row: whole-batch
    # gradients, XLA's options as JAX sets them; the second: the step of commit dd8038c
    ("unroll", "xla", None, "jax"), ("unroll", "xla", 32, "jax"), ("unroll", "xla", None, "cpu"),
    ("unroll", "xla", 32, "cpu"), ("unroll", "xla", 16, "cpu"), ("unroll", "im2col", 32, "cpu"),
    ("vmap", "xla", None, "cpu"), ("vmap", "im2col", None, "cpu"))
XLA_OPTIONS = {"jax": None, "cpu": ensembles.CPU_XLA_OPTIONS}


def sample_seconds(draw, repeats: int = 50) -> float:
    """Seconds of one jitted ``draw(key)`` (a minibatch's indices)."""
    f = jax.jit(draw)
    f(jax.random.PRNGKey(0)).block_until_ready()
    t = time.perf_counter()
    for i in range(repeats):
        f(jax.random.PRNGKey(i)).block_until_ready()
    return (time.perf_counter() - t) / repeats


def time_train(spec, members: int, steps: int, member_map: str, x, y, group, micro_batch=None,
               xla_options="auto") -> float:
    """Seconds per step of ``ensembles.train`` (long run minus a 2-step run)."""
    def run(s):
        cfg = ensembles.TrainConfig(ensemble_size=members, steps=s, learning_rate=1e-3, optimizer="adam",
                                    loss="xent", batch_size=128, augmentation="random", record_steps=(s,))
        t = time.perf_counter()
        ensembles.train(spec, cfg, ensembles.TrainingData(x, y, x[:8], group),
                        progress=False, runtime=ensembles.Runtime(member_map=member_map, micro_batch=micro_batch,
                                                  xla_options=xla_options))
        return time.perf_counter() - t
    short = min(run(2), run(2))     # the first call also pays one-time costs (the group's tables)
    return (run(2 + steps) - short) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2, help="rounds over all rows; the fastest of each row is shown")
    ap.add_argument("--model", default="deep_ensemble", choices=osp.MODELS)
    ap.add_argument("--config", default="cpu", choices=sorted(CONFIGS), help="model sizes of this preset")
    ap.add_argument("--n", type=int, default=4, help="group order C_n")
    ap.add_argument("--no-im2col", action="store_true", help="skip the (slow) im2col rows")
    args = ap.parse_args(argv)
    spec = osp.model_spec(CONFIGS[args.config], args.model, args.n)
    rng = np.random.default_rng(0)
    x = rng.random((55000, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 55000)]
    group = groups.rotations(args.n, (28, 28))
    rate = matmul_rate()
    flops = step_flops(spec, 128) / 128
    print(f"{args.model} C{args.n}, {args.members} members, batch 128; float32 matmul {rate / 1e9:.0f} GFLOP/s; "
          f"{flops / 1e6:.1f} MFLOP per member-image (forward + backward)")
    for name, draw in (("jax.random.choice(replace=False)", lambda k: jax.random.choice(k, 55000, (128,), replace=False)),
                       ("ensembles.minibatch_indices", lambda k: ensembles.minibatch_indices(k, 55000, 128))):
        print(f"minibatch of 128 from 55,000 by {name}: {sample_seconds(draw) * 1e3:.2f} ms per member-step")
    print("| member map | convolution | micro-batch | XLA options | member-images/s | fraction of matmul "
          "| vs first row |")
    print("|---|---|---|---|---|---|---|")
    rows = [f for f in FORMULATIONS if not (f[1] == "im2col" and args.no_im2col)]
    best = {}
    for _ in range(max(1, args.rounds)):
        for how, impl, micro, opts in rows:
            with using_conv_impl(impl):
                sec = time_train(spec, args.members, args.steps, how, x, y, group, micro, XLA_OPTIONS[opts])
            best[(how, impl, micro, opts)] = max(best.get((how, impl, micro, opts), 0.0), args.members * 128 / sec)
    first = best[rows[0]]
    for how, impl, micro, opts in rows:
        ips = best[(how, impl, micro, opts)]
        label = "YNNPACK dots only" if opts == "cpu" else "as JAX sets them"
        print(f"| {how} | {impl} | {micro or 'whole batch'} | {label} | {ips:.0f} | {ips * flops / rate:.2f} "
              f"| {ips / first:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
