"""The patched neural-tangents, for use inside ntkequi: ``from .nt import nt, stax``.

Importing this module guarantees :func:`ntkequi._compat.apply` ran first.
"""
from . import _compat

_compat.apply()

import functools  # noqa: E402

import jax  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

__all__ = ["nt", "stax", "jit_kernel_fn"]


def jit_kernel_fn(kernel_fn):
    """neural-tangents' ``kernel_fn(x1, x2=None, get=None, **kwargs)`` compiled as one program
    when called on arrays (``get`` static), as neural-tangents' documentation advises: called
    eagerly it compiles every operation separately, which for a small CNN is most of its time.
    Calls with ``Kernel`` inputs or keyword arguments go to ``kernel_fn`` unchanged.

    Args:
      kernel_fn: a neural-tangents (stax) kernel function.

    Returns:
      A function with the same call signature and results.
    """
    jitted = jax.jit(kernel_fn, static_argnames="get")

    def array(v):
        return isinstance(v, jax.Array) or hasattr(v, "__array__") and not hasattr(v, "nngp")

    @functools.wraps(kernel_fn)
    def call(x1, x2=None, get=None, **kwargs):
        if kwargs or not array(x1) or (x2 is not None and not array(x2)):
            return kernel_fn(x1, x2, get, **kwargs)
        return jitted(x1, x2, get=tuple(get) if isinstance(get, list) else get)

    return call
