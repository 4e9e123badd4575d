"""SIGKILL the ingest process at random and at chosen points: nothing lost, nothing doubled.

After every crash a plain `ingest --once` runs to completion; then every message is recorded
exactly once, the database passes `PRAGMA integrity_check`, and the file store holds exactly the
files the database references (no half-written or orphaned files).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.mail import build_mail

START = datetime(2022, 6, 20, tzinfo=UTC)
UNITS = [
    ("太原市科学技术局", "tykjj@taiyuan.gov.cn"),
    ("山西大学", "kjc@sxu.edu.cn"),
    ("长治市科学技术局", "czkjj@changzhi.gov.cn"),
    ("someone", "x@example.org"),
]


def _messages(n: int, first: int = 0):
    rng = random.Random(7 + first)
    for i in range(first, first + n):
        name, addr = UNITS[i % len(UNITS)]
        atts = [
            (f"附件{i}-{j}.bin", rng.randbytes(rng.randint(20_000, 400_000)))
            for j in range(rng.randint(1, 3))
        ]
        yield i, build_mail(from_=f"{name} <{addr}>", subject=f"材料 {i}", attachments=atts)


def _fill(campaign, n: int, first: int = 0) -> None:
    for i, msg in _messages(n, first):
        campaign.deliver(msg, when=START + timedelta(minutes=i))


def _ingest(campaign, env=None, kill_after: float | None = None) -> int:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconcile",
            "--config",
            str(campaign.config_path),
            "ingest",
            "--once",
            "--json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=120)


def _check_consistent(campaign, n: int) -> None:
    conn = sqlite3.connect(campaign.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT source_key, status FROM messages").fetchall()
    assert len(rows) == n, f"{len(rows)} messages recorded, {n} delivered"
    assert len({k for k, _ in rows}) == n
    assert {s for _, s in rows} == {"recorded"}
    assert conn.execute("SELECT COUNT(*) FROM attributions").fetchone()[0] == n
    referenced = {s for (s,) in conn.execute("SELECT DISTINCT sha256 FROM parts WHERE sha256 IS NOT NULL")}
    files = [p for p in campaign.files_dir.rglob("*") if p.is_file() and ".tmp" not in p.parts]
    on_disk = {p.name for p in files if "raw" not in p.parts}
    assert on_disk == referenced, f"orphans: {on_disk - referenced}, missing: {referenced - on_disk}"
    # the raw copies (ingest/raw.py): exactly one per message, none orphaned
    raw_referenced = {s for (s,) in conn.execute("SELECT raw_sha256 FROM messages")}
    raw_on_disk = [p.name.split(".", 1)[0] for p in files if "raw" in p.parts]
    assert sorted(raw_on_disk) == sorted(raw_referenced) and None not in raw_referenced
    leftovers = [p for p in (campaign.files_dir / ".tmp").iterdir()]
    assert leftovers == []


@pytest.mark.parametrize("point", ["file-write:3", "file-placed:2", "before-commit:2", "after-commit:1"])
def test_crash_at_chosen_point_then_recover(campaign, point):
    _fill(campaign, 6)
    rc = _ingest(campaign, env={"MAILROLL_CRASH_AT": point})
    assert rc == -signal.SIGKILL
    assert _ingest(campaign) == 0
    _check_consistent(campaign, 6)


def test_random_sigkills_lose_and_double_nothing(campaign):
    """Each round delivers more mail and kills the run at a random moment of its work.

    The first round runs to the end and measures how long a round takes; later rounds are killed
    somewhere between a fifth of that and the end (so some die at start-up, most mid-work).
    """
    rng = random.Random(2022)
    batch, rounds, kills = 15, 12, 0
    _fill(campaign, batch)
    started = time.monotonic()
    assert _ingest(campaign) == 0
    duration = time.monotonic() - started
    for r in range(1, rounds):
        _fill(campaign, batch, first=r * batch)
        rc = _ingest(campaign, kill_after=rng.uniform(0.2, 0.95) * duration)
        kills += rc == -signal.SIGKILL
    assert _ingest(campaign) == 0
    assert kills >= rounds // 2, f"only {kills} of {rounds - 1} runs were killed before they finished"
    _retry_poisoned(campaign)
    _check_consistent(campaign, batch * rounds)


def _retry_poisoned(campaign) -> None:
    """Three of the random kills may land while the same message is read: the poison guard then
    records it as failed, with its reason (kept, not lost), and `mailroll retry` brings it back."""
    conn = sqlite3.connect(campaign.db_path)
    failed = conn.execute("SELECT id, error FROM messages WHERE status = 'failed'").fetchall()
    assert all(error == "mailroll stopped 3 times while reading this message" for _, error in failed), failed
    for mid, _ in failed:
        campaign.run("retry", str(mid))
    if failed:
        assert _ingest(campaign) == 0


def test_imap_nothing_flagged_on_the_server_that_the_database_lacks(imap_campaign):
    """With post_action = "flag", the keyword goes on a message only after its COMMIT: after any
    kill, every flagged message is in the database; after recovery all are, once."""
    campaign, dovecot, user = imap_campaign, imap_campaign.dovecot, imap_campaign.imap_user
    campaign.configure(mailbox={"post_action": "flag", "post_flag": "$Mailroll"})
    n = 30
    dovecot.append_many(user, [m.as_bytes() for _, m in _messages(n)])
    rng = random.Random(11)
    started = time.monotonic()
    points = ["before-commit:3", "after-commit:5", "file-placed:4"]
    for point in points:  # deterministic crash points first
        assert _ingest(campaign, env={"MAILROLL_CRASH_AT": point}) == -signal.SIGKILL
        _check_flags_subset_of_db(campaign, dovecot, user)
    duration = max(1.0, time.monotonic() - started) / len(points)
    for _ in range(4):  # then random moments
        _ingest(campaign, kill_after=rng.uniform(0.2, 1.0) * duration)
        _check_flags_subset_of_db(campaign, dovecot, user)
    assert _ingest(campaign) == 0
    conn = sqlite3.connect(campaign.db_path)
    keys = [k for (k,) in conn.execute("SELECT source_key FROM messages")]
    assert len(keys) == len(set(keys)) == n
    server = dovecot.messages(user)
    assert all("$Mailroll" in m["flags"] for m in server.values())
    assert all("\\Seen" not in m["flags"] for m in server.values())


def _check_flags_subset_of_db(campaign, dovecot, user) -> None:
    uidvalidity = dovecot.uidvalidity(user)
    flagged = {
        f"{uidvalidity}:{uid}" for uid, m in dovecot.messages(user).items() if "$Mailroll" in m["flags"]
    }
    if not campaign.db_path.exists():
        assert flagged == set()
        return
    conn = sqlite3.connect(campaign.db_path)
    recorded = {k for (k,) in conn.execute("SELECT source_key FROM messages WHERE status != 'failed'")}
    assert flagged <= recorded, f"flagged on the server but not in the database: {flagged - recorded}"


def test_killed_while_committing_is_not_the_messages_doing(campaign):
    """mailroll killed again and again while committing a message it has read (a power cut, an
    operator's kill -9, systemd at the wrong moment) must not make that message 'poison': only
    deaths while reading it count. The message is recorded by the first poll that is not killed."""
    (_, msg), *_ = _messages(1)
    campaign.deliver(msg)
    for _ in range(4):
        res = campaign.run_process(
            "ingest", "--once", env={"MAILROLL_CRASH_AT": "before-commit:1"}, expect=None
        )
        assert res.exit_code == -signal.SIGKILL, res.stderr
    summary = campaign.ingest()
    assert (summary["attributed"], summary["failed"]) == (1, 0), summary
