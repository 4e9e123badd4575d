"""Receipts (threaded replies saying what arrived and how it checked) and bounces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fixtures.files import make_sheet_xlsx
from fixtures.mail import build_forward, build_mail

from ingest.db import open_connection

BJ = timezone(timedelta(hours=8))


def awake_now() -> str:
    """A moment just after the present (so the mail delivered now has arrived by then), outside
    the quiet hours (21:00-08:00 Beijing time)."""
    t = datetime.now(BJ) + timedelta(minutes=1)
    if t.hour >= 21:
        t = t + timedelta(days=1)
    if t.hour >= 21 or t.hour < 8:
        t = t.replace(hour=8, minute=5, second=0, microsecond=0)
    return t.isoformat()


def receipts(campaign, when: str = "", *extra: str, expect: int | None = 0) -> list[dict]:
    return campaign.run("receipts", "--now", when or awake_now(), "--json", *extra, expect=expect).json


def db_rows(campaign, sql: str, *params) -> list[tuple]:
    conn = open_connection(campaign.db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------------------ receipts


def test_receipt_is_a_threaded_reply_listing_files_checks_and_what_is_missing(mailing, media, tmp_path):
    campaign, server = mailing
    original = build_mail(
        "山西大学科技处 <kjc@sxu.edu.cn>",
        subject="山西大学科技活动周材料",
        message_id="<sxu-20220620-1@sxu.edu.cn>",
        headers={"References": "<earlier-1@sxu.edu.cn>"},
        attachments=[
            ("山西大学宣传视频.mp4", media.video(200).read_bytes()),
            ("山西大学统计表.xlsx", make_sheet_xlsx(tmp_path / "sxu.xlsx", unit="山西大学").read_bytes()),
        ],
    )
    campaign.deliver(original)
    campaign.ingest()
    sent = receipts(campaign)
    assert [(r["unit"], r["to"], r["status"]) for r in sent] == [("sxu", ["kjc@sxu.edu.cn"], "sent")]

    mail = server.wait_for(1)[0]
    assert mail.rcpt_tos == ["kjc@sxu.edu.cn"]
    assert mail["Subject"] == "回执：2022年山西省科技活动周材料", "our subject, never the sender's"
    assert mail["In-Reply-To"] == "<sxu-20220620-1@sxu.edu.cn>"
    assert mail["References"].split() == ["<earlier-1@sxu.edu.cn>", "<sxu-20220620-1@sxu.edu.cn>"]
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Mailroll"] == "receipt"
    assert mail["Cc"] is None, "the sender is the unit's registered address: no copy"
    assert "抄送" not in mail.text
    text = mail.text
    assert "山西大学宣传视频.mp4（视频）" in text and "3:20" in text
    assert "有问题 —— 视频时长3:20，超过3:00的限制" in text, "the check's reason in Chinese"
    assert "视频（影像资料）：已收到，但不合格 —— 视频时长3:20，超过3:00的限制" in text
    assert "limit" not in text and "lasts" not in text
    assert "山西大学统计表.xlsx（统计表）：合格" in text
    assert "总结报告：尚未收到" in text
    assert "还需要：总结报告、视频" in text

    # one receipt per message, however often it runs
    assert receipts(campaign) == []
    assert len(server.messages) == 1
    assert db_rows(campaign, "SELECT kind, unit, answers, status FROM outbox") == [
        ("receipt", "sxu", 1, "sent")
    ]


def test_complete_unit_is_thanked(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail(
            "王丽 <tykjj@taiyuan.gov.cn>",
            attachments=[
                ("统计表.xlsx", media.sheet_xlsx.read_bytes()),
                ("总结报告.docx", media.report_docx.read_bytes()),
                ("视频.mp4", media.video(10).read_bytes()),
            ],
        )
    )
    campaign.ingest()
    receipts(campaign)
    text = server.wait_for(1)[0].text
    assert "已全部收齐" in text and "还需要" not in text


def test_unknown_senders_get_no_receipt(mailing):
    campaign, server = mailing
    campaign.deliver(build_mail("某人 <someone@example.org>", subject="咨询", body="请问截止时间？"))
    campaign.ingest()
    assert receipts(campaign) == []
    assert server.messages == []


@pytest.mark.parametrize(
    "sender,headers,subject",
    [
        ("kjc@sxu.edu.cn", {"Auto-Submitted": "auto-replied"}, "Re: 材料"),
        ("kjc@sxu.edu.cn", {"Precedence": "bulk"}, "通知"),
        ("kjc@sxu.edu.cn", {"Precedence": "junk"}, "通知"),
        ("kjc@sxu.edu.cn", {"List-Id": "<kjc.lists.sxu.edu.cn>"}, "通知"),
        ("kjc@sxu.edu.cn", {"X-Autoreply": "yes"}, "Re: 材料"),
        ("kjc@sxu.edu.cn", {"X-Autorespond": "yes"}, "Re: 材料"),
        ("kjc@sxu.edu.cn", {"Return-Path": "<>"}, "材料"),
        ("kjc@sxu.edu.cn", {"X-Mailroll": "receipt"}, "Re: 材料"),
        ("kjc@sxu.edu.cn", {}, "自动回复: 山西大学科技活动周材料"),
        ("kjc@sxu.edu.cn", {}, "Automatic reply: 材料"),
        ("MAILER-DAEMON@sxu.edu.cn", {}, "材料"),
        ("noreply@sxu.edu.cn", {}, "材料"),
    ],
)
def test_automatic_mail_gets_no_receipt(mailing, media, sender, headers, subject):
    campaign, server = mailing
    # our own receipt coming back (forwarded verbatim by the unit's server) has our Message-ID
    message_id = "<0123456789abcdef0123.mailroll-receipt@126.com>" if "X-Mailroll" in headers else None
    campaign.deliver(
        build_mail(
            sender,
            subject=subject,
            headers=headers,
            message_id=message_id,
            attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())],
        )
    )
    campaign.ingest()
    campaign.run("assign", "1", "sxu")  # even when it is (or is made) the unit's
    assert receipts(campaign) == []
    assert server.messages == []


def test_an_auto_responder_does_not_start_a_loop(mailing, media):
    """The unit's server answers our receipt with a plain "收到" that does not say it is
    automatic: it gets no receipt; and a chatty sender gets at most receipts_per_day."""
    campaign, server = mailing
    campaign.configure(reminders={"receipts_per_day": 3})
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())])
    )
    campaign.ingest()
    receipts(campaign)
    ours = server.wait_for(1)[0]
    for _ in range(3):
        campaign.deliver(
            build_mail(
                "kjc@sxu.edu.cn",
                subject=f"Re: {ours['Subject']}",
                body="您的邮件已收到。",
                headers={"In-Reply-To": ours["Message-ID"], "References": ours["Message-ID"]},
            )
        )
    campaign.ingest()
    assert receipts(campaign) == []
    # a reply to our receipt that brings a file is a real submission: answered
    campaign.deliver(
        build_mail(
            "kjc@sxu.edu.cn",
            subject=f"Re: {ours['Subject']}",
            headers={"In-Reply-To": ours["Message-ID"]},
            attachments=[("总结报告.docx", media.report_docx.read_bytes())],
        )
    )
    campaign.ingest()
    assert [r["status"] for r in receipts(campaign)] == ["sent"]
    # ... and an unmarked sender writing again and again (one run after each) is capped
    answered = []
    for i in range(3):
        campaign.deliver(build_mail("kjc@sxu.edu.cn", subject=f"第{i}次", body="补充说明"))
        campaign.ingest()
        answered += receipts(campaign)
    assert len(answered) == 1, "3 per day in all: two earlier, one now"
    assert len(server.messages) == 3


def test_receipts_wait_for_the_end_of_quiet_hours(mailing, media):
    campaign, server = mailing
    yesterday = datetime.now(BJ).date() - timedelta(days=1)
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())]),
        when=datetime.fromisoformat(f"{yesterday}T22:30:00+08:00"),
    )
    campaign.ingest()
    today = yesterday + timedelta(days=1)
    res = campaign.run("receipts", "--now", f"{yesterday}T23:00:00+08:00", "--json")
    assert res.json == [] and "quiet hours (21:00-08:00 Asia/Shanghai)" in res.stderr, "JSON: why, on stderr"
    out = campaign.run("receipts", "--now", f"{today}T07:59:00+08:00").output
    assert "quiet hours" in out and "when the quiet hours end" in out
    assert server.messages == []
    assert len(receipts(campaign, f"{today}T08:00:00+08:00")) == 1


def test_old_mail_and_disabled_receipts_get_none(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())]),
        when=datetime.now(UTC) - timedelta(days=10),
    )
    campaign.ingest()
    assert receipts(campaign) == [], "older than receipts_max_age (3d)"
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())])
    )
    campaign.ingest()
    campaign.configure(reminders={"receipts": False})
    res = campaign.run("receipts", "--json")
    assert res.json == [] and "switched off" in res.stderr and "reminders.receipts" in res.stderr
    out = campaign.run("receipts").output
    assert "Receipts are switched off" in out and "reminders.receipts = false" in out
    assert "No receipts due" not in out
    assert server.messages == []


def test_switched_off_receipts_need_no_smtp(campaign):
    campaign.configure(reminders={"receipts": False})
    out = campaign.run("receipts", expect=0).output
    assert "switched off" in out and "smtp" not in out.lower()


def test_receipt_kept_back_by_an_outage_goes_later_once(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())])
    )
    campaign.ingest()
    server.stop()
    assert [r["status"] for r in receipts(campaign, "", expect=1)] == ["deferred"]
    server.start()
    assert [r["status"] for r in receipts(campaign)] == ["sent"]
    assert receipts(campaign) == []
    assert len(server.wait_for(1)) == 1


# ------------------------------------------------------------------------------ bounces


def _dsn(original_headers: str, recipient: str, *, returned: str = "text/rfc822-headers") -> bytes:
    returned_part = (
        f"Content-Type: text/rfc822-headers\r\n\r\n{original_headers}\r\n"
        if returned == "text/rfc822-headers"
        else f"Content-Type: message/rfc822\r\n\r\n{original_headers}\r\n\r\n(body)\r\n"
    )
    return (
        "From: MAILER-DAEMON@mx.163.com (Mail Delivery System)\r\n"
        "To: sxskjtrcc@126.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.163.com>\r\n"
        "Date: Mon, 27 Jun 2022 10:00:00 +0800\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"\r\n\r\n'
        "--BOUNDARY\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.163.com.\r\nI'm sorry to have to inform you that your message "
        "could not be delivered to one or more recipients.\r\n\r\n"
        "--BOUNDARY\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.163.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n"
        f"--BOUNDARY\r\n{returned_part}--BOUNDARY--\r\n"
    ).encode()


def _headers_of(received) -> str:
    raw = received.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return raw


@pytest.mark.parametrize("returned", ["text/rfc822-headers", "message/rfc822"])
def test_a_bounce_is_matched_to_our_reminder_and_never_a_submission(mailing, returned):
    campaign, server = mailing
    campaign.run("remind", "--now", "2022-06-23T10:00:00+08:00")
    ours = server.to("dtkjj2022@163.com")[0]
    campaign.deliver(_dsn(_headers_of(ours), "dtkjj2022@163.com", returned=returned))
    campaign.ingest()
    receipts(campaign)  # bounces are looked for before receipts (serve does it after each poll)
    ((msg, outbox_id, recipient, status, diagnostic),) = db_rows(campaign, "SELECT * FROM bounces")
    ((unit, stage),) = db_rows(campaign, "SELECT unit, stage FROM outbox WHERE id = ?", outbox_id)
    assert (unit, stage, recipient, status) == ("datong-kjj", "before-3d", "dtkjj2022@163.com", "5.1.1")
    assert "User unknown" in diagnostic
    unmatched = campaign.run("unmatched", "--json").json
    assert len(unmatched) == 1
    assert unmatched[0]["reason"].startswith("bounce of our reminder (before-3d) to dtkjj2022@163.com")
    status = {u["id"]: u for u in campaign.status()}
    assert status["datong-kjj"]["state"] == "missing"
    assert len(server.messages) == 12, "no receipt for a bounce"


def test_a_chinese_bounce_quoting_the_original_is_matched(mailing):
    campaign, server = mailing
    campaign.run("remind", "--now", "2022-06-23T10:00:00+08:00")
    ours = server.to("tyswxcb@qq.com")[0]
    campaign.deliver(
        build_mail(
            "postmaster@qq.com",
            subject="系统退信",
            body=f"抱歉，您的邮件被退回来了……\n原邮件信息：\nMessage-ID: {ours['Message-ID']}\n收件人：tyswxcb@qq.com\n"
            f"退信原因：550 Mailbox not found or access denied",
        )
    )
    campaign.ingest()
    receipts(campaign)
    ((msg, outbox_id, recipient, status, diagnostic),) = db_rows(campaign, "SELECT * FROM bounces")
    assert db_rows(campaign, "SELECT unit FROM outbox WHERE id = ?", outbox_id) == [("taiyuan-xcb",)]
    assert "550 Mailbox not found" in diagnostic


def test_receipt_lists_what_came_inside_an_archive(mailing, media, tmp_path):
    import io
    import zipfile

    campaign, server = mailing
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("统计表.xlsx", make_sheet_xlsx(tmp_path / "tyut.xlsx", unit="太原理工大学").read_bytes())
        z.writestr("活动照片.jpg", media.jpeg.read_bytes())
    campaign.deliver(build_mail("kjc@tyut.edu.cn", attachments=[("太原理工材料.zip", buf.getvalue())]))
    campaign.ingest()
    receipts(campaign)
    text = server.wait_for(1)[0].text
    assert "太原理工材料.zip（压缩包）：已收到" in text
    assert "太原理工材料.zip/统计表.xlsx（统计表）：合格" in text
    assert "太原理工材料.zip/活动照片.jpg（图片）：已收到" in text


# ------------------------------------------------------------------------------ time, copies, previews


def test_receipts_judge_as_of_now_not_including_later_mail(mailing, media, tmp_path):
    """At 10:00 only the 09:00 message has arrived: it alone is answered, and its receipt says
    the report (which came at 11:00) is still missing. The 11:00 one is answered later."""
    campaign, server = mailing
    day = datetime.now(BJ).date() - timedelta(days=1)

    def at(hh):
        return datetime.fromisoformat(f"{day}T{hh}:00:00+08:00")

    campaign.deliver(
        build_mail(
            "kjc@sxu.edu.cn",
            subject="统计表",
            attachments=[
                ("统计表.xlsx", make_sheet_xlsx(tmp_path / "sxu.xlsx", unit="山西大学").read_bytes())
            ],
        ),
        when=at("09"),
    )
    campaign.deliver(
        build_mail(
            "kjc@sxu.edu.cn",
            subject="总结报告",
            attachments=[("总结报告.docx", media.report_docx.read_bytes())],
        ),
        when=at("11"),
    )
    campaign.ingest()
    first = receipts(campaign, at("10").isoformat())
    assert [r["message"] for r in first] == [1]
    text = server.wait_for(1)[0].text
    assert "统计表：已收到（统计表.xlsx），合格" in text, "the counted file named"
    assert "总结报告：尚未收到" in text, "the 11:00 report had not arrived at 10:00"
    assert "还需要：总结报告、视频" in text
    later = receipts(campaign, at("12").isoformat())
    assert [r["message"] for r in later] == [2]
    text = server.wait_for(2)[1].text
    assert "总结报告：已收到（总结报告.docx），合格" in text and "还需要：视频" in text


def test_a_forwarded_message_is_reported_to_the_unit_naming_the_forwarder(mailing, media):
    """A staff member forwards the unit's mail from a personal qq.com address: the receipt goes
    to the unit's registered address (not to the forwarder, whose address anyone could be) and
    says who sent the material."""
    campaign, server = mailing
    inner = build_mail(
        "山西大学科技处 <kjc@sxu.edu.cn>",
        subject="山西大学科技活动周材料",
        attachments=[("山西大学统计表.xlsx", media.sheet_xlsx.read_bytes())],
    ).as_bytes()
    campaign.deliver(
        build_forward(inner, from_="李明 <87654321@qq.com>", subject="转发：山西大学科技活动周材料")
    )
    campaign.ingest()
    # the sample sheet's 填报单位 names 太原市科学技术局 while the subject names 山西大学: a tie,
    # so the message waits in the unmatched queue until staff assign it
    (row,) = campaign.messages()
    assert row["disposition"] == "unmatched" and "山西大学" in row["reason"]
    campaign.run("assign", "1", "sxu")
    sent = receipts(campaign)
    assert [(r["unit"], r["to"], r["cc"]) for r in sent] == [("sxu", ["kjc@sxu.edu.cn"], [])]
    mail = server.wait_for(1)[0]
    assert mail.rcpt_tos == ["kjc@sxu.edu.cn"] and mail["Cc"] is None
    assert mail["Subject"] == "回执：2022年山西省科技活动周材料" and mail["In-Reply-To"]
    assert "以下材料由 [qq.com] 的一个邮箱 代为报送" in mail.text and "87654321" not in mail.text
    # automatic mail from the forwarder gets nothing at all, copy included
    campaign.deliver(
        build_mail(
            "李明 <87654321@qq.com>",
            subject="自动回复: 山西大学科技活动周材料",
            attachments=[("总结报告.docx", media.report_docx.read_bytes())],
        )
    )
    campaign.ingest()
    campaign.run("assign", "2", "sxu")
    assert receipts(campaign) == []
    assert len(server.messages) == 1


def test_dry_run_show_previews_the_receipt_text(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail(
            "山西大学科技处 <kjc@sxu.edu.cn>",
            subject="山西大学科技活动周材料",
            attachments=[("山西大学宣传视频.mp4", media.video(200).read_bytes())],
        )
    )
    campaign.ingest()
    out = campaign.run("receipts", "--now", awake_now(), "--dry-run", "--show").output
    assert "To: kjc@sxu.edu.cn" in out and "Subject: 回执：2022年山西省科技活动周材料" in out
    assert "山西大学宣传视频.mp4（视频）：有问题 —— 视频时长3:20，超过3:00的限制" in out
    assert "还需要：统计表" not in out and "还需要：开展情况统计表、总结报告、视频" in out
    assert server.messages == [] and db_rows(campaign, "SELECT * FROM outbox") == []
    shown = receipts(campaign, "", "--dry-run", "--show")
    assert "视频时长3:20" in shown[0]["body"]
