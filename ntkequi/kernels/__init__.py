"""Analytic kernels and the predictions of infinite ensembles.

* :mod:`~ntkequi.kernels.recursions`: ntkequi's own NNGP/NTK of the networks an ArchSpec
  describes (``ArchSpec.kernel_fn``). Fast path: Dense, Conv (odd k, SAME or CIRCULAR), ReLU
  and erf, 2x2 average pooling, flatten and global average pooling, in any order an ArchSpec
  allows; a flatten readout tracks only the band of pixel offsets it needs. gelu (no closed
  form) uses neural-tangents' kernel (``ArchSpec.kernel_fn_nt``), as do kernels built
  directly with ``stax`` (e.g. :mod:`~ntkequi.kernels.group_stax`);
* :mod:`~ntkequi.kernels.closed_forms`: the ReLU/erf Gaussian expectations, vectorised arccos;
* :mod:`~ntkequi.kernels.ntk`: :class:`Predictor` (built once from a training set: mu and
  Sigma, plain or orbit-augmented, for any test inputs, gradient-flow times and gradient-descent
  steps), :func:`predict` (one question in one call), :func:`max_learning_rate`, :func:`augment`,
  :func:`kernel_invariance_error`;
* :mod:`~ntkequi.kernels.structured`: the group-structured solve (``|G|`` kernel blocks,
  one eigendecomposition per irrep; :class:`BlockSolve` and :func:`solve_blocks` from
  precomputed blocks);
* :mod:`~ntkequi.kernels.stored`: :class:`TileStore`, orbit kernel blocks computed tile by
  tile and saved as they finish (long runs resume), :func:`orbit_test_blocks`;
* :mod:`~ntkequi.kernels.symmetrized`: :func:`symmetrize` (one- and two-sided k^G),
  :func:`augmented_as_symmetrized`, :func:`from_function`;
* :mod:`~ntkequi.kernels.matrix`: matrix-valued kernels for vector fields (covariant,
  curl-free, divergence-free, energy-conserving);
* :mod:`~ntkequi.kernels.group_stax`: C4 group-convolutional neural-tangents layers.
"""
from ._common import (
           DEFAULT_FLOATS_PER_PAIR,
           KernelTooLargeError,
           MemoryBudget,
           Prediction,
           kernel_memory_bytes,
           memory_budget_bytes,
           with_pair_cost,
)
from .ntk import (
           STRUCTURED_MIN_POINTS,
           augment,
           kernel_invariance_error,
           Predictor,
           max_learning_rate,
           predict,
)
from .stored import TileStore, orbit_point_blocks, orbit_test_blocks
from .structured import (
           BlockSolve,
           StructureError,
           check_structure,
           kernel_blocks,
           max_eigenvalue,
           max_eigenvalue_of_blocks,
           solve_blocks,
)
from .symmetrized import (
           SymmetrizedProblem,
           augmented_as_symmetrized,
           from_function,
           symmetrize,
)

__all__ = ["Prediction", "KernelTooLargeError", "MemoryBudget", "predict", "Predictor", "BlockSolve", "augment", "max_learning_rate",
           "kernel_invariance_error", "kernel_memory_bytes", "memory_budget_bytes", "STRUCTURED_MIN_POINTS",
           "StructureError", "check_structure", "kernel_blocks", "max_eigenvalue", "max_eigenvalue_of_blocks", "solve_blocks",
           "TileStore", "orbit_test_blocks", "orbit_point_blocks", "symmetrize", "with_pair_cost", "DEFAULT_FLOATS_PER_PAIR",
           "augmented_as_symmetrized", "SymmetrizedProblem", "from_function"]
