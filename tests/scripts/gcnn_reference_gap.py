"""Where kernels.group_stax (neural-tangents layers) and ntkequi's GCNN kernel disagree: a conv, a
C4 lifting conv, a 2x2 pool of odd (9x9) maps and invariant pooling, without activations (a
linear network, whose output covariance over random parameters is its NNGP at any width).
Prints both kernels' NNGP and a Monte Carlo estimate over 40,000 networks, with its standard
error, and the relative differences (tests/test_gcnn_kernels.py asserts ntkequi's agreement).

    python tests/scripts/gcnn_reference_gap.py
"""
import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import ntkequi.nt  # noqa: E402,F401
from ntkequi.kernels.recursions import recursion_kernel_fn  # noqa: E402
from ntkequi.nn.layers import AvgPool2, Conv, Dense, FlaxNet, GlobalAvgPool, LiftingConv, stax_serial  # noqa: E402


def main():
    layers = (Conv(2, 3, "SAME", 1.2, 0.1), LiftingConv(2, 3, 1.4, 0.1), AvgPool2(), GlobalAvgPool(),
              Dense(1, 1.0, 0.1))
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 2))
    ours = np.asarray(recursion_kernel_fn(layers)(x, None, "nngp"))
    ref = np.asarray(stax_serial(layers)[2](x, None, "nngp"))
    net = FlaxNet(layers)
    draw = jax.jit(jax.vmap(lambda key: net.apply(net.init(key, x), x)[:, 0]))
    f = np.concatenate([np.asarray(draw(jax.random.split(jax.random.PRNGKey(s), 5000))) for s in range(8)])
    prods = f[:, :, None] * f[:, None, :]
    mc, se = prods.mean(0), prods.std(0) / np.sqrt(f.shape[0])
    print("ntkequi   ", ours.ravel())
    print("group_stax", ref.ravel())
    print("Monte Carlo", mc.ravel(), "+-", se.ravel())
    print("relative difference from Monte Carlo: ntkequi", np.abs(ours - mc).max() / np.abs(mc).max(),
          "group_stax", np.abs(ref - mc).max() / np.abs(mc).max())


if __name__ == "__main__":
    main()
