"""benchmarks/run_times.py reads a run's wall times from its tqdm log, resumed units included."""
import doctest
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_times", ROOT / "benchmarks" / "run_times.py")
run_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_times)


def test_examples_run():
    assert doctest.testmod(run_times).failed == 0


def test_a_resumed_unit_sums_its_segments_and_a_cut_one_is_extrapolated(tmp_path, capsys):
    bar = "ensemble: {p:3d}%|\u2588\u2588     | {n}/1290 [{t}<00:10,  3.30step/s]"
    log = "\r".join(["[run-cpu] gcnn/C8/seed1", "", bar.format(p=0, n=0, t="00:00"), bar.format(p=20, n=259, t="01:20"),
                     "[run-cpu] gcnn/C8/seed1", "", bar.format(p=20, n=259, t="00:03"),
                     bar.format(p=100, n=1290, t="06:11"), bar.format(p=100, n=1290, t="06:48"),
                     "[run-cpu] canonicalization/C8/seed1", "", bar.format(p=0, n=0, t="00:00"),
                     bar.format(p=50, n=645, t="03:00")])
    times = run_times.unit_times(log)
    assert times == {"gcnn/C8/seed1": (80 + 408, True), "canonicalization/C8/seed1": (360, False)}
    f = tmp_path / "log.txt"
    f.write_text(log)
    assert run_times.main([str(f)]) == 0
    out = capsys.readouterr().out
    assert "| gcnn/C8/seed1 | 8.1 |" in out and "| canonicalization/C8/seed1 | ~6.0 |" in out
    assert "| seed1 | 14.1 | 2 |" in out       # 488 s + 360 s (extrapolated)
    f.write_text("no units here\n")
    assert run_times.main([str(f)]) == 1
