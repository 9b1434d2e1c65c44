"""The orbit-consistency table on rotated FashionMNIST (the paper's headline table).

    python experiments/fmnist_osp_table.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run fmnist_osp_table ...`` (the experiment itself is ntkequi/experiments/fmnist_osp_table.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/fmnist_osp_table[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "fmnist_osp_table", *sys.argv[1:]]))
