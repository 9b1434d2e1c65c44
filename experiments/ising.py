"""Ising experiment: energies of spin configurations on a periodic L x L lattice, with the
lattice's cyclic translations as the group -- deep ensembles vs members vs the NTK.

    python experiments/ising.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run ising ...`` (the experiment itself is ntkequi/experiments/ising.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/ising[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "ising", *sys.argv[1:]]))
