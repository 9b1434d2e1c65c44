"""The planar C8 toy problem over the plane: one member, the ensemble mean and mu_t, step by step.

    python experiments/toy_heatmaps.py [--preset P] [--out DIR] [--no-progress]

is ``ntkequi run toy_heatmaps ...`` (the experiment itself is ntkequi/experiments/toy_heatmaps.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/toy_heatmaps[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "toy_heatmaps", *sys.argv[1:]]))
