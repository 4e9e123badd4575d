"""Benchmark: `mailroll web` pages at 2,000 units and 20,000 messages.

Target (issue 13): every page answers within 200 ms. Yardstick measured in the same run,
alternating with the pages: `mailroll status --json` as a fresh process on the same database
(the CLI's quickest answer, from the same status cache). The campaign is bench_status.py's
(roster .csv, config, facts rows in a realistic mix). The server is `mailroll web` (waitress) as
a process; each request is timed from this process over loopback, status cache current (the
everyday case; the first request after new mail also recomputes, as `status` would).

    .venv/bin/python bench/bench_web.py [--units 2000] [--messages 20000] [--rounds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_status import build  # noqa: E402
from common import report, run_timed, work_dir  # noqa: E402

TARGET_S = 0.200
PAGES = ("/", "/units/u0001", "/unmatched", "/stats", "/api/status", "/api/messages")


def get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - started, len(body)


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms  "
        f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build the campaign here and keep it")
    args = ap.parse_args()
    root = work_dir(args.keep)
    config = build(root, args.units, args.messages)
    cli = [sys.executable, "-m", "reconcile", "--config", str(config)]
    subprocess.run([*cli, "status", "--json"], capture_output=True, check=True)  # compute and cache
    server = subprocess.Popen([*cli, "web", "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        m = re.search(r"http://[\d.]+:\d+", server.stderr.readline())
        if not m:
            raise SystemExit("mailroll web did not start")
        base = m.group(0)
        for page in PAGES:  # warm up: templates compiled, roster loaded
            get(base + page)
        baseline: list[float] = []
        times: dict[str, list[float]] = {p: [] for p in PAGES}
        sizes: dict[str, int] = {}
        for _ in range(args.rounds):  # alternate: the yardstick, then every page
            run = run_timed([*cli, "status", "--json"])
            assert run.returncode == 0, run.stderr
            baseline.append(run.seconds)
            for page in PAGES:
                seconds, size = get(base + page)
                times[page].append(seconds)
                sizes[page] = size
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    base_median = statistics.median(baseline)
    rows = [("status --json (CLI process, baseline)", spread(baseline))]
    for page in PAGES:
        ratio = statistics.median(times[page]) / base_median
        rows.append(
            (f"GET {page} ({sizes[page] // 1024} KB)", f"{spread(times[page])}  {ratio:.2f}x baseline")
        )
    worst = max(statistics.median(t) for t in times.values())
    report(
        f"mailroll web, {args.units} units, {args.messages} messages, {args.rounds} rounds",
        rows,
        worst / TARGET_S,
        1.0,
    )
    print(f"  slowest page median {worst * 1000:.0f} ms; target {TARGET_S * 1000:.0f} ms (ratio above)")
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
