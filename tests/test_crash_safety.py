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
from datetime import datetime, timedelta, timezone

import pytest

from fixtures.mail import build_mail

START = datetime(2022, 6, 20, tzinfo=timezone.utc)
UNITS = [("太原市科学技术局", "tykjj@taiyuan.gov.cn"), ("山西大学", "kjc@sxu.edu.cn"),
         ("长治市科学技术局", "czkjj@changzhi.gov.cn"), ("someone", "x@example.org")]


def _fill(campaign, n: int, first: int = 0) -> None:
    rng = random.Random(7 + first)
    for i in range(first, first + n):
        name, addr = UNITS[i % len(UNITS)]
        atts = [(f"附件{i}-{j}.bin", rng.randbytes(rng.randint(20_000, 400_000))) for j in range(rng.randint(1, 3))]
        campaign.deliver(build_mail(from_=f"{name} <{addr}>", subject=f"材料 {i}", attachments=atts),
                         when=START + timedelta(minutes=i))


def _ingest(campaign, env=None, kill_after: float | None = None) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), "ingest", "--once", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
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
    on_disk = {p.name for p in campaign.files_dir.rglob("*") if p.is_file() and ".tmp" not in p.parts}
    assert on_disk == referenced, f"orphans: {on_disk - referenced}, missing: {referenced - on_disk}"
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
    _check_consistent(campaign, batch * rounds)
