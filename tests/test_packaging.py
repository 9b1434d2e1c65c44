"""Packaging a user can install and cite: the package and its offline data path work without
tensorflow-datasets (an extra), the license is an SPDX string, CITATION.cff names the papers."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_offline_data_path_imports_without_tensorflow_datasets(data_dir):
    """tensorflow-datasets blocked from import (as if not installed): ntkequi imports and loads
    the FashionMNIST test split from the IDX files; the online path's error names the extra."""
    code = (
        "import sys; sys.modules['tensorflow_datasets'] = None\n"
        "import ntkequi\n"
        "from ntkequi.data import datasets\n"
        f"x, y = datasets.load('fashion_mnist', 'test', data_dir={str(data_dir)!r})\n"
        "assert x.shape == (10000, 28, 28, 1) and y.shape == (10000,), (x.shape, y.shape)\n"
        "try:\n"
        "    datasets._load_tfds('mnist', 'test')\n"
        "except datasets.DataError as e:\n"
        "    assert 'ntkequi[online]' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('the online path worked without tensorflow-datasets')\n"
        "assert 'tensorflow_datasets' not in [m for m, v in sys.modules.items() if v is not None]\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


def test_metadata_license_extras_and_citation():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0"                               # an SPDX expression, not a table
    assert not any(d.startswith("tensorflow-datasets") for d in meta["dependencies"])
    assert any(d.startswith("tensorflow-datasets") for d in meta["optional-dependencies"]["online"])
    cff = (ROOT / "CITATION.cff").read_text()
    assert cff.startswith("cff-version: 1.2.0") and "arXiv:2403.03103" in cff and "arXiv:2406.06504" in cff
