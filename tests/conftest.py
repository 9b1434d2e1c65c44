import os
import shutil
import tempfile

# Most tests compile far more than they compute (small inputs, many distinct programs, and
# every eager operation on a new shape is a program): XLA:CPU compiles faster at backend
# optimisation level 0 and with its older loop emitters for fusions instead of the fusion
# emitters (the suite's times with and without are in the session notes of issue 32).
# Both change how fast XLA's code runs, not what it computes beyond float rounding (every
# comparison here is to a tolerance, or between two programs compiled alike). Set
# NTKEQUI_TEST_XLA_OPT=default to test with XLA's defaults, as users run. Read when the backend
# starts, so they are set first; a flag already in XLA_FLAGS is left as given.
TEST_XLA_FLAGS = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false"}
if os.environ.get("NTKEQUI_TEST_XLA_OPT", "0") != "default":
    given = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = " ".join([given] + [f"--{k}={v}" for k, v in TEST_XLA_FLAGS.items()
                                                  if k not in given]).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

# Every equivalence test runs in float64.
jax.config.update("jax_enable_x64", True)


def pytest_configure(config):
    """One JAX compilation cache per test run, shared by the xdist workers: the many tests that
    train the same network for several seeds, widths or models compile each step once instead of
    once per call (a new closure, the same program). The controller makes the folder (workers
    inherit the variable) and removes it at the end, so every run starts cold and its time is honest."""
    if "PYTEST_XDIST_WORKER" not in os.environ and "NTKEQUI_TEST_JAX_CACHE" not in os.environ:
        os.environ["NTKEQUI_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="ntkequi-jax-cache-")
        config._ntkequi_jax_cache = os.environ["NTKEQUI_TEST_JAX_CACHE"]
    jax.config.update("jax_compilation_cache_dir", os.environ["NTKEQUI_TEST_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    made = getattr(config, "_ntkequi_jax_cache", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop("NTKEQUI_TEST_JAX_CACHE", None)

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
