"""Benchmark: `mailroll status --json` at 2,000 units and 20,000 messages.

Target (the issue): within 1.5x of `python -c "import reconcile"` plus one SQLite query of the
same rows, both as a fresh process. Builds a throw-away campaign (roster .csv, config, database)
with facts rows inserted directly in a realistic mix (most units send 1-3 messages with the
sheet, report and video; some resend, some are late, some mail is unmatched or duplicate), then:

1. times the first `status --json` (attributes 20,000 messages and computes every unit: cold);
2. alternates `status --json` (the cache is current: the everyday case) with the baseline over
   ``--rounds`` rounds (bench/common.py) and compares the medians.
Exit status 1 if the ratio is over the target.

    .venv/bin/python bench/bench_status.py [--units 2000] [--messages 20000] [--rounds 15]
                                           [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import REPO, Contestant, Ratio, Run, add_common_args, alternate, report, run_timed, work_dir

from ingest.config import DEFAULT_SHEET_FIELDS  # noqa: E402 - the repo is put on sys.path first
from ingest.db import open_connection  # noqa: E402 - the repo is put on sys.path first

DEADLINE = datetime(2022, 6, 25, 15, 59, 59, tzinfo=UTC)
TARGET = 1.5


def build(root: Path, n_units: int, n_messages: int, seed: int = 7) -> Path:
    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    units = []
    with open(root / "roster.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "aliases", "emails", "category", "contact", "phone"])
        for i in range(n_units):
            uid = f"u{i:04d}"
            name = f"第{i}号县科学技术局"
            email = f"kj{i}@county{i}.gov.cn"
            units.append((uid, name, email))
            w.writerow(
                [
                    uid,
                    name,
                    f"{i}号县科技局",
                    email,
                    rnd.choice(["市科技局", "高等院校", "科研院所", "开发区"]),
                    "联系人",
                    "0351-0000000",
                ]
            )
    (root / "config.toml").write_text(
        '[campaign]\nname = "bench"\ndeadline = "2022-06-25T23:59:59+08:00"\ntimezone = "Asia/Shanghai"\n'
        '[mailbox]\nkind = "maildir"\npath = "maildir"\n[roster]\npath = "roster.csv"\n'
        '[storage]\ndb = "mailroll.db"\nfiles = "files"\n',
        encoding="utf-8",
    )
    conn = open_connection(root / "mailroll.db")
    figures = {label: rnd.randint(1, 50) for label, _ in DEFAULT_SHEET_FIELDS}
    sheet_ok = json.dumps(
        {"format": "xlsx", "unit_cell": None, "figures": figures, "problems": {}, "warnings": []},
        ensure_ascii=False,
    )
    sheet_bad = json.dumps(
        {
            "format": "xlsx",
            "unit_cell": None,
            "figures": figures,
            "problems": {"线上活动": "not found"},
            "warnings": [],
        },
        ensure_ascii=False,
    )
    report = json.dumps(
        {"format": "docx", "pages": 3, "text_chars": 1800, "encrypted": False, "scanned": False}
    )
    messages, parts = [], []
    part_id = 0
    start = DEADLINE - timedelta(days=20)
    for mid in range(1, n_messages + 1):
        r = rnd.random()
        if r < 0.05:
            from_addr, status = f"someone{mid}@163.com", "recorded"  # unmatched
        elif r < 0.07:
            from_addr, status = units[rnd.randrange(n_units)][2], "duplicate"
        else:
            from_addr, status = units[int(rnd.paretovariate(1.2) * 37) % n_units][2], "recorded"
        at = start + timedelta(seconds=rnd.randint(0, 24 * 86400))
        messages.append(
            (
                mid,
                "maildir:bench",
                f"k{mid}",
                f"m{mid}@bench",
                f"sha{mid}",
                status,
                from_addr,
                "科技活动周材料",
                at.isoformat(),
                12345,
                at.isoformat(),
            )
        )
        if status != "recorded":
            continue
        for seq, kind in enumerate(rnd.sample(["statistics", "report", "video", "image"], rnd.randint(0, 3))):
            part_id += 1
            if kind == "statistics":
                facts = sheet_ok if rnd.random() < 0.9 else sheet_bad
            elif kind == "report":
                facts = report
            elif kind == "video":
                facts = json.dumps(
                    {
                        "duration_s": rnd.choice([95.0, 170.5, 200.2]),
                        "container": "mp4",
                        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
                        "video_codec": "h264",
                        "audio_codec": "aac",
                        "width": 1280,
                        "height": 720,
                        "size": 5_000_000,
                    }
                )
            else:
                facts = json.dumps({"format": "jpeg", "width": 640, "height": 480})
            sha = f"{kind}{rnd.randint(0, 3 * n_units)}"
            parts.append(
                (part_id, mid, seq, "attachment", f"{kind}.bin", f"{kind}.bin", kind, sha, 1000, facts)
            )
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO messages (id, source, source_key, message_id, content_sha256, status, from_addr, "
        "subject, received_at, size, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        messages,
    )
    conn.executemany(
        "INSERT INTO parts (id, message, seq, origin, location, filename, kind, sha256, size, facts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        parts,
    )
    conn.execute("COMMIT")
    conn.close()
    return root / "config.toml"


def parse_sizes(doc: str, argv: list[str] | None, rounds: int):
    """The options of a benchmark on this campaign: (args, units, messages)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, help="units in the roster (2,000; --quick: 200)")
    ap.add_argument("--messages", type=int, help="messages in the database (20,000; --quick: 2,000)")
    add_common_args(ap)
    ap.set_defaults(rounds=rounds)
    args = ap.parse_args(argv)
    return args, args.units or (200 if args.quick else 2000), args.messages or (2000 if args.quick else 20000)


