"""The abstract finite group: elements, Cayley table, composition, inverses, subgroups.

A group element is an integer index ``0..order-1`` with ``0`` the identity;
``compose(g, h)`` is ``g h`` (apply ``h`` first). Nothing here knows how a group acts on
data: that is :mod:`ntkequi.groups.actions`; representations on outputs are
:mod:`ntkequi.groups.reps`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

__all__ = ["GroupError", "FiniteGroup", "cyclic_table", "validate_table", "table_from_elements",
           "subgroup_elements"]


class GroupError(ValueError):
    """A group (or its use) violates a group axiom or does not fit the data."""



def cyclic_table(n: int) -> np.ndarray:
    """Cayley table ``(n, n)`` of the cyclic group C_n: ``(g + h) mod n``."""
    i = np.arange(n)
    return (i[:, None] + i[None, :]) % n


def table_from_elements(elements: Sequence[np.ndarray], compose: Callable,
                         what: str, atol: float = 1e-9) -> np.ndarray:
    """Cayley table by matching ``compose(a, b)`` against the element list.

    Raises GroupError naming the first product that is not an element."""
    n = len(elements)
    flat = np.stack([np.asarray(e, dtype=np.float64).ravel() for e in elements])
    table = np.empty((n, n), dtype=np.int32)
    for a in range(n):
        for b in range(n):
            prod = np.asarray(compose(elements[a], elements[b]), dtype=np.float64).ravel()
            d = np.abs(flat - prod[None]).max(axis=1)
            j = int(np.argmin(d))
            if d[j] > atol:
                raise GroupError(
                    f"closure fails for {what}: element {a} composed with element {b} "
                    f"is not in the set (nearest element {j} differs by {d[j]:.3g})")
            table[a, b] = j
    return table


def validate_table(table: np.ndarray, name: str) -> None:
    n = table.shape[0]
    if table.shape != (n, n):
        raise GroupError(f"{name}: Cayley table must be square, got {table.shape}")
    if not np.array_equal(table[0], np.arange(n)) or not np.array_equal(table[:, 0], np.arange(n)):
        raise GroupError(f"{name}: identity fails: element 0 is not the identity")
    for g in range(n):
        if sorted(table[g]) != list(range(n)):
            raise GroupError(f"{name}: inverses fail: row {g} of the Cayley table "
                             f"is not a permutation (no unique inverse)")
    a = table[table, :]          # a[g, h, k] = (g h) k  -> table[table[g,h], k]
    b = table[:, table]          # b[g, h, k] = g (h k)
    if not np.array_equal(a, b):
        g, h, k = np.argwhere(a != b)[0]
        raise GroupError(f"{name}: associativity fails for elements ({g}, {h}, {k})")



class FiniteGroup:
    """A finite group given by its Cayley table ``table`` ``(n, n)`` (``table[g, h]`` is
    the index of ``g h``; element 0 the identity), validated on construction.

    >>> import numpy as np
    >>> c3 = FiniteGroup("C3", cyclic_table(3))
    >>> c3.order, int(c3.compose(1, 2)), int(c3.inverse(1))
    (3, 0, 2)
    """
    name: str
    table: np.ndarray

    def __init__(self, name: str, table):
        self.name = name
        self.table = np.asarray(table, dtype=np.int32)
        validate_table(self.table, name)

    @property
    def order(self) -> int:
        """|G|."""
        return int(self.table.shape[0])

    def __len__(self) -> int:
        return self.order

    @property
    def elements(self) -> jnp.ndarray:
        """All elements as indices, ``(|G|,)``; 0 is the identity."""
        return jnp.arange(self.order)

    def compose(self, g, h):
        """Index of ``g h`` (apply h first)."""
        return jnp.asarray(self.table)[g, h]

    @property
    def inverses(self) -> np.ndarray:
        """``(|G|,)`` array of inverse indices."""
        return np.argmax(self.table == 0, axis=1).astype(np.int32)

    def inverse(self, g):
        """Index of ``g^-1``."""
        return jnp.asarray(self.inverses)[g]


def subgroup_elements(group: FiniteGroup, step: int) -> np.ndarray:
    """Elements ``0, step, 2 step, ...`` of a cyclic group, checked to form a subgroup.

    Args:
        group: the group (its Cayley table is used).
        step: spacing of the element indices; must divide ``|G|``.

    Returns:
        ``(|G| / step,)`` int array of element indices.

    Raises:
        GroupError: ``step`` does not divide ``|G|`` or the elements are not closed.
    """
    if step < 1 or group.order % step:
        raise GroupError(f"subgroup_step={step} must divide |G|={group.order}")
    elems = np.arange(0, group.order, step)
    table = np.asarray(group.table)[np.ix_(elems, elems)]
    if not set(np.unique(table)) <= set(elems.tolist()):
        raise GroupError(f"elements {elems.tolist()} of {group.name} are not closed under "
                         f"composition (not a subgroup)")
    return elems
