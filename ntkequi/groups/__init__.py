"""Finite symmetry groups: the abstract group, its actions on inputs, its representations
on outputs, constructors, and checks.

* :mod:`~ntkequi.groups.finite`: :class:`FiniteGroup` (Cayley table, compose, inverse),
  subgroups;
* :mod:`~ntkequi.groups.reps`: :class:`Rep` on outputs, :func:`irreps`;
* :mod:`~ntkequi.groups.actions`: :class:`Group` (a finite group acting on inputs, with an
  output representation), :class:`GatherGroup`, :class:`MatrixGroup`, :class:`VectorGroup`;
* constructors: :mod:`~ntkequi.groups.images` (:func:`rotations`, :func:`dihedral`,
  :func:`lattice_translations`), :mod:`~ntkequi.groups.points` (:func:`planar_rotations`,
  :func:`rotations3d`), :mod:`~ntkequi.groups.permutations` (:func:`pair_permutations`);
* :mod:`~ntkequi.groups.checks`: :func:`check_group`, generic over every group.

>>> from ntkequi import groups
>>> c4 = groups.rotations(4, (5, 5))
>>> c4.order, c4.exact, groups.check_group(c4).composition_error
(4, True, 0.0)
"""
from .actions import GatherGroup, Group, MatrixGroup, VectorGroup
from .checks import GroupReport, check_group, closure_error, smooth_images
from .finite import FiniteGroup, GroupError, cyclic_table, subgroup_elements
from .images import (
    dihedral,
    image_rotation_gather,
    lattice_rotations,
    lattice_translations,
    rotations,
)
from .permutations import atom_pairs, pair_permutations
from .points import (
    planar_rotations,
    random_rotations3d,
    rotations3d,
    so3_subgroup_matrices,
)
from .reps import Rep, irreps, regular_rep, trivial_rep

__all__ = [
    "GroupError", "FiniteGroup", "Group", "GatherGroup", "MatrixGroup", "VectorGroup", "Rep",
    "trivial_rep", "regular_rep", "irreps", "cyclic_table", "subgroup_elements",
    "rotations", "dihedral", "lattice_translations", "lattice_rotations", "image_rotation_gather",
    "planar_rotations", "rotations3d", "so3_subgroup_matrices", "random_rotations3d",
    "pair_permutations", "atom_pairs", "GroupReport", "check_group", "closure_error", "smooth_images",
]
