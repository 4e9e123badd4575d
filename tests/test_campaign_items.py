"""Items as data: a campaign written as [[campaigns]] with its own items, labels and limits.

A fourth item (典型案例, a second document) added in the config appears in `status`, receipts,
reminders, the workbook and `template`, with no code change; an ``images`` item counts
different pictures; an optional item never makes a unit incomplete.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest
from fixtures.files import DEFAULT_FIGURES, make_png, make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail
from fixtures.two_campaigns import KJZ_TOML, KPR_TOML, use_two_campaigns
from PIL import Image

from ingest.config import ConfigError, load_config

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)

# Science Week (tests/fixtures/two_campaigns.py) with a fourth item
SCIENCE_WEEK_4 = (
    KJZ_TOML
    + """  [[campaigns.items]]
  id = "cases"
  label = "典型案例"
  kind = "document"
  keywords = ["案例"]
  min_text_chars = 100
"""
)


def files(*named: tuple[str, Path]) -> list[tuple[str, bytes]]:
    return [(n, Path(p).read_bytes()) for n, p in named]


def test_the_two_config_forms(campaign):
    old = campaign.config()
    assert [c.id for c in old.campaigns] == ["default"]
    assert old.campaign.item_ids == ("statistics", "report", "video")
    assert old.campaign.labels == {"statistics": "统计表", "report": "总结报告", "video": "视频"}
    campaign.use_campaigns(SCIENCE_WEEK_4)
    new = campaign.config()
    c = new.campaign
    assert c.id == "kjz2022" and c.item_ids == ("statistics", "report", "video", "cases")
    assert c.closes == datetime(2022, 7, 25, 23, 59, 59, tzinfo=c.deadline.tzinfo), "deadline + 30 days"
    assert c.item("cases").min_text_chars == 100 and c.item("video").label == "影像资料"
    assert new.roster.path == campaign.root / "roster.csv"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (SCIENCE_WEEK_4.replace('kind = "document"\n  keywords', 'kind = "slides"\n  keywords'), "kind"),
        (SCIENCE_WEEK_4.replace('id = "cases"', 'id = "report"'), "used by another item"),
        (SCIENCE_WEEK_4 + SCIENCE_WEEK_4, "used by another campaign"),
        (SCIENCE_WEEK_4.replace('id = "kjz2022"', 'id = "kjz 2022"'), "command line"),
        (SCIENCE_WEEK_4.replace("min_text_chars = 100", "min_chars = 100"), "min_chars"),
    ],
)
def test_campaign_mistakes_are_named(campaign, text, says):
    campaign.use_campaigns(text)
    with pytest.raises(ConfigError, match=says):
        load_config(campaign.config_path)


def test_both_forms_at_once_is_an_error(campaign):
    campaign.extra_toml = SCIENCE_WEEK_4
    campaign.configure()
    with pytest.raises(ConfigError, match="either"):
        load_config(campaign.config_path)


@pytest.fixture
def four_items(campaign, smtp_server, tmp_path, media):
    campaign.configure(smtp=smtp_server.config())
    campaign.use_campaigns(SCIENCE_WEEK_4)
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx")
    report = make_report_docx(tmp_path / "总结报告.docx", chars=800)
    cases = make_report_docx(tmp_path / "案例.docx", chars=40)
    campaign.deliver(
        build_mail(
            TY,
            subject="太原市科技活动周材料",
            attachments=files(
                ("统计表.xlsx", sheet),
                ("2022科技周总结报告.docx", report),
                ("科技周视频.mp4", media.video(60)),
                ("典型案例：科普大篷车.docx", cases),
            ),
        ),
        when=BEFORE,
    )
    campaign.run("ingest", "--once")
    return campaign


def test_a_fourth_item_is_judged_shown_and_mailed(four_items, tmp_path):
    campaign = four_items
    rows = {r["id"]: r for r in campaign.run("status", "--json").json}
    ty = rows["taiyuan-kjj"]
    assert list(ty["items"]) == ["statistics", "report", "video", "cases"]
    assert [ty["items"][i]["state"] for i in ("statistics", "report", "video")] == ["ok"] * 3
    cases = ty["items"]["cases"]
    assert cases["state"] == "invalid" and "at least 100 expected" in cases["reason"]
    assert cases["filename"] == "典型案例：科普大篷车.docx"
    assert ty["items"]["report"]["filename"] == "2022科技周总结报告.docx", "the report is not the case"
    assert ty["state"] == "incomplete"
    assert "cases" in campaign.run("status").output
    assert "cases (典型案例): invalid" in campaign.run("show", "taiyuan-kjj").output
    # staff decisions take the new item id
    campaign.run("reject", "taiyuan-kjj", "cases", "--note", "太短")
    assert campaign.run("status", "--json", "--invalid", "cases").json[0]["id"] == "taiyuan-kjj"
    assert campaign.run("accept", "taiyuan-kjj", "slides", expect=2).exit_code == 2

    out = campaign.run("receipts", "--now", "2022-06-20T10:45:00+08:00", "--dry-run", "--show").output
    assert "典型案例：科普大篷车.docx（典型案例）：有问题 —— " in out
    assert "· 典型案例：已收到，但不合格" in out and "· 影像资料：已收到（科技周视频.mp4），合格" in out
    assert "还需要：典型案例。" in out

    reminders = campaign.run(
        "remind", "--now", "2022-06-23T10:00:00+08:00", "--dry-run", "--show", "--json"
    ).json
    ty_reminder = next(r for r in reminders if r["unit"] == "taiyuan-kjj")
    assert ty_reminder["invalid"] == ["cases"] and "典型案例：工作人员认定不合格：太短" in ty_reminder["body"]
    other = next(r for r in reminders if r["unit"] != "taiyuan-kjj")
    assert other["missing"] == ["statistics", "report", "video", "cases"]
    assert "  · 典型案例\n" in other["body"] and "  · 影像资料\n" in other["body"]

    book = tmp_path / "book.xlsx"
    campaign.run("report", "--xlsx", str(book))
    ws = openpyxl.load_workbook(book)["单位情况"]
    header = [c.value for c in ws[1]]
    assert {"典型案例", "典型案例说明", "影像资料"} <= set(header)
    assert "典型案例收到时间" in [c.value for c in openpyxl.load_workbook(book)["收件明细"][1]]
    row = next(r for r in ws.iter_rows(values_only=True) if r[1] == "taiyuan-kjj")
    assert row[header.index("典型案例")] == "不合格"
    summary = [r[0] for r in openpyxl.load_workbook(book)["汇总"].iter_rows(values_only=True)]
    assert "典型案例" in summary

    out = campaign.run("template", "--xlsx", str(tmp_path / "form.xlsx")).output
    assert "典型案例 (cases)" in out


KPR_PHOTOS = """
[[campaigns]]
id = "kpr2022"
name = "2022年全国科普日"
deadline = "2022-09-30T23:59:59+08:00"
roster = "roster.csv"
  [[campaigns.items]]
  id = "report"
  label = "活动总结"
  kind = "document"
  formats = ["pdf", "docx"]
  [[campaigns.items]]
  id = "photos"
  label = "活动照片"
  kind = "images"
  min_count = 3
  formats = ["jpg", "png"]
  [[campaigns.items]]
  id = "video"
  label = "视频"
  kind = "video"
  required = false
