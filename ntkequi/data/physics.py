"""Physical toy data: the seeds' 2D potential (a quartic double well in x, harmonic in y,
with a small oscillating term), its forces and overdamped Brownian dynamics that sample
``exp(-V)``; molecule-like configurations of identical atoms, their pairwise distances
and a Morse + three-body energy invariant under relabelling the atoms. Every generator
takes an explicit PRNG key."""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._validate import check_finite
from ..groups import atom_pairs

__all__ = ["EXTENT", "potential", "smooth_potential", "true_force", "smooth_force", "brownian",
           "distances", "morse_energy", "energy", "configurations"]

#: the region of the plane the force-field experiment samples and draws, ((x0, x1), (y0, y1))
EXTENT = ((-4.5, 5.5), (-9.0, 9.0))


def potential(r) -> jnp.ndarray:
    """V(x, y) / kT for points ``r`` ``(..., 2)``: ``(...)``."""
    x, y = r[..., 0], r[..., 1]
    return (x - 4) * (x - 2) * (x + 2) * (x + 3) / 50.0 + y ** 2 / 20.0 + jnp.sin(3 * (x + 5) * (y - 6)) / 25.0


def smooth_potential(r) -> jnp.ndarray:
    """V without its oscillating term ``sin(3 (x + 5)(y - 6)) / 25``, whose force (up to
    ~1 kT per unit length, wavelength ~0.3) no model resolves from tens of samples."""
    x, y = r[..., 0], r[..., 1]
    return (x - 4) * (x - 2) * (x + 2) * (x + 3) / 50.0 + y ** 2 / 20.0


def _minus_grad(v, r) -> jnp.ndarray:
    flat = jnp.asarray(r).reshape(-1, 2)
    return (-jax.vmap(jax.grad(v))(flat)).reshape(jnp.shape(r))


def smooth_force(r) -> jnp.ndarray:
    """``-grad`` of :func:`smooth_potential` ``(..., 2)``."""
    return _minus_grad(smooth_potential, r)


def true_force(r) -> jnp.ndarray:
    """``-grad V`` ``(..., 2)``."""
    return _minus_grad(potential, r)


def brownian(key, r0, force_fn, steps: int, dt: float, every: int, burn: int = 0):
    """Overdamped Langevin dynamics at kT = 1 from ``r0`` ``(W, 2)`` (W walkers):
    ``r <- r + F(r) dt + sqrt(2 dt) xi``. Returns the positions after ``burn`` steps, every
    ``every`` steps: ``(S, W, 2)``. ``force_fn`` maps ``(W, 2) -> (W, 2)``."""
    r0 = check_finite("r0", r0)
    if steps <= burn or every < 1:
        raise ValueError(f"need steps > burn and every >= 1; got steps={steps}, burn={burn}, every={every}")

    def step(r, k):
        r = r + force_fn(r) * dt + jnp.sqrt(2 * dt) * jax.random.normal(k, r.shape, r.dtype)
        return r, r

    def chunk(r, k):
        r, _ = jax.lax.scan(step, r, jax.random.split(k, every))
        return r, r

    kb, ks = jax.random.split(key)
    r = r0
    if burn:
        r, _ = jax.jit(lambda r, k: jax.lax.scan(step, r, jax.random.split(k, burn)))(r, kb)
    n = (steps - burn) // every
    _, out = jax.jit(lambda r, k: jax.lax.scan(chunk, r, jax.random.split(k, n)))(r, ks)
    return out


def distances(x) -> jnp.ndarray:
    """Pairwise distances of configurations ``x`` ``(N, n_atoms, 3)``: ``(N, P, 1)``."""
    x = jnp.asarray(x)
    i, j = np.triu_indices(x.shape[1], 1)
    return jnp.linalg.norm(x[:, i] - x[:, j], axis=-1)[..., None]


def morse_energy(d, depth: float = 1.0, width: float = 1.5, r0: float = 1.0) -> jnp.ndarray:
    """Sum of Morse pair terms ``depth (1 - exp(-width (r - r0)))^2 - depth`` over the
    distances ``d`` ``(N, P, 1)``: ``(N, 1)``."""
    m = depth * (1 - jnp.exp(-width * (d[..., 0] - r0))) ** 2 - depth
    return m.sum(-1, keepdims=True)


def _triangles(n_atoms: int):
    """For each atom triple, the indices of its three pairs in the distance vector."""
    where = {p: k for k, p in enumerate(atom_pairs(n_atoms))}
    return np.array([[where[(i, j)], where[(i, k)], where[(j, k)]]
                     for i, j, k in itertools.combinations(range(n_atoms), 3)])


def energy(d, three_body: float = 2.0) -> jnp.ndarray:
    """Morse pair energy plus a three-body term ``three_body * sum_triangles exp(-(r_ij r_ik
    r_jk))`` of distances ``d`` ``(N, P, 1)``: ``(N, 1)``. Both are invariant under
    relabelling the atoms; the three-body term depends on which distances share atoms, which
    a sorted list of distances does not keep."""
    n_atoms = int(round((1 + math.sqrt(1 + 8 * d.shape[1])) / 2))
    tri = d[:, _triangles(n_atoms), 0]                          # (N, T, 3)
    return morse_energy(d) + three_body * jnp.exp(-jnp.prod(tri, -1)).sum(-1, keepdims=True)


def configurations(key, n: int, n_atoms: int, spread: float = 0.8, min_distance: float = 0.6):
    """``n`` random configurations ``(n, n_atoms, 3)`` (Gaussian positions, rejected if two
    atoms are closer than ``min_distance``)."""
    out, k = [], key
    while sum(len(o) for o in out) < n:
        k, sub = jax.random.split(k)
        x = spread * jax.random.normal(sub, (4 * n, n_atoms, 3))
        ok = np.asarray(distances(x)[..., 0].min(-1) > min_distance)
        out.append(np.asarray(x)[ok])
    return jnp.asarray(np.concatenate(out)[:n])
