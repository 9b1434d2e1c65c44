"""Rotated FashionMNIST in the infinite-width limit at real size (analytic CNN NTK, C4 orbit blocks saved as tiles).

    python experiments/fmnist_ntk_scale.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run fmnist_ntk_scale ...`` (the experiment itself is ntkequi/experiments/fmnist_ntk_scale.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/fmnist_ntk_scale[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "fmnist_ntk_scale", *sys.argv[1:]]))
