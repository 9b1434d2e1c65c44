"""(i) augmented CNN NTK, (ii) symmetrized kernel, (iii) group-convolutional NTK side by side,
on FashionMNIST (C4, downsampled to 7x7) and the toy planar C8 data; finite ensembles vs (i).

    python experiments/kernel_symmetry.py --data-dir DIR                 # small preset (CPU)
    python experiments/kernel_symmetry.py --data-dir DIR --preset paper  # more data, wider (GPU)

Writes runs/kernel_symmetry[-paper]/ (resumable; its figures too); `ntkequi figures` makes figures/ from results/.
"""
import sys

from ntkequi import kernel_symmetry

if __name__ == "__main__":
    sys.exit(kernel_symmetry.cli())
