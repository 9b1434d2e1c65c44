"""Measured invariance of the baselines at initialisation (random weights), per group.

C4 is exact (errors at rounding level); C8 / C16 inherit the error of interpolating both
the images and the filters. ``ntkequi run baseline_invariance`` (~1 min on 2 CPU cores)
prints the relative invariance error of the logits and the OSP of a random GCNN and a
random canonicalization model on smooth (band-limited) and uniform-noise 28x28 images.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import jax

from .. import metrics
from ..groups import rotations, smooth_images
from ..nn import CanonSpec, GCNNSpec, channels_for
from ..runs import RunDir

NAME = "baseline_invariance"
USES_DATA = False
CPU_TIME = {"small": "1 min"}


@dataclasses.dataclass(frozen=True)
class BaselineInvarianceConfig:
    """Groups C_n, number of images per kind, GCNN channels per rotation, filter size."""
    x64: ClassVar[bool] = True
    groups: tuple = (4, 8, 16)
    n_inputs: int = 8
    channels: int = 8
    kernel_size: int = 5
    seed: int = 0


Config = BaselineInvarianceConfig
PRESETS = {"small": BaselineInvarianceConfig()}


def orbit_logits(spec, params, x, group):
    """``(|G|, N, k)`` outputs of ``spec``'s network on the orbit of ``x``."""
    orb = group.orbit(x).reshape((-1,) + x.shape[1:])
    return metrics.orbit_predictions(spec.flax().apply(params, orb), group)


def invariance_report(n: int, key, n_inputs: int = 8, channels: int = 8, kernel_size: int = 5) -> dict:
    """Relative invariance error and OSP of a random GCNN and canonicalization model
    for C_n, on smooth (band-limited) and on uniform-noise 28x28 images.

    Returns:
        ``{(model, kind): {"invariance_error": float, "osp": float}}``.
    """
    group = rotations(n, (28, 28))
    k1, k2, k3 = jax.random.split(key, 3)
    inputs = {"smooth": smooth_images(k1, n_inputs, (28, 28, 1)),
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


def run(cfg: BaselineInvarianceConfig, out, *, data_dir=None, progress: bool = True,
        overwrite: bool = False) -> dict:
    """One record ``C{n}/{model}/{kind}`` per group, model and kind of image (``data_dir`` unused)."""
    rd = RunDir(Path(out), cfg, overwrite=overwrite)
    done = rd.done()
    kinds = [(m, k) for m in ("gcnn", "canonicalization") for k in ("smooth", "noise")]
    for n in cfg.groups:
        if not rd.pending(kinds, lambda u: f"C{n}/{u[0]}/{u[1]}"):
            continue
        rep = invariance_report(n, jax.random.PRNGKey(cfg.seed), cfg.n_inputs, cfg.channels, cfg.kernel_size)
        for (model, kind), r in rep.items():
            key = f"C{n}/{model}/{kind}"
            done[key] = rd.record(key, n=n, model=model, kind=kind, **r)
    return done


def summary(cfg: BaselineInvarianceConfig, done: dict) -> str:
    """One line per group, model and kind: invariance error and OSP."""
    lines = [f"random-weight baselines, {cfg.n_inputs} images each; relative invariance error of the logits "
             "(OSP out of n)"]
    for r in done.values():
        lines.append(f"C{r['n']:<2} {r['model']:>16} {r['kind']:>6}: {r['invariance_error']:.2e}  (OSP {r['osp']:.2f})")
    return "\n".join(lines)
