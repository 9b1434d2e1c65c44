"""Kernel-side symmetry: group-symmetrized kernels and their exact relation to
orbit-augmented kernel regression / NTK gradient flow.

For a kernel ``k`` and a finite group ``G`` acting on inputs::

    k^G(x, x')   = 1/|G| sum_g k(x, g x')                  (one-sided)
    k^GG(x, x')  = 1/|G|^2 sum_{g,h} k(h x, g x')           (two-sided).

If ``k`` is invariant under the simultaneous action, ``k(g x, g x') = k(x, x')``
(MLP NTKs under orthogonal actions, CNN NTKs under pixel permutations by exact
rotations), the two coincide, ``k^G`` is invariant in each argument separately, and
for invariant targets (see :func:`augmented_as_symmetrized`)::

    k(x, X_aug) (K_aug + lam I)^-1 Y_aug  =  k^G(x, X) (K^G + (lam/|G|) I)^-1 Y,
    mu_t^aug(x)                           =  mu^G_{|G| t}(x)     (gradient flow),

because on orbit-constant vectors the augmented train kernel acts as ``|G| K^G``.
This is a statement about the mean: the augmented ensemble's covariance still holds
the non-invariant prior fluctuations of its members and differs from the GP posterior
covariance of ``k^G``.
``tests/test_kernels.py`` checks both, and that they fail where ``k`` is not invariant.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

from ..groups import Group, GroupError
from ._common import (
    ArchLike,
    check_finite,
    check_group_type,
    check_times,
    intermediate_estimate,
    jit_kernel,
    kernel_of,
)
from .ntk import kernel_invariance_error

__all__ = ["symmetrize", "augmented_as_symmetrized", "SymmetrizedProblem", "from_function"]


@functools.lru_cache(maxsize=None)
def _kernel_tuple(fields: tuple):
    return collections.namedtuple("Kernel", fields)


def from_function(fn: Callable) -> Callable:
    """Wrap a plain kernel ``fn(x1, x2) -> (N1, N2)`` in the neural-tangents signature
    ``kernel_fn(x1, x2=None, get=...)`` (a namedtuple for a tuple ``get``; 'nngp' and
    'ntk' are the same kernel), so ``ntk.predict`` and :func:`symmetrize` accept it."""
    def kernel_fn(x1, x2=None, get="ntk", **kwargs):
        k = fn(x1, x1 if x2 is None else x2)
        if isinstance(get, str):
            return k
        return _kernel_tuple(tuple(get))(*([k] * len(get)))
    kernel_fn.__doc__ = fn.__doc__
    return kernel_fn


def _blocks(n: int, size: int):
    size = n if not size or size >= n else size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def symmetrize(kernel_fn: Callable, group: Group, two_sided: bool = False,
               batch_size: int = 0) -> Callable:
    """The symmetrized kernel of ``kernel_fn(x1, x2=None, get=...)`` (a neural-tangents
    ``kernel_fn`` or any function of that signature returning ``(N1, N2)`` arrays, or a
    namedtuple of them for a tuple ``get``).

    Returns ``kernel_fn_G(x1, x2=None, get='ntk')`` computing ``k^G`` (or ``k^GG`` if
    ``two_sided``) one group element at a time, so memory stays that of one
    ``(N1, N2)`` kernel block (``batch_size`` also splits the rows and columns into
    blocks); never the ``|G| N`` orbit kernel. ``x2=None`` means ``x2 = x1`` (the
    identity term is then computed with ``x2=None``, which neural-tangents evaluates
    more precisely on the diagonal).

    Args:
        kernel_fn: ``kernel_fn(x1, x2=None, get=...)``.
        group: the group acting on the inputs.
        two_sided: ``k^GG`` instead of ``k^G``.
        batch_size: rows and columns per block (0: one block).

    Returns:
        ``kernel_fn_G(x1, x2=None, get='ntk')``.

    Example: the symmetrized kernel of an anisotropic RBF is invariant in each argument.

    >>> import jax, jax.numpy as jnp; jax.config.update("jax_enable_x64", True)
    >>> from ntkequi import groups
    >>> rbf = from_function(lambda a, b: jnp.exp(-((a[:, None, 0] - b[None, :, 0]) ** 2)
    ...                                          - 0.3 * (a[:, None, 1] - b[None, :, 1]) ** 2))
    >>> c4 = groups.planar_rotations(4)
    >>> kg = symmetrize(rbf, c4)
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    >>> bool(jnp.allclose(kg(x, c4.act(1, x)), kg(x, x), atol=1e-12))
    True
    """
    check_group_type(group)
    order = group.order
    # off-identity terms jitted (one compilation per block shape); the x2=None identity
    # term stays un-jitted, where the compat fixes keep neural-tangents' diagonal exact
    jitted = jit_kernel(kernel_fn)

    firsts = range(order) if two_sided else (0,)

    def block(a, b, same, get):
        """mean over (h in firsts, g) of k(h a, g b) for one block of rows and columns."""
        acc = None
        for h in firsts:
            ha = a if h == 0 else group.act(h, a)
            for g in range(order):
                if h == 0 and g == 0 and same:
                    k = kernel_fn(ha, None, get)
                else:
                    k = jitted(ha, group.act(g, b), get)
                acc = k if acc is None else jax.tree_util.tree_map(jnp.add, acc, k)
        return jax.tree_util.tree_map(lambda v: v / (len(firsts) * order), acc)

    def kfn(x1, x2=None, get="ntk", **kwargs):
        x1 = group.check_input(check_finite("x1", x1))
        same = x2 is None
        x2 = x1 if same else group.check_input(check_finite("x2", x2))
        if x1.shape[1:] != x2.shape[1:]:
            raise GroupError(f"x1 and x2 must have the same per-sample shape; got "
                             f"{tuple(x1.shape[1:])} and {tuple(x2.shape[1:])}")
        rows = []
        for r in _blocks(x1.shape[0], batch_size):
            cols = [block(x1[r], x2[c], same and r == c, get) for c in _blocks(x2.shape[0], batch_size)]
            rows.append(jax.tree_util.tree_map(lambda *v: jnp.concatenate(v, axis=1), *cols))
        return jax.tree_util.tree_map(lambda *v: jnp.concatenate(v, axis=0), *rows)

    kfn.__doc__ = f"{'two' if two_sided else 'one'}-sided {group.name}-symmetrized kernel"

    # one group element at a time: the base kernel's intermediates
    kfn.intermediate_bytes = lambda event_shape, itemsize, pairs=None: intermediate_estimate(
        kernel_fn, event_shape, itemsize, pairs)
    return kfn


@dataclasses.dataclass(frozen=True)
class SymmetrizedProblem:
    """Arguments for ``ntk.predict`` that reproduce orbit-augmented training with the
    symmetrized kernel: ``kernel_fn`` (k^G), ``t`` (``|G| t``), ``diag_reg``
    (neural-tangents' relative regulariser rescaled so that the absolute one is
    ``lam / |G|``), and the measured invariance error of ``k`` on the training data."""
    kernel_fn: Callable
    t: np.ndarray
    diag_reg: float
    kernel_invariance: float


def augmented_as_symmetrized(arch: Union[ArchLike, Callable], group: Group, x_train, t,
                             diag_reg: float = 0.0, get: str = "ntk", tol: float = 1e-8,
                             check: bool = True) -> SymmetrizedProblem:
    """The symmetrized-kernel problem equal to training on the full ``group`` orbit of
    ``x_train`` with kernel ``arch`` (ArchSpec or kernel_fn) for time(s) ``t`` and
    relative regulariser ``diag_reg``.

    Usage: ``p = augmented_as_symmetrized(arch, G, X, t, diag_reg)`` then
    ``ntk.predict(p.kernel_fn, X, Y, x_test, p.t, diag_reg=p.diag_reg)`` equals
    ``ntk.predict(arch, X, Y, x_test, t, group=G, diag_reg=diag_reg)`` for invariant
    targets. The relation needs an exact group and a kernel invariant under the
    simultaneous action; with ``check`` both are verified on ``x_train`` and a
    :class:`GroupError` names what fails (relative kernel invariance error > ``tol``).
    With ``check=False`` and a non-invariant kernel the two-sided ``k^GG`` is used
    (the one-sided average is then not a symmetric kernel), and the two predictions
    differ: that is the measurable failure of the relation."""
    kernel_fn = kernel_of(arch)
    x_train = group.check_input(check_finite("x_train", x_train))
    if not group.out.is_trivial:
        raise GroupError(f"augmented_as_symmetrized is for invariant targets; {group.name} has output "
                         f"representation {group.out.name!r}")
    inv = float(np.max(kernel_invariance_error(kernel_fn, group, x_train, get=get)))
    if check:
        if not group.exact:
            raise GroupError(f"{group.name} is not exact (interpolated action): augmentation and "
                             f"symmetrization are then not equivalent; pass check=False to compare anyway")
        if not inv <= tol:
            raise GroupError(f"the kernel is not invariant under the simultaneous action of {group.name} "
                             f"on x_train (relative error {inv:.2e} > tol={tol:.0e}); augmentation and "
                             f"symmetrization are then not equivalent; pass check=False to compare anyway")
    # one-sided k^G is a symmetric kernel only if k is invariant; otherwise use k^GG
    kg = symmetrize(kernel_fn, group, two_sided=not inv <= tol)
    order = group.order
    dr = 0.0
    if diag_reg:
        # absolute regulariser of the augmented problem: diag_reg * mean diag(K_aug), and
        # mean diag(K_aug) = mean_i k(x_i, x_i) for an invariant kernel; the symmetrized
        # one needs lam / |G| = diag_reg_G * mean diag(K^G)
        diag_k = jnp.diagonal(kernel_fn(x_train, None, get))
        diag_kg = jnp.diagonal(kg(x_train, None, get))
        dr = float(diag_reg * jnp.mean(diag_k) / (order * jnp.mean(diag_kg)))
    return SymmetrizedProblem(kg, check_times(t) * order, dr, inv)
