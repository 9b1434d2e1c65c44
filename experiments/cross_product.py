"""Emergent SO(3) equivariance for vector targets: MLP NTK and ensembles predicting a x b,
augmented by C4, T, O, I or random rotations; errors under the group and under SO(3).

    python experiments/cross_product.py                  # small preset (CPU)
    python experiments/cross_product.py --preset paper   # more data, wider, larger M (GPU)

Writes runs/cross_product[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
import sys

from ntkequi import cross_product

if __name__ == "__main__":
    sys.exit(cross_product.cli())
