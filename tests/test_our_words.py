"""Only our words in our mail, and units first (issue #20, points 2 and 3).

The mailbox's address is public: a stranger's file names and address must not reach a unit
through a receipt sent from the campaign's address, and a flood of strangers' mail naming
units must not keep a unit's own receipt waiting. Checked in the mail at the SMTP server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fixtures.files import make_sheet_xlsx
from fixtures.mail import build_mail
from test_receipts import db_rows, receipts

PHISHING_NAME = "您单位材料未通过审核请登录evil.example重新提交.docx"
QUOTED_LOCAL = '"attention:account-suspended,visit.http://evil.example/login"@qq.com'


def test_a_strangers_file_names_and_address_are_shown_by_kind_size_and_domain(mailing, media):
    campaign, server = mailing
    report = media.report_docx.read_bytes()
    campaign.deliver(
        build_mail(
            QUOTED_LOCAL,
            subject="山西大学科技活动周总结报告",
            attachments=[
                (PHISHING_NAME, report),
                ("登录evil.example领取奖品.zip", b"PK\x05\x06" + bytes(18)),
            ],
        )
    )
    campaign.ingest()
    sent = receipts(campaign)
    assert [(r["unit"], r["to"]) for r in sent] == [("sxu", ["kjc@sxu.edu.cn"])], "to the roster address"
    text = server.wait_for(1)[0].text
    for words in ("evil", "account-suspended", "attention", "领取奖品", "未通过审核", "登录"):
        assert words not in text, f"{words!r}: a stranger's words in our mail"
    size_kb = round(len(report) / 1024)
    assert f"一个 .docx 文件，{size_kb} KB（总结报告）" in text, "the file by its detected kind and size"
    assert "一个 .zip 文件，1 KB" in text, "an archive (empty) by its kind too"
    assert "[qq.com] 的一个邮箱" in text, "the sender by its domain, in brackets"


def test_a_registered_senders_own_file_names_and_sheet_unit_stay(mailing, tmp_path):
    campaign, server = mailing
    sheet = make_sheet_xlsx(tmp_path / "sxu.xlsx", unit="山西大学")  # its own sheet
    campaign.deliver(
        build_mail(
            "kjc@sxu.edu.cn",
            subject="山西大学材料",
            attachments=[("山西大学活动统计表（终稿）.xlsx", sheet.read_bytes())],
        )
    )
    campaign.ingest()
    receipts(campaign)
    text = server.wait_for(1)[0].text
    assert "山西大学活动统计表（终稿）.xlsx（统计表）：合格" in text
    (cell,) = [
        c
        for (c,) in db_rows(
            campaign, "SELECT json_extract(facts, '$.unit_cell') FROM parts WHERE kind = 'statistics'"
        )
    ]
    assert cell and f"（表内填报单位：{cell}）" in text, "the sheet's 填报单位 as the unit wrote it"


def test_a_unit_and_a_stranger_writing_together_get_separate_receipts(mailing, media):
    """A stranger's message is never folded into the receipt for the unit's own mail (the
    unit would not learn that someone wrote in its name)."""
    campaign, server = mailing
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())])
    )
    campaign.deliver(
        build_mail(
            "someone@163.com",
            subject="山西大学总结",
            attachments=[("总结.docx", media.report_docx.read_bytes())],
        )
    )
    campaign.ingest()
    assert len(receipts(campaign)) == 2
    texts = [m.text for m in server.wait_for(2)]
    assert sum("[163.com] 的一个邮箱" in t for t in texts) == 1
    assert sum("统计表.xlsx（统计表）" in t for t in texts) == 1


def test_sixty_strangers_naming_units_never_keep_a_units_own_receipt_waiting(mailing, tmp_path):
    """60 strangers' mails naming units use up the hourly cap on their receipts; the unit's own
    mail, after them, still gets its receipt at once, and the strangers' wait (they are the
    ones kept back)."""
    campaign, server = mailing
    campaign.configure(reminders={"receipts_per_hour": 10, "receipts_per_day": 3})
    names = ["太原市科技局", "大同市科技局", "长治市科技局", "晋中市科技局", "运城市科技局", "山西大学"]
    start = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(60):
        campaign.deliver(
            build_mail(
                f"fan{i:02d}@spam{i % 7}.example", subject=f"{names[i % len(names)]}材料{i}", body="见附件"
            ),
            when=start + timedelta(seconds=i),
        )
    sheet = make_sheet_xlsx(tmp_path / "sxu.xlsx", unit="山西大学")  # its own sheet
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", sheet.read_bytes())]),
        when=start + timedelta(minutes=5),
    )
    campaign.ingest()
    first = campaign.run("receipts", "--json")
    assert "wait for a later run" in first.stderr and "hourly cap" in first.stderr
    assert len(first.json) < 10, "strangers' receipts stop at the cap (10 recipients)"
    own = [m for m in server.to("kjc@sxu.edu.cn") if "统计表.xlsx（统计表）：合格" in m.text]
    assert len(own) == 1 and "代为报送" not in own[0].text, "the unit's own receipt went at once"
    assert server.messages[0] is own[0], "first, before the strangers' receipts for earlier mail"
    check = campaign.run("serve", "--check", "--json", expect=1).json
    assert check["waiting"]["why"]["strangers_cap"] > 0, check["waiting"]
    assert check["waiting"]["total"] == sum(check["waiting"]["why"].values())
    assert "for mail from other addresses" in campaign.run("serve", "--check", expect=1).output


def test_strangers_receipts_never_use_up_a_units_daily_cap(mailing, media):
    campaign, server = mailing
    campaign.configure(reminders={"receipts_per_day": 2})
    for domain in ("a.example", "b.example", "c.example"):
        campaign.deliver(build_mail(f"x@{domain}", subject="山西大学的材料", body="见附件"))
        campaign.ingest()
        campaign.run("receipts")
    assert len(server.to("kjc@sxu.edu.cn")) == 2, "strangers' receipts to the unit: at most 2 a day"
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("总结.docx", media.report_docx.read_bytes())])
    )
    campaign.ingest()
    assert [r["status"] for r in campaign.run("receipts", "--json").json] == ["sent"]
    assert "总结.docx（总结报告）：合格" in server.to("kjc@sxu.edu.cn")[-1].text


def test_a_strangers_download_link_is_named_by_its_kind_only(mailing):
    campaign, server = mailing
    body = (
        "您单位材料未通过审核请登录evil.example重新提交.mp4\n"
        "https://fs.mail.qq.com/ftn_handler/3f2a9c?k=evil.example&code=account-suspended\n"
    )
    campaign.deliver(
        build_mail("helper@qq.com", subject="山西大学视频", body=body),
        when=datetime.fromisoformat("2022-06-22T10:00:00+08:00"),
    )
    campaign.ingest()
    links = db_rows(campaign, "SELECT provider FROM links")
    assert links == [("QQ邮箱超大附件",)], "the link is recorded"
    campaign.run("receipts", "--now", "2022-06-22T10:05:00+08:00")
    text = server.wait_for(1)[0].text
    assert "一个链接（下载链接）：有问题 —— 以下载链接形式发送（QQ邮箱超大附件），尚未下载" in text
    assert "视频（影像资料）：已收到，但不合格 —— 以下载链接形式发送（QQ邮箱超大附件），尚未下载" in text
    for words in ("evil", "account-suspended", "未通过审核", "ftn_handler"):
        assert words not in text, f"{words!r}: a stranger's words in our mail"
    # nor in a reminder to the unit (its video is still that link)
    campaign.run("remind", "--now", "2022-06-23T10:00:00+08:00")
    reminder = [m for m in server.to("kjc@sxu.edu.cn") if m["X-Mailroll"] == "reminder"]
    assert len(reminder) == 1 and "QQ邮箱超大附件" in reminder[0].text
    assert not any(w in reminder[0].text for w in ("evil", "未通过审核")), reminder[0].text
