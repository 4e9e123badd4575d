"""Ingest through a proxy that cuts, stalls and refuses connections (tests/fixtures/faultproxy.py).

Whatever the network does, once it behaves again the database must hold exactly what a poll on a
clean network records: nothing lost, nothing twice. Transient faults are absorbed inside the poll
(reconnect, repeat the command, resume a partial fetch at its offset); persistent ones fail the
poll with a message naming the server, and the next poll picks up where it stopped.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.campaign import Campaign
from fixtures.dovecot import PASSWORD, PASSWORD_ENV
from fixtures.faultproxy import FaultProxy
from fixtures.mail import build_mail

from ingest.db import open_connection

SENDERS = [
    "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
    "大同市科学技术局 <dtkjj2022@163.com>",
    "长治市科学技术局 <czkjj@changzhi.gov.cn>",
    "someone <stranger@example.org>",
]
SMALL = 8  # messages of ~100 kB: fetched together in one batch
BIG = 6 * 1024 * 1024  # one message above stream_threshold_bytes: streamed in 4 MB chunks


@pytest.fixture(scope="module")
def faulty_mailbox(dovecot):
    """A Dovecot user with SMALL small messages and one big one (read-only for every test)."""
    user = dovecot.new_user()
    start = datetime(2022, 6, 20, 8, 0, tzinfo=UTC)
    raws = []
    for i in range(SMALL):
        raws.append(
            build_mail(
                SENDERS[i % len(SENDERS)],
                f"材料 {i}",
                [(f"附件{i}.bin", os.urandom(100_000), "application/octet-stream")],
                message_id=f"<small-{i}@test.mailroll>",
            ).as_bytes()
        )
    raws.append(
        build_mail(
            SENDERS[0],
            "大附件",
            [("big.bin", os.urandom(BIG), "application/octet-stream")],
            message_id="<big@test.mailroll>",
        ).as_bytes()
    )
    for i, raw in enumerate(raws):
        dovecot.append(user, raw, internaldate=start + timedelta(minutes=i))
    return user


def make_campaign(root, dovecot, user, port, **mailbox) -> Campaign:
    c = Campaign.create(root)
    settings = dovecot.imap_settings(user)
    settings.update(port=port, timeout_s=2.0, retries=3, retry_backoff_s=0.05, **mailbox)
    c.configure(mailbox=settings)
    return c


def state(c: Campaign) -> tuple:
    """What a user can see: every message with its outcome, and every kept file."""
    rows = c.messages()
    msgs = sorted(
        (r["message_id"], r["from"], r["subject"], r["received_at"], r["unit"], r["disposition"])
        for r in rows
    )
    conn = open_connection(c.db_path)
    parts = sorted(
        conn.execute(
            "SELECT m.message_id, p.filename, p.sha256, p.size FROM parts p "
            "JOIN messages m ON m.id = p.message"
        ).fetchall()
    )
    return msgs, parts


@pytest.fixture(scope="module")
def reference(faulty_mailbox, dovecot, tmp_path_factory):
    """The state after a poll on a clean network."""
    old = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = PASSWORD
    try:
        c = make_campaign(tmp_path_factory.mktemp("reference"), dovecot, faulty_mailbox, dovecot.port)
        counts = c.ingest()
        assert counts["new"] == SMALL + 1 and counts["failed"] == 0
        return state(c)
    finally:
        if old is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = old


@pytest.fixture
def proxied(tmp_path, dovecot, faulty_mailbox, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        c = make_campaign(tmp_path / "campaign", dovecot, faulty_mailbox, proxy.port)
        yield c, proxy


def test_connections_cut_mid_fetch_are_resumed_within_the_poll(proxied, reference):
    c, proxy = proxied
    # 1st connection dies inside the batch of small messages, the next ones inside the big one
    proxy.cut_after(500_000, times=1)
    proxy.cut_after(5_000_000, times=3)
    counts = c.ingest()
    assert proxy.faults_struck >= 3
    assert (counts["new"], counts["failed"]) == (SMALL + 1, 0)
    assert state(c) == reference


def test_a_stalled_connection_times_out_and_is_reopened(proxied, reference):
    c, proxy = proxied
    proxy.stall(30, after=200_000, times=1)
    counts = c.ingest()
    assert proxy.faults_struck == 1
    assert counts["new"] == SMALL + 1 and counts["failed"] == 0
    # the 2 s timeout gave the stalled connection up and opened another: had the poll waited
    # out the 30 s stall, the first connection would have carried on alone (the third is the
    # second stream's, opened at the big message: mailbox.connections = 2)
    assert proxy.connections == 3
    assert state(c) == reference


def test_persistent_cuts_fail_the_poll_clearly_and_the_next_poll_completes(proxied, reference):
    c, proxy = proxied
    proxy.cut_after(1_500_000, times=None)  # the small batch gets through, no 4 MB chunk does
    res = c.run("ingest", "--once", expect=1)
    text = res.output + res.stderr
    assert f"lost the connection to 127.0.0.1:{proxy.port} while fetching part" in text
    msgs, _ = state(c)
    assert len(msgs) == SMALL  # what was fetched before the fault is kept
    assert not list((c.files_dir / ".tmp").glob("imap-part-*"))  # no half-fetched part left behind

    proxy.heal()
    counts = c.ingest()
    assert (counts["new"], counts["failed"]) == (1, 0)
    assert state(c) == reference
    assert c.ingest()["new"] == 0


def test_refused_connection_fails_the_poll_then_recovers(proxied, reference):
    c, proxy = proxied
    proxy.refuse()
    res = c.run("ingest", "--once", expect=1)
    assert "connection refused" in res.output + res.stderr
    assert state(c) == ([], [])
    proxy.heal()
    assert c.ingest()["new"] == SMALL + 1
    assert state(c) == reference


def test_cuts_while_flagging_leave_every_message_recorded_once_and_flagged(tmp_path, dovecot, monkeypatch):
    """post_action = "flag": the STORE after each commit also survives a broken connection."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    user = dovecot.new_user()
    for i in range(5):
        dovecot.append(
            user,
            build_mail(
                SENDERS[i % 3], f"材料 {i}", [(f"f{i}.bin", os.urandom(60_000), "application/octet-stream")]
            ).as_bytes(),
        )
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        c = make_campaign(tmp_path / "c", dovecot, user, proxy.port, post_action="flag")
        proxy.cut_after(150_000, times=3)
        counts = c.ingest()
        assert proxy.faults_struck == 3
    assert (counts["new"], counts["failed"]) == (5, 0)
    rows = c.messages()
    assert sorted(r["subject"] for r in rows) == [f"材料 {i}" for i in range(5)]
    flags = [set(m["flags"]) - {r"\Recent"} for m in dovecot.messages(user).values()]
    assert flags == [{"$Mailroll"}] * 5


