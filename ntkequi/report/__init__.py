"""The report: every figure, table, quoted number and results page, built from saved
results by walking the experiment registry (:mod:`~ntkequi.report.build`), with one
table writer (:mod:`~ntkequi.report.tables`). Nothing below this layer imports it."""
from .build import collect, draw_run, make_all
from .tables import fmt, latex, macro, markdown, parse

__all__ = ["make_all", "collect", "draw_run", "fmt", "parse", "latex", "markdown", "macro"]
