"""Matrix-valued kernels for physical vector targets: covariance and energy conservation.

A matrix-valued kernel ``K(x, x')`` ``(d, d)`` is the covariance ``Cov(f(x), f(x'))`` of a
vector field ``f: R^n -> R^d``; kernel ridge regression with it predicts
``f(x) = sum_i K(x, x_i) alpha_i`` with ``(K_XX + lam I) alpha = Y`` (``N d x N d``).
All functions are JAX, jit-able and differentiable; use float64 (``jax_enable_x64``).

* :func:`covariant_pair_kernel` -- the rotation-covariant kernel of a pair vector
  (Glielmo, Sollich & De Vita, PRB 95, 214302, 2017), the Haar integral over SO(3)
  ``K(r, r') = int dR R k_b(r, R r')`` of the Gaussian base kernel
  ``k_b(r, r') = exp(-|r - r'|^2 / (4 sigma^2))`` in closed form
  ``exp(-(r^2 + r'^2) / (4 sigma^2)) (cosh g / g - sinh g / g^2) rhat rhat'^T``, ``g = r r' / (2 sigma^2)``;
  :func:`covariant_pair_kernel_quadrature` computes the same integral numerically (Euler-angle
  quadrature, exact Haar weights), so the two can be compared. ``K(S r, S' r') = S K S'^T`` for
  all orthogonal ``S, S'``.
* :func:`curl_free_kernel` ``-H phi(x - x')`` and :func:`div_free_kernel`
  ``H phi - tr(H phi) I`` of a scalar RBF ``phi`` (Macedo & Castro 2010; Fuselier 2008):
  every field they fit has zero curl (resp. divergence).
* :func:`hessian_kernel` -- the gradient-domain kernel for forces ``F = -grad_r E`` with a
  scalar kernel ``k`` on features ``q(r)``:
  ``K(r, r')_{kl} = d^2 k(q(r), q(r')) / dr_k dr'_l = J(r)^T [d_q d_q' k] J(r')``,
  ``J = dq/dr``; :func:`fit` with ``energy_kernel=...`` also returns the energy whose
  negative gradient the learned forces are, exactly.
* :func:`fit` / :class:`VectorKRR` -- vector-valued kernel ridge regression and the Gaussian
  process posterior covariance for any of these kernels.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._common import check_finite

__all__ = ["rbf", "covariant_pair_kernel", "covariant_pair_kernel_quadrature", "so3_quadrature",
           "curl_free_kernel", "div_free_kernel", "hessian_kernel", "energy_force_kernel", "gram", "pairwise",
           "fit", "VectorKRR",
           "linear_features", "KernelInputError"]


class KernelInputError(ValueError):
    """Bad input to a matrix-valued kernel model (shape, non-finite values, singular system)."""


def _finite(name: str, a) -> jnp.ndarray:
    """``a`` as a float array; :class:`KernelInputError` (from :func:`ntkequi._validate.check_finite`)
    if it holds NaN or inf. Tracers (inside jit/vmap/grad) pass: they were checked on entry."""
    if isinstance(a, jax.core.Tracer):
        return a
    try:
        a = check_finite(name, a)
    except ValueError as e:
        raise KernelInputError(str(e)) from None
    return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.result_type(float))


# ------------------------------------------------------------------ scalar base kernel
def rbf(x, x2, sigma: float = 1.0) -> jnp.ndarray:
    """Gaussian kernel ``exp(-|x - x2|^2 / (2 sigma^2))`` of two vectors ``(n,)``: scalar."""
    d = jnp.asarray(x) - jnp.asarray(x2)
    return jnp.exp(-jnp.dot(d, d) / (2.0 * sigma ** 2))


# ------------------------------------------------------------------ rotation covariance
def covariant_pair_kernel(r, r2, sigma: float = 1.0) -> jnp.ndarray:
    """Closed-form rotation-covariant kernel of two pair vectors ``r, r2`` ``(3,)``: ``(3, 3)``.

    ``int_SO(3) dR R exp(-|r - R r2|^2 / (4 sigma^2))`` (Haar measure of mass 1)
    ``= exp(-a) (cosh g / g - sinh g / g^2) rhat rhat2^T`` with ``a = (|r|^2 + |r2|^2) / (4 sigma^2)``,
    ``g = |r| |r2| / (2 sigma^2)``. The bracket is evaluated stably: ``exp(-a) cosh g`` etc. are
    combined in the exponent, and small ``g`` uses its series ``g/3 + g^3/30 + g^5/840``.
    """
    r, r2 = jnp.asarray(r), jnp.asarray(r2)
    n1, n2 = jnp.linalg.norm(r), jnp.linalg.norm(r2)
    a = (n1 ** 2 + n2 ** 2) / (4.0 * sigma ** 2)
    g = n1 * n2 / (2.0 * sigma ** 2)
    gs = jnp.where(g > 1e-2, g, 1.0)
    # exp(-a) (cosh g / g - sinh g / g^2) = [e^{g-a} (1/g - 1/g^2) + e^{-g-a} (1/g + 1/g^2)] / 2
    big = 0.5 * (jnp.exp(gs - a) * (1.0 / gs - 1.0 / gs ** 2) + jnp.exp(-gs - a) * (1.0 / gs + 1.0 / gs ** 2))
    small = jnp.exp(-a) * (g / 3.0 + g ** 3 / 30.0 + g ** 5 / 840.0)
    f = jnp.where(g > 1e-2, big, small)
    u1 = r / jnp.where(n1 > 0, n1, 1.0)
    u2 = r2 / jnp.where(n2 > 0, n2, 1.0)
    return f * jnp.outer(u1, u2)


def _euler_zyz(al, be, ga) -> jnp.ndarray:
    def rz(t):
        c, s = jnp.cos(t), jnp.sin(t)
        z, o = jnp.zeros_like(t), jnp.ones_like(t)
        return jnp.stack([jnp.stack([c, -s, z], -1), jnp.stack([s, c, z], -1), jnp.stack([z, z, o], -1)], -2)

    def ry(t):
        c, s = jnp.cos(t), jnp.sin(t)
        z, o = jnp.zeros_like(t), jnp.ones_like(t)
        return jnp.stack([jnp.stack([c, z, s], -1), jnp.stack([z, o, z], -1), jnp.stack([-s, z, c], -1)], -2)
    return rz(al) @ ry(be) @ rz(ga)


def so3_quadrature(n: int = 24):
    """Quadrature for Haar integrals over SO(3): rotations ``(n^2 * n_b, 3, 3)`` and weights
    summing to 1. ZYZ Euler angles; the two azimuths on ``n`` equispaced points (exact for
    trigonometric polynomials of degree < n), ``cos(beta)`` on ``n_b = n`` Gauss-Legendre nodes."""
    t = 2.0 * np.pi * np.arange(n) / n
    xb, wb = np.polynomial.legendre.leggauss(n)
    al, be, ga = np.meshgrid(t, np.arccos(xb), t, indexing="ij")
    w = np.broadcast_to(wb[None, :, None], al.shape) / (2.0 * n * n)
    return _euler_zyz(jnp.asarray(al.ravel()), jnp.asarray(be.ravel()), jnp.asarray(ga.ravel())), jnp.asarray(w.ravel())


def covariant_pair_kernel_quadrature(r, r2, sigma: float = 1.0, n: int = 24, rotations=None) -> jnp.ndarray:
    """``int dR R k_b(r, R r2)`` by quadrature over SO(3) (:func:`so3_quadrature`), with
    ``k_b(r, r') = exp(-|r - r'|^2 / (4 sigma^2))``: ``(3, 3)``. Independent of the closed form."""
    mats, w = rotations if rotations is not None else so3_quadrature(n)
    rot = jnp.einsum("rij,j->ri", mats, jnp.asarray(r2))
    kb = jnp.exp(-jnp.sum((jnp.asarray(r)[None] - rot) ** 2, -1) / (4.0 * sigma ** 2))
    return jnp.einsum("r,r,rij->ij", w, kb, mats)


# ------------------------------------------------------------------ curl-free / divergence-free
def _rbf_hessian(x, x2, sigma):
    return jax.hessian(lambda d: rbf(d, jnp.zeros_like(d), sigma))(jnp.asarray(x) - jnp.asarray(x2))


def curl_free_kernel(x, x2, sigma: float = 1.0) -> jnp.ndarray:
    """``-H phi(x - x2)`` ``(n, n)`` for the Gaussian RBF ``phi`` (width ``sigma``): the
    covariance of ``grad g`` for a Gaussian process ``g`` with kernel ``phi``; fields it fits
    are gradients, hence curl-free."""
    return -_rbf_hessian(x, x2, sigma)


def div_free_kernel(x, x2, sigma: float = 1.0) -> jnp.ndarray:
    """``H phi(x - x2) - tr(H phi(x - x2)) I`` ``(n, n)``: fields it fits are divergence-free."""
    h = _rbf_hessian(x, x2, sigma)
    return h - jnp.trace(h) * jnp.eye(h.shape[0], dtype=h.dtype)


# ------------------------------------------------------------------ gradient-domain (Hessian) kernel
def linear_features(matrix) -> Callable:
    """Features ``q(r) = A r`` for a matrix ``A`` ``(m, n)`` (e.g. the seed's
    ``q = (2(x + y), x - y)``: ``A = [[2, 2], [1, -1]]``)."""
    A = jnp.asarray(matrix, dtype=jnp.result_type(float))
    return lambda r: A @ r


def hessian_kernel(k: Callable, features: Optional[Callable] = None) -> Callable:
    """Gradient-domain kernel ``K(r, r2)_{kl} = d^2 k(q(r), q(r2)) / dr_k dr2_l`` ``(n, n)``
    for a scalar kernel ``k(q, q2)`` on features ``q = features(r)`` (identity if None): the
    covariance of ``grad_r E`` when ``E(r)`` has covariance ``k(q(r), q(r2))``. Includes the
    Jacobians of ``q`` (autodiff), so learned forces are exact gradients of an energy."""
    q = features if features is not None else (lambda r: r)
    kr = lambda r, r2: k(q(r), q(r2))
    return jax.jacfwd(jax.grad(kr, argnums=0), argnums=1)


def energy_force_kernel(k: Callable, features: Optional[Callable] = None) -> Callable:
    """``Cov(E(r), -grad E(r2))`` ``(n,)``: ``-d k(q(r), q(r2)) / d r2``."""
    q = features if features is not None else (lambda r: r)
    g = jax.grad(lambda r, r2: k(q(r), q(r2)), argnums=1)
    return lambda r, r2: -g(r, r2)


# ------------------------------------------------------------------ regression
@functools.partial(jax.jit, static_argnums=0)
def pairwise(kernel: Callable, x1, x2) -> jnp.ndarray:
    """``kernel(a, b)`` for every pair of rows of ``x1 (N1, n)`` and ``x2 (N2, n)``:
    ``(N1, N2) + kernel's output shape`` (jitted once per kernel function and shapes)."""
    return jax.vmap(lambda a: jax.vmap(lambda b: kernel(a, b))(x2))(x1)


