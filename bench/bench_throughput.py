"""Benchmark: `mailroll ingest --once` on a campaign-sized IMAP mailbox vs a bare fetch.

The mailbox (a real Dovecot): N messages from the roster's units, each with a statistics sheet
(.xlsx) and a summary report (.docx); every K-th also carries a 5, 12 or 20 MB video (made once
with ffmpeg, a distinct file each time). Measured in the same run:

* baseline: a fresh Python process that fetches every message's full body with imapclient
  (20 per FETCH) and writes it to disk (fsync); the target is measured against it;
* for information, the same script with imaplib's debug output off (see ``BASELINE_QUIET`` in
  common.py): imapclient as shipped spends most of its time formatting debug text nobody reads;
* mailroll: `ingest --once --json` as a fresh process (fetch, parse, keep files, check sheets,
  reports and videos, attribute).

Prints both and the ratio; exit status 1 when the ratio is over the target (1.5x).

    .venv/bin/python bench/bench_throughput.py [--messages 200] [--video-every 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (
    REPO,
    DovecotServer,
    baseline_fetch,
    imap_campaign,
    noise_video,
    report,
    run_mailroll,
    unique_copy,
    warm_up,
    work_dir,
)
from fixtures.files import DEFAULT_FIGURES, make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail

TARGET = 1.5
VIDEO_SIZES_MB = (5, 12, 20)


def roster_units() -> list[tuple[str, str]]:
    with open(REPO / "samples" / "roster.csv", encoding="utf-8") as f:
        return [(row["name"], row["emails"].split(";")[0]) for row in csv.DictReader(f)]


def build_messages(n: int, video_every: int, work: Path) -> tuple[list[bytes], int]:
    rnd = random.Random(42)
    units = roster_units()
    videos = {mb: noise_video(mb).read_bytes() for mb in VIDEO_SIZES_MB}
    raws, total = [], 0
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
        raw = build_mail(f"{name} <{addr}>", f"{name}2022年科技活动周材料（{i}）", atts).as_bytes()
        raws.append(raw)
        total += len(raw)
    return raws, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--video-every", type=int, default=4, help="every K-th message carries a video (0: none)")
    ap.add_argument("--keep", type=Path, help="keep the work directory here")
    args = ap.parse_args(argv)

    work = work_dir(args.keep)
    try:
        t = time.perf_counter()
        (work / "files").mkdir(exist_ok=True)
        raws, total = build_messages(args.messages, args.video_every, work / "files")
        made = time.perf_counter() - t
        with DovecotServer() as server:
            user = server.new_user()
            server.write_maildir(user, raws, when=datetime.now(UTC) - timedelta(days=1))
            del raws
            assert warm_up(server, user) == args.messages
            base = baseline_fetch(server, user, work / "baseline")
            quiet = baseline_fetch(server, user, work / "baseline-quiet", quiet=True)
            assert int(base.stdout) == int(quiet.stdout) == args.messages, (base.stdout, quiet.stdout)
            campaign = imap_campaign(work / "campaign", server, user)
            run = run_mailroll(campaign, "ingest", "--once", "--json")
            counts = run.json
        if counts["new"] != args.messages or counts["failed"]:
            print(f"unexpected result: {counts}\n{run.stderr[-2000:]}", file=sys.stderr)
            return 1
        ratio = run.seconds / base.seconds
        ok = report(
            f"ingest throughput: {args.messages} messages, {total / 2**20:.0f} MB",
            [
                ("test files made in", f"{made:.1f} s"),
                (
                    "baseline: fetch all + write to disk",
                    f"{base.seconds:.2f} s, peak RSS {base.max_rss_mb:.0f} MB",
                ),
                (
                    "(same, imaplib debug repr off)",
                    f"{quiet.seconds:.2f} s, peak RSS {quiet.max_rss_mb:.0f} MB; "
                    f"mailroll is {run.seconds / quiet.seconds:.1f}x that (not the target)",
                ),
                ("mailroll ingest --once", f"{run.seconds:.2f} s, peak RSS {run.max_rss_mb:.0f} MB"),
                ("mailroll result", f"{counts}"),
                (
                    "mailroll rate",
                    f"{args.messages / run.seconds:.1f} messages/s, {total / 2**20 / run.seconds:.1f} MB/s",
                ),
            ],
            ratio,
            TARGET,
        )
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
