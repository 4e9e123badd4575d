"""Readers while the writer works, and two writers at once, through the real CLI (issue #6).

* While ``ingest --once`` (a subprocess) records a few hundred messages, ``status --json``,
  ``messages --json``, ``stats --json`` and ``report --xlsx`` run again and again in other
  subprocesses. None may fail (no 'database is locked', no traceback), every output is valid
  JSON giving a consistent view (one status row per roster unit, the message count never goes
  down), every workbook opens. Readers write too (attributions, the status cache): those
  writes must wait for the ingest writer, not collide with it.
* Two ``ingest --once`` started together: one processes, the other either waits for the lock
  (``service.lock_wait_s``) and then finds nothing new, or exits 1 with the lock message. In
  the end every message is in the database exactly once.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.campaign import SAMPLE_ROSTER, Campaign
from fixtures.files import make_sheet_xlsx
from fixtures.mail import build_mail

ROSTER = list(csv.DictReader(SAMPLE_ROSTER.open(encoding="utf-8-sig")))
N_MESSAGES = 300
LOCK_MESSAGE = "is polling this mailbox; try again later"


def cli(campaign: Campaign, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args]


def fill_mailbox(campaign: Campaign, media, n: int) -> None:
    """n messages over two weeks: most from roster addresses, some from strangers; every
    fourth with attachments (a sheet naming the unit, a report, sometimes a video)."""
    start = datetime(2022, 6, 15, 1, 0, tzinfo=UTC)
    sheets = {}
    for i in range(n):
        unit = ROSTER[i % len(ROSTER)]
        addr = unit["emails"].split(";")[0] if i % 7 else f"stranger{i}@example.com"
        attachments = []
        if i % 4 == 0:
            if unit["id"] not in sheets:
                sheets[unit["id"]] = make_sheet_xlsx(
                    campaign.root.parent / f"sheet-{unit['id']}.xlsx", unit=unit["name"]
                ).read_bytes()
            attachments.append(("2022年科技活动周开展情况统计表.xlsx", sheets[unit["id"]]))
            attachments.append(("总结报告.pdf", media.report_pdf.read_bytes()))
            if i % 8 == 0:
                attachments.append(("科技周视频.mp4", media.video(3).read_bytes()))
        subject = f"{unit['name']}科技活动周材料 第{i}封" if i % 7 else f"科技周材料 第{i}封"
        msg = build_mail(
            f"{unit['name']} <{addr}>" if i % 7 else addr,
            subject,
            attachments=attachments,
            body=f"第{i}封邮件。",
        )
        campaign.deliver(msg, when=start + timedelta(minutes=37 * i))


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def assert_clean(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, (
        f"{what} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    assert "locked" not in proc.stderr.lower() and "Traceback" not in proc.stderr, (
        f"{what}:\n{proc.stderr[-4000:]}"
    )


def test_readers_run_cleanly_while_ingest_writes(campaign, media, tmp_path_factory):
    from openpyxl import load_workbook

    fill_mailbox(campaign, media, N_MESSAGES)
    out_dir = tmp_path_factory.mktemp("reports")
    writer = subprocess.Popen(
        cli(campaign, "ingest", "--once", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    failures: list[str] = []
    seen: dict[str, list] = {"status": [], "messages": [], "stats": [], "report": []}

    def reader(kind: str) -> None:
        n = 0
        while True:
            done = writer.poll() is not None
            n += 1
            if kind == "report":
                path = out_dir / f"report-{n}.xlsx"
                proc = run(cli(campaign, "report", "--xlsx", str(path)))
            else:
                proc = run(cli(campaign, kind, "--json"))
            try:
                assert_clean(proc, f"{kind} (run {n})")
                if kind == "report":
                    wb = load_workbook(path, read_only=True)
                    units = [r[1] for r in wb["单位情况"].iter_rows(min_row=2, values_only=True)]
                    wb.close()
                    assert units == [u["id"] for u in ROSTER], units  # one row per unit
                    seen[kind].append(units)
                else:
                    seen[kind].append(json.loads(proc.stdout))
            except (AssertionError, ValueError) as e:
                failures.append(f"{kind} run {n}: {e}")
            if done:  # one more run after the writer finished: the final view
                return

    def staff_edit_roster() -> None:
        """Staff save the roster (same content, new mtime) while ingest runs: every reader then
        re-attributes all messages, side by side with the writer and each other."""
        roster = campaign.root / "roster.csv"
        while writer.poll() is None:
            time.sleep(0.3)
            tmp = roster.with_name("roster.csv.saving")
            tmp.write_bytes(roster.read_bytes())
            os.replace(tmp, roster)  # saved whole, as Excel and WPS save (a half-written file
            # is refused with exit 2, which is not what this tests)

    threads = [threading.Thread(target=reader, args=(k,)) for k in seen]
    threads.append(threading.Thread(target=staff_edit_roster))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    out, err = writer.communicate(timeout=300)
    ingest_s = time.monotonic() - t0
    for t in threads:
        t.join(timeout=300)
    assert writer.returncode == 0, f"ingest exited {writer.returncode}:\n{err[-4000:]}"
    assert "locked" not in err.lower() and "Traceback" not in err, err[-4000:]
    summary = json.loads(out)
    assert summary["new"] == N_MESSAGES and summary["failed"] == 0, summary
    assert summary["attributed"] + summary["unmatched"] == N_MESSAGES, summary
    assert not failures, "\n".join(failures[:10])

    # the readers really ran while the writer wrote: more than one view of a growing database
    counts = [len(rows) for rows in seen["messages"]]
    print(
        f"ingest of {N_MESSAGES} messages: {ingest_s:.1f} s; reads: "
        + ", ".join(f"{k} {len(v)}" for k, v in seen.items())
        + f"; message counts {counts}"
    )
    assert len(counts) >= 3 and counts[0] < N_MESSAGES, counts
    assert counts == sorted(counts), f"messages --json went backwards: {counts}"
    assert counts[-1] == N_MESSAGES
    settled: dict[str, str] = {}  # message_id -> unit, once a read showed it attributed
    for k, rows in enumerate(seen["messages"]):
        assert all(r["disposition"] in ("attributed", "unmatched") for r in rows), [
            r for r in rows if r["disposition"] not in ("attributed", "unmatched")
        ][:3]
        assert len({r["message_id"] for r in rows}) == len(rows)
        # a message never goes back from attributed to unmatched ('not attributed yet')
        flipped = [
            (r["message_id"], settled[r["message_id"]], r["unit"], r["reason"])
            for r in rows
            if r["message_id"] in settled and r["unit"] != settled[r["message_id"]]
        ]
        assert not flipped, f"read {k}: {len(flipped)} message(s) lost their unit, e.g. {flipped[:3]}"
        settled.update((r["message_id"], r["unit"]) for r in rows if r["unit"])
    for rows in seen["status"]:
        assert [r["id"] for r in rows] == [u["id"] for u in ROSTER]
    assert all(set(s) >= {"units", "fields"} for s in seen["stats"])
    units_with_sheets = [s["units"] for s in seen["stats"]]
    assert units_with_sheets == sorted(units_with_sheets), units_with_sheets
    # the final views agree with a fresh read after everything settled
    final = json.loads(run(cli(campaign, "messages", "--json")).stdout)
    assert final == seen["messages"][-1]
    assert json.loads(run(cli(campaign, "status", "--json")).stdout) == seen["status"][-1]
    assert sum(1 for r in final if r["disposition"] == "unmatched") == sum(
        1 for i in range(N_MESSAGES) if i % 7 == 0 and i % 4
    )  # strangers without a sheet naming the unit


@pytest.mark.parametrize("lock_wait_s", [0.0, 120.0])
def test_two_ingests_at_once_never_both_process(campaign, media, lock_wait_s):
    """lock_wait_s 0: the second exits 1 with the lock message naming the first's pid;
    120: the second waits for the first, then finds nothing new."""
    n = 60
    fill_mailbox(campaign, media, n)
    campaign.configure(service={"poll_every_s": 300, "lock_wait_s": lock_wait_s})
    procs = [
        subprocess.Popen(
            cli(campaign, "ingest", "--once", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    processed = 0
    for code, out, err in results:
        assert "Traceback" not in err and "database is locked" not in err, err[-3000:]
        if code == 0:
            summary = json.loads(out)
            assert summary["failed"] == 0, summary
            processed += summary["new"]
        else:
            assert code == 1 and lock_wait_s == 0.0, (code, out, err)
            assert LOCK_MESSAGE in err and out == "", err
    assert processed == n, results  # each message processed by exactly one of them
    if not lock_wait_s:  # started together, the loser is refused at once and told who polls
        assert sorted(c for c, _, _ in results) == [0, 1], results
        winner = next(p for p, (c, _, _) in zip(procs, results, strict=False) if c == 0)
        assert f"another mailroll (pid {winner.pid}) {LOCK_MESSAGE}" in next(e for c, _, e in results if c)
    else:
        assert [c for c, _, _ in results] == [0, 0]
        assert sorted(json.loads(out)["new"] for _, out, _ in results) == [0, n]
    rows = json.loads(run(cli(campaign, "messages", "--json")).stdout)
    assert len(rows) == n and len({r["message_id"] for r in rows}) == n
    assert {r["disposition"] for r in rows} <= {"attributed", "unmatched"}

    conn = sqlite3.connect(campaign.db_path)
    try:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT source_key) FROM messages").fetchone() == (n, n)
        assert conn.execute("SELECT COUNT(*) FROM attributions").fetchone()[0] == n
    finally:
        conn.close()
