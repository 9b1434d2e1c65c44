"""Equivariant (vector-valued) targets: emergent SO(3) equivariance for the cross product.

    python experiments/cross_product.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run cross_product ...`` (the experiment itself is ntkequi/experiments/cross_product.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/cross_product[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "cross_product", *sys.argv[1:]]))
