"""Learning an energy-conserving force field from few samples (the seeds' 2D example).

    python experiments/force_fields.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run force_fields ...`` (the experiment itself is ntkequi/experiments/force_fields.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/force_fields[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "force_fields", *sys.argv[1:]]))
