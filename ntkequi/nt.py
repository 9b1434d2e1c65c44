"""The patched neural-tangents, for use inside ntkequi: ``from .nt import nt, stax``.

Importing this module guarantees :func:`ntkequi._compat.apply` ran first.
"""
from . import _compat

_compat.apply()

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

__all__ = ["nt", "stax"]
