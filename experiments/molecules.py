"""A molecule-like toy: permutation-symmetrized kernels on pairwise distances.

    python experiments/molecules.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run molecules ...`` (the experiment itself is ntkequi/experiments/molecules.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/molecules[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "molecules", *sys.argv[1:]]))
