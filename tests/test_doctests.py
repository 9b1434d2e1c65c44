"""The examples in the docstrings of the main entry points run as written."""
import doctest
import importlib

import pytest

MODULES = ["ntkequi", "ntkequi.groups", "ntkequi.groups.finite", "ntkequi.groups.actions", "ntkequi.groups.checks",
           "ntkequi.groups.permutations", "ntkequi.nn.arch", "ntkequi.kernels.ntk", "ntkequi.kernels.symmetrized",
           "ntkequi.ensembles", "ntkequi.metrics", "ntkequi.experiments", "ntkequi.experiments.protocol",
           "ntkequi.kernels.closed_forms", "ntkequi.kernels.recursions", "ntkequi.nn.conv",
           "ntkequi.experiments.fmnist_osp_table", "ntkequi.experiments.ntk_convergence"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
