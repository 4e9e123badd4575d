"""Benchmark: a poll that finds one new message in a mailbox of 10,000 already ingested ones.

Incremental polling must not depend on the mailbox size: with UIDVALIDITY + last UID the poll
asks the server only for UIDs above the watermark. Compared, in the same run, with a poll of a
mailbox that holds only that one message (its database created beforehand, so both pay the same
start-up). The two alternate over ROUNDS rounds, each with a fresh new message; the medians are
compared (bench/common.py).

The 10,000 messages are written straight into the Maildir (much faster than APPEND) and
ingested once, untimed (the time is printed for information).

    .venv/bin/python bench/bench_poll.py [--messages 10000] [--rounds 5] [--quick] [--keep DIR]

Exit status 1 when the ratio is over the target (1.2x).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from common import (
    Contestant,
    DovecotServer,
    Ratio,
    add_common_args,
    alternate,
    bench_dir,
    imap_campaign,
    report,
    run_mailroll,
    warm_up,
)
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
    ap.add_argument("--messages", type=int, help="messages already ingested (10,000; --quick: 500)")
    add_common_args(ap)
    ap.set_defaults(rounds=5)
    args = ap.parse_args(argv)
    n = args.messages or (500 if args.quick else 10_000)

    with bench_dir(args.keep) as work:
        with DovecotServer() as server:
            big_user, one_user = server.new_user(), server.new_user()
            start = datetime.now(UTC) - timedelta(days=3)
            server.write_maildir(big_user, (small(i) for i in range(n)), when=start)
            t = time.perf_counter()
            warm_up(server, big_user)
            indexed = time.perf_counter() - t
            big = imap_campaign(work / "big", server, big_user)
            first = run_mailroll(big, "ingest", "--once", "--json")
            assert first.json["new"] == n, first.json

            one = imap_campaign(work / "one", server, one_user)
            run_mailroll(one, "ingest", "--once", "--json")  # creates its database: not timed

            def poll(campaign, user: str):
                def run(r: int):
                    server.append(user, small(n + r))  # a fresh new message (not timed)
                    result = run_mailroll(campaign, "ingest", "--once", "--json")
                    assert result.json["new"] == 1, result.json
                    return result

                return run

            series = alternate(
                [
                    Contestant("poll, mailbox of 1 message + 1", poll(one, one_user)),
                    Contestant(f"poll, {n:,} + 1 messages", poll(big, big_user)),
                ],
                max(3, args.rounds),
            )
        one_s, big_s = series.values()
        ok = report(
            f"poll finding 1 new message among {n:,}",
            [
                ("Dovecot indexing the mailbox", f"{indexed:.1f} s (not timed below)"),
                (
                    f"first ingest of {n:,} messages",
                    f"{first.seconds:.1f} s ({n / first.seconds:.0f} messages/s)",
                ),
            ],
            [one_s, big_s],
            [Ratio(f"poll among {n:,} / poll among 1", big_s, one_s, TARGET)],
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