def gram(kernel: Callable, x1, x2) -> jnp.ndarray:
    """Block Gram matrix ``(N1 d, N2 d)`` of a matrix-valued ``kernel(x, x2) -> (d, d)``
    on ``x1 (N1, n)``, ``x2 (N2, n)``; row ``i d + a`` is output ``a`` of point ``i``."""
    blocks = pairwise(kernel, x1, x2)                                       # (N1, N2, d, d)
    n1, n2, d, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(n1 * d, n2 * d)


@dataclasses.dataclass(frozen=True)
class VectorKRR:
    """A fitted vector-valued kernel ridge regression / GP posterior.

    ``predict(x)`` -> mean ``(M, d)``; ``covariance(x)`` -> posterior covariance ``(M, d, d)``
    of each point; ``energy(x)`` -> ``(M,)`` the learned energy (only for models fitted with
    ``energy_kernel``; forces are ``-grad energy``)."""
    kernel: Callable
    x: jnp.ndarray
    alpha: jnp.ndarray          # (N, d)
    chol: jnp.ndarray           # Cholesky factor of K_XX + reg I
    energy_kernel: Optional[Callable] = None

    def predict(self, x) -> jnp.ndarray:
        """Posterior mean of the vector field at points ``x (M, D)``: ``(M, d)``."""
        x = _check_points("x", x, self.x.shape[1])
        return (gram(self.kernel, x, self.x) @ self.alpha.reshape(-1)).reshape(x.shape[0], -1)

    def covariance(self, x) -> jnp.ndarray:
        """Posterior covariance of the field at each point ``x (M, D)``: ``(M, d, d)``."""
        x = _check_points("x", x, self.x.shape[1])
        d = self.alpha.shape[1]
        v = jax.scipy.linalg.solve_triangular(self.chol, gram(self.kernel, self.x, x), lower=True)
        v = v.reshape(v.shape[0], x.shape[0], d)                          # (N d, M, d)
        prior = jax.vmap(lambda a: self.kernel(a, a))(x)                  # (M, d, d)
        return prior - jnp.einsum("kia,kib->iab", v, v)

    def energy(self, x) -> jnp.ndarray:
        """The energy (up to a constant) whose negative gradient is :meth:`predict`: ``(M,)``;
        needs a model fitted with ``energy_kernel``."""
        if self.energy_kernel is None:
            raise ValueError("this model was fitted without energy_kernel: it has no energy")
        x = _check_points("x", x, self.x.shape[1])
        return jnp.einsum("mna,na->m", pairwise(self.energy_kernel, x, self.x), self.alpha)


