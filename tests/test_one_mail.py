"""One mail per unit at a time, and the right words (issue #19, point 6): a reminder due right
after a receipt is folded into it, late material is called late, receipts and reminders end
with the office's contacts (also on the web page and in ``show``). Mail checked at the SMTP
server."""

from __future__ import annotations

from datetime import datetime

from fixtures.files import make_sheet_xlsx
from fixtures.mail import build_mail
from test_receipts import db_rows
from test_web import browser as chromium  # noqa: F401 - the page through a real Chromium (a fixture)
from test_web import serving

CONTACTS = [
    {"name": "吴玉祥", "org": "山西省科学技术厅", "phone": "0351-4060103"},
    {"name": "李明", "org": "山西省科学技术协会", "phone": "0351-4048520"},
]
CONTACT_LINES = [
    "吴玉祥（山西省科学技术厅），电话 0351-4060103",
    "李明（山西省科学技术协会），电话 0351-4048520",
]
BEFORE_3D = "2022-06-23T10:00:00+08:00"  # the before-3d reminders are due (deadline 6-25 23:59)


def with_contacts(campaign) -> None:
    campaign.configure(campaign={"contacts": CONTACTS})


def test_a_reminder_due_right_after_a_receipt_is_folded_into_it(mailing, tmp_path):
    campaign, server = mailing
    with_contacts(campaign)
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx", unit="山西大学")  # its own sheet
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", sheet.read_bytes())]),
        when=datetime.fromisoformat("2022-06-23T09:50:00+08:00"),
    )
    campaign.ingest()
    assert len(campaign.run("receipts", "--now", BEFORE_3D, "--json").json) == 1
    receipt = server.wait_for(1)[0]
    assert "还需要：总结报告、视频（影像资料）" in receipt.text, "the receipt says what is still missing"

    due = campaign.run("remind", "--now", "2022-06-23T10:05:00+08:00", "--json").json
    assert "sxu" not in [r["unit"] for r in due], "folded into the receipt of five minutes ago"
    assert "datong-kjj" in [r["unit"] for r in due], "units that got no mail are reminded"
    assert [m.rcpt_tos for m in server.messages].count(["kjc@sxu.edu.cn"]) == 1
    ((status, error),) = db_rows(
        campaign, "SELECT status, error FROM outbox WHERE kind = 'reminder' AND unit = 'sxu'"
    )
    assert status == "skipped" and "folded into the mail sent to the unit at 2022-06-23 10:00" in error
    # the stage is done: no reminder of it later either
    later = campaign.run("remind", "--now", "2022-06-23T16:00:00+08:00", "--json").json
    assert "sxu" not in [r["unit"] for r in later]


def test_a_reminder_waits_for_a_receipt_still_to_go_and_min_gap_is_configurable(mailing, media):
    campaign, server = mailing
    campaign.configure(reminders={"min_gap_minutes": 5})
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())]),
        when=datetime.fromisoformat("2022-06-23T09:58:00+08:00"),
    )
    campaign.ingest()
    due = campaign.run("remind", "--now", BEFORE_3D, "--dry-run", "--json").json
    assert "sxu" not in [r["unit"] for r in due], "its receipt (for mail of 2 minutes ago) comes first"
    campaign.run("receipts", "--now", BEFORE_3D)
    due = campaign.run("remind", "--now", "2022-06-23T10:06:00+08:00", "--json").json
    assert "sxu" in [r["unit"] for r in due], "six minutes later, past min_gap_minutes = 5"
    sxu = server.to("kjc@sxu.edu.cn")
    assert [m["X-Mailroll"] for m in sxu] == ["receipt", "reminder"]


def test_a_receipt_for_late_material_says_so_with_both_times(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail(
            "王丽 <tykjj@taiyuan.gov.cn>",
            attachments=[
                ("统计表.xlsx", media.sheet_xlsx.read_bytes()),
                ("总结报告.docx", media.report_docx.read_bytes()),
                ("视频.mp4", media.video(10).read_bytes()),
            ],
        ),
        when=datetime.fromisoformat("2022-06-26T10:03:00+08:00"),
    )
    campaign.ingest()
    campaign.run("receipts", "--now", "2022-06-26T10:05:00+08:00")
    text = server.wait_for(1)[0].text
    assert "本次材料于 2022-06-26 10:03 收到，已过截止时间（2022-06-25 23:59），属逾期报送。" in text
    assert "已全部收齐（其中有逾期报送的材料）" in text
    assert "贵单位的材料已全部收齐，感谢配合！" not in text


def test_receipts_reminders_the_web_page_and_show_name_the_offices_contacts(mailing, media, request):
    campaign, server = mailing
    with_contacts(campaign)
    campaign.deliver(
        build_mail("kjc@sxu.edu.cn", attachments=[("统计表.xlsx", media.sheet_xlsx.read_bytes())]),
        when=datetime.fromisoformat("2022-06-20T09:00:00+08:00"),
    )
    campaign.ingest()
    campaign.run("receipts", "--now", "2022-06-20T09:05:00+08:00")
    campaign.run("remind", "--now", BEFORE_3D)
    receipt = server.to("kjc@sxu.edu.cn")[0]
    reminder = server.to("dtkjj2022@163.com")[0]
    for mail in (receipt, reminder):
        tail = mail.text.rstrip().splitlines()[-4:]
        assert tail == ["联系人：", *(f"  · {line}" for line in CONTACT_LINES), "2022年山西省科技活动周"], (
            tail
        )
    shown = campaign.run("show", "sxu").output
    assert "; ".join(CONTACT_LINES) in shown
    browser = request.getfixturevalue("chromium")
    with serving(campaign) as base:
        browser.get(base + "/")
        shown = browser.find_element("css selector", "p.contacts").text
    assert (
        shown == "联系人： 吴玉祥（山西省科学技术厅） 0351-4060103；李明（山西省科学技术协会） 0351-4048520"
    )


def test_contacts_are_checked_when_the_config_is_read(campaign):
    campaign.configure(campaign={"contacts": [{"name": "吴玉祥", "phone": 3514060103}]})
    res = campaign.run("status", expect=2)
    assert "campaign.contacts takes name, org and phone (text)" in res.stderr


def test_a_receipt_names_the_sheets_unit_and_says_why_the_sheet_does_not_count(mailing, tmp_path):
    """山西大学 sends a sheet filled in for 太原市科学技术局, with a figure left out: the receipt
    shows the 填报单位 beside the file, and the reason the sheet does not count, as `status`
    gives it."""
    from fixtures.files import make_sheet_xlsx

    campaign, server = mailing
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx", unit="太原市科学技术局", omit=["活动总数"])
    campaign.deliver(
        build_mail(
            "kjc@sxu.edu.cn", subject="山西大学材料", attachments=[("统计表.xlsx", sheet.read_bytes())]
        )
    )
    campaign.ingest()
    campaign.run("receipts")
    text = server.wait_for(1)[0].text
    assert "统计表.xlsx（统计表）：有问题 —— " in text and "（表内填报单位：太原市科学技术局）" in text
    item = campaign.unit("sxu")["items"]["statistics"]
    assert item["state"] == "invalid" and item["reason_zh"]
    assert f"开展情况统计表：已收到，但不合格 —— {item['reason_zh']}" in text
