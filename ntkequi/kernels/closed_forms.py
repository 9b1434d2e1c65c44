"""Gaussian expectations of activations with closed forms, as the NNGP/NTK recursions need
them, and the fast arc-sine/arc-cosine they are built on.

For a centred Gaussian pair ``(u, v)`` with variances ``q1, q2`` and covariance ``s``
(correlation ``c = s / sqrt(q1 q2)``, angle ``theta = arccos c``):

* ReLU (Cho & Saul 2009):
  ``E[relu(u) relu(v)] = (sqrt(q1 q2 - s^2) + (pi - theta) s) / (2 pi)`` and
  ``E[relu'(u) relu'(v)] = (pi - theta) / (2 pi)``;
* erf (Williams 1997):
  ``E[erf(u) erf(v)] = (2 / pi) arcsin(2 s / sqrt((1 + 2 q1)(1 + 2 q2)))`` and
  ``E[erf'(u) erf'(v)] = (4 / pi) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 s^2)``.

These are the formulas neural-tangents' ``stax.Relu`` and ``stax.Erf`` use (it evaluates
the angle with ``arctan2``). Written by hand here for one reason: XLA:CPU evaluates
``arccos``/``arctan2`` with a scalar library call, which is most of the cost of a CNN kernel
(``python benchmarks/kernels.py`` prints both rates); the polynomial :func:`arcsin` below
vectorises and is accurate to a few units of rounding
(``tests/test_fast_kernels.py`` checks it against numpy over [-1, 1]).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

__all__ = ["arcsin", "arccos", "expectations", "CLOSED_FORMS"]

#: activations whose Gaussian expectations have closed forms here
CLOSED_FORMS = ("relu", "erf")
#: correlations within this many units of rounding of +-1 are taken as +-1 (ReLU)
_SNAP_ULPS = 16


@functools.lru_cache(maxsize=None)
def _arcsin_coefficients(degree: int) -> tuple:
    """Power-series coefficients of ``arcsin(sqrt(s)) / sqrt(s)`` on ``s in [0, 1/4]``,
    from numpy's Chebyshev interpolant (degree 12: 2e-15 relative; degree 6: 3e-10)."""
    def f(s):
        r = np.sqrt(np.maximum(s, 1e-300))
        return np.where(s > 0, np.arcsin(r) / r, 1.0)
    p = Chebyshev.interpolate(f, degree, domain=[0.0, 0.25]).convert(kind=Polynomial)
    return tuple(float(c) for c in p.coef)


def _degree(dtype) -> int:
    return 12 if jnp.dtype(dtype).itemsize >= 8 else 6


def _arcsin_small(z):
    """``arcsin(z)`` for ``|z| <= 1/2`` (polynomial in ``z^2``, Horner)."""
    coef = _arcsin_coefficients(_degree(z.dtype))
    s = z * z
    acc = jnp.full_like(z, coef[-1])
    for c in coef[-2::-1]:
        acc = acc * s + c
    return z * acc


