"""Wall time of every unit of work of a run, from its log (the runner prints ``[RUN] KEY``
before each unit, then the tqdm bar of its training). A resumed unit has several
segments (its header again, the bar restarting at the resumed step); its time is the sum
of the segments' last elapsed times. A segment whose bar has no final ``n/n`` line (the
committed logs keep only the bar's lines at checkpoints) is extrapolated from its rate, and
the time is marked ``~``.

    python benchmarks/run_times.py results/fmnist_osp_table/log.txt

Prints one row per unit, then the mean over seeds per model and group, the sum per seed
(a key's last part), and the total.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict

HEADER = re.compile(r"^\[(?P<run>[^\]]+)\] (?P<key>\S+)\s*$")
BAR = re.compile(r"(?P<n>\d+)/(?P<total>\d+) \[(?P<elapsed>[\d:]+)<")


def seconds(clock: str) -> int:
    """'1:02:03' or '02:03' -> seconds.

    >>> seconds("06:11"), seconds("1:00:21")
    (371, 3621)
    """
    s = 0
    for part in clock.split(":"):
        s = 60 * s + int(part)
    return s


def unit_times(text: str) -> dict:
    """``{key: (seconds, exact)}`` from a run's log text (``\\r`` or ``\\n`` separated);
    a unit still training when the log was taken is included, extrapolated.

    >>> log = "[r] a/C4/seed0\\nx: 50%| 5/10 [00:10<00:10]\\n[r] a/C4/seed0\\nx: 70%| 7/10 [00:02<]\\n"
    >>> log += "x: 100%| 10/10 [00:08<00:00]\\n[r] b/C4/seed0\\nx: 0%| 0/10 [00:00<?]\\nx: 50%| 5/10 [00:30<00:30]\\n"
    >>> unit_times(log)
    {'a/C4/seed0': (18, True), 'b/C4/seed0': (60, False)}
    """
    segments = defaultdict(list)             # key -> [[first_n, last_n, total, elapsed], ...]
    key = None
    for line in text.replace("\r", "\n").splitlines():
        h = HEADER.match(line)
        if h:
            key = h["key"]
            segments[key].append(None)
            continue
        b = BAR.search(line)
        if key is None or not b:
            continue
        n, total, el = int(b["n"]), int(b["total"]), seconds(b["elapsed"])
        seg = segments[key][-1]
        if seg is None:
            segments[key][-1] = [n, n, total, el]
        elif el >= seg[3]:
            seg[1], seg[3] = n, el
    out = {}
    for key, segs in segments.items():
        segs = [s for s in segs if s is not None]
        if not segs:
            continue
        t = sum(s[3] for s in segs)
        first, last, total, el = segs[-1]
        exact = last >= total
        if not exact and last > first:
            t += (total - last) * el / (last - first)
        out[key] = (round(t), exact)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    args = ap.parse_args(argv)
    with open(args.log, encoding="utf-8", errors="replace") as f:
        times = unit_times(f.read())
    if not times:
        print(f"no '[RUN] KEY' units with progress bars in {args.log}", file=sys.stderr)
        return 1
    print("| unit | wall time (min) |")
    print("|---|---|")
    for key, (t, exact) in times.items():
        print(f"| {key} | {'' if exact else '~'}{t / 60:.1f} |")
    groups, seeds = defaultdict(list), defaultdict(list)
    for key, (t, _) in times.items():
        head, last = key.rsplit("/", 1) if "/" in key else (key, "")
        groups[head].append(t)
        seeds[last].append(t)
    print("\n| model / group | mean over seeds (min) | seeds |")
    print("|---|---|---|")
    for g, ts in groups.items():
        print(f"| {g} | {sum(ts) / len(ts) / 60:.1f} | {len(ts)} |")
    print("\n| seed | wall time (min) | units |")
    print("|---|---|---|")
    for s, ts in seeds.items():
        print(f"| {s} | {sum(ts) / 60:.1f} | {len(ts)} |")
    total = sum(t for t, _ in times.values())
    print(f"\ntotal: {total / 3600:.2f} h over {len(times)} units "
          f"({sum(not e for _, e in times.values())} extrapolated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
