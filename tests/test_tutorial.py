"""The tutorial notebook (docs/tutorial.ipynb, written by docs/make_tutorial.py) runs from top to
bottom in a fresh kernel without an error, and the committed notebook is the one its source
writes (same cells), executed (every code cell has its outputs)."""
import sys
from pathlib import Path

import nbformat

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))
import make_tutorial  # noqa: E402


def test_committed_notebook_is_its_source_executed():
    committed = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    source = make_tutorial.build()
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in source.cells]
    assert all(c.execution_count for c in committed.cells if c.cell_type == "code")          # executed
    assert not any(o.output_type == "error" for c in committed.cells if c.cell_type == "code" for o in c.outputs)


def test_tutorial_runs_without_error(tmp_path):
    nb = make_tutorial.execute(make_tutorial.build(), cwd=tmp_path)      # raises CellExecutionError on a failure
    figures = sum(o.output_type == "display_data" and "image/png" in o.data
                  for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert figures == 5                                                  # one per step
