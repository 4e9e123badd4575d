"""Issue #19 (1, 3, 7): unit states that add up to the roster, a queue that can be finished
(`dismiss`, `reject MESSAGE`, `unmatched --all`, `revoke`), and which file counts, with its
填报单位, in `status`. Real mail delivered to the campaign's Maildir, real sheets, the CLI asked."""

from __future__ import annotations

from collections import Counter

import openpyxl
from fixtures.files import make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail
from test_receipts import awake_now
from test_status import BEFORE, attach, by_id, send

DT = "大同市科学技术局 <dtkjj2022@163.com>"
CZ = "长治市科学技术局 <czkjj@changzhi.gov.cn>"
JZ = "晋中市科学技术局 <jzkjj@sina.com>"
AD = "征订部 <dingyue@baokan-zd.com>"


def _advert(campaign, when=BEFORE):
    campaign.deliver(
        build_mail(
            from_=AD,
            subject="2023年度报刊征订通知（科技类）",
            body="尊敬的客户：2023年度报刊征订工作已经开始，订阅请回复本邮件。",
        ),
        when=when,
    )


def _summary_sheet(path) -> dict:
    ws = openpyxl.load_workbook(path)["汇总"]
    return {row[0].value: row[1].value for row in ws.iter_rows() if row[0].value and len(row) > 1}


def test_exempt_and_silent_units_are_states_of_their_own_and_every_summary_adds_up(campaign, tmp_path):
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "统计表.xlsx"), names=["太原市统计表.xlsx"]))
    campaign.deliver(  # an auto-reply is all 大同 sent
        build_mail(
            from_=DT,
            subject="自动回复: 关于报送2022年科技活动周材料的通知",
            body="您好，您的来信已收到，我休假至6月28日，急事请致电。",
            headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
        ),
        when=BEFORE,
    )
    campaign.deliver(  # 长治 only asked a question
        build_mail(from_=CZ, subject="咨询：统计表填写", body="请问参与人数是否包括线上参与的人数？"),
        when=BEFORE,
    )
    jz_sheet = make_sheet_xlsx(tmp_path / "晋中.xlsx", unit="晋中市科学技术局")
    send(campaign, from_=JZ, files=attach(jz_sheet, names=["统计表.xlsx"]))
    campaign.ingest()
    campaign.run("exempt", "jinzhong-kjj", "--note", "今年未承办活动")
    rows = by_id(campaign.status())
    assert rows["taiyuan-kjj"]["state"] == "incomplete"
    assert rows["datong-kjj"]["state"] == "missing" and rows["changzhi-kjj"]["state"] == "missing"
    assert rows["jinzhong-kjj"]["state"] == "exempt" and rows["jinzhong-kjj"]["exempt"] is True
    assert Counter(r["state"] for r in rows.values()) == {"incomplete": 1, "missing": 10, "exempt": 1}
    missing = [r["id"] for r in campaign.status("--state", "missing")]
    assert {"datong-kjj", "changzhi-kjj"} <= set(missing) and "jinzhong-kjj" not in missing
    assert len(missing) == 10
    assert [r["id"] for r in campaign.status("--state", "exempt")] == ["jinzhong-kjj"]
    assert "12 units: 0 complete, 1 incomplete, 10 missing, 1 exempt; 0 late" in campaign.run("status").output
    (camp,) = campaign.run("campaigns", "--json").json
    assert camp["units"] == {"complete": 0, "incomplete": 1, "missing": 10, "exempt": 1}
    campaign.run("report", "--xlsx", str(tmp_path / "report.xlsx"))
    summary = _summary_sheet(tmp_path / "report.xlsx")
    assert (summary["齐全"], summary["不齐全"], summary["未报送"], summary["免报"], summary["合计"]) == (
        0,
        1,
        10,
        1,
        12,
    )
    progress = list(openpyxl.load_workbook(tmp_path / "report.xlsx")["进度"].iter_rows(values_only=True))
    assert progress[0][1:4] == ("齐全", "不齐全", "未报送") and progress[-1][1:4] == (
        0,
        1,
        10,
    )  # 免报 not silent
    # revoking the exemption gives the unit back its own state
    (o,) = [o for o in campaign.run("overrides", "--json").json if o["action"] == "exempt"]
    campaign.run("revoke", str(o["id"]))
    assert campaign.unit("jinzhong-kjj")["state"] == "incomplete"


