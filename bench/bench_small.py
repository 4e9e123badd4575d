"""Benchmark: the first ingest of an office's ordinary mailbox vs a raw fetch of it.

An office points mailroll at the 126.com mailbox it already has: thousands of ordinary messages,
most of them not campaign material. Each is a Chinese text body with its HTML twin (as web mail
and Foxmail send them); every fifth carries a small PDF, every tenth a photo. Every message goes
through a worker process (parse, classify: bounded work) and is recorded; what counts here is
the cost per message, not per byte.

Contestants, alternated over ``--rounds`` rounds (bench/common.py), on the same Dovecot folder:

* the baselines: a fresh Python process that fetches every message's full body with imapclient
  and writes each to its own file: one FETCH per message and one sync at the end (the target's
  denominator), 100 per FETCH, and 20 per FETCH with an fsync after every file (labelled);
* mailroll: `ingest --once --json` as a fresh process on a fresh campaign (a new database and
  store each round): fetch, parse in the worker processes, record, index, attribute.

    .venv/bin/python bench/bench_small.py [--messages 3000] [--rounds 3] [--quick] [--keep DIR]

Exit status 1 when mailroll / the per-message fetch is over the target (1.5x).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from common import (
    DovecotServer,
    add_common_args,
    alternate,
    baseline_ratios,
    baselines,
    bench_dir,
    ingest_contestant,
    report,
    warm_up,
)
from fixtures.files import make_jpeg, make_report_pdf

TARGET = 1.5
SENDERS = [
    "王丽 <wangli@taiyuan.gov.cn>",
    "张强 <dtkjj2022@163.com>",
    "李娜 <lina_cz@qq.com>",
    "报刊发行部 <fx@newspaper.example.cn>",
    "赵敏 <jzkjj@sina.com>",
    "人事处 <rsc@sxu.edu.cn>",
    "某培训机构 <edu@training.example.com>",
]
PHRASES = (
    "关于做好年度统计工作的通知，请各单位认真组织，按时报送。",
    "会议定于下周三上午九点在三楼会议室召开，请准时参加。",
    "附件是本月的工作简报，请查阅。如有问题请联系办公室。",
    "根据上级部门要求，现将有关事项通知如下。",
    "请问贵单位今年的科普活动经费预算是否已经下达？",
    "感谢您的支持！我们将继续做好相关服务工作。",
)


def ordinary(i: int, rnd: random.Random, pdf: bytes, jpeg: bytes, when: datetime) -> bytes:
    """One ordinary message: Chinese text and its HTML, sometimes a small PDF or a photo."""
    text = "\n".join(rnd.choice(PHRASES) for _ in range(rnd.randint(3, 25)))
    msg = EmailMessage()
    msg["From"] = SENDERS[i % len(SENDERS)]
    msg["To"] = "sxskjtrcc@126.com"
    msg["Subject"] = f"{rnd.choice(PHRASES)[:12]}（{i}）"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain="bench.mailroll")
    msg.set_content(text)
    html = "".join(f"<p>{line}</p>" for line in text.splitlines())
    msg.add_alternative(
        f"<html><body><div style='font-family:宋体'>{html}</div></body></html>", subtype="html"
    )
    if i % 5 == 0:  # a distinct file each time (a trailing comment changes its sha256)
        msg.add_attachment(
            pdf + f"\n% {i}\n".encode(), maintype="application", subtype="pdf", filename=f"通知{i}.pdf"
        )
    if i % 10 == 3:
        msg.add_attachment(
            jpeg + i.to_bytes(4, "big"), maintype="image", subtype="jpeg", filename=f"IMG_{i}.jpg"
        )
    return msg.as_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, help="messages in the mailbox (3,000; --quick: 500; try 20000)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    n = args.messages or (500 if args.quick else 3000)

    with bench_dir(args.keep) as work:
        pdf = make_report_pdf(work / "notice.pdf", chars=600).read_bytes()
        jpeg = make_jpeg(work / "photo.jpg", 640, 480).read_bytes()
        with DovecotServer() as server:
            user = server.new_user()
            start = datetime.now(UTC) - timedelta(days=30)
            rnd = random.Random(5)
            messages = [ordinary(i, rnd, pdf, jpeg, start + timedelta(minutes=7 * i)) for i in range(n)]
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
                    *baselines(server, user, work, n),
                    ingest_contestant("mailroll ingest --once", work / "c", server, user, check),
                ],
                max(3, args.rounds),
            )
        mailroll = series["mailroll ingest --once"]
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        ok = report(
            f"first ingest of {n:,} ordinary messages",
            [
                (
                    "mailbox",
                    f"{n:,} messages, {total / 2**20:.1f} MB (a fifth with a PDF, a tenth with a photo)",
                ),
                ("mailroll rate (median)", f"{n / mailroll.median:.0f} messages/s"),
                ("load average at the end (1, 5, 15 min)", load),
            ],
            list(series.values()),
            baseline_ratios(mailroll, series, TARGET),
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
