"""Synthetic data: points in a wedge of the plane, rings and noise, a rotation-invariant
radial target, Ising configurations and their energy. Every generator takes an explicit
PRNG key."""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["wedge_points", "ring_points", "noise_points", "radial_target", "ising_configurations",
           "ising_energy"]


def wedge_points(key, n: int, max_angle: float = jnp.pi / 3, r_min: float = 0.5,
                 r_max: float = 2.0) -> jnp.ndarray:
    """``(n, 2)`` points with polar angle uniform in ``[0, max_angle)`` and radius
    uniform in ``[r_min, r_max]``: a data distribution that only covers a wedge,
    so rotated copies of it are off the data."""
    ka, kr = jax.random.split(key)
    ang = jax.random.uniform(ka, (n,), minval=0.0, maxval=max_angle)
    r = jax.random.uniform(kr, (n,), minval=r_min, maxval=r_max)
    return jnp.stack([r * jnp.cos(ang), r * jnp.sin(ang)], axis=1)


def ring_points(key, n: int, r_min: float = 3.0, r_max: float = 4.0) -> jnp.ndarray:
    """``(n, 2)`` points on a ring at any angle: outside the training radii."""
    return wedge_points(key, n, 2 * jnp.pi, r_min, r_max)


def noise_points(key, n: int, scale: float = 3.0, dim: int = 2) -> jnp.ndarray:
    """``(n, dim)`` isotropic Gaussian noise with standard deviation ``scale``."""
    return scale * jax.random.normal(key, (n, dim))


def radial_target(x) -> jnp.ndarray:
    """Rotation-invariant scalar target ``cos(2 |x|) + |x| / 2`` of points ``(n, 2)``; ``(n, 1)``."""
    r = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return jnp.cos(2 * r) + 0.5 * r


def ising_configurations(key, n: int, L: int) -> jnp.ndarray:
    """``(n, L, L, 1)`` spin configurations in {-1, +1}: each sample draws its own
    probability of spin up uniformly in [0.1, 0.9], so energies span a range."""
    kp, ks = jax.random.split(key)
    p = jax.random.uniform(kp, (n, 1, 1, 1), minval=0.1, maxval=0.9)
    return jnp.where(jax.random.uniform(ks, (n, L, L, 1)) < p, 1.0, -1.0)


def ising_energy(s) -> jnp.ndarray:
    """Nearest-neighbour energy per site of periodic configurations ``(n, L, L, 1)``:
    ``-(1/L^2) sum_i s_i (s_right + s_down)``; ``(n, 1)``. Invariant under lattice
    translations and rotations."""
    s = jnp.asarray(s)[..., 0]
    e = s * (jnp.roll(s, -1, axis=2) + jnp.roll(s, -1, axis=1))
    return -e.sum(axis=(1, 2))[:, None] / (s.shape[1] * s.shape[2])
