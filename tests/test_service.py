"""``mailroll serve`` as a real process against real Dovecot (IMAP IDLE) and a real SMTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.mail import build_mail
from fixtures.processes import reap, spawn

from ingest.db import open_connection
from reconcile.daemon.lock import LockBusy, ingest_lock

# No reminder is due at this (fake) time: before-3d starts on 2022-06-22 23:59:59 +08:00.
QUIET_DAY = "2022-06-20T10:00:00+08:00"


def state(campaign) -> dict:
    if not campaign.db_path.exists():
        return {}
    conn = open_connection(campaign.db_path)
    try:
        return dict(conn.execute("SELECT key, value FROM service_state").fetchall())
    finally:
        conn.close()


def wait_until(pred, timeout: float = 120.0, what: str = "condition"):
    """Wait for an observable event (a heartbeat row, a log line); ``timeout`` only guards
    against a hang: a loaded machine may take its time, and the test must not care."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def serving(campaign, fake_now: str = QUIET_DAY, extra_env: dict | None = None):
    """``mailroll serve`` in a process group of its own, tied to the test run; on the way out
    it and whatever it started (forkserver, workers) are gone, whatever the test did."""
    log = open(campaign.root / "serve.log", "ab")
    env = {**os.environ, "MAILROLL_FAKE_NOW": fake_now, **(extra_env or {})}
    proc = spawn(
        [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), "serve"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    proc.log_path = campaign.root / "serve.log"
    try:
        yield proc
    finally:
        reap(proc)
        log.close()


def imap_ids(campaign) -> list[str]:
    """The IMAP ID commands Dovecot logged for the campaign's user (one a connection)."""
    return [
        line
        for line in campaign.dovecot.log().splitlines()
        if "ID sent: name=mailroll" in line and campaign.imap_user in line
    ]


def log_of(proc) -> str:
    return proc.log_path.read_text(errors="replace")


def stop(proc, timeout: float = 120.0) -> int:
    """SIGTERM, as systemd sends it; the exit status. (``timeout`` only guards against a hang.)"""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("serve did not stop on SIGTERM:\n" + log_of(proc)) from None


# ------------------------------------------------------------------------------ the lock


def test_ingest_lock_refuses_a_second_holder_naming_the_first(campaign):
    config = campaign.config()
    with ingest_lock(config):
        with pytest.raises(LockBusy) as e:
            with ingest_lock(config, wait_s=0.3):
                pass
        assert f"another mailroll (pid {os.getpid()}) is polling this mailbox; try again later" in str(
            e.value
        )
        assert e.value.exit_code == 1
    with ingest_lock(config, wait_s=0):
        pass  # free again


# ------------------------------------------------------------------------------ the daemon


@pytest.mark.slow
def test_serve_picks_up_new_mail_within_seconds_and_stops_cleanly(imap_campaign, smtp_server, media):
    campaign = imap_campaign
    campaign.configure(
        smtp=smtp_server.config(), service={"poll_every_s": 600, "remind_every_s": 600, "lock_wait_s": 0}
    )
    with serving(campaign) as proc:
        wait_until(lambda: state(campaign).get("last_poll"), what="the first poll")
        # the server has accepted IDLE on the watcher's connection: new mail now wakes the poll
        wait_until(lambda: "IMAP IDLE: watching INBOX" in log_of(proc), what="the IDLE watcher")
        # both connections (the poll's and the IDLE watcher's) said who they are: NetEase needs it
        assert len(imap_ids(campaign)) >= 2, campaign.dovecot.log()
        assert proc.poll() is None, log_of(proc)

        # a second daemon, and a one-off ingest, refuse while this one runs
        second = campaign.run_process("serve", expect=1, timeout=120)
        assert f"another mailroll (pid {proc.pid}) is polling this mailbox; try again later" in second.stderr
        once = campaign.run_process("ingest", "--once", expect=1, timeout=120)
        assert "another mailroll" in once.stderr
        check = campaign.run_process("serve", "--check", "--json", expect=0)
        assert check.json["ok"] is True and check.json["pid"] == proc.pid

        # it arrives (INTERNALDATE) just before the service's fake "now": receipts answer only
        # mail received up to now
        campaign.dovecot.append(
            campaign.imap_user,
            build_mail(
                "山西大学科技处 <kjc@sxu.edu.cn>",
                subject="山西大学材料",
                attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())],
            ).as_bytes(),
            internaldate=datetime.fromisoformat(QUIET_DAY) - timedelta(minutes=1),
        )
        # the poll interval is 600 s: only IDLE can wake the poll before this wait gives up
        receipt = smtp_server.wait_for(1, timeout=120)[0]
        assert "IMAP IDLE: new mail" in log_of(proc)
        assert receipt["Subject"] == "回执：2022年山西省科技活动周材料" and receipt.rcpt_tos == [
            "kjc@sxu.edu.cn"
        ]

        assert stop(proc) == 0, log_of(proc)
    st = state(campaign)
    assert st["stopped_at"] and st["last_error"] == ""
    last_poll = json.loads(st["last_poll_result"])
    assert last_poll["seen"] == 1 and last_poll["failed"] == 0, last_poll
    (row,) = campaign.messages()
    assert (row["unit"], row["disposition"]) == ("sxu", "attributed")
    assert campaign.run_process("serve", "--check", expect=1).exit_code == 1
    assert "stopping" in log_of(proc)