def _check_points(name, x, dim=None) -> jnp.ndarray:
    x = _finite(name, x)
    if x.ndim != 2:
        raise KernelInputError(f"{name} must be (N, n) points; got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise KernelInputError(f"{name} has points of dimension {x.shape[1]}; the model's are {dim}")
    return x


def fit(kernel: Callable, x, y, reg: float = 1e-8, energy_kernel: Optional[Callable] = None,
        gram_xx=None) -> VectorKRR:
    """Vector-valued kernel ridge regression: ``x (N, n)``, ``y (N, d)`` with ``d`` the
    kernel's output size; solves ``(K_XX + reg I) alpha = y`` by Cholesky.

    ``reg`` is the noise variance of the GP view (0 allowed: the system must then be
    positive definite, else a :class:`KernelInputError` says it is singular).
    ``energy_kernel`` (from :func:`energy_force_kernel`) makes ``.energy`` available for a
    :func:`hessian_kernel` model. ``gram_xx``: ``gram(kernel, x, x)`` if already computed
    (e.g. when only ``reg`` changes)."""
    x = _check_points("x", x)
    y = _finite("y", y)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise KernelInputError(f"y must be (N, d) with N = {x.shape[0]} points; got shape {tuple(y.shape)}")
    if reg < 0 or not np.isfinite(reg):
        raise KernelInputError(f"reg must be finite and >= 0; got {reg}")
    d = jnp.asarray(kernel(x[0], x[0])).shape
    if d != (y.shape[1], y.shape[1]):
        raise KernelInputError(f"the kernel returns {d} blocks but y has {y.shape[1]} components per point")
    K = gram(kernel, x, x) if gram_xx is None else gram_xx
    K = K + reg * jnp.eye(K.shape[0], dtype=K.dtype)
    chol = jnp.linalg.cholesky(K)
    if not bool(jnp.all(jnp.isfinite(chol))):
        ev = float(jnp.linalg.eigvalsh(K)[0])
        raise KernelInputError(
            f"the kernel system (K + reg I) with reg={reg} is singular or not positive definite "
            f"(smallest eigenvalue {ev:.3g}; duplicate points or reg=0?): use reg > 0")
    alpha = jax.scipy.linalg.cho_solve((chol, True), y.reshape(-1)).reshape(y.shape)
    return VectorKRR(kernel, x, alpha, chol, energy_kernel)
