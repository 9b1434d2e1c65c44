"""Partial augmentation: NTK ensembles augmented with C4, C8 or C16 rotations, evaluated
under finer rotations.

    python experiments/partial_augmentation.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run partial_augmentation ...`` (the experiment itself is ntkequi/experiments/partial_augmentation.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/partial_augmentation[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "partial_augmentation", *sys.argv[1:]]))
