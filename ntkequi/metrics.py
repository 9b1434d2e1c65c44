"""Orbit-consistency metrics, generic over groups.

All metrics take predictions on the orbit of the inputs, ``f_orbit[g] = f(g x)``
with shape ``(|G|, N, k)`` (as produced by predicting on
``group.orbit(x).reshape(-1, ...)`` and reshaping), so they are independent of
how the predictions were made (analytic NTK, finite ensemble, baseline).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from .groups import Group

__all__ = ["InvarianceError", "equivariance_error", "orbit_predictions"]


@dataclasses.dataclass(frozen=True)
class InvarianceError:
    """absolute: mean over g and x of ``||f(g x) - rho_out(g) f(x)||``.
    relative: ``absolute / mean_x ||f(x)||`` (ratio of means, so inputs where
    ``f(x) ~ 0`` do not dominate)."""
    absolute: float
    relative: float


def _check_orbit(f_orbit, group: Group):
    f_orbit = jnp.asarray(f_orbit)
    if f_orbit.ndim != 3 or f_orbit.shape[0] != group.order:
        raise ValueError(f"orbit predictions must have shape (|G|={group.order}, N, k); "
                         f"got {tuple(f_orbit.shape)}")
    return f_orbit


def equivariance_error(f_orbit, group: Group) -> InvarianceError:
    """Invariance (trivial output rep) or equivariance error of orbit predictions
    ``f_orbit`` ``(|G|, N, k)``; see :class:`InvarianceError`."""
    f_orbit = _check_orbit(f_orbit, group)
    expected = group.orbit_out(f_orbit[0])                 # rho_out(g) f(x)
    diff = jnp.linalg.norm(f_orbit - expected, axis=-1)    # (|G|, N)
    absolute = float(diff.mean())
    scale = float(jnp.linalg.norm(f_orbit[0], axis=-1).mean())
    return InvarianceError(absolute, absolute / scale if scale > 0 else float("nan"))


def orbit_predictions(flat_predictions, group: Group):
    """Reshape predictions on ``group.orbit(x).reshape(-1, ...)``, ``(..., |G| N, k)``,
    to ``(..., |G|, N, k)``."""
    p = jnp.asarray(flat_predictions)
    if p.shape[-2] % group.order:
        raise ValueError(f"{p.shape[-2]} predictions is not a multiple of |G|={group.order}")
    return p.reshape(p.shape[:-2] + (group.order, p.shape[-2] // group.order, p.shape[-1]))
