"""Groups acting on points: planar rotations C_n, finite rotation groups of R^3 (T, O,
I, C_n, D_n) on sets of 3-vectors, and Haar-random rotations of SO(3)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .actions import MatrixGroup, VectorGroup
from .finite import GroupError
from .reps import Rep, trivial_rep

__all__ = ["planar_rotations", "rotations3d", "so3_subgroup_matrices", "random_rotations3d"]


def planar_rotations(n: int, out: str | Rep = "trivial") -> MatrixGroup:
    """C_n rotations of points in the plane (exact 2x2 orthogonal matrices).

    ``out='standard'`` uses the same 2x2 matrices on 2-vector outputs
    (equivariant targets); ``'trivial'`` for invariant targets."""
    if n < 1:
        raise GroupError(f"C_n needs n >= 1; got n={n}")
    ang = 2 * np.pi * np.arange(n) / n
    mats = np.stack([np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) for a in ang])
    mats[0] = np.eye(2)
    if isinstance(out, str):
        if out == "trivial":
            rep = trivial_rep()
        elif out == "standard":
            rep = Rep(mats, "standard")
        else:
            raise GroupError(f"unknown output representation {out!r}; use 'trivial' or 'standard'")
    else:
        rep = out
    return MatrixGroup(f"C{n}(plane)", mats, rep)


# ----------------------------------------------------------------------------


def _axis_rotation(axis, angle: float) -> np.ndarray:
    """Rotation by ``angle`` (radians, right-handed) about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _generate(gens, limit: int, name: str, atol: float = 1e-9) -> np.ndarray:
    """All products of the generators (breadth first), identity first; GroupError if
    more than ``limit`` elements appear (the generators do not generate a finite
    group of that size)."""
    elems = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for a in frontier:
            for g in gens:
                p = g @ a
                p[np.abs(p) < 1e-15] = 0.0
                if not any(np.abs(p - e).max() < atol for e in elems):
                    elems.append(p)
                    new.append(p)
                    if len(elems) > limit:
                        raise GroupError(f"{name}: generators produce more than {limit} elements")
        frontier = new
    return np.stack(elems)


def so3_subgroup_matrices(name: str) -> np.ndarray:
    """Exact rotation matrices ``(|G|, 3, 3)`` (identity first) of a finite subgroup
    of SO(3): 'T' (tetrahedral, 12), 'O' (octahedral, 24), 'I' (icosahedral, 60),
    'C<n>' (rotations about z by 2 pi k / n) or 'D<n>' (C<n> and the n half-turns
    about axes in the xy-plane, 2n)."""
    if name == "T":
        # even permutation matrices x sign changes with det +1
        perms = [np.eye(3)[list(p)] for p in ((0, 1, 2), (1, 2, 0), (2, 0, 1))]
        signs = [np.diag(s) for s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))]
        mats = np.stack([s @ p for p in perms for s in signs])
    elif name == "O":
        import itertools
        mats = []
        for p in itertools.permutations(range(3)):
            for s in itertools.product((1, -1), repeat=3):
                m = np.diag(s) @ np.eye(3)[list(p)]
                if np.linalg.det(m) > 0:
                    mats.append(m)
        mats = np.stack(mats)
    elif name == "I":
        phi = (1 + math.sqrt(5)) / 2
        gens = [_axis_rotation((0, 1, phi), 2 * math.pi / 5), _axis_rotation((1, 1, 1), 2 * math.pi / 3)]
        mats = _generate(gens, 60, "icosahedral group")
    elif name[:1] in ("C", "D") and name[1:].isdigit() and int(name[1:]) >= 1:
        n = int(name[1:])
        rot = [_axis_rotation((0, 0, 1), 2 * math.pi * k / n) for k in range(n)]
        if name[0] == "D":
            rot = rot + [r @ _axis_rotation((1, 0, 0), math.pi) for r in rot]
        mats = np.stack(rot)
    else:
        raise GroupError(f"unknown finite rotation group {name!r}: use 'T', 'O', 'I', 'C<n>' or 'D<n>'")
    mats = np.asarray(mats, dtype=np.float64)
    mats[np.abs(mats) < 1e-15] = 0.0
    ident = int(np.argmin(np.abs(mats - np.eye(3)).reshape(len(mats), -1).max(axis=1)))
    order = [ident] + [i for i in range(len(mats)) if i != ident]
    mats = mats[order]
    mats[0] = np.eye(3)
    return mats


def rotations3d(name: str, out: str | Rep = "vector") -> VectorGroup:
    """A finite rotation group of R^3 (see :func:`so3_subgroup_matrices`) acting on
    inputs ``(N, V, 3)``; ``out='vector'`` rotates ``(N, 3)`` outputs by the same
    matrices (equivariant targets such as a cross product), ``'trivial'`` leaves them."""
    mats = so3_subgroup_matrices(name)
    if isinstance(out, str):
        if out == "vector":
            rep = Rep(mats, "vector")
        elif out == "trivial":
            rep = trivial_rep()
        else:
            raise GroupError(f"unknown output representation {out!r}; use 'vector' or 'trivial'")
    else:
        rep = out
    return VectorGroup(name if name in ("T", "O", "I") else f"{name}(z)", mats, rep)


def random_rotations3d(key, n: int) -> jnp.ndarray:
    """``(n, 3, 3)`` rotations drawn uniformly (Haar) from SO(3): QR of Gaussian
    matrices with the sign fix, then det +1."""
    a = jax.random.normal(key, (n, 3, 3))
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = jnp.linalg.det(q)
    return q * jnp.where(det < 0, -1.0, 1.0)[:, None, None]
