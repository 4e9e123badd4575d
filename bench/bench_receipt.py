"""Benchmark: how soon `mailroll serve` answers a unit's message with its receipt (IMAP IDLE).

A real Dovecot, a real SMTP server (aiosmtpd) and `mailroll serve` as a process, watching the
folder with IDLE (poll interval 600 s, so only IDLE can wake it). Each round a unit's message
(a sheet and a report) is APPENDed, and two things are timed from that moment, on the same
message:

* baseline: a plain IMAP client, IDLE on the same folder, is told of the message (EXISTS) and
  fetches it whole: what any client watching the mailbox pays before it can do anything;
* mailroll: the receipt arrives at the SMTP server (serve woke, fetched, checked, recorded,
  attributed the message and sent the receipt).

Target: the median receipt within 2 s of arrival (the ratio to the baseline is printed for
information). ``--rounds`` rounds, medians and spread (bench/common.py).

    .venv/bin/python bench/bench_receipt.py [--rounds 5] [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

from bench_throughput import roster_units
from common import (
    DovecotServer,
    Ratio,
    Run,
    Series,
    add_common_args,
    imap_campaign,
    mailroll_argv,
    report,
    work_dir,
)
from fixtures.files import make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail
from fixtures.smtp import SmtpServer

TARGET_S = 2.0
# no reminder is due at this (fake) time, so the only mail serve sends is the receipt
FAKE_NOW = "2022-06-20T10:00:00+08:00"


class IdleClient(threading.Thread):
    """The baseline: IDLE on the folder; on EXISTS, fetch the new message whole; note when."""

    def __init__(self, server: DovecotServer, user: str):
        super().__init__(daemon=True, name="baseline-idle")
        self.client = server.client(user)
        self.client.select_folder("INBOX", readonly=True)
        self.seen = max(self.client.search(["ALL"]) or [0])
        self.fetched: list[float] = []  # perf_counter when each new message was in hand
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        c = self.client
        while not self.stop.is_set():
            c.idle()
            self.ready.set()
            news = False
            while not news and not self.stop.is_set():
                news = any(len(r) > 1 and r[1] == b"EXISTS" for r in c.idle_check(timeout=0.5))
            c.idle_done()
            if news:
                new = [u for u in c.search(["UID", f"{self.seen + 1}:*"]) if u > self.seen]
                for uid, _ in c.fetch(new, ["BODY.PEEK[]"]).items():
                    self.fetched.append(time.perf_counter())
                    self.seen = max(self.seen, uid)

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.client.logout()


def wait_until(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := pred():
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.set_defaults(rounds=5)
    args = ap.parse_args(argv)
    rounds = max(3, 3 if args.quick else args.rounds)

    work = work_dir(args.keep)
    smtp = SmtpServer().start()
    serve = None
    try:
        sheet = make_sheet_xlsx(work / "sheet.xlsx", unit="x").read_bytes()
        report_docx = make_report_docx(work / "report.docx").read_bytes()
        units = roster_units()
        with DovecotServer() as server:
            user = server.new_user()
            campaign = imap_campaign(work / "campaign", server, user)
            campaign.configure(
                smtp=smtp.config(),
                service={"poll_every_s": 600, "remind_every_s": 600, "lock_wait_s": 0},
            )
            serve = start_serve(campaign, work / "serve.log")
            db = campaign.db_path

            def polled() -> bool:
                if not db.exists():
                    return False
                with sqlite3.connect(db) as conn:
                    try:
                        return bool(
                            conn.execute("SELECT 1 FROM service_state WHERE key = 'last_poll'").fetchone()
                        )
                    except sqlite3.Error:
                        return False

            wait_until(polled, 120, "serve's first poll")
            time.sleep(2.0)  # serve's IDLE watcher logs in (it says nothing when it is ready)
            baseline = IdleClient(server, user)
            baseline.start()
            baseline.ready.wait(10)
            when = datetime.fromisoformat(FAKE_NOW) - timedelta(minutes=1)
            idle_runs, serve_runs = [], []
            for r in range(rounds):
                name, addr = units[r % len(units)]
                raw = build_mail(
                    f"{name} <{addr}>",
                    f"{name}科技活动周材料",
                    [(f"{name}统计表.xlsx", sheet), (f"{name}总结.docx", report_docx)],
                ).as_bytes()
                before = len(smtp.messages)
                started = time.perf_counter()
                server.append(user, raw, internaldate=when)
                smtp.wait_for(before + 1, timeout=60)
                receipt = time.perf_counter() - started
                wait_until(lambda r=r: len(baseline.fetched) > r, 30, "the baseline client")
                idle_runs.append(run_of(baseline.fetched[r] - started))
                serve_runs.append(run_of(receipt))
                print(
                    f"  round {r + 1}/{rounds}: IDLE client {idle_runs[-1].seconds:.3f} s, "
                    f"receipt {receipt:.3f} s",
                    flush=True,
                )
                time.sleep(1.0)  # serve back in IDLE
            baseline.close()
        idle_s, serve_s = (
            Series("baseline: IDLE client notified + fetch", idle_runs),
            Series("mailroll serve: receipt sent", serve_runs),
        )
        ok = report(
            f"receipt latency, {rounds} messages, serve on IMAP IDLE",
            [("serve's poll interval", "600 s: only IDLE wakes it")],
            [idle_s, serve_s],
            [Ratio("receipt / IDLE client", serve_s, idle_s)],
        )
        within = serve_s.median <= TARGET_S
        print(
            f"  {'receipt, median':<40} {serve_s.median:.2f} s (target <= {TARGET_S:g} s): "
            f"{'OK' if within else 'OVER TARGET'}"
        )
        return 0 if ok and within else 1
    finally:
        stop_serve(serve)
        smtp.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def start_serve(campaign, log_path) -> subprocess.Popen:
    """`mailroll serve` as a process at the fake time FAKE_NOW, its output appended to ``log_path``."""
    with open(log_path, "ab") as log:  # (the child keeps its own copy of the descriptor)
        return subprocess.Popen(
            mailroll_argv(campaign, "serve"),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MAILROLL_FAKE_NOW": FAKE_NOW},
        )


def stop_serve(serve: subprocess.Popen | None) -> None:
    """SIGTERM, as systemd stops it; killed if it has not stopped within 30 s."""
    if serve is not None and serve.poll() is None:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()


def run_of(seconds: float) -> Run:
    """A latency measured here, not a process of its own: no memory or CPU figures."""
    return Run(seconds, 0.0, 0.0, 0.0, 0.0, 0, "", "")


if __name__ == "__main__":
    sys.exit(main())
