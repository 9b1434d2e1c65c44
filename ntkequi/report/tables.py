"""The one table writer: numbers, cells, LaTeX tables and macros, their Markdown copies.

Experiments declare tables as data (:class:`~ntkequi.experiments.protocol.Table`);
:func:`latex` writes them, :func:`markdown` copies a written table into the README and
the results pages, :func:`macro` writes a quoted number. Every number goes through
:func:`fmt`, whose output :func:`parse` reads back; ``tests/test_paper.py`` recomputes
each table's numbers from the raw results and compares.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ..experiments.protocol import PM, Num, Table

__all__ = ["fmt", "parse", "pm", "macro", "cell", "latex", "rows_of", "markdown", "md_cell", "update_readme"]


def fmt(v, digits: int = 2) -> str:
    """A number for LaTeX: ``0.123`` style (``digits`` significant) between 1e-2 and 1e4,
    ``$1.2\\cdot 10^{-15}$`` otherwise, ``--`` for nan, ``$\\infty$`` for inf."""
    v = float(v)
    if math.isnan(v):
        return "--"
    if math.isinf(v):
        return r"$\infty$" if v > 0 else r"$-\infty$"
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e4:
        return f"{v:.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"
    m, e = f"{v:.{digits - 1}e}".split("e")
    return rf"${m}\cdot 10^{{{int(e)}}}$"


_SCI = re.compile(r"\$(-?\d+(?:\.\d+)?)\\cdot 10\^\{(-?\d+)\}\$")
_NUMBER = re.compile(_SCI.pattern + r"|(?<![\w_{])(-?\d+(?:\.\d+)?)(?![\w}])")


def parse(cell: str) -> list:
    """The numbers in a table cell written by :func:`fmt` (or ``$a \\pm b$``), as floats, in
    the order they appear; ``--`` is ``[nan]``."""
    cell = cell.strip()
    if cell == "--":
        return [float("nan")]
    return [float(m.group(1)) * 10.0 ** int(m.group(2)) if m.group(1) is not None else float(m.group(3))
            for m in _NUMBER.finditer(cell)]


def fixed(v, decimals: int) -> str:
    """``v`` with ``decimals`` fixed decimals (``--`` for nan)."""
    v = float(v)
    return "--" if math.isnan(v) else f"{v:.{decimals}f}"


def pm(mean, std, decimals=None, interval=None) -> str:
    """``mean $\\pm$ std``, both through :func:`fmt` (or :func:`fixed` with ``decimals``), then
    ``[low, high]`` when an ``interval`` is given (the 95 % interval of the mean)."""
    f = fmt if decimals is None else (lambda v: fixed(v, decimals))
    text = f"{f(mean)} $\\pm$ {f(std)}"
    return text if interval is None else f"{text} [{f(interval[0])}, {f(interval[1])}]"


def macro(name: str, value, digits: int = 3) -> str:
    """``\\newcommand{\\name}{value}``; ``name`` letters only (LaTeX macro names); numbers
    through :func:`fmt` with ``digits`` significant digits."""
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"LaTeX macro names are letters only; got {name!r}")
    text = value if isinstance(value, str) else fmt(value, digits)
    return rf"\newcommand{{\{name}}}{{{text}}}"


def cell(c) -> str:
    """One table cell (or caption, or header label) as LaTeX: a float or int through :func:`fmt`,
    :class:`~ntkequi.experiments.protocol.Num` with its digits, ``PM`` as :func:`pm`, a
    string as it is (except the JSON spellings 'nan', 'inf', '-inf' of a number), a tuple
    as its parts side by side."""
    if isinstance(c, tuple):
        return "".join(cell(x) for x in c)
    if isinstance(c, PM):
        return pm(c.mean, c.std, c.decimals, c.interval())
    if isinstance(c, Num):
        return fmt(c.value, c.digits) if c.decimals is None else fixed(c.value, c.decimals)
    if isinstance(c, str):
        return fmt(float(c)) if c in ("nan", "inf", "-inf") else c
    if isinstance(c, (bool, type(None))):
        raise TypeError(f"a table cell must be a number, Num, PM, string or tuple; got {c!r}")
    return fmt(c)


def latex(table: Table) -> str:
    """A :class:`~ntkequi.experiments.protocol.Table` as a LaTeX ``table`` float (booktabs
    rules, shrunk to the line width only when wider). The one table writer: every table of
    the paper and the README goes through it."""
    header = [cell(h) for h in table.header]
    cols = "l" + "c" * (len(header) - 1)
    # shrunk to the line width only when wider (graphicx's \resizebox; \width is the natural width)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    for row in table.rows:
        if len(row) != len(header):
            raise ValueError(f"table {table.label!r}: a row has {len(row)} cells for {len(header)} columns")
        lines.append(" & ".join(cell(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", rf"\caption{{{cell(table.caption)}}}",
              rf"\label{{tab:{table.label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def rows_of(tex: str) -> list:
    """The body rows of a table written by :func:`_table`: list of cell lists."""
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    return [_cells(line) for line in body.strip().splitlines() if line.strip()]


def _cells(line: str) -> list:
    r"""The cells of one ``a & b & c \\`` row (empty cells kept; ``\&`` is not a separator)."""
    line = re.sub(r"\\\\\s*$", "", line.strip())
    return [c.strip() for c in re.split(r"(?<!\\)&", line)]


# ---------------------------------------------------------------- the README's copies
_MD = [(re.compile(r"C_\{(\d+)\}"), r"C\1"), (re.compile(r"\\texttt\{([^}]*)\}"), r"`\1`"),
       (re.compile(r"_\{([^}]*)\}"), r"_\1")]
_MD_WORDS = {r"\pm": "+-", r"\infty": "inf", r"\mu": "mu", r"\lambda": " lambda", r"\_": "_", r"\%": "%",
             r"\&": "&"}


def md_cell(cell: str) -> str:
    """A LaTeX table cell or caption (as written here) as Markdown text: ``$2.6\\cdot 10^{-15}$``
    -> ``2.6e-15``, ``$\\pm$`` -> ``+-``, ``$C_{4}$`` -> ``C4``, ``|`` escaped."""
    s = _SCI.sub(lambda m: f"{m.group(1)}e{int(m.group(2))}", cell)
    for tex, text in _MD_WORDS.items():
        s = s.replace(tex, text)
    for pat, rep in _MD:
        s = pat.sub(rep, s)
    s = s.replace("$", "").replace("{", "").replace("}", "").replace("|", r"\|")
    return " ".join(s.split())


def markdown(tex: str) -> str:
    """A table written by :func:`latex` as a Markdown
    table followed by its caption; the numbers are the same strings."""
    head = tex.split(r"\toprule", 1)[1].split(r"\midrule", 1)[0].strip()
    header = [md_cell(c) for c in _cells(head)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows_of(tex)]
    cap = next((ln.strip()[len(r"\caption{"):-1] for ln in tex.splitlines() if ln.strip().startswith(r"\caption{")),
               None)
    if cap:
        lines += ["", "*" + md_cell(cap) + "*"]
    return "\n".join(lines) + "\n"


# markers inside `inline code` (the README explaining them) are not markers
_README_BLOCK = re.compile(r"(?<!`)(<!-- table (\w+): [^>]*-->\n)(.*?)(<!-- end table \2 -->)", re.S)
_README_NUM = re.compile(r"(?<!`)<!-- num (\w+) -->(.*?)<!-- /num -->")
README_BEGIN = "<!-- table {name}: written by `ntkequi figures` from results/; do not edit -->"


def update_readme(readme, tables_dir, known, missing_ok: bool = False) -> list:
    """Rewrite every block of ``readme`` that starts with :data:`README_BEGIN` (with the
    table's name) and ends with ``<!-- end table NAME -->`` from ``tables_dir/tables/NAME.tex``
    (as :func:`markdown`), and every quoted number ``<!-- num NAME -->...<!-- /num -->`` from
    the macro ``NAME`` of ``tables_dir/numbers.tex``; returns the table and number names
    rewritten. ``known``: every table name an experiment declares. An unknown name, a table
    that was not written, or an unclosed block is a ``ValueError`` (``missing_ok``: tables
    and numbers whose results are missing are left as they are, and not counted as
    unclosed)."""
    readme, tables = Path(readme), Path(tables_dir) / "tables"
    text = readme.read_text()
    names, kept = [], []

    def repl(m):
        name = m.group(2)
        if name not in known:
            raise ValueError(f"{readme}: unknown table {name!r} in a generated block; known: {sorted(known)}")
        src = tables / f"{name}.tex"
        if not src.exists() and missing_ok:
            kept.append(name)
            return m.group(0)
        if not src.exists():
            raise ValueError(f"{readme} shows table {name!r}, which was not written (its results are missing)")
        names.append(name)
        return m.group(1) + "\n" + markdown(src.read_text()) + "\n" + m.group(4)

    new = _README_BLOCK.sub(repl, text)
    opened = len(re.findall(r"(?<!`)<!-- table \w+: ", text))
    if opened != len(names) + len(kept):
        raise ValueError(f"{readme}: {opened} generated-table blocks opened, {len(names) + len(kept)} closed "
                         "(each needs `<!-- end table NAME -->`)")
    numbers_tex = Path(tables_dir) / "numbers.tex"
    values = dict(re.findall(r"^\\newcommand\{\\(\w+)\}\{(.*)\}$", numbers_tex.read_text(), re.M)
                  if numbers_tex.exists() else [])

    def num(m):
        if m.group(1) not in values and missing_ok:
            return m.group(0)
        if m.group(1) not in values:
            raise ValueError(f"{readme} quotes number {m.group(1)!r}, which numbers.tex does not define "
                             f"(an experiment's numbers() defines it)")
        names.append(m.group(1))
        return f"<!-- num {m.group(1)} -->{md_cell(values[m.group(1)])}<!-- /num -->"

    new = _README_NUM.sub(num, new)
    if len(re.findall(r"(?<!`)<!-- num ", new)) != len(re.findall(r"(?<!`)<!-- /num -->", new)):
        raise ValueError(f"{readme}: a `<!-- num NAME -->` without its `<!-- /num -->`")
    if new != text:
        readme.write_text(new)
    return names
