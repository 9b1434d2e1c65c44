"""Toy experiment: planar points, C8 -- deep ensembles vs members vs the NTK.

    python experiments/toy_ensembles.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run toy_ensembles ...`` (the experiment itself is ntkequi/experiments/toy_ensembles.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/toy_ensembles[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "toy_ensembles", *sys.argv[1:]]))
