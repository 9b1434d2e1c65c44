"""pytest plugin for tests/scripts/nt_suite.py: neural-tangents' tests under ntkequi.

Loaded with ``-p nt_suite_plugin`` before any test module is imported: imports ntkequi (its
compatibility layer patches neural-tangents before the tests import it) and gives the test
files ``jax.tree_map``, which JAX removed in 0.6 and which only the tests (not
neural-tangents) import. Nothing here changes neural-tangents."""
import jax

import ntkequi  # noqa: F401  (applies ntkequi._compat)

if not hasattr(jax, "tree_map"):
    jax.tree_map = jax.tree_util.tree_map
