"""Three symmetric infinite-width predictors side by side (issue: kernel-side symmetry).

    python experiments/kernel_symmetry.py [--preset P] [--data-dir DIR] [--out DIR] [--no-progress]

is ``ntkequi run kernel_symmetry ...`` (the experiment itself is ntkequi/experiments/kernel_symmetry.py;
``ntkequi list`` shows its presets and their CPU time). Writes runs/kernel_symmetry[-PRESET]/
(resumable); ``ntkequi figures --collect runs`` makes figures/ and the tables from it.
"""
import sys

from ntkequi.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "kernel_symmetry", *sys.argv[1:]]))