def test_status_shows_the_counted_file_and_the_sheets_unit(campaign, tmp_path):
    sheet = make_sheet_xlsx(tmp_path / "a.xlsx", unit="山西省科学院")
    report = make_report_docx(tmp_path / "b.docx", chars=800)
    send(campaign, files=attach(sheet, report, names=["科技周统计表（省科学院）.xlsx", "太原市总结.docx"]))
    campaign.ingest()
    items = campaign.unit("taiyuan-kjj")["items"]
    assert items["statistics"]["filename"] == "科技周统计表（省科学院）.xlsx"
    assert items["statistics"]["unit_cell"] == "山西省科学院" and items["statistics"]["state"] == "invalid"
    assert items["report"]["filename"] == "太原市总结.docx" and "unit_cell" not in items["report"]
    out = campaign.run("status").output
    assert "科技周统计表（省科学院）.xlsx" in out and "unit named in the sheet: 山西省科学院" in out
    assert "太原市总结.docx" in out
    zh = campaign.run("--lang", "zh", "status").output
    assert "填报单位：山西省科学院" in zh and "统计表的填报单位是山西省科学院，不是本单位" in zh


def test_an_advertisement_is_dismissed_out_of_the_queue_and_revoked_back(campaign, tmp_path):
    _advert(campaign)
    campaign.ingest()
    (ad,) = campaign.run("unmatched", "--json").json
    assert ad["subject"] == "2023年度报刊征订通知（科技类）" and "state" not in ad
    done = campaign.run("dismiss", str(ad["id"]), "--note", "报刊征订广告", "--json").json
    assert campaign.run("unmatched", "--json").json == []
    assert "0 unmatched message(s)" in campaign.run("unmatched").output
    (row,) = campaign.run("unmatched", "--all", "--json").json
    assert row["id"] == ad["id"] and row["state"] == "dismissed" and row["note"] == "报刊征订广告"
    assert row["decided_by"] and row["decided_at"] and row["override"] == done["override"]
    assert [r["id"] for r in campaign.run("unmatched", "--dismissed", "--json").json] == [ad["id"]]
    assert "dismissed by" in campaign.run("unmatched", "--all").output
    (seen,) = [m for m in campaign.messages() if m["id"] == ad["id"]]
    assert seen["disposition"] == "unmatched"
    assert seen["reason"].startswith(f"dismissed by staff (override {done['override']}): 报刊征订广告")
    campaign.run("report", "--xlsx", str(tmp_path / "r.xlsx"))
    unmatched_sheet = openpyxl.load_workbook(tmp_path / "r.xlsx")["未匹配邮件"]
    assert all(r[0].value != ad["id"] for r in unmatched_sheet.iter_rows(min_row=2))
    # an unknown message, or a second delivery of one, is a usage error saying what to do
    assert "unknown message 99999" in campaign.run("dismiss", "99999", "--note", "x", expect=2).stderr
    campaign.run("revoke", str(done["override"]))
    assert [r["id"] for r in campaign.run("unmatched", "--json").json] == [ad["id"]]
    campaign.run("report", "--xlsx", str(tmp_path / "r2.xlsx"))
    unmatched_sheet = openpyxl.load_workbook(tmp_path / "r2.xlsx")["未匹配邮件"]
    assert [r[0].value for r in unmatched_sheet.iter_rows(min_row=2)] == [ad["id"]]


def test_a_second_delivery_is_in_no_queue_and_cannot_be_dismissed(campaign):
    advert = build_mail(from_=AD, subject="2023年度报刊征订通知（科技类）", body="订阅请回复本邮件。")
    campaign.deliver(advert, when=BEFORE)
    campaign.deliver(advert, when=BEFORE)
    campaign.ingest()
    (dup,) = [m for m in campaign.messages() if m["disposition"] == "duplicate"]
    res = campaign.run("dismiss", str(dup["id"]), "--note", "广告", expect=2)
    assert "is a duplicate message and is in no queue" in res.stderr
    assert len(campaign.run("unmatched", "--json").json) == 1