def main(argv: list[str] | None = None) -> int:
    args, n_units, n_messages = parse_sizes(__doc__, argv, rounds=15)

    root = work_dir(args.keep)
    try:
        t = time.perf_counter()
        config = build(root, n_units, n_messages)
        built = time.perf_counter() - t
        cmd = [sys.executable, "-m", "reconcile", "--config", str(config), "status", "--json"]
        cold = run_timed(cmd, cwd=REPO)
        if cold.returncode != 0:
            raise SystemExit(f"status failed:\n{cold.stderr}")
        rows = json.loads(cold.stdout)
        states = {s: sum(1 for r in rows if r["state"] == s) for s in ("complete", "incomplete", "missing")}
        baseline_code = (
            "import reconcile, sqlite3, sys; "
            f"c = sqlite3.connect({str(root / 'mailroll.db')!r}); "
            "rows = c.execute('SELECT json FROM unit_status ORDER BY pos').fetchall(); "
            "sys.stdout.write('[' + ', '.join(r[0] for r in rows) + ']')"
        )

        def status(_round: int) -> Run:
            r = run_timed(cmd, cwd=REPO)
            if r.returncode != 0 or json.loads(r.stdout) != rows:
                raise SystemExit(f"status --json failed or differs from the computed one:\n{r.stderr}")
            return r

        series = alternate(
            [
                Contestant(
                    "baseline: import reconcile + one query",
                    lambda _round: run_timed([sys.executable, "-c", baseline_code], cwd=REPO),
                ),
                Contestant("status --json (cache current)", status),
            ],
            max(3, args.rounds),
            quiet=True,
        )
        base, warm = series.values()
        ok = report(
            f"status --json at {n_units:,} units, {n_messages:,} messages",
            [
                ("campaign built in", f"{built:.1f} s ({root})"),
                (
                    "first status --json (attribute + compute)",
                    f"{cold.seconds * 1000:.0f} ms; {len(rows)} units {states}",
                ),
            ],
            [base, warm],
            [Ratio("status / baseline", warm, base, TARGET)],
            unit="ms",
        )
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
