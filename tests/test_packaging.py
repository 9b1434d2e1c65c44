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


def test_wheel_and_sdist_install_into_a_fresh_environment_and_run_the_demo(tmp_path):
    """`python -m build` makes a wheel and an sdist (no network: the installed setuptools); each
    installs into a fresh virtual environment (dependencies from this interpreter's site-packages,
    ntkequi itself only from the artifact) and imports from there; the wheel's `ntkequi demo`
    runs to its summary, with the package's data files (the demo needs none of the repo)."""
    import os
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, cwd=tmp_path, timeout=600, capture_output=True)
    wheel, sdist = sorted(dist.glob("ntkequi-*.whl")), sorted(dist.glob("ntkequi-*.tar.gz"))
    assert len(wheel) == 1 and len(sdist) == 1, sorted(p.name for p in dist.iterdir())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for artifact in (wheel[0], sdist[0]):
        venv = tmp_path / f"venv-{artifact.suffix.strip('.')}"
        # without pip: the venv's own pip would bring an old setuptools that shadows the installed one
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                       timeout=300)
        py = venv / "bin" / "python"
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(artifact)],
                       check=True, cwd=tmp_path, env=env, timeout=600, capture_output=True)
        where = subprocess.run([str(py), "-c", "import ntkequi; print(ntkequi.__file__)"], check=True, cwd=tmp_path,
                               env=env, timeout=300, capture_output=True, text=True).stdout.strip()
        assert where.startswith(str(venv)), (artifact.name, where)
    demo = subprocess.run([str(venv.parent / "venv-whl" / "bin" / "ntkequi"), "demo", "--out", str(tmp_path / "demo"),
                           "--no-progress"], cwd=tmp_path, env=env, timeout=600, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "demo" / "results.jsonl").exists()