"""


def signed_mail(from_: str, subject: str, logo: bytes, attachments=()) -> EmailMessage:
    """An HTML mail whose signature shows a logo (an inline Content-ID picture), as Foxmail and
    the web mailers send it."""
    msg = build_mail(from_, subject=subject, attachments=attachments)
    html = '<p>您好，材料见附件。</p><p>--<br><img src="cid:logo@sxu">山西大学科技处</p>'
    body = msg.get_body(("plain",))
    body.add_alternative(html, subtype="html")
    body.get_payload()[1].add_related(
        logo, "image", "png", cid="<logo@sxu>", filename="logo.png", disposition="inline"
    )
    return msg


# long: one campaign's life told in order: pictures counted, formats refused, decorations left out
def test_images_item_counts_different_photos_in_accepted_formats_and_optional_items_do_not_block(
    campaign, tmp_path
):
    campaign.use_campaigns(KPR_PHOTOS)
    report = make_report_docx(tmp_path / "总结.docx", chars=800)
    pngs = [make_png(tmp_path / f"{n}.png", width=400 + n, height=300) for n in range(3)]
    gif = tmp_path / "5.gif"
    Image.new("RGB", (400, 300), (200, 60, 40)).save(gif, "GIF")
    logo = make_png(tmp_path / "logo.png", width=300, height=100).read_bytes()  # in the text: a logo
    icon = make_png(tmp_path / "icon.png", width=32, height=32)
    when = datetime(2022, 9, 20, 2, 0, tzinfo=UTC)
    campaign.deliver(
        signed_mail(
            TY,
            "科普日总结",
            logo,
            files(("总结.docx", report), ("1.png", pngs[0]), ("5.gif", gif), ("i.png", icon)),
        ),
        when=when,
    )
    # the same picture again under another name does not count twice
    campaign.deliver(build_mail(TY, subject="照片", attachments=files(("2.png", pngs[0]))), when=when)
    # only a signature: nothing for the campaign (a unit's question is not material)
    campaign.deliver(signed_mail("山西大学科技处 <kjc@sxu.edu.cn>", "请问截止时间", logo), when=when)
    campaign.run("ingest", "--once")
    ty = {r["id"]: r for r in campaign.status()}["taiyuan-kjj"]
    photos = ty["items"]["photos"]
    assert photos["state"] == "invalid" and photos["count"] == 1, photos
    assert photos["reason"] == (
        "1 different picture received, at least 3 expected; not counted, not in an accepted format "
        "(jpeg, png): 5.gif (gif)"
    )
    assert photos["reason_zh"].startswith("只收到1张不同的图片，至少需要3张；以下图片格式不符合要求")
    assert ty["items"]["report"]["state"] == "ok"
    question = next(m for m in campaign.messages() if m["subject"] == "请问截止时间")
    assert question["disposition"] == "other", "a signature's logo is not a photo sent"
    assert campaign.unit("sxu")["state"] == "missing"
    campaign.deliver(
        build_mail(TY, subject="照片", attachments=files(("3.png", pngs[1]), ("4.png", pngs[2]))), when=when
    )
    campaign.run("ingest", "--once")
    ty = campaign.unit("taiyuan-kjj")
    assert ty["items"]["photos"]["state"] == "ok" and ty["items"]["video"]["state"] == "missing"
    assert ty["state"] == "complete", "an optional item that is missing does not make the unit incomplete"
    out = campaign.run("template", "--xlsx", str(tmp_path / "f.xlsx"), expect=2)
    assert "no statistics sheet" in out.output + out.stderr
    # ingest recorded the facts; the accepted formats are a judgement, changed in the config alone
    campaign.use_campaigns(KPR_PHOTOS.replace('formats = ["pdf", "docx"]', 'formats = ["pdf"]'))
    report_now = campaign.unit("taiyuan-kjj")["items"]["report"]
    assert report_now["state"] == "invalid"
    assert report_now["reason"] == "the 活动总结 is a docx file: only pdf accepted"
    assert report_now["reason_zh"].startswith("活动总结为docx格式，仅接受pdf格式")
    bad = KPR_PHOTOS.replace('formats = ["pdf", "docx"]', 'formats = ["pdf", "pages"]')
    campaign.use_campaigns(bad)
    res = campaign.run("status", expect=2)
    assert "formats names pages" in res.output + res.stderr


def test_the_example_config_shows_both_forms(tmp_path):
    """config.example.toml loads as it is ([campaign]) and with its [[campaigns]] block instead."""
    import re

    text = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text("utf-8")
    old = load_config(Path(__file__).resolve().parents[1] / "config.example.toml")
    assert old.campaign_ids == ["default"] and not old.scoped
    head, block = text.split("# ---- several campaigns", 1)
    block = block[block.index("# [[campaigns]]") :]
    # drop [campaign], [campaign.*] and [roster] with their lines, uncomment the block
    kept = re.sub(r"(?ms)^\[(campaign(\.\w+)?|roster)\]\n.*?(?=^\[|\Z)", "", head)
    listed = "\n".join(line[2:] for line in block.splitlines() if line.startswith("# "))
    (tmp_path / "config.toml").write_text(kept + "\n" + listed + "\n", "utf-8")
    (tmp_path / "notice_kjz.txt").write_text("各有关单位：", "utf-8")
    new = load_config(tmp_path / "config.toml")
    assert new.scoped and new.campaign_ids == ["kjz2022", "kpr2022"]
    kjz, kpr = new.campaigns
    assert kjz.item_ids == ("statistics", "report", "video", "cases") and not kjz.item("cases").required
    assert kjz.item("statistics").said == "开展情况统计表" and kjz.notice == tmp_path / "notice_kjz.txt"
    assert kpr.item("photos").min_count == 3 and kpr.opens.isoformat() == "2022-09-01T00:00:00+08:00"
    assert kjz.item("report").formats == ("docx", "pdf")
    assert kpr.item("photos").formats == ("jpeg", "png", "heic"), "jpg is written as ingest records it"


# a statistics form of its own for 科普日 (two rows, no sums), after its report and photos
KPR_SHEET_ITEM = """  [[campaigns.items]]
  id = "figures"
  label = "科普日统计表"
  kind = "sheet"
  title = "全国科普日活动统计表"
  fields = [{label = "活动场次", unit = "场"}, {label = "受众人数", unit = "万人次"}]
  sum_checks = []
