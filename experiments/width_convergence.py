"""Empirical NTK of finite Flax networks vs the analytic NTK of the same ``ArchSpec``, over width.

    python experiments/width_convergence.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run width_convergence ...`` (the experiment itself is ntkequi/experiments/width_convergence.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/width_convergence[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "width_convergence", *sys.argv[1:]]))
