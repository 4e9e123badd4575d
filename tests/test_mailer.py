"""SMTP sending against a real server (aiosmtpd): headers, retries, failures, at most once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from fixtures.mail import build_mail

from ingest.db import open_connection
from reconcile.outgoing import compose, outbox
from reconcile.outgoing.smtp import Mailer, TemporaryFailure

NOW = datetime(2022, 6, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def setup(campaign, smtp_server):
    campaign.configure(smtp=smtp_server.config())
    config = campaign.config()
    conn = open_connection(config.storage.db)
    yield config, conn, smtp_server
    conn.close()


def _send(
    config, conn, m, *, unit="sxu", stage="before-3d", to=("kjc@sxu.edu.cn",), body="正文：请报送材料。"
):
    return outbox.send_one(
        conn,
        config,
        m,
        kind="reminder",
        unit=unit,
        stage=stage,
        to=list(to),
        subject="【提醒】材料报送",
        body=body,
        now=NOW,
    )


def _outbox(conn):
    cols = ("id", "kind", "unit", "stage", "status", "attempts", "error", "smtp_message_id", "sent_at")
    return [
        dict(zip(cols, r, strict=True))
        for r in conn.execute(f"SELECT {', '.join(cols)} FROM outbox ORDER BY id")
    ]


def test_mail_carries_our_headers_and_chinese_text(setup):
    config, conn, server = setup
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m) == ("sent", None)
    got = server.wait_for(1)[0]
    row = _outbox(conn)[0]
    assert got.rcpt_tos == ["kjc@sxu.edu.cn"]
    assert got.mail_from == "sxskjtrcc@126.com"
    assert got["Message-ID"] == f"<{row['smtp_message_id']}>"
    assert compose.is_our_message_id(row["smtp_message_id"])
    assert row["smtp_message_id"].endswith("mailroll-reminder@126.com")
    assert got["Auto-Submitted"] == "auto-generated"
    assert got["X-Mailroll"] == "reminder"
    assert got["Subject"] == "【提醒】材料报送"
    assert "2022年山西省科技活动周" in str(got["From"])
    assert got.text.strip() == "正文：请报送材料。"
    assert all(b < 128 for b in got.raw), "the mail on the wire is 7-bit clean"
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"]


def test_one_connection_for_a_batch(setup):
    config, conn, server = setup
    with Mailer(config.smtp) as m:
        for i, unit in enumerate(("sxu", "tyut", "sxas")):
            _send(config, conn, m, unit=unit, to=[f"u{i}@example.org"])
    server.wait_for(3)
    assert server.connections == 1


def test_same_unit_and_stage_is_never_sent_twice(setup):
    config, conn, server = setup
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m)[0] == "sent"
        assert _send(config, conn, m) is None
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m) is None
    assert len(server.messages) == 1
    assert len(_outbox(conn)) == 1


def test_the_database_alone_refuses_a_second_reminder_for_the_same_unit_and_stage(setup):
    """Two processes that both found no row (a race past send_one's look-up): the unique index
    lets only the first reserve the mail."""
    config, conn, server = setup
    mail = {"kind": "reminder", "unit": "sxu", "stage": "before-3d", "answers": None}
    mail |= {"to": ["kjc@sxu.edu.cn"], "subject": "【提醒】材料报送", "body": "正文", "now": NOW}
    assert outbox.reserve(conn, message_id="<first@mailroll>", **mail) is not None
    assert outbox.reserve(conn, message_id="<second@mailroll>", **mail) is None
    assert outbox.reserve(conn, message_id="<next@mailroll>", **{**mail, "stage": "before-1d"}) is not None
    assert [(r["stage"], r["smtp_message_id"]) for r in _outbox(conn)] == [
        ("before-3d", "<first@mailroll>"),
        ("before-1d", "<next@mailroll>"),
    ]


def test_the_database_alone_refuses_a_second_receipt_for_the_same_message(setup, campaign):
    config, conn, server = setup
    for subject in ("材料", "补充材料"):
        campaign.deliver(build_mail("kjc@sxu.edu.cn", subject=subject))
    campaign.ingest()
    first, second = (m for (m,) in conn.execute("SELECT id FROM messages ORDER BY id"))
    mail = {"kind": "receipt", "unit": "sxu", "stage": None, "answers": first}
    mail |= {"to": ["kjc@sxu.edu.cn"], "subject": "Re: 材料", "body": "已收到", "now": NOW}
    assert outbox.reserve(conn, message_id="<r1@mailroll>", **mail) is not None
    assert outbox.reserve(conn, message_id="<r2@mailroll>", **mail) is None
    assert outbox.reserve(conn, message_id="<r3@mailroll>", **{**mail, "answers": second}) is not None
    assert [r["smtp_message_id"] for r in _outbox(conn)] == ["<r1@mailroll>", "<r3@mailroll>"]


def test_temporary_refusal_is_retried(setup):
    config, conn, server = setup
    server.fail_next(1, 451)
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m) == ("sent", None)
    assert len(server.messages) == 1 and server.refused == 1
    assert _outbox(conn)[0]["attempts"] == 2


def test_421_closes_and_reconnects(setup):
    config, conn, server = setup
    server.fail_next(1, 421)
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m)[0] == "sent"
    assert len(server.messages) == 1


def test_permanent_refusal_is_recorded_with_the_reason(setup):
    config, conn, server = setup
    server.fail_next(1, 550)
    with Mailer(config.smtp) as m:
        status, error = _send(config, conn, m)
    assert status == "failed"
    assert "550" in error and "rejected as spam" in error
    row = _outbox(conn)[0]
    assert row["status"] == "failed" and "550" in row["error"] and row["attempts"] == 1
    # failed for good: a later run does not try again
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m) is None
    assert server.messages == []


def test_one_refused_recipient_does_not_stop_the_others(setup):
    config, conn, server = setup
    server.reject_recipient("gone@sxu.edu.cn")
    with Mailer(config.smtp) as m:
        status, error = _send(config, conn, m, to=["kjc@sxu.edu.cn", "gone@sxu.edu.cn"])
    assert status == "sent" and "gone@sxu.edu.cn" in error and "550" in error
    assert server.wait_for(1)[0].rcpt_tos == ["kjc@sxu.edu.cn"]


def test_outage_defers_and_the_next_run_sends_once(setup):
    config, conn, server = setup
    server.stop()
    with Mailer(config.smtp) as m:
        status, error = _send(config, conn, m)
    assert status == "deferred" and "cannot connect" in error
    row = _outbox(conn)[0]
    assert row["attempts"] == config.smtp.retries
    server.start()
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m, body="新的正文") == ("sent", None)
        assert _send(config, conn, m) is None
    got = server.wait_for(1)
    assert len(got) == 1 and got[0].text.strip() == "新的正文"
    assert got[0]["Message-ID"] == f"<{row['smtp_message_id']}>", "the retry keeps its Message-ID"


def test_rate_limit_waits(campaign, smtp_server):
    campaign.configure(smtp=smtp_server.config(per_minute=2))
    config = campaign.config()
    clock = {"t": 1000.0}
    waits = []

    def sleep(s):
        waits.append(s)
        clock["t"] += s

    conn = open_connection(config.storage.db)
    with Mailer(config.smtp, sleep=sleep, monotonic=lambda: clock["t"]) as m:
        for i in range(3):
            _send(config, conn, m, unit=f"u{i}", to=[f"u{i}@example.org"])
            clock["t"] += 1
    assert len(smtp_server.messages) == 3
    assert waits and 57 <= waits[0] <= 60


def test_login_refused_is_temporary_with_a_clear_reason(campaign, smtp_server, monkeypatch):
    # aiosmtpd offers no AUTH on a plain connection: the login fails like a wrong password would
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "x")
    campaign.configure(smtp=smtp_server.config(username="someone", password_env="TEST_SMTP_PASSWORD"))
    config = campaign.config()
    with pytest.raises(TemporaryFailure, match="login"):
        with Mailer(config.smtp, sleep=lambda s: None) as m:
            m.send(
                compose.compose(
                    config,
                    kind="reminder",
                    to=["a@b.cn"],
                    subject="s",
                    body="b",
                    message_id=compose.new_message_id(config, "reminder"),
                ),
                ["a@b.cn"],
            )
    assert smtp_server.messages == []


def test_connection_lost_after_data_is_unknown_and_never_resent(setup):
    """The server has the message but the answer never comes: not sent again."""
    config, conn, server = setup
    server.hold()
    result = {}
    m = Mailer(config.smtp)
    t = threading.Thread(target=lambda: result.setdefault("r", _send(config, conn, m)))
    t.start()
    server.wait_for(1)
    server.stop()  # the connection drops before "250 OK"
    t.join(20)
    assert result["r"][0] == "unknown"
    server.start()
    with Mailer(config.smtp) as m2:
        assert _send(config, conn, m2) is None
    assert len(server.messages) == 1
    assert _outbox(conn)[0]["status"] == "unknown"


def test_rows_left_sending_by_a_crash_become_unknown(setup):
    config, conn, server = setup
    row_id = outbox.reserve(
        conn,
        kind="reminder",
        unit="sxu",
        stage="after-1",
        answers=None,
        to=["kjc@sxu.edu.cn"],
        subject="s",
        body="b",
        message_id=compose.new_message_id(config, "reminder"),
        now=NOW,
    )
    assert outbox.recover_interrupted(conn) == 1
    assert _outbox(conn)[0]["status"] == "unknown"
    with Mailer(config.smtp) as m:
        assert _send(config, conn, m, stage="after-1") is None
    assert server.messages == [] and row_id


def test_templates_can_be_overridden_next_to_the_config(campaign, smtp_server):
    (campaign.root / "reminder.j2").write_text(
        "Subject: 自定义 {{ unit.name }}\n\n自定义正文 {{ stage }}\n", encoding="utf-8"
    )
    config = campaign.config()
    subject, body = compose.render(config, "reminder.j2", unit={"name": "山西大学"}, stage="after-1")
    assert subject == "自定义 山西大学" and body.strip() == "自定义正文 after-1"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("tls", ["ssl", "starttls"])
def test_tls_and_login_as_providers_require(campaign, tmp_path, monkeypatch, tls):
    from fixtures.smtp import SmtpServer, make_cert

    cert, key, ca = make_cert(tmp_path / "tls")
    server = SmtpServer(tls=tls, cert=(cert, key), users={"sxskjtrcc@126.com": "授权码-123"}).start()
    try:
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "授权码-123")
        campaign.configure(
            smtp=server.config(
                tls=tls, username="sxskjtrcc@126.com", password_env="TEST_SMTP_PASSWORD", ca_file=str(ca)
            )
        )
        config = campaign.config()
        conn = open_connection(config.storage.db)
        with Mailer(config.smtp) as m:
            assert _send(config, conn, m) == ("sent", None)
        assert server.wait_for(1)[0].rcpt_tos == ["kjc@sxu.edu.cn"]
        assert server.logins == ["sxskjtrcc@126.com"]

        # a wrong password: the mail waits (deferred) with a reason that says what to fix
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
        with Mailer(config.smtp) as m:
            status, error = _send(config, conn, m, unit="tyut")
        assert status == "deferred" and "TEST_SMTP_PASSWORD" in error
        # an untrusted certificate is refused
        campaign.sections["smtp"].pop("ca_file")
        campaign.configure()
        config = campaign.config()
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "授权码-123")
        with Mailer(config.smtp) as m:
            status, error = _send(config, conn, m, unit="sxas")
        assert status == "deferred" and "certificate" in error
        assert len(server.messages) == 1
        conn.close()
    finally:
        server.close()