@jax.custom_jvp
def _sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` whose derivative at ``x = 0`` is taken as 0 instead of infinite:
    where the closed forms take it (a correlation of exactly +-1, snapped or exact), the
    correlation's own tangent is 0, and ``inf * 0`` would make every derivative of a kernel
    (``jax.jvp`` in its inputs, e.g. :func:`ntkequi.metrics.lie_derivative` of a mean) NaN.
    Values are ``jnp.sqrt``'s."""
    return jnp.sqrt(x)


@_sqrt.defjvp
def _sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    r = jnp.sqrt(x)
    return r, jnp.where(r > 0, dx / (2 * jnp.where(r > 0, r, 1.0)), 0.0)


def arccos(c):
    """``arccos(c)`` elementwise for ``c`` in ``[-1, 1]`` (clipped), vectorised:
    ``pi/2 - arcsin(|c|)`` for ``|c| <= 1/2`` and ``2 arcsin(sqrt((1 - |c|) / 2))`` above,
    reflected for ``c < 0``.

    >>> import numpy as np
    >>> c = np.linspace(-1, 1, 9)
    >>> bool(np.allclose(arccos(c), np.arccos(c), rtol=1e-6, atol=1e-6))
    True
    """
    c = jnp.clip(c, -1.0, 1.0)
    a = jnp.abs(c)
    small = a <= 0.5
    z = jnp.where(small, a, _sqrt(jnp.maximum(0.5 * (1.0 - a), 0.0)))
    w = _arcsin_small(z)
    acos_a = jnp.where(small, 0.5 * math.pi - w, 2.0 * w)
    return jnp.where(c < 0, math.pi - acos_a, acos_a)


def arcsin(c):
    """``arcsin(c)`` elementwise for ``c`` in ``[-1, 1]`` (clipped), as ``pi/2 - arccos(c)``
    for ``|c| > 1/2`` and the polynomial itself below (no cancellation near 0)."""
    c = jnp.clip(c, -1.0, 1.0)
    return jnp.where(jnp.abs(c) <= 0.5, _arcsin_small(c), 0.5 * math.pi - arccos(c))


def expectations(activation: str, s, q1, q2, need_dot: bool = True, roots=None, exact=None):
    """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for the centred Gaussian pair of the
    module doc, elementwise over broadcast arrays ``s, q1, q2`` (covariance and variances).

    Args:
        activation: 'relu' or 'erf'.
        s: covariances.
        q1: variances of ``u`` (broadcast against ``s``).
        q2: variances of ``v``.
        need_dot: also return the derivative expectation (else None), which the NTK needs.
        roots: optional ``(sqrt(q1), sqrt(q2), 1/sqrt(q1), 1/sqrt(q2))`` (0 for a zero variance),
            broadcast like ``q1, q2``; computed once per input, they spare the ReLU a square root
            and a division per entry.
        exact: optional boolean mask (broadcast against ``s``) of entries that are a variance
            with itself (``s = q1 = q2``): correlation exactly 1 there (with ``roots``, ``s``
            times the inverse roots is 1 only to rounding).

    Returns:
        ``(k, kdot)``, arrays of the broadcast shape (``kdot`` None unless ``need_dot``).

    >>> k, kdot = expectations("relu", 1.0, 1.0, 1.0)
    >>> float(k), float(kdot)
    (0.5, 0.5)
    """
    if activation == "relu":
        # sqrt(q1 q2 - s^2) as sqrt(q1 q2) sqrt((1 - c)(1 + c)): exactly 0 at c = 1 (a fused
        # multiply-add would leave one rounding error in q1 q2 - s^2, and its square root)
        if roots is None:
            rprod = jnp.sqrt(q1 * q2)
            c = jnp.clip(s / jnp.where(rprod > 0, rprod, 1.0), -1.0, 1.0)
        else:
            r1, r2, i1, i2 = roots
            rprod = r1 * r2
            c = jnp.clip(s * (i1 * i2), -1.0, 1.0)
        # a correlation within a few units of rounding of +-1 is +-1: the square root below
        # turns a rounding error e of c into sqrt(2 e) (1e-8 in float64), so two evaluations
        # of the same pair whose sums were merely ordered differently (a rotated pair, a
        # pair of an input with itself) would differ there
        snap = _SNAP_ULPS * jnp.finfo(c.dtype).eps
        c = jnp.where(1.0 - jnp.abs(c) <= snap, jnp.sign(c), c)
        if exact is not None:
            c = jnp.where(exact, 1.0, c)
        root = rprod * _sqrt((1.0 - c) * (1.0 + c))
        dot = (math.pi - arccos(c)) / (2 * math.pi)
        return root / (2 * math.pi) + dot * s, (dot if need_dot else None)
    if activation == "erf":
        prod = (1 + 2 * q1) * (1 + 2 * q2)
        k = (2 / math.pi) * arcsin(2 * s / jnp.sqrt(prod))
        kdot = (4 / math.pi) / jnp.sqrt(jnp.maximum(prod - 4 * s * s, 0.0)) if need_dot else None
        return k, kdot
    raise ValueError(f"no closed form for activation {activation!r}; closed forms: {CLOSED_FORMS}")