@pytest.mark.slow
def test_serve_sends_due_reminders_once_across_restarts(campaign, smtp_server, media):
    campaign.configure(smtp=smtp_server.config(), service={"poll_every_s": 600, "remind_every_s": 1})
    # Taiyuan's complete set arrives on 6-24: at the service's "now" (6-23) it has not come yet,
    # so Taiyuan is reminded like everyone else, and its message is not answered before it arrives.
    campaign.deliver(
        build_mail(
            "王丽 <tykjj@taiyuan.gov.cn>",
            attachments=[
                ("统计表.xlsx", media.sheet_xlsx.read_bytes()),
                ("总结报告.docx", media.report_docx.read_bytes()),
                ("视频.mp4", media.video(10).read_bytes()),
            ],
        ),
        when=datetime.fromisoformat("2022-06-24T15:00:00+08:00"),
    )
    with serving(campaign, fake_now="2022-06-23T10:00:00+08:00") as proc:
        smtp_server.wait_for(12, timeout=120)
        assert stop(proc) == 0, log_of(proc)
    with serving(campaign, fake_now="2022-06-23T10:30:00+08:00") as proc:
        rounds: set[str] = set()

        def send_rounds_after_restart() -> int:
            st = state(campaign)  # (until the new process writes its pid, these are the old one's)
            if st.get("pid") == str(proc.pid) and st.get("last_send", "") > st["started_at"]:
                rounds.add(st["last_send"])
            return len(rounds) >= 3

        wait_until(send_rounds_after_restart, what="three send rounds after the restart")
        assert stop(proc) == 0, log_of(proc)
    assert len(smtp_server.messages) == 12
    assert sorted(len(smtp_server.to(a)) for a in ("dtkjj2022@163.com", "kjc@sxu.edu.cn")) == [1, 1]
    (tykjj,) = smtp_server.to("tykjj@taiyuan.gov.cn")
    assert tykjj["X-Mailroll"] == "reminder", "a reminder (as of 6-23), no receipt for mail of 6-24"


def test_second_serve_refuses_and_sigterm_exits_cleanly(campaign):
    campaign.configure(service={"poll_every_s": 600})
    with serving(campaign) as proc:
        wait_until(lambda: state(campaign).get("last_poll"), what="the first poll")
        second = campaign.run_process("serve", expect=1, timeout=120)
        assert second.stderr.strip().endswith(
            f"another mailroll (pid {proc.pid}) is polling this mailbox; try again later"
        )
        assert "another mailroll" in campaign.run_process("ingest", "--once", expect=1).stderr
        assert stop(proc) == 0, log_of(proc)
    assert state(campaign)["stopped_at"]
    campaign.run_process("ingest", "--once", expect=0)  # the lock went with the process


