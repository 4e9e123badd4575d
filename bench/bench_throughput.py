"""Benchmark: `mailroll ingest --once` on a deadline-evening mailbox vs a careful raw fetch.

The mailbox (a real Dovecot): N submissions from the roster's units, each with a statistics
sheet (.xlsx), a summary report (.docx) and a video of 2 to 20 MB (made once with ffmpeg, a
distinct file each time; ``--video-every K`` gives only every K-th one a video). Contestants,
alternated over ``--rounds`` rounds (bench/common.py):

* the baselines (bench/common.py): a fresh Python process that fetches every message's full
  body with imapclient (imaplib's debug output off) and writes each to its own file: one FETCH
  per message and one sync at the end (the target's denominator), 100 per FETCH, and 20 per
  FETCH with an fsync after every file (the older figures' yardstick);
* mailroll: `ingest --once --json` as a fresh process on a fresh campaign (fetch, parse, keep
  files, check sheets, reports and videos, attribute).

Prints the medians, every round, the spread and the ratios; exit status 1 when mailroll / the
per-message fetch is over the target (1.3x).

    .venv/bin/python bench/bench_throughput.py [--messages 200] [--video-every 1] [--rounds 3]
                                               [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (
    REPO,
    DovecotServer,
    add_common_args,
    alternate,
    baseline_ratios,
    baselines,
    bench_dir,
    ingest_contestant,
    noise_video,
    report,
    unique_copy,
    warm_up,
)
from fixtures.files import DEFAULT_FIGURES, make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail

TARGET = 1.3
VIDEO_SIZES_MB = (2, 5, 9, 14, 20)  # in turn: 10 MB on average


def roster_units() -> list[tuple[str, str]]:
    with open(REPO / "samples" / "roster.csv", encoding="utf-8") as f:
        return [(row["name"], row["emails"].split(";")[0]) for row in csv.DictReader(f)]


def build_messages(n: int, video_every: int, work: Path, sizes: dict[str, int]) -> Iterator[bytes]:
    """The submissions, one at a time (the whole mailbox would not fit in memory twice);
    ``sizes`` gets the total bytes and the number of videos."""
    rnd = random.Random(42)
    units = roster_units()
    videos = {mb: noise_video(mb).read_bytes() for mb in VIDEO_SIZES_MB}
    for i in range(n):
        name, addr = units[i % len(units)]
        figures = {
            k: (v if not isinstance(v, int) else v + rnd.randint(0, 50)) for k, v in DEFAULT_FIGURES.items()
        }
        figures["活动总数"] = figures["线上活动"] + figures["线下活动"]
        sheet = make_sheet_xlsx(work / f"sheet{i}.xlsx", unit=name, figures=figures).read_bytes()
        report_docx = make_report_docx(work / f"report{i}.docx", chars=800 + i).read_bytes()
        atts = [(f"{name}科技活动周统计表.xlsx", sheet), (f"{name}科技活动周总结.docx", report_docx)]
        if video_every and i % video_every == video_every - 1:
            mb = VIDEO_SIZES_MB[(i // video_every) % len(VIDEO_SIZES_MB)]
            atts.append((f"{name}宣传视频.mp4", unique_copy(videos[mb], i), "video/mp4"))
            sizes["videos"] = sizes.get("videos", 0) + 1
        raw = build_mail(f"{name} <{addr}>", f"{name}2022年科技活动周材料（{i}）", atts).as_bytes()
        sizes["bytes"] = sizes.get("bytes", 0) + len(raw)
        yield raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, help="submissions in the mailbox (200; --quick: 20)")
    ap.add_argument("--video-every", type=int, default=1, help="every K-th message carries a video (0: none)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    n = args.messages or (20 if args.quick else 200)

    with bench_dir(args.keep) as work:
        t = time.perf_counter()
        (work / "files").mkdir(exist_ok=True)
        sizes: dict[str, int] = {}
        with DovecotServer() as server:
            user = server.new_user()
            when = datetime.now(UTC) - timedelta(days=1)
            server.write_maildir(user, build_messages(n, args.video_every, work / "files", sizes), when=when)
            made = time.perf_counter() - t
            assert warm_up(server, user) == n

            def check(_campaign, run) -> None:
                counts = run.json
                if counts["new"] != n or counts["failed"]:
                    raise SystemExit(f"unexpected result: {counts}\n{run.stderr[-2000:]}")

            contestants = [
                *baselines(server, user, work, n),
                ingest_contestant("mailroll ingest --once", work / "campaigns", server, user, check),
            ]
            series = alternate(contestants, max(3, args.rounds))
        mailroll = series["mailroll ingest --once"]
        total_mb = sizes["bytes"] / 2**20
        rate = f"{n / mailroll.median:.1f} messages/s, {total_mb / mailroll.median:.0f} MB/s"
        videos = sizes.get("videos", 0)
        ok = report(
            f"ingest throughput: {n} submissions, {videos} with a video, {total_mb:.0f} MB of mail",
            [("mailbox made in", f"{made:.1f} s"), ("mailroll rate (median)", rate)],
            list(series.values()),
            baseline_ratios(mailroll, series, TARGET),
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
