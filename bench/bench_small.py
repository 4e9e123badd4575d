"""Benchmark: the first ingest of a mailbox of many small messages vs a careful raw fetch of it.

After an outage, or on a new campaign's first poll, mailroll reads thousands of small messages
(a text body, a few kB) in one go. Every message goes through a worker process (parse, classify:
bounded work) and gets its own transaction, so the cost per message, not per byte, is what
counts here: the hand-over to the worker processes must overlap with the fetch, the commits and
the next messages.

Contestants, alternated over ``--rounds`` rounds (bench/common.py), on the same Dovecot folder:

* fair baseline: a fresh Python process that fetches every message's full body with imapclient
  (20 per FETCH, imaplib's debug output off) and writes each to its own file with fsync;
* mailroll: `ingest --once --json` as a fresh process on a fresh campaign (a new database and
  store each round): fetch, parse in the worker processes, record, attribute.

The messages are the poll benchmark's (``bench_poll.small``), written straight into the Maildir.

    .venv/bin/python bench/bench_small.py [--messages 10000] [--rounds 3] [--quick] [--keep DIR]

Exit status 1 when mailroll / fair baseline is over the target (1.5x).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta

from bench_poll import small
from common import (
    DovecotServer,
    Ratio,
    add_common_args,
    alternate,
    baseline_contestant,
    bench_dir,
    ingest_contestant,
    report,
    warm_up,
)

TARGET = 1.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, help="messages in the mailbox (10,000; --quick: 1,000)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    n = args.messages or (1000 if args.quick else 10_000)

    with bench_dir(args.keep) as work:
        with DovecotServer() as server:
            user = server.new_user()
            start = datetime.now(UTC) - timedelta(days=3)
            messages = [small(i) for i in range(n)]
            total = sum(len(m) for m in messages)
            server.write_maildir(user, messages, when=start)
            del messages
            assert warm_up(server, user) == n

            def check(_campaign, run) -> None:
                counts = run.json
                if counts["new"] != n or counts["failed"]:
                    raise SystemExit(f"unexpected result: {counts}\n{run.stderr[-2000:]}")

            series = alternate(
                [
                    baseline_contestant("fair baseline: fetch all + fsync", server, user, work / "fair", n),
                    ingest_contestant("mailroll ingest --once", work / "campaigns", server, user, check),
                ],
                max(3, args.rounds),
            )
        fair, mailroll = series.values()
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        ok = report(
            f"first ingest of {n:,} small messages",
            [
                ("mailbox", f"{n:,} messages, {total / 2**20:.1f} MB"),
                ("mailroll rate (median)", f"{n / mailroll.median:.0f} messages/s"),
                ("load average at the end (1, 5, 15 min)", load),
            ],
            [fair, mailroll],
            [Ratio("mailroll / fair baseline", mailroll, fair, TARGET)],
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
