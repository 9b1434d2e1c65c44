"""Energy-conserving kernels for a force field: the seeds' 2D potential sampled by Brownian
dynamics, forces learned from few samples with independent Gaussian kernels and with the
gradient-domain (Hessian) kernel; learning curve, curl, energy, and Brownian dynamics on the
learned fields against exp(-V).

    python experiments/force_fields.py                  # small preset, ~1.5 min on 2 CPU cores
    python experiments/force_fields.py --preset paper   # more seeds, longer dynamics

Writes runs/force_fields[-paper]/ (resumable); `ntkequi figures` draws its figure.
"""
import sys

from ntkequi import force_fields

if __name__ == "__main__":
    sys.exit(force_fields.cli())
