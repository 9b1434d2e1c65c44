"""Checks of a group and its action: the axioms on the Cayley table, the action's
compatibility, inverses and orthogonality on random inputs, the output representation,
and the measured closure error of interpolated actions. Generic over every group."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .actions import Group
from .finite import GroupError, validate_table

__all__ = ["GroupReport", "check_group", "closure_error", "smooth_images"]


@dataclasses.dataclass(frozen=True)
class GroupReport:
    """Result of :func:`check_group`. Errors are max relative norms over g (and h)."""
    name: str
    order: int
    exact: bool
    identity_error: float
    composition_error: float
    inverse_error: float
    orthogonality_error: float
    closure_error: float
    out_rep_error: float


def _rel(a, b):
    num = jnp.linalg.norm((a - b).reshape(a.shape[0], -1), axis=1)
    den = jnp.linalg.norm(b.reshape(b.shape[0], -1), axis=1)
    return float(jnp.max(num / jnp.maximum(den, 1e-300)))


def smooth_images(key, n, shape):
    """Band-limited random images (a few low Fourier modes) vanishing at the
    border, for measuring interpolation errors meaningfully."""
    h, w, c = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    env = np.clip(1 - (yy ** 2 + xx ** 2), 0, None)[None, :, :, None]
    coef = jax.random.normal(key, (n, 3, 3, c))
    img = 0
    for a in range(3):
        for b in range(3):
            img = img + coef[:, a, b][:, None, None, :] * np.cos(np.pi * a * yy / 2)[None, :, :, None] \
                * np.cos(np.pi * b * xx / 2)[None, :, :, None]
    return jnp.asarray(img * env)


def _sample_inputs(group: Group, key, n: int, smooth: bool):
    shape = tuple(4 if e is None else e for e in group.event_shape)
    if smooth and len(shape) == 3:
        return smooth_images(key, n, shape)
    return jax.random.normal(key, (n,) + shape)


def closure_error(group: Group, x=None, key=None) -> float:
    """Measured ``max_g ||g^{ord(g)} x - x|| / ||x||`` (0 up to rounding for exact
    actions); smooth random inputs by default."""
    key = jax.random.PRNGKey(0) if key is None else key
    x = _sample_inputs(group, key, 4, True) if x is None else group.check_input(x)
    worst = 0.0
    for g in range(1, group.order):
        y, h = group.act(g, x), g
        while h != 0:
            h = int(group.table[g, h])
            if h != 0:
                y = group.act(g, y)
        worst = max(worst, _rel(y, x))
    return worst


def check_group(group: Group, x=None, key=None, tol: float = 1e-10) -> GroupReport:
    """Verify the group axioms and the action on random inputs.

    Always: the Cayley table is a group (identity, inverses, associativity) and the
    output representation is a homomorphism. For exact actions also: identity,
    compatibility ``g(hx) = (gh)x``, inverses ``g^-1(gx) = x`` and orthogonality
    (inner products preserved) to ``tol`` relative; the first failure raises
    :class:`GroupError` naming the property and the elements. For inexact
    (interpolated) actions the same quantities are measured and reported.

    Args:
        group: any :class:`~ntkequi.groups.Group`.
        x: inputs to act on (default: random, smooth for interpolated actions).
        key: PRNG key of the random inputs.
        tol: relative tolerance of the exact checks.

    Returns:
        A :class:`GroupReport` of the largest measured errors.

    Raises:
        GroupError: an axiom fails (named, with the elements).

    >>> import jax; jax.config.update("jax_enable_x64", True)
    >>> from ntkequi import groups
    >>> check_group(groups.rotations(4, (6, 6))).composition_error
    0.0
    >>> round(check_group(groups.rotations(8, (8, 8))).closure_error, 2) > 0     # bilinear C8: measured
    True
    """
    validate_table(np.asarray(group.table), group.name)
    key = jax.random.PRNGKey(0) if key is None else key
    x = _sample_inputs(group, key, 3, not group.exact) if x is None else group.check_input(x)
    x = x.astype(jnp.float64) if jax.config.jax_enable_x64 else x
    if not bool(jnp.all(jnp.isfinite(x))):
        raise GroupError("check_group: inputs contain non-finite values")
    n = group.order
    orb = group.orbit(x)
    id_err = _rel(orb[0], x)
    comp_err = inv_err = ortho_err = 0.0
    inv = group.inverses
    flat = x.reshape(x.shape[0], -1)
    gram = flat @ flat.T
    for g in range(n):
        for h in range(n):
            e = _rel(group.act(g, orb[h]), orb[int(group.table[g, h])])
            comp_err = max(comp_err, e)
            if group.exact and e > tol:
                raise GroupError(f"{group.name}: action is not a group action: "
                                 f"act({g}, act({h}, x)) != act(compose({g},{h})={int(group.table[g, h])}, x) "
                                 f"(relative error {e:.3g})")
        e = _rel(group.act(int(inv[g]), orb[g]), x)
        inv_err = max(inv_err, e)
        if group.exact and e > tol:
            raise GroupError(f"{group.name}: inverse fails: act(inverse({g}), act({g}, x)) != x "
                             f"(relative error {e:.3g})")
        gf = orb[g].reshape(x.shape[0], -1)
        e = float(jnp.max(jnp.abs(gf @ gf.T - gram)) / jnp.max(jnp.abs(gram)))
        ortho_err = max(ortho_err, e)
        if group.exact and e > tol:
            raise GroupError(f"{group.name}: orthogonality fails: element {g} does not preserve "
                             f"inner products (relative error {e:.3g})")
    if group.exact and id_err > tol:
        raise GroupError(f"{group.name}: identity fails: act(0, x) != x (relative error {id_err:.3g})")
    rep_err = 0.0
    if not group.out.is_trivial:
        m = np.asarray(group.out.matrices)
        k = m.shape[1]
        for g in range(n):
            for h in range(n):
                rep_err = max(rep_err, float(np.abs(m[g] @ m[h] - m[int(group.table[g, h])]).max()))
        if rep_err > 1e-8:
            raise GroupError(f"{group.name}: output representation '{group.out.name}' is not a "
                             f"homomorphism (max error {rep_err:.3g})")
        if not np.allclose(m[0], np.eye(k)):
            raise GroupError(f"{group.name}: output representation of the identity is not I")
    clo = 0.0 if group.exact else closure_error(group, x)
    return GroupReport(group.name, n, group.exact, id_err, comp_err, inv_err, ortho_err, clo, rep_err)


# ----------------------------------------------------------------------------
# Irreducible representations (of the abstract group, from its Cayley table)
