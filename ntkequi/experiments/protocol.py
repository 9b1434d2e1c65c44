"""The experiment protocol: what every module in :mod:`ntkequi.experiments` declares.

An experiment module ``ntkequi/experiments/<name>.py`` holds, in this order:

``NAME``
    its name (= the module name, the run directory ``runs/<NAME>[-<preset>]`` and the
    committed results ``results/<NAME>``).
``USES_DATA``
    True if it reads FashionMNIST/MNIST (``data_dir``, else ``$NTKEQUI_DATA_DIR``).
``CPU_TIME``
    ``{preset: wall time on a 2-core CPU}`` (shown by ``ntkequi list``): what a run of that
    preset took when it was last measured (the times the experiment's earlier README entry
    and session notes recorded), or ``'not measured'``.
a frozen ``Config`` dataclass and ``PRESETS``
    ``{name: Config(...)}`` with at least ``'small'`` (what tests and CI run). Presets are
    data. ``Config.x64`` (a field or a class attribute) asks the runner for float64.
``run(cfg, out, *, data_dir=None, progress=True, overwrite=False) -> dict``
    runs (or resumes) the experiment into run directory ``out`` (:class:`ntkequi.runs.RunDir`)
    and returns its records ``{key: record}``. It never switches precision itself: the
    runner (:func:`ntkequi.experiments.run_experiment`) does, from the config.
``summary(cfg, done) -> str``
    the plain-text table printed at the end of a run.
``FIGURES``
    a tuple of :class:`Figure` ``(name, draw(cfg, done) -> matplotlib Figure, caption)``.
``TABLES``
    ``{table name: fn(cfg, done) -> Table}``: the paper's (and README's) tables.
``numbers(cfg, done) -> dict``
    ``{LaTeX macro name: value}``: every number the paper's prose quotes.

``kept_files(run_dir) -> list``
    paths (relative to a finished run directory) that ``ntkequi figures --collect`` copies into
    ``results/<NAME>`` besides the config and records (e.g. per-member predictions).
``tiles(cfg, out, *, data_dir=None, progress=True, start=0.0) -> int``
    for an experiment whose kernels are saved tile by tile (:class:`ntkequi.kernels.TileStore`):
    fill run ``out``'s tiles as one of several workers, without the run directory's lock and
    without records (``ntkequi run NAME --out D --worker K/N``;
    :func:`ntkequi.experiments.fill_tiles`); returns the tiles this worker computed.

``FIGURES``, ``TABLES``, ``numbers``, ``kept_files`` and ``tiles`` are optional (an experiment that only prints
declares none). The report (:mod:`ntkequi.report`) walks the registry and renders them
from the saved results; it never names an experiment, and no experiment imports it.
Table cells are data (:class:`Num`, :class:`PM`, floats, LaTeX strings), formatted by
the report's one table writer.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Optional, Sequence

__all__ = ["Figure", "Table", "Num", "PM", "tex_escape", "pyplot", "number_word", "time_label"]


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure of an experiment: ``draw(cfg, done)`` returns a matplotlib Figure;
    ``caption`` says what it shows (the report appends the command, preset and machine)."""
    name: str
    draw: Callable
    caption: str


@dataclasses.dataclass(frozen=True)
class Num:
    """A number cell with ``digits`` significant digits (floats default to 2), or with
    ``decimals`` fixed decimals when given (counts such as an OSP out of |G|)."""
    value: float
    digits: int = 2
    decimals: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class PM:
    """A ``mean +- std`` cell (``decimals``: fixed decimals for both, as in :class:`Num`); with
    ``n``, the number of values behind them (``std`` their population standard deviation,
    ``ddof=0``), the report adds the 95 % t-interval of the mean (:meth:`interval`)."""
    mean: float
    std: float
    decimals: Optional[int] = None
    n: Optional[int] = None

    def interval(self, level: float = 0.95) -> Optional[tuple]:
        """``(low, high)``: ``mean -+ t_{(1+level)/2, n-1} s / sqrt(n)`` with the sample standard
        deviation ``s = std sqrt(n / (n - 1))``; None without ``n`` or with fewer than 2 values.

        >>> [round(v, 3) for v in PM(1.0, 0.5, n=5).interval()]     # t_{0.975, 4} = 2.776
        [0.306, 1.694]
        """
        if self.n is None or self.n < 2:
            return None
        from scipy import stats
        half = float(stats.t.ppf((1 + level) / 2, self.n - 1)) * self.std / math.sqrt(self.n - 1)
        return self.mean - half, self.mean + half


@dataclasses.dataclass(frozen=True)
class Table:
    """A table as data. ``header``: column labels (LaTeX text); ``rows``: lists of cells,
    each a float (2 significant digits), :class:`Num`, :class:`PM`, a LaTeX string, or a
    tuple of those written side by side; ``caption``: LaTeX text; ``label``: ``tab:<label>``."""
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str
    label: str


_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def tex_escape(s: str) -> str:
    """Plain text -> LaTeX (special characters escaped; `code` -> \\texttt{code}).

    >>> tex_escape("fashion_mnist_test, `x_1`")
    'fashion\\\\_mnist\\\\_test, \\\\texttt{x\\\\_1}'
    """
    out = []
    for part in re.split(r"(`[^`]*`)", s):
        code = len(part) >= 2 and part[0] == part[-1] == "`"
        body = "".join(_TEX.get(c, c) for c in (part[1:-1] if code else part))
        out.append(r"\texttt{" + body + "}" if code else body)
    return "".join(out)


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are files here)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


_ONES = ("Zero One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve Thirteen Fourteen Fifteen "
         "Sixteen Seventeen Eighteen Nineteen").split()
_TENS = "_ _ Twenty Thirty Forty Fifty Sixty Seventy Eighty Ninety".split()


def number_word(n: int) -> str:
    """An integer as letters, for LaTeX macro names (which may not hold digits).

    >>> number_word(4), number_word(16), number_word(32), number_word(120)
    ('Four', 'Sixteen', 'ThirtyTwo', 'OneHundredTwenty')
    """
    n = int(n)
    if n < 0:
        return "Minus" + number_word(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (_ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + "Hundred" + (number_word(n % 100) if n % 100 else "")
    return number_word(n // 1000) + "Thousand" + (number_word(n % 1000) if n % 1000 else "")


def time_label(m: float):
    """Column label of a training time given as a multiple ``m`` of ``1 / lambda_max``
    (a header cell: ``$t=\\infty$`` or ``$t\\lambda_{max}=m$``)."""
    return r"$t=\infty$" if math.isinf(m) else (r"$t\lambda_{max}=", Num(m), "$")
