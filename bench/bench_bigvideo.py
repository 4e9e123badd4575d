"""Benchmark: one message with a 300 MB video, through IMAP.

`mailroll ingest --once` must stream the message part by part (partial FETCH, decoded on the
fly into a spool file): the memory of its whole process tree (summed PSS: worker processes
count, a page they share counts once) stays under 150 MB however big the video, and its wall
time stays within 1.5x of the baseline: a fresh Python process that fetches the whole message
body with imapclient (debug output off) and writes it to disk (holding the whole message in
memory; one sync at the end; the batched and fsync-each baselines are printed too, for a single
message they are the same work). Alternated over ``--rounds`` rounds, medians compared
(bench/common.py).

    .venv/bin/python bench/bench_bigvideo.py [--megabytes 300] [--rounds 3] [--quick] [--keep DIR]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta

from common import (
    DovecotServer,
    add_common_args,
    alternate,
    baseline_ratios,
    baselines,
    bench_dir,
    ingest_contestant,
    noise_video,
    report,
    warm_up,
)
from fixtures.mail import build_mail

TARGET_RATIO = 1.5
TARGET_RSS_MB = 150


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megabytes", type=int, help="size of the video (300; --quick: 30)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    megabytes = args.megabytes or (30 if args.quick else 300)

    with bench_dir(args.keep) as work:
        t = time.perf_counter()
        video_path = noise_video(megabytes)
        video = video_path.read_bytes()
        sha = hashlib.sha256(video).hexdigest()
        raw = build_mail(
            "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
            "太原市科技活动周宣传视频",
            [("太原市科技活动周宣传片.mp4", video, "video/mp4")],
        ).as_bytes()
        del video
        made = time.perf_counter() - t

        def check(campaign, run) -> None:
            counts = run.json
            with sqlite3.connect(campaign.db_path) as conn:
                stored = conn.execute("SELECT sha256 FROM parts WHERE kind = 'video'").fetchall()
            if counts["new"] != 1 or counts["failed"] or [r[0] for r in stored] != [sha]:
                raise SystemExit(f"unexpected result: {counts}, video parts {stored}\n{run.stderr[-2000:]}")

        with DovecotServer() as server:
            user = server.new_user()
            server.write_maildir(user, [raw], when=datetime.now(UTC) - timedelta(hours=1))
            size = len(raw)
            del raw
            warm_up(server, user)
            series = alternate(
                [
                    *baselines(server, user, work, 1),
                    ingest_contestant("mailroll ingest --once", work / "campaigns", server, user, check),
                ],
                max(3, args.rounds),
            )
        mailroll = series["mailroll ingest --once"]
        ok = report(
            f"one message with a {megabytes} MB video ({size / 2**20:.0f} MB as mail)",
            [
                ("video made in", f"{made:.1f} s (cached in {video_path.parent})"),
                ("stored video", "sha256 identical to the original, every round"),
            ],
            list(series.values()),
            baseline_ratios(mailroll, series, TARGET_RATIO),
        )
        # the target is the tree's memory: PSS counts a page shared by forked worker processes
        # once; the summed RSS (printed too) counts it in every process that maps it
        rss_ok = mailroll.peak_tree_pss_mb < TARGET_RSS_MB
        print(
            f"  {'mailroll memory, whole process tree':<40} PSS {mailroll.peak_tree_pss_mb:.0f} MB "
            f"(target < {TARGET_RSS_MB} MB): {'OK' if rss_ok else 'OVER TARGET'}; summed RSS "
            f"{mailroll.peak_tree_mb:.0f} MB, largest single process "
            f"{max(r.max_rss_mb for r in mailroll.runs):.0f} MB"
        )
        return 0 if ok and rss_ok else 1


if __name__ == "__main__":
    sys.exit(main())
