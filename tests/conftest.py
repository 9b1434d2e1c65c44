import jax
import pytest

# Every equivalence test runs in float64.
jax.config.update("jax_enable_x64", True)

import ntkequi  # noqa: E402,F401  (applies the neural-tangents fixes first)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)
