"""FashionMNIST, C4: deep ensembles of CNNs vs the analytic NTK on real images.

    python experiments/fmnist_ntk.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run fmnist_ntk ...`` (the experiment itself is ntkequi/experiments/fmnist_ntk.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/fmnist_ntk[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "fmnist_ntk", *sys.argv[1:]]))
