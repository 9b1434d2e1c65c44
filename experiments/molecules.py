"""A molecule-like toy: kernels on pairwise distances of identical atoms, plain, symmetrized
over atom relabellings (S_n), trained on the full S_n orbit, or on sorted distances;
energy error and invariance against training size.

    python experiments/molecules.py                  # small preset, a few minutes on 2 CPU cores
    python experiments/molecules.py --preset paper   # 5 atoms (|S5| = 120), more draws

Writes runs/molecules[-paper]/ (resumable); `ntkequi figures` draws its figure.
"""
import sys

from ntkequi import molecules

if __name__ == "__main__":
    sys.exit(molecules.cli())
