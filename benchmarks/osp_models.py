"""The orbit-consistency table's models on this machine, side by side in one run: per model
and group, parameters, forward FLOPs per image (XLA's count), and the training throughput of
one network (images per second of a jitted Adam step on a float32 batch of 128, softmax
cross-entropy, compiled with the training step's XLA options, ``ensembles.xla_options_for``),
with the FLOP rate it reaches as a fraction of the float32 matmul rate measured in the same
run. What the table's sizing has to trade: a parameter-matched group CNN spends far more
compute per image than the CNN, the more the larger n.

    python benchmarks/osp_models.py [--config small|cpu|paper|candidate] [--steps 10]

``cpu``: the cpu preset's models; ``candidate``: the sizing first considered for it (the same
but for the GCNN's global instead of ring pooling; kept: RESULTS.md's 2026-12-02 rows are of it).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ntkequi  # noqa: F401
from ntkequi import data, ensembles
from ntkequi.experiments import fmnist_osp_table as osp
from ntkequi.nn import ArchSpec

CONFIGS = {
    "small": osp.PRESETS["small"],
    "paper": osp.PRESETS["paper"],
    "cpu": osp.PRESETS["cpu"],
    "candidate": osp.TableConfig(split=data.SplitConfig(n_train=2000, n_val=0, n_test=200),
                                 cnn=ArchSpec(kind="cnn", depth=2, width=64, out_dim=10, pool=True),
                                 gcnn=osp.GCNNConfig(depth=2, channels=(8, 16, 32), head=64),
                                 canon=osp.CanonConfig(depth=1, channels=(8, 8))),
}


def matmul_rate(n: int = 1024, repeats: int = 20, dtype=np.float32) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` (float32 by default) on this machine: the fastest
    of ``repeats`` timed calls (the machine's rate when nothing else runs; a mean of a few
    calls varied from 210 to 420 GFLOP/s between runs on these shared 2-core machines)."""
    a = jnp.asarray(np.random.default_rng(0).random((n, n)), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def train_step_rate(spec, batch: int, steps: int) -> tuple:
    """(images per second, XLA FLOPs per step) of a jitted Adam step of ``spec``."""
    net = spec.flax()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, 28, 28, 1), dtype=np.float32))
    y = jax.nn.one_hot(jnp.arange(batch) % 10, 10)
    params = net.init(jax.random.PRNGKey(0), x[:1])
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def step(p, s):
        g = jax.grad(lambda q: optax.softmax_cross_entropy(net.apply(q, x), y).mean())(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    compiled = jax.jit(step, compiler_options=ensembles.xla_options_for()).lower(params, state).compile()
    cost = compiled.cost_analysis()
    p, s = compiled(params, state)
    jax.block_until_ready(p)
    t = time.perf_counter()
    for _ in range(steps):
        p, s = compiled(p, s)
    jax.block_until_ready(p)
    return batch * steps / (time.perf_counter() - t), float(cost["flops"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="candidate", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.config]
    rate = matmul_rate()
    counts, fwd = osp.parameter_counts(cfg), osp.forward_flops(cfg)
    print(f"config {args.config}; float32 matmul rate {rate / 1e9:.1f} GFLOP/s; backend {jax.default_backend()}")
    print("| model | n | parameters | invariant features | forward MFLOP/image | train images/s | "
          "GFLOP/s | fraction of matmul |")
    print("|---|---|---|---|---|---|---|---|")
    for m in cfg.models:
        for n in cfg.groups:
            spec = osp.model_spec(cfg, m, n)
            ips, flops = train_step_rate(spec, args.batch, args.steps)
            gfs = flops * ips / args.batch / 1e9
            inv = spec.invariant_features if hasattr(spec, "invariant_features") else "-"
            print(f"| {m} | {n} | {counts[(m, n)]} | {inv} | {fwd[(m, n)] / 1e6:.1f} | {ips:.0f} | {gfs:.1f} | "
                  f"{gfs * 1e9 / rate:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