def test_reject_and_assign_also_close_the_queue_each_with_its_state(campaign, tmp_path):
    _advert(campaign)
    campaign.deliver(
        build_mail(
            from_="办公室 <office@example.org>",
            subject="材料",
            attachments=attach(make_report_docx(tmp_path / "r.docx", chars=800), names=["总结.docx"]),
        ),
        when=BEFORE,
    )
    campaign.ingest()
    ad, report = campaign.run("unmatched", "--json").json
    campaign.run("reject", str(ad["id"]), "--note", "与本次活动无关")
    campaign.run("assign", str(report["id"]), "sxu")
    assert campaign.run("unmatched", "--json").json == []
    states = {r["id"]: r["state"] for r in campaign.run("unmatched", "--all", "--json").json}
    assert states == {ad["id"]: "rejected", report["id"]: "assigned"}
    assert campaign.unit("sxu")["items"]["report"]["state"] == "ok"


def test_a_message_waiting_for_review_is_dismissed_out_of_review(campaign, tmp_path):
    campaign.configure(attribution={"named_senders": "review"})
    send(
        campaign,
        from_="王老师 <wang.laoshi@qq.com>",
        subject="长治市科学技术局科技活动周总结报告",
        files=attach(make_report_docx(tmp_path / "r.docx", chars=800), names=["总结报告.docx"]),
    )
    campaign.ingest()
    (waiting,) = campaign.run("review", "--json").json
    campaign.run("dismiss", waiting["message_id"], "--note", "推销培训课程")
    assert campaign.run("review", "--json").json == []
    assert campaign.unit("changzhi-kjj")["pending_review"] == []
    (row,) = campaign.run("unmatched", "--all", "--json").json
    assert row["state"] == "dismissed" and row["note"] == "推销培训课程"


def test_the_receipt_tells_the_unit_its_sheet_is_another_units(mailing, tmp_path):
    campaign, server = mailing
    sheet = make_sheet_xlsx(tmp_path / "sxas.xlsx", unit="山西省科学院")
    campaign.deliver(build_mail(attachments=attach(sheet, names=["统计表.xlsx"])))  # arrives now
    campaign.ingest()
    campaign.run("receipts", "--now", awake_now(), "--json")
    (mail,) = server.wait_for(1)
    assert mail.rcpt_tos == ["tykjj@taiyuan.gov.cn"]
    assert "统计表的填报单位是山西省科学院，不是本单位" in mail.text


def test_assigning_a_sheet_of_another_unit_settles_whose_it_is(campaign, tmp_path):
    sheet = make_sheet_xlsx(tmp_path / "sxas.xlsx", unit="山西省科学院")
    send(campaign, files=attach(sheet, names=["统计表.xlsx"]))
    campaign.ingest()
    (message,) = campaign.messages()
    assert campaign.unit("taiyuan-kjj")["items"]["statistics"]["state"] == "invalid"
    # it is 省科学院's sheet: assigned there, it counts for 省科学院 and 太原 has none
    campaign.run("assign", str(message["id"]), "sxas")
    rows = by_id(campaign.status())
    assert rows["sxas"]["items"]["statistics"]["state"] == "ok"
    assert rows["taiyuan-kjj"]["items"]["statistics"]["state"] == "missing"
    assert campaign.run("stats", "--json").json["excluded"] == []
    # staff say it is 太原's after all: it counts for 太原, with a warning naming the sheet's unit
    campaign.run("assign", str(message["id"]), "taiyuan-kjj")
    st = campaign.unit("taiyuan-kjj")["items"]["statistics"]
    assert st["state"] == "ok" and st["sheet_unit"] == "sxas"
    assert (
        "the sheet says 填报单位 山西省科学院 (sxas), but the mail came from 太原市科学技术局"
        in st["warnings"]
    )


def test_the_receipt_never_calls_another_units_sheet_fine(mailing, tmp_path):
    """The file line of a receipt for another unit's sheet says what the status says, not 合格."""
    campaign, server = mailing
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx", unit="太原市科学技术局")
    campaign.deliver(
        build_mail("山西大学科技处 <kjc@sxu.edu.cn>", attachments=[("统计表.xlsx", sheet.read_bytes())])
    )
    campaign.run("ingest", "--once")
    campaign.run("receipts")
    text = server.wait_for(1)[0].text
    assert "统计表.xlsx（统计表）：合格" not in text
    assert "统计表的填报单位是太原市科学技术局" in text
