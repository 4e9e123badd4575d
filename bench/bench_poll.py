"""Benchmark: a poll that finds one new message in a mailbox of 10,000 already ingested ones.

Incremental polling must not depend on the mailbox size: with UIDVALIDITY + last UID the poll
asks the server only for UIDs above the watermark. Compared, in the same run, with a poll of a
mailbox that holds only that one message (its database created beforehand, so both pay the same
start-up). Each is measured ROUNDS times with a fresh new message; the medians are compared.

The 10,000 messages are written straight into the Maildir (much faster than APPEND) and
ingested once, untimed (the time is printed for information).

    .venv/bin/python bench/bench_poll.py [--messages 10000] [--rounds 5] [--keep DIR]

Exit status 1 when the ratio is over the target (1.2x).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import DovecotServer, imap_campaign, report, run_mailroll, warm_up, work_dir
from fixtures.mail import build_mail

TARGET = 1.2
SENDERS = [
    "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
    "大同市科学技术局 <dtkjj2022@163.com>",
    "长治市科学技术局 <czkjj@changzhi.gov.cn>",
    "无名氏 <someone@example.org>",
]


def small(i: int, when: datetime | None = None) -> bytes:
    return build_mail(
        SENDERS[i % len(SENDERS)], f"科技活动周材料 第{i}封", body=f"第{i}封邮件，材料见后续。", date=when
    ).as_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="keep the work directory here")
    args = ap.parse_args(argv)

    work = work_dir(args.keep)
    try:
        with DovecotServer() as server:
            big_user, one_user = server.new_user(), server.new_user()
            start = datetime.now(UTC) - timedelta(days=3)
            server.write_maildir(big_user, (small(i) for i in range(args.messages)), when=start)
            t = time.perf_counter()
            warm_up(server, big_user)
            indexed = time.perf_counter() - t
            big = imap_campaign(work / "big", server, big_user)
            first = run_mailroll(big, "ingest", "--once", "--json")
            assert first.json["new"] == args.messages, first.json

            one = imap_campaign(work / "one", server, one_user)
            run_mailroll(one, "ingest", "--once", "--json")  # creates its database: not timed

            big_times, one_times = [], []
            for r in range(args.rounds):
                raw = small(args.messages + r)
                server.append(big_user, raw)
                server.append(one_user, raw)
                a = run_mailroll(big, "ingest", "--once", "--json")
                b = run_mailroll(one, "ingest", "--once", "--json")
                assert a.json["new"] == 1 and b.json["new"] == 1, (a.json, b.json)
                big_times.append(a.seconds)
                one_times.append(b.seconds)
        big_med, one_med = statistics.median(big_times), statistics.median(one_times)
        ok = report(
            f"poll finding 1 new message among {args.messages:,}",
            [
                ("Dovecot indexing the mailbox", f"{indexed:.1f} s (not timed below)"),
                (
                    f"first ingest of {args.messages:,} messages",
                    f"{first.seconds:.1f} s ({args.messages / first.seconds:.0f} messages/s)",
                ),
                (f"poll, {args.messages:,} + 1 messages (median)", f"{big_med:.3f} s  {_fmt(big_times)}"),
                ("poll, mailbox of 1 message (median)", f"{one_med:.3f} s  {_fmt(one_times)}"),
            ],
            big_med / one_med,
            TARGET,
        )
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _fmt(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.3f}" for t in times) + "]"


if __name__ == "__main__":
    sys.exit(main())
