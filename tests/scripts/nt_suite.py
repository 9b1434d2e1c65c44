"""Run neural-tangents' own tests against ntkequi's compatibility layer and compare the
outcome with the authors' pinned environment.

neural-tangents 0.6.5's tests are not shipped with its wheel; check them out yourself
(ntkequi does not copy them):

    git clone --depth 1 --branch v0.6.5 https://github.com/google/neural-tangents NT

Under ntkequi (JAX 0.10, numpy 2, no TensorFlow), against the committed reference list:

    python tests/scripts/nt_suite.py NT                  # prints passed / failed per file
    python tests/scripts/nt_suite.py NT --x64            # the same with JAX_ENABLE_X64=1

Making the reference list, in the authors' pinned environment (a separate virtualenv with
jax==0.4.34 jaxlib==0.4.34 numpy==1.26.4 tensorflow-cpu==2.17.1 tf2jax flax==0.10.0
neural-tangents==0.6.5 pytest pytest-xdist; ntkequi is not installed there):

    python tests/scripts/nt_suite.py NT --reference --write tests/scripts/nt_reference_passes.txt
    python tests/scripts/nt_suite.py NT --reference --x64 --write tests/scripts/nt_reference_passes_x64.txt

Both modes run the same four files (``FILES``) the same way as neural-tangents' CI
(``PYTHONHASHSEED=0``, ``JAX_ENABLE_X64`` from ``--x64``), with pytest-xdist. In the
default mode a pytest plugin (``nt_suite_plugin.py``, beside this file) imports ntkequi
before any test module, so that neural-tangents is the patched library, and gives the test
files themselves ``jax.tree_map`` (removed from JAX in 0.6; only the tests, not
neural-tangents, use it). Exit status 0 when every test that passes in the reference list
passes here.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("tests/predict_test.py", "tests/batching_test.py", "tests/stax/stax_test.py", "tests/empirical_test.py")
REFERENCE = HERE / "nt_reference_passes.txt"          # JAX_ENABLE_X64=0
REFERENCE_X64 = HERE / "nt_reference_passes_x64.txt"  # JAX_ENABLE_X64=1


def outcomes(junit_xml: Path) -> dict:
    """``{test id: 'passed' | 'failed' | 'skipped'}`` from a pytest junit XML file (test id
    ``file::Class::name``)."""
    out = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        cls = case.get("classname", "")
        module, _, klass = cls.rpartition(".")
        path = module.replace(".", "/") + ".py"
        tid = f"{path}::{klass}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out[tid] = "failed"
        elif case.find("skipped") is not None:
            out[tid] = "skipped"
        else:
            out[tid] = "passed"
    return out


def run_suite(nt_root: Path, *, compat: bool, x64: bool, workers: int, select=None) -> dict:
    """Run ``FILES`` (or the test ids in ``select``) of the neural-tangents checkout at
    ``nt_root``; returns :func:`outcomes`."""
    for f in FILES:
        if not (nt_root / f).is_file():
            raise SystemExit(f"{nt_root / f} not found: NT must be a neural-tangents checkout at v0.6.5")
    env = dict(os.environ, PYTHONHASHSEED="0", JAX_ENABLE_X64="1" if x64 else "0", JAX_PLATFORMS="cpu")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            "-o", "filterwarnings=", "--rootdir", str(nt_root)]
    if workers > 0:
        args += ["-n", str(workers)]
    if compat:
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        args += ["-p", "nt_suite_plugin"]
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        args += [f"--junitxml={xml}", *(select or FILES)]
        subprocess.run(args, cwd=nt_root, env=env, check=False)
        if not xml.exists():
            raise SystemExit("pytest wrote no junit report (see its output above)")
        return outcomes(xml)


def read_reference(path: Path = REFERENCE) -> set:
    """The test ids that passed in the reference environment (one per line, # comments)."""
    if not path.is_file():
        raise SystemExit(f"no reference list at {path}: make it with --reference --write {path} in the "
                         f"pinned environment (see this script's doc)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def compare(got: dict, reference: set, ran_all: bool = True) -> tuple[list, list]:
    """``(per-file rows, reference-passing tests that did not pass here)``; a row is
    ``(file, reference passes, of them passed here, failed here, not run here, passing
    here beyond the reference)``. With ``ran_all`` False (a selection was run) reference
    tests that were not run are not counted as missing."""
    rows, bad = [], []
    for f in FILES:
        ref = {t for t in reference if t.startswith(f + "::")}
        here = {t: o for t, o in got.items() if t in ref}
        failed = sorted(t for t, o in here.items() if o != "passed")
        missing = sorted(ref - set(here)) if ran_all else []
        extra = sum(o == "passed" and t not in ref for t, o in got.items() if t.startswith(f + "::"))
        rows.append((f, len(ref), sum(o == "passed" for o in here.values()), len(failed), len(missing), extra))
        bad += failed + missing
    return rows, bad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("nt_root", type=Path, help="neural-tangents checkout at tag v0.6.5")
    p.add_argument("--reference", action="store_true",
                   help="run without ntkequi (in the pinned reference environment)")
    p.add_argument("--write", type=Path, help="write the passing test ids here (with --reference)")
    p.add_argument("--x64", action="store_true", help="JAX_ENABLE_X64=1 (neural-tangents' CI runs both)")
    p.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers (0: serial)")
    p.add_argument("--only", nargs="*", help="test ids to run instead of the four files")
    a = p.parse_args(argv)
    got = run_suite(a.nt_root.resolve(), compat=not a.reference, x64=a.x64, workers=a.workers, select=a.only)
    counts = Counter(got.values())
    print(f"\n{len(got)} tests: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if a.reference:
        if a.write:
            import jax
            import numpy as np
            import scipy
            head = (f"# neural-tangents 0.6.5 tests that pass with jax {jax.__version__}, numpy {np.__version__}, "
                    f"scipy {scipy.__version__}, JAX_ENABLE_X64={int(a.x64)}, PYTHONHASHSEED=0 "
                    f"(tests/scripts/nt_suite.py --reference)\n")
            a.write.write_text(head + "".join(f"{t}\n" for t, o in sorted(got.items()) if o == "passed"))
            print(f"wrote {a.write}")
        return 0
    rows, bad = compare(got, read_reference(REFERENCE_X64 if a.x64 else REFERENCE), ran_all=not a.only)
    print(f"{'file':28} {'reference passes':>16} {'pass here':>9} {'fail here':>9} {'not run':>7} "
          f"{'also pass here':>14}")
    for f, r, ok, fail, miss, extra in rows:
        print(f"{f:28} {r:16d} {ok:9d} {fail:9d} {miss:7d} {extra:14d}")
    for t in bad:
        print(f"  not passing here: {t}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
