"""The (i)/(ii)/(iii) comparison on a tiny setting: (i) == (ii), all invariant, resumable."""
import math

import pytest

from ntkequi.experiments import kernel_symmetry as ks
from ntkequi.report import build as figures
@pytest.mark.slow      # ~1-2 min; its parts are tested in test_kernels.py and test_group_stax.py
def test_three_predictors_tiny(data_dir, tmp_path):
    cfg = ks.KernelSymmetryConfig(n_train=2, n_eval=1, depth=1, ensemble_width=4, ensemble_sizes=(1, 2),
                                  time_multiples=(2.0, math.inf), kernel_batch=2)
    done = ks.run(cfg, tmp_path / "ks", data_dir=data_dir, progress=False)
    for name in ("augmented", "symmetrized", "gcnn"):
        for rec in done[name]["per_time"]:
            assert max(rec[s] for s in ks.EVAL_SETS) < 1e-10          # all three are invariant
    assert max(done["comparison"]["augmented_vs_symmetrized"]) < 1e-8   # (i) == (ii) at |G| t
    assert done["comparison"]["augmented_vs_gcnn"][0] > 1e-3            # (iii) is another predictor
    assert max(done["toy"]["augmented_vs_symmetrized"]) < 1e-8
    assert len(done["ensemble"]["distance_to_augmented"][0]) == 2
    n = len((tmp_path / "ks" / "results.jsonl").read_text().splitlines())
    ks.run(cfg, tmp_path / "ks", data_dir=data_dir, progress=False)               # resume: nothing recomputed
    assert len((tmp_path / "ks" / "results.jsonl").read_text().splitlines()) == n
    assert "(iii) GCNN NTK" in ks.summary(cfg, done)
    figures.save(ks.figure(cfg, done), tmp_path / "fig")
    assert (tmp_path / "fig.png").exists()
