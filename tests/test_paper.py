"""From saved results to every figure, caption and table the paper includes, and the tables
agree with the results (recomputed here from the raw records, not through the table code)."""
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ntkequi import figures, paper_tables
from ntkequi.paper_tables import fmt, parse, rows_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _records(name):
    return {r["key"]: r for r in map(json.loads, (RESULTS / name / "results.jsonl").read_text().splitlines())
            if r.get("key")}


def _config(name):
    return json.loads((RESULTS / name / "config.json").read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Run the figure/table command on the committed results into a copy of paper/."""
    tmp = tmp_path_factory.mktemp("paper")
    shutil.copytree(ROOT / "paper", tmp / "paper", ignore=shutil.ignore_patterns("generated", "*.pdf"))
    written = figures.make_all(RESULTS, tmp / "figures", tmp / "paper" / "generated", log=lambda *a: None)
    return tmp, written


def _includes(tex_file: Path, seen=None) -> list:
    """(kind, target) of every \\input and \\includegraphics reached from tex_file."""
    out = []
    text = re.sub(r"(?<!\\)%.*", "", tex_file.read_text())
    for kind, target in re.findall(r"\\(input|includegraphics)(?:\[[^\]]*\])?\{([^}]+)\}", text):
        out.append((kind, target))
        if kind == "input":
            child = (ROOT / "paper" / target).with_suffix(".tex")
            if child.exists():            # hand-written sources: follow them
                out += _includes(child)
    return out


def test_every_file_the_latex_includes_is_written(generated):
    tmp, written = generated
    paper = tmp / "paper"
    incs = _includes(ROOT / "paper" / "main.tex")
    assert len([i for i in incs if i[0] == "includegraphics"]) >= 6
    for kind, target in incs:
        if kind == "input":
            assert (paper / target).with_suffix(".tex").exists(), target
        else:
            assert (tmp / "figures" / target).with_suffix(".pdf").exists(), target
    # every figure of the registry is in the paper, and has its PNG for the README
    drawn = {p.stem for p in written["figures"]}
    assert drawn == {f.name for f in figures.FIGURES}
    assert drawn <= {t for k, t in incs if k == "includegraphics"}
    assert all((tmp / "figures" / f"{n}.png").exists() for n in drawn)


def test_committed_generated_files_are_what_the_command_writes_now(generated):
    tmp, _ = generated
    gen = tmp / "paper" / "generated"
    files = sorted(gen.rglob("*.tex"))
    assert len(files) >= 20
    for f in files:
        rel = f.relative_to(gen)
        committed = ROOT / "paper" / "generated" / rel
        assert committed.exists() and committed.read_text() == f.read_text(), \
            f"paper/generated/{rel} is stale: run `ntkequi figures`"
    assert (ROOT / "figures" / "captions.md").read_text() == (tmp / "figures" / "captions.md").read_text()


def test_macros_used_by_the_text_are_all_defined(generated):
    tmp, _ = generated
    defined = set(re.findall(r"\\newcommand\{\\(\w+)\}", (tmp / "paper" / "generated" / "numbers.tex").read_text()))
    used = set()
    for f in (ROOT / "paper" / "sections").glob("*.tex"):
        used |= set(re.findall(r"\\([a-z]+[A-Z]\w*)\{\}", f.read_text()))
    assert used and used <= defined, used - defined


def test_no_number_is_typed_into_the_hand_written_latex():
    for f in [ROOT / "paper" / "main.tex", *(ROOT / "paper" / "sections").glob("*.tex")]:
        text = re.sub(r"(?<!\\)%.*", "", f.read_text())
        text = re.sub(r"\\(?:includegraphics\[[^\]]*\]|label|ref|input)\{[^}]*\}", "", text)
        text = re.sub(r"\\(?:usepackage|documentclass)\[[^\]]*\]", "", text)     # layout options
        assert not re.findall(r"\d\.\d|\d[eE]-?\d", text), f


def test_sweep_tables_equal_the_results(generated):
    tmp, _ = generated
    for name in ("toy_ensembles", "ising", "fmnist_ntk"):
        recs, cfg = _records(name), _config(name)["sweep"]
        width = max(cfg["widths"])
        off = recs[f"orbit/width{width}"]["eval_sets"][-1]
        rows = rows_of((tmp / "paper" / "generated" / "tables" / f"{name}.tex").read_text())
        assert [r[0] for r in rows] == ["none", "orbit", "subgroup"]
        for row in rows:
            last = recs[f"{row[0]}/width{width}"][off][-1]
            expected = [last["members"], *last["ensemble"], float(last["ntk"])]
            assert row[1:] == [fmt(v) for v in expected], (name, row)
            np.testing.assert_allclose([parse(c)[0] for c in row[1:]], expected, rtol=0.06)


def test_osp_tables_equal_the_results(generated):
    tmp, _ = generated
    recs, cfg = _records("fmnist_osp_table-small"), _config("fmnist_osp_table-small")
    for s in ("test", "mnist", "noise"):
        rows = rows_of((tmp / "paper" / "generated" / "tables" / f"osp_{s}.tex").read_text())
        ens = next(r for r in rows if r[0].startswith("DeepEns"))
        for cell, n in zip(ens[1:], cfg["groups"]):
            vals = [recs[f"deep_ensemble/C{n}/seed{seed}"][s]["osp"] for seed in cfg["seeds"]]
            mean, std, paper = parse(cell)
            assert (mean, std) == (round(np.mean(vals), 2), round(np.std(vals), 2)), (s, n, cell)
        single = next(r for r in rows if r[0].startswith("single"))
        for cell, n in zip(single[1:], cfg["groups"]):
            vals = [m["osp"] for seed in cfg["seeds"] for m in recs[f"deep_ensemble/C{n}/seed{seed}"][s + "_members"]]
            assert parse(cell)[0] == round(np.mean(vals), 2)


def test_cross_product_and_partial_tables_equal_the_results(generated):
    tmp, _ = generated
    recs = _records("cross_product")
    rows = rows_of((tmp / "paper" / "generated" / "tables" / "cross_product.tex").read_text())
    for row in rows:
        p = recs[row[0]]["per_time"][-1]
        assert row[3:] == [fmt(p[s]["so3"]) for s in ("in_dist", "far", "flipped")]
    recs, cfg = _records("partial_augmentation"), _config("partial_augmentation")
    rows = rows_of((tmp / "paper" / "generated" / "tables" / "partial_augmentation.tex").read_text())
    for row, n in zip(rows, cfg["train_orders"]):
        noise = np.asarray(recs[f"C{n}"]["per_time"][-1]["noise"]["per_angle"], dtype=float)
        assert row[-1] == fmt(noise.mean())
    numbers = (tmp / "paper" / "generated" / "numbers.tex").read_text()
    so3 = {a: recs_cp["per_time"][-1]["flipped"]["so3"] for a, recs_cp in _records("cross_product").items()
           if a in ("T", "O", "I")}
    for a, v in so3.items():
        assert rf"\newcommand{{\crossSO{a}}}{{{fmt(v, 3)}}}" in numbers


def test_width_table_and_slope_equal_the_results(generated):
    tmp, _ = generated
    recs = _records("width_convergence")
    rows = rows_of((tmp / "paper" / "generated" / "tables" / "width_convergence.tex").read_text())
    for arch, width, mean, std in rows:
        errs = np.asarray(recs[f"{arch.lower()}/width{width}"]["errors"])
        assert (mean, std) == (fmt(errs.mean()), fmt(errs.std()))
    mlp = sorted((r for r in recs.values() if r["arch"] == "mlp"), key=lambda r: r["width"])
    slope = np.polyfit(np.log([r["width"] for r in mlp]), np.log([np.mean(r["errors"]) for r in mlp]), 1)[0]
    assert rf"\newcommand{{\widthSlopeMLP}}{{{fmt(slope, 3)}}}" in (tmp / "paper" / "generated" / "numbers.tex").read_text()
    assert -0.7 < slope < -0.3          # the 1/sqrt(width) rate


def test_missing_results_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python experiments/cross_product.py"):
        figures.make_all(tmp_path / "none", tmp_path / "f", tmp_path / "g", log=lambda *a: None)


def test_fmt_and_parse_round_trip():
    for v in (0.3214, 123.4, 2.6e-15, 1.0, 0.012, -3.5e-7, 7.0e5):
        assert parse(fmt(v))[0] == pytest.approx(v, rel=0.06)
    assert math.isnan(parse(fmt(float("nan")))[0])
    with pytest.raises(ValueError, match="letters only"):
        paper_tables.macro("bad_name1", 1.0)