@pytest.mark.parametrize("connections", [1, 2])
def test_big_messages_stream_over_a_second_connection_only_when_allowed(
    tmp_path, dovecot, faulty_mailbox, monkeypatch, reference, connections
):
    """mailbox.connections = 2 (the default): the big message streams over a second connection,
    opened when it comes; 1: one connection for everything. The same messages either way."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        c = make_campaign(tmp_path / "c", dovecot, faulty_mailbox, proxy.port, connections=connections)
        counts = c.ingest()
        assert proxy.connections == connections
    assert counts["new"] == SMALL + 1 and counts["failed"] == 0
    assert state(c) == reference


def test_a_second_connection_that_cannot_be_opened_is_done_without(proxied, reference, caplog):
    """The server (or a limit on connections) drops the second connection at once: the big
    message streams over the first one, with a warning, and nothing is lost."""
    c, proxy = proxied
    proxy.cut_after(10**12, times=1)  # the first connection: untouched
    proxy.cut_after(0, times=1)  # the second: cut before the server's greeting
    res = c.run("ingest", "--once", "--json")
    assert (res.json["new"], res.json["failed"]) == (SMALL + 1, 0)
    assert "a second IMAP connection could not be opened" in caplog.text
    assert proxy.connections == 2
    assert state(c) == reference