@pytest.mark.slow
def test_serve_survives_a_mailbox_it_cannot_read_and_reminds_nobody_meanwhile(campaign, smtp_server):
    campaign.configure(
        smtp=smtp_server.config(),
        mailbox={"path": "no-such-maildir"},
        service={"poll_every_s": 600, "remind_every_s": 1},
    )
    # reminders would be due at this time, but the mailbox has not been read
    with serving(campaign, fake_now="2022-06-23T10:00:00+08:00") as proc:
        wait_until(lambda: state(campaign).get("last_error"), what="the failed poll to be recorded")
        wait_until(
            lambda: log_of(proc).count("no reminders now: the mailbox has not been read") >= 2,
            what="two send rounds that hold the reminders back",
        )
        assert proc.poll() is None, "the service stays up:\n" + log_of(proc)
        check = campaign.run_process("serve", "--check", "--json", expect=1)
        assert check.json["last_error"] and check.json["running"] is True
        assert stop(proc) == 0, log_of(proc)
    assert "poll failed" in log_of(proc) and "retrying in 5 s" in log_of(proc)
    assert smtp_server.messages == []


@pytest.mark.slow
def test_sigterm_during_a_poll_finishes_the_message_in_hand(campaign, media):
    campaign.configure(service={"poll_every_s": 600})
    sheet = media.sheet_xlsx.read_bytes()
    total = 200
    for i in range(total):
        campaign.deliver(
            build_mail("kjc@sxu.edu.cn", subject=f"材料 {i}", attachments=[(f"统计表{i}.xlsx", sheet)])
        )

    def recorded() -> int:
        if not campaign.db_path.exists():
            return 0
        conn = open_connection(campaign.db_path)
        try:
            return conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            conn.close()

    with serving(campaign) as proc:
        wait_until(lambda: recorded() >= 1, what="the first message")
        assert stop(proc) == 0, log_of(proc)
    assert "stopping: finishing the work in hand" in log_of(proc)
    conn = open_connection(campaign.db_path)
    statuses = conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
    conn.close()
    assert [s for s, _ in statuses] == ["recorded"], statuses
    done = statuses[0][1]
    assert done < total, "SIGTERM interrupted the poll: the rest waits for the next one"
    left = campaign.ingest()
    assert left["new"] == total - done and left["failed"] == 0 and left["duplicate"] == 0
    assert recorded() == total


def test_serve_without_the_smtp_password_is_a_config_error(campaign, smtp_server, monkeypatch):
    monkeypatch.delenv("MAILROLL_SMTP_PASSWORD", raising=False)
    campaign.configure(
        smtp=smtp_server.config(username="sxskjtrcc@126.com", password_env="MAILROLL_SMTP_PASSWORD")
    )
    res = campaign.run_process("serve", expect=2, timeout=120)
    assert "MAILROLL_SMTP_PASSWORD" in res.stderr
    assert "pid" not in state(campaign), "it did not start"


def test_fake_now_starts_the_clock_at_that_time_and_lets_it_run(monkeypatch):
    from datetime import datetime, timedelta

    from reconcile.daemon import clock as clocks
    from reconcile.daemon.clock import OffsetClock, SystemClock, default_clock

    elapsed = [1000.0]  # what the monotonic clock the fake clock runs on says
    monkeypatch.setattr(clocks._time, "monotonic", lambda: elapsed[0])
    monkeypatch.setenv("MAILROLL_FAKE_NOW", "2022-06-23T10:00:00+08:00")
    clock = default_clock()
    assert isinstance(clock, OffsetClock)
    start = datetime(2022, 6, 23, 2, 0, tzinfo=UTC)
    assert clock.now() == start
    elapsed[0] += 42.5
    assert clock.now() == start + timedelta(seconds=42.5), "the fake clock runs on"
    monkeypatch.setenv("MAILROLL_FAKE_NOW", "23 June")
    with pytest.raises(ValueError, match="MAILROLL_FAKE_NOW"):
        default_clock()
    monkeypatch.delenv("MAILROLL_FAKE_NOW")
    assert isinstance(default_clock(), SystemClock)


def test_a_stop_request_is_caught_from_the_start_and_a_second_one_changes_nothing():
    """`mailroll serve` catches SIGTERM before the rest of the program loads (a stop during
    start-up is a clean stop, exit 0); once stopping, a second SIGTERM is ignored, so the
    process is never killed halfway through its shutdown (Python gives the default action back
    to handled signals while it exits)."""
    from reconcile.daemon import stopping

    assert stopping.wants_serve(["--config", "c.toml", "serve"])
    assert not stopping.wants_serve(["--config", "c.toml", "serve", "--check"])
    assert not stopping.wants_serve(["--config", "c.toml", "status"])
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = stopping.catch_stop_signals()
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(10), "the handler ran"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL, "a second Ctrl-C ends it at once"
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: this test process lives on
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        stopping.STOP.clear()
