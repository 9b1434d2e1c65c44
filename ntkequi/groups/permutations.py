"""Permutation groups acting on sets of pairs: the symmetric group S_n relabelling atoms,
acting on vectors of pairwise distances."""
from __future__ import annotations

import itertools

import numpy as np

from .actions import GatherGroup

__all__ = ["pair_permutations", "atom_pairs"]


def atom_pairs(n_atoms: int) -> list:
    """The pairs ``(i, j)``, ``i < j``, of ``n_atoms`` atoms, in the order of the distance
    vectors (``itertools.combinations``)."""
    return list(itertools.combinations(range(n_atoms), 2))


def pair_permutations(n_atoms: int) -> GatherGroup:
    """``S_n`` acting on distance vectors ``(N, P, 1)``: relabelling the atoms by ``sigma``
    moves the distance of pair ``{i, j}`` to pair ``{sigma(i), sigma(j)}``.

    Args:
        n_atoms: number of identical atoms n (the group has n! elements).

    Returns:
        An exact :class:`~ntkequi.groups.GatherGroup` named ``S<n>`` on ``P = n(n-1)/2`` sites.

    >>> pair_permutations(3).order
    6
    """
    pairs = atom_pairs(n_atoms)
    where = {p: k for k, p in enumerate(pairs)}
    perms = []
    for sigma in itertools.permutations(range(n_atoms)):
        inv = np.argsort(sigma)
        # output pair {a, b} reads the input pair that sigma maps onto it
        perms.append([where[tuple(sorted((int(inv[a]), int(inv[b]))))] for a, b in pairs])
    return GatherGroup.from_permutations(f"S{n_atoms}", perms, (len(pairs),))
