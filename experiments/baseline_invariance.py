"""Measured invariance of the baselines at initialisation (random weights), per group.

    python experiments/baseline_invariance.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run baseline_invariance ...`` (the experiment itself is ntkequi/experiments/baseline_invariance.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/baseline_invariance[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "baseline_invariance", *sys.argv[1:]]))
