"""Empirical NTK of finite Flax networks vs the analytic NTK of the same ``ArchSpec``, over width.

See ntkequi/width_convergence.py for what is measured; `--help` for the options.
Writes runs/width_convergence[-paper]/ (resumable); `ntkequi figures` draws its figure.
"""
import sys

from ntkequi import width_convergence

if __name__ == "__main__":
    sys.exit(width_convergence.cli())