"""


def test_each_campaign_judges_a_sheet_by_its_own_form(campaign, tmp_path):
    """Ingest reads a sheet before it knows the campaign, so it records every campaign's rows;
    each campaign then judges (and adds up) only its own: the 科普日 form is not a Science Week
    form with 13 rows missing, nor the other way round."""
    from ingest.campaigns import SheetTemplate

    use_two_campaigns(campaign, kpr=KPR_TOML + KPR_SHEET_ITEM)
    kpr_form = SheetTemplate(fields=[("活动场次", "场"), ("受众人数", "万人次")], sum_checks=[])
    kpr = make_sheet_xlsx(tmp_path / "kpr.xlsx", figures={"活动场次": 12, "受众人数": 3.5}, template=kpr_form)
    # Science Week's sheet, with a sum that does not add up (a warning for that campaign only)
    kjz = make_sheet_xlsx(tmp_path / "kjz.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 999})
    campaign.deliver(
        build_mail(TY, subject="科普日统计表", attachments=files(("科普日.xlsx", kpr))), when=BEFORE
    )
    campaign.deliver(
        build_mail(TY, subject="科技活动周统计表", attachments=files(("统计表.xlsx", kjz))), when=BEFORE
    )
    campaign.run("ingest", "--once")
    kpr_rows = {r["id"]: r for r in campaign.run("--campaign", "kpr2022", "status", "--json").json}
    sheet = kpr_rows["taiyuan-kjj"]["items"]["figures"]
    assert (sheet["state"], sheet["reason"], sheet["warnings"]) == ("ok", None, [])
    stats = campaign.run("--campaign", "kpr2022", "stats", "--json").json
    assert stats["fields"] == {"活动场次": 12, "受众人数": 3.5}
    kjz_rows = {r["id"]: r for r in campaign.run("--campaign", "kjz2022", "status", "--json").json}
    week = kjz_rows["taiyuan-kjj"]["items"]["statistics"]
    assert week["state"] == "ok" and any("but 活动总数 is 999" in w for w in week["warnings"])
