"""``serve``'s sender on a thread of its own (issue #19, point 5): while it waits on the SMTP
rate limit, IDLE is answered and new mail is recorded; receipts drain in arrival order; a
unit never gets two mails in the same minute. A real Dovecot (IDLE) and a real SMTP server."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fixtures.mail import build_mail
from test_service import QUIET_DAY, log_of, serving, state, stop, wait_until
from test_web import browser as chromium  # noqa: F401 - the page through a real Chromium (a fixture)
from test_web import serving as web_serving

from ingest.db import open_connection

ARRIVED = datetime.fromisoformat(QUIET_DAY) - timedelta(minutes=1)  # before the service's "now"
UNITS = [  # (roster address, unit id)
    ("tykjj@taiyuan.gov.cn", "taiyuan-kjj"),
    ("dtkjj2022@163.com", "datong-kjj"),
    ("czkjj@changzhi.gov.cn", "changzhi-kjj"),
    ("jzkjj@sina.com", "jinzhong-kjj"),
]


def recorded(campaign) -> int:
    if not campaign.db_path.exists():
        return 0
    conn = open_connection(campaign.db_path)
    try:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        conn.close()


def append(campaign, sender: str, media, subject: str = "材料") -> None:
    mail = build_mail(sender, subject=subject, attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())])
    campaign.dovecot.append(campaign.imap_user, mail.as_bytes(), internaldate=ARRIVED)


@pytest.mark.slow
def test_mail_is_recorded_while_the_sender_waits_on_the_rate_limit(
    imap_campaign, smtp_server, media, request
):
    campaign = imap_campaign
    campaign.configure(
        smtp=smtp_server.config(per_minute=2),
        service={"poll_every_s": 600, "remind_every_s": 600, "lock_wait_s": 0},
    )
    with serving(campaign) as proc:
        wait_until(lambda: "IMAP IDLE: watching INBOX" in log_of(proc), what="the IDLE watcher")
        for address, _ in UNITS[:3]:
            append(campaign, address, media)
        smtp_server.wait_for(2, timeout=120)
        wait_until(lambda: "rate limit (2/min): waiting" in log_of(proc), what="the sender waiting")
        # the sender now waits most of a minute for the third receipt; the fourth unit writes
        append(campaign, UNITS[3][0], media)
        wait_until(lambda: recorded(campaign) == 4, timeout=50, what="the fourth message recorded")
        assert len(smtp_server.messages) == 2, "recorded while the sender was still waiting on the limit"

        def waiting() -> dict:
            check = campaign.run_process("serve", "--check", "--json", env={"MAILROLL_FAKE_NOW": QUIET_DAY})
            return check.json["waiting"]

        # (the fourth is attributed just after it is recorded)
        wait_until(lambda: waiting()["total"] == 2, timeout=30, what="serve --check counting the fourth")
        assert waiting() == {"total": 2, "why": {"queued": 2}}, "the third and fourth receipts"
        assert len(smtp_server.messages) == 2
        browser = request.getfixturevalue("chromium")  # the overview says so too
        with web_serving(campaign) as base:
            browser.get(base + "/")
            said = browser.find_element("css selector", "p.waiting").text
        assert said.startswith("待发邮件：") and "封按 SMTP 发信速率排队" in said, said
        assert "IMAP IDLE: new mail" in log_of(proc)
        mails = smtp_server.wait_for(4, timeout=180)
        assert stop(proc) == 0, log_of(proc)
    assert [m.rcpt_tos for m in mails] == [[a] for a, _ in UNITS], "receipts in arrival order"
    assert state(campaign)["last_error"] == ""


@pytest.mark.slow
def test_a_unit_never_gets_two_mails_in_the_same_minute(imap_campaign, smtp_server, media):
    """The unit sends its sheet, gets its receipt, and sends its report seconds later: the
    second receipt waits until a minute has passed since the first, then goes."""
    campaign = imap_campaign
    campaign.configure(
        smtp=smtp_server.config(), service={"poll_every_s": 600, "remind_every_s": 600, "lock_wait_s": 0}
    )
    with serving(campaign) as proc:
        wait_until(lambda: "IMAP IDLE: watching INBOX" in log_of(proc), what="the IDLE watcher")
        append(campaign, "kjc@sxu.edu.cn", media)
        smtp_server.wait_for(1, timeout=120)
        campaign.dovecot.append(
            campaign.imap_user,
            build_mail(
                "kjc@sxu.edu.cn", attachments=[("总结报告.docx", media.report_docx.read_bytes())]
            ).as_bytes(),
            internaldate=ARRIVED,
        )
        wait_until(lambda: recorded(campaign) == 2, what="the second message recorded")
        first, second = smtp_server.wait_for(2, timeout=180)
        assert stop(proc) == 0, log_of(proc)
    conn = open_connection(campaign.db_path)
    try:
        made = [
            datetime.fromisoformat(t)
            for (t,) in conn.execute("SELECT created_at FROM outbox WHERE kind = 'receipt' ORDER BY id")
        ]
    finally:
        conn.close()
    assert made[1] - made[0] >= timedelta(seconds=60), made
    assert "本次收到的文件：\n  · 总结报告.docx（总结报告）：合格\n\n" in second.text, "only what came since"


@pytest.mark.slow
def test_sigterm_while_waiting_on_the_rate_limit_keeps_the_mail_for_the_next_start(
    imap_campaign, smtp_server, media
):
    """serve stops at once; the receipt that waited was never handed over, so it is not
    recorded as being sent (a crash then would make it ``unknown``, never sent): the next start
    sends it, once."""
    campaign = imap_campaign
    campaign.configure(
        smtp=smtp_server.config(per_minute=1),
        service={"poll_every_s": 600, "remind_every_s": 600, "lock_wait_s": 0},
    )
    with serving(campaign) as proc:
        wait_until(lambda: "IMAP IDLE: watching INBOX" in log_of(proc), what="the IDLE watcher")
        for address, _ in UNITS[:2]:
            append(campaign, address, media)
        smtp_server.wait_for(1, timeout=120)
        wait_until(lambda: "rate limit (1/min): waiting" in log_of(proc), what="the sender waiting")
        asked = datetime.now()
        assert stop(proc) == 0, log_of(proc)
        assert datetime.now() - asked < timedelta(seconds=20), "the wait on the rate limit ends at once"
    conn = open_connection(campaign.db_path)
    try:
        rows = conn.execute("SELECT unit, status FROM outbox WHERE kind = 'receipt' ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [(UNITS[0][1], "sent")]
    with serving(campaign) as proc:
        mails = smtp_server.wait_for(2, timeout=120)
        assert stop(proc) == 0, log_of(proc)
    assert [m.rcpt_tos for m in mails] == [[UNITS[0][0]], [UNITS[1][0]]]
    assert len(smtp_server.messages) == 2
