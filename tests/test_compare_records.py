"""tests/scripts/compare_records.py: the relative differences it prints for two small runs."""
import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("compare_records", Path(__file__).parent / "scripts" / "compare_records.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def test_prints_per_time_differences_and_skips_equal_fields(tmp_path, capsys):
    a = {"key": "net/N4", "lambda_max": 2.0, "C4": [{"test": {"osp": 4.0, "err": 1.0}}, {"test": {"osp": 3.0, "err": 2.0}}],
         "kernel_seconds": 10.0}
    b = {"key": "net/N4", "lambda_max": 2.0, "C4": [{"test": {"osp": 4.0, "err": 1.1}}, {"test": {"osp": 2.0, "err": 2.0}}],
         "kernel_seconds": 99.0}
    for name, rec in (("a", a), ("b", b), ("c", {"key": "other"})):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(rec) + "\n")
    assert compare.main([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]) == 0
    out = capsys.readouterr().out.splitlines()
    fields = {line.split()[0]: float(line.split()[-1]) for line in out[1:]}
    assert fields == {"C4[0].test.err": float(f"{0.1 / 1.1:.1e}"), "C4[1].test.osp": float(f"{1 / 3:.1e}")}
    assert compare.main([str(tmp_path / "a.jsonl"), str(tmp_path / "c.jsonl")]) == 1
