"""Representations of a finite group on outputs, and its irreducible representations.

:class:`Rep` holds the matrices a group element applies to outputs ``(N, k)``
(``y -> y @ rho(g).T``); :func:`irreps` decomposes the abstract group (its Cayley table).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax.numpy as jnp
import numpy as np

from .finite import FiniteGroup, GroupError, cyclic_table

__all__ = ["Rep", "trivial_rep", "regular_rep", "irreps"]


@dataclasses.dataclass(frozen=True, eq=False)
class Rep:
    """A representation on outputs: ``matrices[g]`` is ``(k, k)``; ``None`` = trivial
    (acts as the identity on any output dimension)."""
    matrices: Optional[np.ndarray] = None
    name: str = "trivial"

    @property
    def is_trivial(self) -> bool:
        """True for the trivial representation (outputs left unchanged)."""
        return self.matrices is None

    def matrix(self, g, k: int) -> jnp.ndarray:
        """``rho(g)`` as a ``(k, k)`` matrix for outputs with ``k`` components; GroupError
        if the representation has another dimension."""
        if self.matrices is None:
            return jnp.eye(k)
        m = jnp.asarray(self.matrices)[g]
        if m.shape[-1] != k:
            raise GroupError(f"output representation '{self.name}' is {m.shape[-1]}-dimensional "
                             f"but the outputs have k={k} components")
        return m


def trivial_rep() -> Rep:
    """The trivial representation (invariant targets such as class logits)."""
    return Rep(None, "trivial")


def regular_rep(table: np.ndarray) -> np.ndarray:
    """Right regular representation ``(|G|, |G|, |G|)``: ``R[a][g, h] = 1`` iff
    ``h = g a``; a homomorphism, ``R[compose(a, b)] = R[a] @ R[b]``."""
    table = np.asarray(table)
    n = table.shape[0]
    R = np.zeros((n, n, n))
    g = np.arange(n)
    for a in range(n):
        R[a, g, table[g, a]] = 1.0
    return R


def _irreps_numerical(table: np.ndarray, seed: int) -> list:
    """Decompose the regular representation: a random Hermitian element of its
    commutant (spanned by the left multiplications) has one eigenspace per copy of
    each irrep; restricting R to an eigenspace gives that irrep in a unitary basis."""
    n = table.shape[0]
    R = regular_rep(table)
    L = np.zeros((n, n, n))
    h = np.arange(n)
    for b in range(n):
        L[b, table[b, h], h] = 1.0          # L_b e_h = e_{b h}; commutes with every R_a
    rng = np.random.default_rng(seed)
    c = rng.normal(size=n) + 1j * rng.normal(size=n)
    A = np.einsum("b,bgh->gh", c, L)
    w, V = np.linalg.eigh(A + A.conj().T)
    tol = 1e-8 * max(1.0, float(np.abs(w).max()))
    clusters, start = [], 0
    for i in range(1, n + 1):
        if i == n or w[i] - w[i - 1] > tol:
            clusters.append(np.arange(start, i))
            start = i
    reps, chars = [], []
    for idx in clusters:
        Vc = V[:, idx]
        rho = np.einsum("gi,agh,hj->aij", Vc.conj(), R, Vc)
        chi = np.trace(rho, axis1=1, axis2=2)
        if any(len(ch) == len(chi) and np.abs(ch - chi).max() < 1e-6 for ch in chars):
            continue
        reps.append(rho)
        chars.append(chi)
    return reps


def _check_irreps(reps: list, table: np.ndarray, tol: float = 1e-8) -> str:
    """'' if ``reps`` is a complete set of inequivalent unitary irreps, else why not."""
    n = table.shape[0]
    if sum(r.shape[1] ** 2 for r in reps) != n:
        return f"sum of squared dimensions {sum(r.shape[1] ** 2 for r in reps)} != |G| = {n}"
    for r in reps:
        d = r.shape[1]
        if np.abs(r[table] - np.einsum("aij,bjk->abik", r, r)).max() > tol:
            return f"a {d}-dimensional candidate is not a homomorphism"
        if np.abs(np.einsum("aji,ajk->aik", r.conj(), r) - np.eye(d)).max() > tol:
            return f"a {d}-dimensional candidate is not unitary"
        # irreducible iff <chi, chi> = 1
        chi = np.trace(r, axis1=1, axis2=2)
        if abs(np.vdot(chi, chi) / n - 1) > 1e-6:
            return f"a {d}-dimensional candidate is reducible"
    return ""


def irreps(group: FiniteGroup) -> list:
    """The unitary irreducible representations of ``group`` (as an abstract group,
    from its Cayley table), one per equivalence class: a list of complex arrays
    ``(|G|, d, d)`` with ``rho[compose(g, h)] = rho[g] @ rho[h]``; the first is the
    trivial one, and ``sum d^2 = |G|``.

    Cyclic tables get the characters ``exp(2 pi i k g / n)`` (the DFT over the
    group index); any other group (dihedral, products of cyclic groups, ...) is
    decomposed numerically from its regular representation and checked (homomorphism,
    unitarity, irreducibility, completeness). Cached on the group object."""
    cached = getattr(group, "_irreps", None)
    if cached is not None:
        return cached
    table = np.asarray(group.table)
    n = table.shape[0]
    if np.array_equal(table, cyclic_table(n)):
        g = np.arange(n)
        reps = [np.exp(2j * np.pi * k * g / n)[:, None, None] for k in range(n)]
        reps[0] = np.ones((n, 1, 1), dtype=complex)
    else:
        why = ""
        for seed in range(5):
            reps = _irreps_numerical(table, seed)
            why = _check_irreps(reps, table)
            if not why:
                break
        if why:  # pragma: no cover - would need a pathological random draw 5 times
            raise GroupError(f"{group.name}: could not decompose the regular representation: {why}")
        triv = [i for i, r in enumerate(reps) if r.shape[1] == 1 and np.allclose(r[:, 0, 0], 1)]
        reps = [np.ones((n, 1, 1), dtype=complex)] + [r for i, r in enumerate(reps) if i != triv[0]]
    group._irreps = reps
    return reps


# ----------------------------------------------------------------------------
# Finite rotation groups of R^3 acting on sets of 3-vectors
