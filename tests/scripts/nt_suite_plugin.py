"""pytest plugin for tests/scripts/nt_suite.py: neural-tangents' tests under ntkequi.

Loaded with ``-p nt_suite_plugin`` before any test module is imported: imports ntkequi.nt (its
compatibility layer patches neural-tangents before the tests import it) and gives the test
files ``jax.tree_map``, which JAX removed in 0.6 and which only the tests (not
neural-tangents) import; and makes subtest reports sendable between pytest-xdist workers
(their parameters, JAX arrays among them, become their repr). Nothing here changes
neural-tangents."""
import jax
import pytest

import ntkequi.nt  # noqa: F401  (neural-tangents with ntkequi._compat applied)

if not hasattr(jax, "tree_map"):
    jax.tree_map = jax.tree_util.tree_map


def _plain(v):
    """A report value execnet can send between pytest-xdist processes (subtest reports
    carry their parameters, e.g. JAX arrays, which it cannot)."""
    if isinstance(v, dict):
        return {k: _plain(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(u) for u in v)
    if v is None or isinstance(v, (str, int, float, bool, bytes)):
        return v
    return repr(v)


@pytest.hookimpl(hookwrapper=True)
def pytest_report_to_serializable(config, report):
    outcome = yield
    data = outcome.get_result()
    if data is not None:
        outcome.force_result(_plain(data))
