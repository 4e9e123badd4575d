"""Benchmark: one message with a 300 MB video, through IMAP.

`mailroll ingest --once` must stream the message part by part (partial FETCH, decoded on the
fly into a spool file): its peak RSS stays under 150 MB however big the video, and its wall time
stays within 1.5x of the baseline, a fresh Python process that fetches the whole message body
with imapclient and writes it to disk (which holds the whole message in memory).

    .venv/bin/python bench/bench_bigvideo.py [--megabytes 300] [--keep DIR]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (
    DovecotServer,
    baseline_fetch,
    imap_campaign,
    noise_video,
    report,
    run_mailroll,
    warm_up,
    work_dir,
)
from fixtures.mail import build_mail

TARGET_RATIO = 1.5
TARGET_RSS_MB = 150


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megabytes", type=int, default=300)
    ap.add_argument("--keep", type=Path, help="keep the work directory here")
    args = ap.parse_args(argv)

    work = work_dir(args.keep)
    try:
        t = time.perf_counter()
        video_path = noise_video(args.megabytes)
        video = video_path.read_bytes()
        sha = hashlib.sha256(video).hexdigest()
        raw = build_mail(
            "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
            "太原市科技活动周宣传视频",
            [("太原市科技活动周宣传片.mp4", video, "video/mp4")],
        ).as_bytes()
        del video
        made = time.perf_counter() - t
        with DovecotServer() as server:
            user = server.new_user()
            server.write_maildir(user, [raw], when=datetime.now(UTC) - timedelta(hours=1))
            size = len(raw)
            del raw
            warm_up(server, user)
            base = baseline_fetch(server, user, work / "baseline")
            shutil.rmtree(work / "baseline", ignore_errors=True)
            campaign = imap_campaign(work / "campaign", server, user)
            run = run_mailroll(campaign, "ingest", "--once", "--json")
        counts = run.json
        conn = sqlite3.connect(campaign.db_path)
        stored = conn.execute("SELECT sha256, facts, error FROM parts WHERE kind = 'video'").fetchall()
        if counts["new"] != 1 or counts["failed"] or [r[0] for r in stored] != [sha]:
            print(f"unexpected result: {counts}, video parts {stored}\n{run.stderr[-2000:]}", file=sys.stderr)
            return 1
        ratio = run.seconds / base.seconds
        ok = report(
            f"one message with a {args.megabytes} MB video ({size / 2**20:.0f} MB as mail)",
            [
                ("video made in", f"{made:.1f} s (cached in {video_path.parent})"),
                (
                    "baseline: fetch whole + write to disk",
                    f"{base.seconds:.2f} s, peak RSS {base.max_rss_mb:.0f} MB",
                ),
                (
                    "mailroll ingest --once",
                    f"{run.seconds:.2f} s, peak RSS {run.max_rss_mb:.0f} MB (target < {TARGET_RSS_MB} MB)",
                ),
                ("stored video", "sha256 identical to the original"),
            ],
            ratio,
            TARGET_RATIO,
        )
        rss_ok = run.max_rss_mb < TARGET_RSS_MB
        if not rss_ok:
            print(f"  peak RSS {run.max_rss_mb:.0f} MB is over the {TARGET_RSS_MB} MB target")
        return 0 if ok and rss_ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
