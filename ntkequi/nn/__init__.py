"""Networks: :class:`ArchSpec` (one description -> the Flax network, its neural-tangents
kernel, its empirical NTK), the layer objects it is made of (:mod:`~ntkequi.nn.layers`: one per
layer type, each owning its Flax computation, neural-tangents layer and kernel step) and the baselines of the orbit-consistency table, an
E2CNN-style group CNN (:mod:`~ntkequi.nn.gcnn`) and learned canonicalization
(:mod:`~ntkequi.nn.canonicalization`).

The baselines are specs (frozen dataclasses, saved beside results) with ``.flax()`` and
``out_dim`` like :class:`ArchSpec`, so :func:`ntkequi.ensembles.train` trains them (and
ensembles of them) the same way.
"""
from .arch import ArchSpec, empirical_ntk, empirical_ntk_errors, empirical_ntk_lambda_max, mlp_empirical_ntk
from .layers import (
           ACTIVATIONS,
           LAYER_TYPES,
           Activation,
           AvgPool2,
           Conv,
           Dense,
           FlaxNet,
           Flatten,
           GlobalAvgPool,
           Layer,
           avg_pool2,
           stax_serial,
)
from .canonicalization import CanonNet, CanonSpec
from .conv import CONV_IMPLS, conv2d, conv_impl_for, im2col, using_conv_impl
from .gcnn import (
           GCNNSpec,
           GroupConvNet,
           channels_for,
           filter_bank,
           group_conv_filters,
           lifting_filters,
)

__all__ = ["ArchSpec", "FlaxNet", "ACTIVATIONS", "avg_pool2", "Layer", "Dense", "Conv", "Activation", "AvgPool2",
           "Flatten", "GlobalAvgPool", "LAYER_TYPES", "stax_serial", "empirical_ntk", "empirical_ntk_errors", "empirical_ntk_lambda_max", "mlp_empirical_ntk",
           "GCNNSpec", "GroupConvNet", "CanonSpec", "CanonNet", "filter_bank", "lifting_filters",
           "group_conv_filters", "channels_for", "conv2d", "im2col", "conv_impl_for",
           "using_conv_impl", "CONV_IMPLS"]
