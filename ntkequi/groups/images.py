"""Groups acting on images and lattices: rotations (exact C1/C2/C4 permutations,
bilinear C8, C16, ...), dihedral groups, lattice translations."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .actions import GatherGroup
from .finite import GroupError, cyclic_table
from .reps import Rep

__all__ = ["rotations", "dihedral", "lattice_translations", "lattice_rotations", "image_rotation_gather"]


def _rot90_perm(h: int, w: int, k: int) -> np.ndarray:
    """Site permutation of ``np.rot90(img, k)`` (counter-clockwise) on an HxW grid."""
    sites = np.arange(h * w).reshape(h, w)
    return np.rot90(sites, k).ravel()


def _flip_perm(h: int, w: int) -> np.ndarray:
    """Mirror left-right (reflection across the vertical axis)."""
    return np.arange(h * w).reshape(h, w)[:, ::-1].ravel()


def image_rotation_gather(h: int, w: int, angle: float):
    """Bilinear rotation of an HxW image by ``angle`` (radians, counter-clockwise)
    about the image centre ``((H-1)/2, (W-1)/2)``; samples falling outside the
    image read zeros. Returns ``(index (S, 4), weight (S, 4))``.

    Output pixel ``(i, j)`` reads the input at the inversely rotated position;
    out-of-image taps get weight 0 (zero padding)."""
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    y, xx = ci - ii, jj - cj                      # y up, x right
    c, s = math.cos(angle), math.sin(angle)
    # inverse rotation (by -angle) of the output position gives the source
    xs = c * xx + s * y
    ys = -s * xx + c * y
    si, sj = ci - ys, xs + cj                     # back to row/col
    i0, j0 = np.floor(si), np.floor(sj)
    di, dj = si - i0, sj - j0
    idx, wts = [], []
    for oi, oj, wt in ((0, 0, (1 - di) * (1 - dj)), (0, 1, (1 - di) * dj),
                       (1, 0, di * (1 - dj)), (1, 1, di * dj)):
        ti, tj = i0 + oi, j0 + oj
        inside = (ti >= 0) & (ti < h) & (tj >= 0) & (tj < w)
        idx.append(np.where(inside, ti * w + tj, 0).ravel())
        wts.append(np.where(inside, wt, 0.0).ravel())
    index = np.stack(idx, -1).astype(np.int32)
    weight = np.stack(wts, -1)
    weight[np.abs(weight) < 1e-12] = 0.0
    return index, weight


def rotations(n: int, shape=(28, 28), out: Optional[Rep] = None) -> GatherGroup:
    """C_n rotations of square ``shape`` images about their centre.

    n in {1, 2, 4}: exact pixel permutations (``np.rot90``). Other n (8, 16, ...):
    bilinear interpolation with zero padding (:func:`image_rotation_gather`),
    except that multiples of 90 degrees are exact permutations; ``exact`` is False and ``closure_error`` reports ``||g^n x - x|| / ||x||``."""
    h, w = shape
    if h != w:
        raise GroupError(f"rotations need square images; got shape {shape}")
    if n < 1:
        raise GroupError(f"C_n needs n >= 1; got n={n}")
    if n in (1, 2, 4):
        perms = [_rot90_perm(h, w, k * (4 // n)) for k in range(n)]
        return GatherGroup.from_permutations(f"C{n}", perms, (h, w), out)
    index, weight = [], []
    for k in range(n):
        if (4 * k) % n == 0:   # multiples of 90 degrees (incl. identity): exact permutation
            perm = _rot90_perm(h, w, 4 * k // n)
            index.append(np.stack([perm] + [np.zeros(h * w, int)] * 3, -1))
            weight.append(np.stack([np.ones(h * w)] + [np.zeros(h * w)] * 3, -1))
        else:
            i, wt = image_rotation_gather(h, w, 2 * math.pi * k / n)
            index.append(i)
            weight.append(wt)
    index, weight = np.stack(index), np.stack(weight)
    return GatherGroup(f"C{n}", index, weight, cyclic_table(n), False, (h, w), out)


def dihedral(n: int, shape=(28, 28), out: Optional[Rep] = None) -> GatherGroup:
    """D_n (n rotations and n reflections) of square images, exact for n in {1, 2, 4}.

    Elements ``0..n-1`` are the rotations ``r^k``; ``n..2n-1`` are ``r^k s`` with
    ``s`` the left-right mirror."""
    h, w = shape
    if n not in (1, 2, 4):
        raise GroupError(f"dihedral groups of images are exact only for n in (1, 2, 4); got n={n}")
    if h != w:
        raise GroupError(f"dihedral groups need square images; got shape {shape}")
    rots = [_rot90_perm(h, w, k * (4 // n)) for k in range(n)]
    flip = _flip_perm(h, w)
    # element r^k s acts as x -> r^k (s x): site p reads (s x)[r[p]] = x[flip[r[p]]]
    refl = [flip[r] for r in rots]
    return GatherGroup.from_permutations(f"D{n}", rots + refl, (h, w), out)


def lattice_translations(L: int, out: Optional[Rep] = None) -> GatherGroup:
    """All L*L cyclic translations of a periodic L x L lattice (inputs ``(N, L, L, C)``).

    Element ``a*L + b`` shifts by ``a`` rows and ``b`` columns (``np.roll``)."""
    sites = np.arange(L * L).reshape(L, L)
    perms = [np.roll(sites, (a, b), axis=(0, 1)).ravel() for a in range(L) for b in range(L)]
    return GatherGroup.from_permutations(f"T{L}x{L}", perms, (L, L), out)


def lattice_rotations(L: int, out: Optional[Rep] = None) -> GatherGroup:
    """The C4 rotations of an L x L lattice (exact site permutations)."""
    g = rotations(4, (L, L), out)
    g.name = f"C4(lattice {L}x{L})"
    return g
