"""Measure the kernel-diagonal error that ntkequi._compat item 5 fixes.

neural-tangents' nt.batch jit-compiles kernel_fn. Under jit the ReLU kernel's diagonal
(x2=None) picks up the square root of a rounding error. This prints, for a depth-2 ReLU
MLP on 12 random inputs, the largest relative deviation from the exact (un-jitted,
patched) kernel of: the jitted kernel (what unpatched nt.batch returned) and the patched
nt.batch, in float64 and float32.

    python experiments/compat_diagonal.py
"""
import jax
import jax.numpy as jnp

import ntkequi  # noqa: F401  (applies the fixes)
from ntkequi.nt import nt, stax


def main():
    kfn = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1))[2]
    for x64 in (True, False):
        jax.config.update("jax_enable_x64", x64)
        x = jax.random.normal(jax.random.PRNGKey(0), (12, 3))
        exact = kfn(x, None, "ntk")
        jitted = jax.jit(lambda a: kfn(a, None, "ntk"))(x)
        batched = nt.batch(kfn, batch_size=4, device_count=0)(x, None, "ntk")
        rel = lambda k: float(jnp.max(jnp.abs(k - exact) / jnp.abs(exact)))
        print(f"{'float64' if x64 else 'float32'}: jitted kernel {rel(jitted):.1e}, "
              f"patched nt.batch {rel(batched):.1e} (largest entrywise relative deviation)")


if __name__ == "__main__":
    main()
