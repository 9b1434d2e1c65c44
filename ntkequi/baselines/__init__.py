"""Baselines for the orbit-consistency table: an E2CNN-style group-equivariant CNN
(:mod:`.gcnn`) and learned canonicalization (:mod:`.canonicalization`).

Both are specs (frozen dataclasses, saved beside results) with ``.flax()`` and
``out_dim``, like :class:`ntkequi.arch.ArchSpec`, so :func:`ntkequi.ensembles.train`
trains them (and ensembles of them) the same way.
"""
from .canonicalization import CanonNet, CanonSpec
from .gcnn import GCNNSpec, GroupConvNet, filter_bank, lifting_filters, group_conv_filters

__all__ = ["GCNNSpec", "GroupConvNet", "CanonSpec", "CanonNet", "filter_bank", "lifting_filters",
           "group_conv_filters"]
