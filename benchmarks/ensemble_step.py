"""Why ntkequi.ensembles steps in a Python loop: one training step of a 4-member CNN ensemble
(the rotated-FashionMNIST small preset's CNN, batch 128, Adam) inside ``lax.scan`` vs the same
jitted step called from Python. Prints both times and their ratio, measured in one run.

    python benchmarks/ensemble_step.py
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ntkequi  # noqa: F401
from ntkequi.ensembles import init_ensemble
from ntkequi.nn import ArchSpec

M, N, BATCH, STEPS = 4, 2000, 128, 10


def main():
    spec = ArchSpec(kind="cnn", depth=2, width=16, out_dim=10, pool=True)
    net = spec.flax()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((N, 28, 28, 1), dtype=np.float32))
    y = jax.nn.one_hot(jnp.arange(N) % 10, 10)
    opt = optax.adam(1e-3)
    loss = lambda p, xb, yb: optax.softmax_cross_entropy(net.apply(p, xb), yb).mean()

    def member(p, s, k):
        idx = jax.random.choice(k, N, (BATCH,), replace=False)
        u, s = opt.update(jax.grad(loss)(p, x[idx], y[idx]), s, p)
        return optax.apply_updates(p, u), s

    def body(c, _):
        p, s, k = c
        k, sub = jax.random.split(k)
        p, s = jax.vmap(member)(p, s, jax.random.split(sub, M))
        return (p, s, k), None

    params = init_ensemble(spec, jax.random.PRNGKey(0), M, x)
    state = (params, jax.vmap(opt.init)(params), jax.random.PRNGKey(1))
    scan = jax.jit(lambda c: jax.lax.scan(body, c, None, length=STEPS)[0])
    one = jax.jit(lambda c: body(c, None)[0])
    jax.block_until_ready(scan(state))
    jax.block_until_ready(one(state))
    t = time.perf_counter()
    jax.block_until_ready(scan(state))
    t_scan = (time.perf_counter() - t) / STEPS
    t = time.perf_counter()
    c = state
    for _ in range(STEPS):
        c = one(c)
    jax.block_until_ready(c)
    t_loop = (time.perf_counter() - t) / STEPS
    print(f"backend {jax.default_backend()}: per step, lax.scan {t_scan:.3f} s, Python loop of a jitted "
          f"step {t_loop:.3f} s; scan / loop = {t_scan / t_loop:.2f}")


if __name__ == "__main__":
    main()
