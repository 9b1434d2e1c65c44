"""ntkequi: emergent equivariance of deep ensembles, from the neural tangent kernel.

Importing ntkequi applies the neural-tangents compatibility fixes
(:mod:`ntkequi._compat`) before anything imports ``neural_tangents``.
"""
from . import _compat

_compat.apply()

from . import groups  # noqa: E402

__version__ = "0.1.0"
__all__ = ["groups", "__version__"]
