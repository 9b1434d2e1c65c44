"""Learned canonicalization (Kaba et al., ICML 2023, arXiv 2211.06489) for C_n on images.

A small C_n-equivariant network (the lifting + group convolutions of
:mod:`.gcnn`) scores every rotation r of an input x; the top-scoring r* is taken
as x's orientation, the input is rotated back, ``x_c = (r*)^-1 x``, and an ordinary
CNN (an :class:`ntkequi.nn.arch.ArchSpec`) classifies x_c. Because the scores of g x are
those of x shifted by g, ``(g r*)^-1 g x = (r*)^-1 x``: the prediction is exactly
invariant when the rotations are exact (C4), and approximately for C8 / C16.

Training: the argmax is made differentiable with a straight-through estimator (the
forward pass uses the hard one-hot choice, gradients flow through a softmax of the
scores), as Kaba et al. do for discrete groups. Their optional prior regulariser
(pushing data towards the identity) is not used here.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..groups import rotations
from .arch import ArchSpec
from .gcnn import GCNNSpec, GroupConvNet


@dataclasses.dataclass(frozen=True)
class CanonSpec:
    """canonicalizer: the equivariant scoring network (its ``n`` is the group's order,
    ``out_dim`` is unused); classifier: the CNN applied to canonicalized inputs;
    image_size: side of the square input images; temperature: of the softmax that
    carries the straight-through gradient."""
    canonicalizer: GCNNSpec = GCNNSpec(n=4, depth=0, channels=8, kernel_size=5)
    classifier: ArchSpec = ArchSpec(kind="cnn", depth=2, width=16, out_dim=10, pool=True)
    image_size: int = 28
    temperature: float = 1.0

    @property
    def n(self) -> int:
        """Order of the rotation group C_n the canonicalizer chooses from."""
        return self.canonicalizer.n

    @property
    def out_dim(self) -> int:
        """Number of outputs (the classifier's)."""
        return self.classifier.out_dim

    def flax(self) -> "CanonNet":
        """The Flax module of this spec."""
        return CanonNet(self)


class CanonNet(nn.Module):
    """Flax module of a :class:`CanonSpec`: images ``(N, H, W, C)`` -> ``(N, out_dim)``."""
    spec: CanonSpec

    def scores(self, x):
        """``(N, n)`` orientation scores, equivariant: scores(g x)[r] = scores(x)[r - g]."""
        feats = GroupConvNet(self.spec.canonicalizer, name="canonicalizer")(x, features_only=True)
        return nn.Dense(1, name="score")(feats.mean(axis=(1, 2)))[..., 0]

    @nn.compact
    def __call__(self, x, return_orientation: bool = False):
        s = self.spec
        group = rotations(s.n, (s.image_size, s.image_size))
        scores = self.scores(x) / s.temperature
        soft = jax.nn.softmax(scores, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(scores, axis=-1), s.n, dtype=x.dtype)
        weights = hard + soft - jax.lax.stop_gradient(soft)        # straight-through
        # the input rotated back by every r: element inverse(r) applied to x
        back = jax.vmap(lambda r: group.act(group.inverse(r), x))(group.elements)   # (n, N, ...)
        x_c = jnp.einsum("nr,rn...->n...", weights, back)
        out = s.classifier.flax()(x_c)
        return (out, jnp.argmax(scores, axis=-1)) if return_orientation else out
