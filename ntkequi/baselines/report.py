"""Measured invariance of the baselines at initialisation (random weights), per group.

Used by ``experiments/baseline_invariance.py`` and the tests: C4 is exact (errors
at rounding level), C8 / C16 inherit the error of interpolating both the images
and the filters."""
from __future__ import annotations

import jax

from .. import metrics
from ..groups import _smooth_images, rotations
from .canonicalization import CanonSpec
from .gcnn import GCNNSpec, channels_for


def orbit_logits(spec, params, x, group):
    """``(|G|, N, k)`` outputs of ``spec``'s network on the orbit of ``x``."""
    orb = group.orbit(x).reshape((-1,) + x.shape[1:])
    return metrics.orbit_predictions(spec.flax().apply(params, orb), group)


def invariance_report(n: int, key, n_inputs: int = 8, channels: int = 8, kernel_size: int = 5) -> dict:
    """Relative invariance error and OSP of a random GCNN and canonicalization model
    for C_n, on smooth (band-limited) and on uniform-noise 28x28 images."""
    group = rotations(n, (28, 28))
    k1, k2, k3 = jax.random.split(key, 3)
    inputs = {"smooth": _smooth_images(k1, n_inputs, (28, 28, 1)),
              "noise": jax.random.uniform(k2, (n_inputs, 28, 28, 1))}
    specs = {"gcnn": GCNNSpec(n=n, depth=1, channels=channels_for(n, channels), kernel_size=kernel_size),
             "canonicalization": CanonSpec(canonicalizer=GCNNSpec(
                 n=n, depth=0, channels=channels_for(n, channels), kernel_size=kernel_size, out_dim=1))}
    out = {}
    for name, spec in specs.items():
        params = spec.flax().init(k3, inputs["smooth"][:1])
        for kind, x in inputs.items():
            f = orbit_logits(spec, params, x, group)
            out[(name, kind)] = {"invariance_error": metrics.equivariance_error(f, group).relative,
                                 "osp": metrics.orbit_same_predictions(f, group)[0]}
    return out


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    print("random-weight baselines, 8 images each; relative invariance error of the logits (OSP out of n)")
    for n in (4, 8, 16):
        for (name, kind), r in invariance_report(n, jax.random.PRNGKey(0)).items():
            print(f"C{n:<2} {name:>16} {kind:>6}: {r['invariance_error']:.2e}  (OSP {r['osp']:.2f})")
