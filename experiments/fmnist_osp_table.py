"""Rotated FashionMNIST: orbit same predictions of deep ensembles + DA, single models + DA,
an E2CNN-style group CNN and learned canonicalization, for C4, C8 and C16 (the paper's table).

    python experiments/fmnist_osp_table.py --data-dir DIR          # small preset, ~15 min on 2 CPU cores
    python experiments/fmnist_osp_table.py --preset paper          # the paper's scale (use a GPU)

DIR holds the gzipped IDX files (or set NTKEQUI_DATA_DIR). Writes runs/fmnist_osp_table-PRESET/
(resumable: results.jsonl, results.csv, summary.json, tables.md, osp_*.tex) and copies the LaTeX
tables to paper/tables/. See ntkequi.orbit_table for what is trained and measured.
"""
import sys

from ntkequi import orbit_table

if __name__ == "__main__":
    sys.exit(orbit_table.cli())
