"""The ntk_convergence experiment's MLP members on this machine, side by side in one run: the
training step of each cpu-preset problem's widest ensemble (``ensembles.train``'s own jitted
step: full-batch gradient descent on the orbit, float32) with members unrolled in one jit
(the CPU default) and vmapped (the members' first-layer matmuls batched into one), for the
network and its linearisation. Reported as member-images per second, as a fraction of the
float32 matmul rate and as a fraction of the rate at which the machine streams a large array
(``a * c + 1``), both measured at the start of the same run (FLOPs and bytes: XLA's counts for
one member's step). "Bound at the streaming rate" is the fraction of the matmul rate a step
with that many FLOPs per byte reaches if its bytes stream at that rate (a roofline): below 0.5,
the step cannot reach half the matmul rate unless its arrays stay in cache. Unrolled members are timed twice: with the readout's kernel gradient in
the layout ``nn.layers.dense_product`` chooses (transposed, for readouts with several outputs)
and with plain ``x @ w``.

    python benchmarks/convergence_members.py [--steps 5] [--rounds 2] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ntkequi  # noqa: F401,E402
from ntkequi import ensembles  # noqa: E402
from ntkequi.nn import layers  # noqa: E402
from ntkequi.experiments import ntk_convergence as nc  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from member_precision import matmul_rate  # noqa: E402
from run import machine, versions  # noqa: E402


@contextlib.contextmanager
def dense_form(form: str):
    """Within: every dense layer's product is ``form``: 'auto' (``layers.dense_product``'s
    choice) or 'plain' (``x @ w``)."""
    chosen = layers._transposed_gradient
    if form == "plain":
        layers._transposed_gradient = lambda fan_in, features: False
    try:
        yield
    finally:
        layers._transposed_gradient = chosen


FORMS = (("unroll", "auto"), ("unroll", "plain"), ("vmap", "auto"))


def member_step(spec, cfg, xs, ys, how: str):
    """``(run_steps, state)``: ``ensembles.train``'s step for ``cfg`` and a warmed-up state."""
    dt = ensembles.member_dtype(cfg)
    xs, ys = jnp.asarray(xs, dt), jnp.asarray(ys, dt)
    opt, run_steps = ensembles._make_step(spec, cfg, None, xs, ys, how, None, ensembles.xla_options_for("auto"), dt)
    params = ensembles.init_ensemble(spec, jax.random.PRNGKey(0), cfg.ensemble_size, xs, dt)
    if cfg.model == "linearised":
        params = (params, params)
    state = run_steps((params, jax.vmap(opt.init)(params), jax.random.PRNGKey(1)), 1)
    jax.block_until_ready(state)
    return run_steps, state


def copy_rate(n: int = 1 << 25) -> float:
    """Bytes/s of a float32 ``a * c + 1`` over ``n`` elements (read once, written once): the
    fastest of 10 calls, this machine's memory traffic rate for a step that streams arrays."""
    a = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda v: v * 1.0001 + 1.0)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t)
    return 2 * 4 * n / best


def step_cost(spec, cfg, xs, ys) -> tuple:
    """``(flops, bytes)``: XLA's FLOP count and bytes accessed of one member's gradient step
    on the whole training set."""
    dt = ensembles.member_dtype(cfg)
    apply = ensembles.member_apply(spec, cfg.model)
    p = ensembles.init_ensemble(spec, jax.random.PRNGKey(0), 1, jnp.asarray(xs, dt), dt)
    p = jax.tree_util.tree_map(lambda v: v[0], p)
    if cfg.model == "linearised":
        p = (p, p)
    x, y = jnp.asarray(xs, dt), jnp.asarray(ys, dt)
    g = jax.jit(jax.grad(lambda q: 0.5 * jnp.sum((apply(q, x) - y) ** 2)),
                compiler_options=ensembles.xla_options_for("auto"))
    cost = g.lower(p).compile().cost_analysis()
    return float(cost["flops"]), float(cost["bytes accessed"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a quarter of the widths (a smoke run)")
    args = ap.parse_args(argv)
    rate, traffic = matmul_rate(jnp.float32), copy_rate()
    print(f"{machine()}\n{versions()}\nfloat32 matmul 1024^2: {rate / 1e9:.0f} GFLOP/s; "
          f"streaming a * c + 1 over 128 MB: {traffic / 1e9:.1f} GB/s")
    cases = []
    for p in nc.PRESETS["cpu"].problems:
        if p.kind != "mlp":
            continue
        x = np.random.default_rng(0).standard_normal((p.n_train,) + {"toy": (2,), "ising": (p.L, p.L, 1)}.get(
            p.dataset, (28 // p.downsample, 28 // p.downsample, 1)))
        group = {"toy": lambda: __import__("ntkequi").groups.planar_rotations(8),
                 "ising": lambda: __import__("ntkequi").groups.lattice_translations(p.L),
                 "fmnist": lambda: __import__("ntkequi").groups.rotations(4, (x.shape[1], x.shape[2]))}[p.dataset]()
        xs = group.orbit(jnp.asarray(x)).reshape((-1,) + x.shape[1:])
        k = 10 if p.dataset == "fmnist" else 1
        ys = np.random.default_rng(1).standard_normal((xs.shape[0], k))
        width = max(p.widths) // (4 if args.quick else 1)
        spec = nc.spec(p, width, k)
        for model in nc.MODELS:
            cfg = ensembles.TrainConfig(ensemble_size=p.ensemble_size, steps=1, learning_rate=1e-4, record_steps=(1,),
                                        model=model)
            cases.append((f"{p.name} width {width}, M = {p.ensemble_size}, {xs.shape[0]} inputs", spec, cfg, xs, ys))
    best = {}
    for _ in range(max(1, args.rounds)):
        for label, spec, cfg, xs, ys in cases:
            for how, form in FORMS:
                with dense_form(form):
                    run_steps, state = member_step(spec, cfg, xs, ys, how)
                    t = time.perf_counter()
                    jax.block_until_ready(run_steps(state, args.steps))
                sec = (time.perf_counter() - t) / args.steps
                key = (label, cfg.model, how, form)
                best[key] = min(best.get(key, float("inf")), sec)
    print("| members | model | member map | dense product | ms/step | member-images/s | FLOP/byte "
          "| fraction of f32 matmul | bound at the streaming rate | fraction of streaming rate |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, spec, cfg, xs, ys in cases:
        with dense_form("plain"):       # the same FLOPs either way; XLA's count of the plain form
            flops, moved = step_cost(spec, cfg, xs, ys)
        for how, form in FORMS:
            sec = best[(label, cfg.model, how, form)]
            per_step = cfg.ensemble_size / sec                    # member-steps per second
            print(f"| {label} | {cfg.model} | {how} | {form} | {sec * 1e3:.1f} | {per_step * xs.shape[0]:.0f} | "
                  f"{flops / moved:.1f} | {per_step * flops / rate:.2f} | {flops / moved * traffic / rate:.2f} | "
                  f"{per_step * moved / traffic:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
