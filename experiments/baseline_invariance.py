"""Measured invariance of the E2CNN-style GCNN and learned canonicalization (random weights)
for C4, C8, C16 on smooth and noise images (float64).

    python experiments/baseline_invariance.py      # ~1 min on 2 CPU cores
"""
from ntkequi.baselines.report import main

if __name__ == "__main__":
    main()
