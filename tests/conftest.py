import jax
import pytest

# Every equivalence test runs in float64.
jax.config.update("jax_enable_x64", True)

import ntkequi.nt  # noqa: E402,F401  (neural-tangents with ntkequi._compat, before any test imports it)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture(scope="session")
def data_dir():
    """The offline FashionMNIST/MNIST folder: $NTKEQUI_DATA_DIR (set by .ci/run) or ../shared/data."""
    import os
    from pathlib import Path
    d = os.environ.get("NTKEQUI_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (Path(d) / "fashion-mnist").is_dir():
        pytest.skip(f"no FashionMNIST IDX files at {d} (set NTKEQUI_DATA_DIR)")
    return Path(d)
