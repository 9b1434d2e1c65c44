"""Sphinx configuration of ntkequi's API reference: ``python -m sphinx -W -b html docs docs/_build``
(or ``make -C docs``). Built from the docstrings (autodoc, Google style via napoleon)."""
import jax

jax.config.update("jax_enable_x64", True)

project = "ntkequi"
author = "ntkequi developers"
# myst_nb renders the tutorial notebook with the outputs it was committed with (not re-executed:
# tests/test_tutorial.py executes it)
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_nb"]
nb_execution_mode = "off"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"                 # shapes and types are in the docstrings
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True                   # Attributes: sections do not duplicate the dataclass fields
exclude_patterns = ["_build", "results", "guide.md"]
html_theme = "alabaster"
suppress_warnings = ["autodoc.import_object"]
nitpicky = False
# |G| (the group order) is everywhere in the docstrings: not a substitution
rst_prolog = """
.. |G| unicode:: U+007C U+0047 U+007C
"""
