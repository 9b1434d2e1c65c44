"""Compare the records two runs of one experiment share, number by number: for each record
key in both ``results.jsonl`` files, the largest relative difference of every numeric field
(nested dicts and lists walked in step, ``[i]`` the index in a list of records such as one per
time; fields the same in both, run times and tile counts are not printed).

    python tests/scripts/compare_records.py A/results.jsonl B/results.jsonl [--key PREFIX]

``A`` may be ``REV:path`` to read a committed version (``git show``), e.g.
``139b4ff:results/fmnist_ntk_scale/results.jsonl``. How the float32 kernel tiles of
fmnist_ntk_scale were checked against float64 ones.
"""
import argparse
import json
import math
import subprocess
from collections import defaultdict


def _lines(spec: str) -> dict:
    if ":" in spec and not spec.startswith("/"):
        text = subprocess.run(["git", "show", spec], check=True, capture_output=True, text=True).stdout
    else:
        text = open(spec).read()
    return {r["key"]: r for r in map(json.loads, text.splitlines()) if r.get("key")}


def _walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() & b.keys():
            _walk(a[k], b[k], f"{path}.{k}" if path else str(k), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):      # lists of records (per time): one field per index
            _walk(x, y, f"{path}[{i}]" if isinstance(x, dict) else path, out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isfinite(a) and math.isfinite(b):
            scale = max(abs(a), abs(b), 1e-300)
            out[path] = max(out[path], abs(a - b) / scale)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--key", default="", help="only record keys starting with this")
    args = ap.parse_args(argv)
    ra, rb = _lines(args.a), _lines(args.b)
    shared = sorted(k for k in ra.keys() & rb.keys() if k.startswith(args.key))
    if not shared:
        print("no shared record keys")
        return 1
    skip = ("seconds", "finished", "tiles_computed")
    for key in shared:
        out = defaultdict(float)
        _walk(ra[key], rb[key], "", out)
        print(f"{key}:")
        for field, d in sorted(out.items()):
            if d > 0 and not any(s in field for s in skip):
                print(f"  {field:60s} max rel. diff {d:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
