"""Benchmark: `mailroll web` pages at 2,000 units and 20,000 messages.

Target (issue 13): every page answers within 200 ms (median), the overview `/` first of all.
The campaign is bench_status.py's (roster .csv, config, facts rows in a realistic mix); the
server is `mailroll web` (waitress, 4 threads) as a process of its own; each request is timed
from this process over loopback with the status cache current (the everyday case: the first
request after new mail also recomputes, as `status` would).

Yardsticks measured in the same run, alternating with the pages (common.alternate):

* "SQLite read": this process reading the same cached status rows (``unit_status``) with
  sqlite3 and json.loads: the least any page showing every unit must do;
* "status --json": `mailroll status --json` as a fresh process on the same database (the CLI's
  quickest answer, from the same cache; includes starting Python).

Ratios to both are printed for information: the 200 ms target is absolute. Printed beside, for
information: the first GET / right after a write to the data (the page recomputes the status,
as `status` would) and 8 s after one (the server's background refresh, reconcile/web/warm.py,
has recomputed it by then).

    .venv/bin/python bench/bench_web.py [--units 2000] [--messages 20000] [--rounds 5] [--quick] [--keep DIR]
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_status import build, parse_sizes  # noqa: E402
from common import REPO, Contestant, Ratio, Run, alternate, report, run_timed, work_dir  # noqa: E402

TARGET_S = 0.200
PAGES = ("/", "/?state=incomplete", "/units/u0001", "/unmatched", "/stats", "/api/status", "/api/messages")


def timed(fn) -> Run:
    started = time.perf_counter()
    size = fn()
    return Run(time.perf_counter() - started, 0.0, 0.0, 0.0, 0.0, 0, str(size), "")


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as r:
        if r.status != 200:
            raise SystemExit(f"GET {url}: {r.status}")
        return len(r.read())


def sqlite_read(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT json FROM unit_status ORDER BY pos")]
    finally:
        conn.close()
    return len(rows)


def first_page_after_write(db: Path, base: str, wait_s: float) -> float:
    """A write that changes the data version (as new mail does), then GET / after ``wait_s``."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE messages SET subject = subject WHERE id = (SELECT MIN(id) FROM messages)")
    conn.close()
    time.sleep(wait_s)
    started = time.perf_counter()
    get(base + "/")
    return time.perf_counter() - started


def start_web(cli: list[str]) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([*cli, "web", "--port", "0"], stderr=subprocess.PIPE, text=True, cwd=REPO)
    m = re.search(r"http://[\d.]+:\d+", server.stderr.readline())
    if not m:
        server.kill()
        raise SystemExit("mailroll web did not start")
    return server, m.group(0)


def main(argv: list[str] | None = None) -> int:
    args, n_units, n_messages = parse_sizes(__doc__, argv, rounds=5)
    root = work_dir(args.keep)
    server = None
    try:
        config = build(root, n_units, n_messages)
        cli = [sys.executable, "-m", "reconcile", "--config", str(config)]
        first = run_timed([*cli, "status", "--json"], cwd=REPO)  # attribute, compute and cache
        if first.returncode != 0:
            raise SystemExit(f"status failed:\n{first.stderr}")
        server, base = start_web(cli)
        started = time.perf_counter()
        get(base + "/")  # the server's first overview: imports, templates, rows from the cache
        first_page = time.perf_counter() - started
        for page in PAGES:  # warm: every page once
            get(base + page)
        contestants = [
            Contestant(
                "SQLite read of the status rows", lambda _r: timed(lambda: sqlite_read(root / "mailroll.db"))
            ),
            Contestant(
                "status --json (CLI process)", lambda _r: run_timed([*cli, "status", "--json"], cwd=REPO)
            ),
            *(
                Contestant(f"GET {page}", lambda _r, page=page: timed(lambda: get(base + page)))
                for page in PAGES
            ),
        ]
        series = alternate(contestants, max(3, args.rounds), quiet=True)
        after_write = [
            first_page_after_write(root / "mailroll.db", base, wait_s) for wait_s in (0, 0, 0, 8, 8, 8)
        ]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    sqlite_s, cli_s, *pages = series.values()
    sizes = {s.name: int(s.runs[-1].stdout) // 1024 for s in pages}
    ok = report(
        f"mailroll web at {n_units:,} units, {n_messages:,} messages",
        [
            ("first status --json (attribute + compute)", f"{first.seconds * 1000:.0f} ms"),
            ("the server's first GET /", f"{first_page * 1000:.0f} ms"),
            ("page sizes", ", ".join(f"{name[4:]} {kb} KB" for name, kb in sizes.items())),
            (
                "GET / at once after a write (recomputes)",
                ", ".join(f"{t * 1000:.0f} ms" for t in after_write[:3]),
            ),
            (
                "GET / 8 s after a write (refreshed by warm.py)",
                ", ".join(f"{t * 1000:.0f} ms" for t in after_write[3:]),
            ),
        ],
        [sqlite_s, cli_s, *pages],
        [Ratio(f"{s.name} / SQLite read", s, sqlite_s) for s in pages]
        + [Ratio("GET / / status --json", pages[0], cli_s)],
        unit="ms",
    )
    worst = max(pages, key=lambda s: s.median)
    verdict = "OK" if worst.median <= TARGET_S else "OVER TARGET"
    print(
        f"  slowest page: {worst.name}, median {worst.median * 1000:.0f} ms; target {TARGET_S * 1000:.0f} ms: {verdict}"
    )
    return 0 if ok and worst.median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
