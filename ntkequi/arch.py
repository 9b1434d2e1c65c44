"""One architecture description -> the neural-tangents stax triple (init, apply, kernel).

``ArchSpec`` is a frozen dataclass (saved beside every result). ``spec.stax()``
returns neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` in NTK
parameterisation; the Flax realisation of the same spec is added by the
ensembles work, from the same fields, so the two cannot drift apart.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from .nt import stax

ACTIVATIONS = {"relu": stax.Relu, "erf": stax.Erf, "gelu": stax.Gelu}


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A fully-connected (``kind='mlp'``) or convolutional (``kind='cnn'``) network.

    depth: number of hidden layers (Dense or Conv), each followed by the activation.
    width: hidden units (MLP) or channels (CNN); irrelevant to the analytic kernel.
    W_std, b_std: weight / bias standard deviations (NTK parameterisation).
    out_dim: number of outputs k.
    kernel_size, padding: CNN filter size (odd) and padding ('SAME' zero padding,
        or 'CIRCULAR' for periodic lattices).
    readout: CNN readout, 'flatten' (Flatten + Dense) or 'gap' (global average pool + Dense).
    """
    kind: str = "mlp"
    depth: int = 2
    width: int = 512
    activation: str = "relu"
    W_std: float = math.sqrt(2.0)
    b_std: float = 0.05
    out_dim: int = 1
    kernel_size: int = 3
    padding: str = "SAME"
    readout: str = "flatten"

    def __post_init__(self):
        if self.kind not in ("mlp", "cnn"):
            raise ValueError(f"ArchSpec.kind must be 'mlp' or 'cnn'; got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ArchSpec.activation must be one of {sorted(ACTIVATIONS)}; "
                             f"got {self.activation!r}")
        if self.depth < 1 or self.width < 1 or self.out_dim < 1:
            raise ValueError(f"ArchSpec needs depth, width, out_dim >= 1; got "
                             f"depth={self.depth}, width={self.width}, out_dim={self.out_dim}")
        if self.kind == "cnn":
            if self.kernel_size % 2 != 1:
                raise ValueError(f"ArchSpec.kernel_size must be odd (symmetric padding keeps "
                                 f"rotations exact); got {self.kernel_size}")
            if self.padding not in ("SAME", "CIRCULAR"):
                raise ValueError(f"ArchSpec.padding must be 'SAME' or 'CIRCULAR'; got {self.padding!r}")
            if self.readout not in ("flatten", "gap"):
                raise ValueError(f"ArchSpec.readout must be 'flatten' or 'gap'; got {self.readout!r}")

    def stax(self):
        """``(init_fn, apply_fn, kernel_fn)`` of neural-tangents stax."""
        act = ACTIVATIONS[self.activation]
        layers = []
        if self.kind == "mlp":
            layers.append(stax.Flatten())
            for _ in range(self.depth):
                layers += [stax.Dense(self.width, self.W_std, self.b_std), act()]
        else:
            k = (self.kernel_size, self.kernel_size)
            for _ in range(self.depth):
                layers += [stax.Conv(self.width, k, padding=self.padding,
                                     W_std=self.W_std, b_std=self.b_std), act()]
            layers.append(stax.Flatten() if self.readout == "flatten" else stax.GlobalAvgPool())
        layers.append(stax.Dense(self.out_dim, self.W_std, self.b_std))
        return stax.serial(*layers)

    @property
    def kernel_fn(self):
        """The analytic ``kernel_fn(x1, x2=None, get=...)`` of this architecture."""
        return self.stax()[2]

    def kernel_entries_per_pair(self, event_shape: Optional[tuple] = None) -> int:
        """Floats neural-tangents holds per input pair while computing the kernel
        (one per output for an MLP; one per pixel for a CNN with a flatten readout,
        since only the spatial diagonal is tracked; pixels squared with global
        average pooling)."""
        if self.kind == "mlp" or not event_shape:
            return 1
        spatial = int(math.prod(event_shape[:-1]))
        return spatial if self.readout == "flatten" else spatial * spatial
