"""Partial augmentation: NTK ensembles augmented with C4, C8 or C16 rotations of FashionMNIST,
evaluated under finer rotations (C32).

See ntkequi/partial_augmentation.py for what is measured; `--help` for the options.
Writes runs/partial_augmentation[-paper]/ (resumable); `ntkequi figures` draws its figure.
"""
import sys

from ntkequi import partial_augmentation

if __name__ == "__main__":
    sys.exit(partial_augmentation.cli())
