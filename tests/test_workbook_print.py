"""The workbook on paper: `report --xlsx` of a 200-unit campaign printed by LibreOffice to PDF.

The leadership reads the workbook printed. Checked on the PDF's text boxes (poppler's
``pdftotext -bbox``): no text is drawn over another cell's text (row heights fit wrapped text),
every page of a sheet carries the unit names (the columns fit a landscape A4 page width, the
heading row is repeated), 200 units' 单位情况 take at most 8 pages, no text is smaller than 8 pt.

The 200 units' rows are built from real data, not by ingesting 200 messages (too slow for the
suite): a few units send real material through the pipeline, and the status rows it gives them
(complete, a video over the limit, a late sheet, a damaged file, exempt ...) are given in turn
to the other 188 units of a roster as long and varied as a province's."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.files import DEFAULT_FIGURES, convert, make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail
from pypdf import PdfReader
from test_workbook import printed_text_sizes

BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
AFTER = datetime(2022, 6, 27, 1, 0, tzinfo=UTC)
UNITS = 200
SHEETS = ("汇总", "进度", "单位情况", "收件明细", "统计汇总", "未匹配邮件")
CITIES = {
    "太原": "小店 迎泽 杏花岭 尖草坪 万柏林 晋源 清徐 阳曲 娄烦 古交",
    "大同": "平城 云冈 新荣 云州 阳高 天镇 广灵 灵丘 浑源 左云",
    "长治": "潞州 上党 屯留 潞城 襄垣 平顺 黎城 壶关 长子 武乡 沁县 沁源",
    "晋中": "榆次 太谷 榆社 左权 和顺 昔阳 寿阳 祁县 平遥 灵石 介休",
    "运城": "盐湖 临猗 万荣 闻喜 稷山 新绛 绛县 垣曲 夏县 平陆 芮城 永济 河津",
}
KINDS = [  # (name, category): as a province's roster has them
    ("{city}市{county}区科学技术局", "县区科技局"),
    ("{county}县科学技术和工业信息化局", "县区科技局"),
    ("{county}县科学技术协会", "县区科协"),
    ("中共{county}县委宣传部", "宣传部门"),
    ("{city}市{county}区教育科技局", "县区科技局"),
]


def _roster_lines() -> list[str]:
    places = [(city, county) for city, counties in CITIES.items() for county in counties.split()]
    lines = []
    for n in range(UNITS - 12):  # the sample roster has 12
        city, county = places[n % len(places)]
        kind, category = KINDS[(n + n // len(places)) % len(KINDS)]
        name = kind.format(city=city, county=county)
        lines.append(f"u{n:03d},{name},,u{n:03d}@unit.example.cn,{category},联系人,0351-{n:07d}")
    return lines


@pytest.fixture(scope="module")
def province(tmp_path_factory, media):
    """A 200-unit campaign: real material from eight units through the pipeline, and the workbook
    of 200 units whose rows repeat those eight units' rows. Returns (campaign, workbook path)."""
    from fixtures.campaign import Campaign

    root = tmp_path_factory.mktemp("province")
    c = Campaign.create(root)
    c.configure(attribution={"named_senders": "review"})
    with open(root / "roster.csv", "a", encoding="utf-8") as f:
        f.write("\n".join(_roster_lines()) + "\n")
    files = root / "made"
    files.mkdir()

    def send(from_, attachments, when=BEFORE, subject="科技活动周材料"):
        c.deliver(build_mail(from_=from_, subject=subject, attachments=attachments), when=when)

    sheet = make_sheet_xlsx(files / "a.xlsx").read_bytes()
    report = make_report_docx(files / "a.docx").read_bytes()
    send(
        "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
        [("统计表.xlsx", sheet), ("总结报告.docx", report), ("视频.mp4", media.video(60).read_bytes())],
    )
    sxu_sheet = make_sheet_xlsx(
        files / "b.xlsx",
        unit="山西大学",
        figures={**DEFAULT_FIGURES, "活动总数": 3, "线上活动": 1, "线下活动": 2},
    )
    send(
        "山西大学 <kjc@sxu.edu.cn>",
        [
            ("2022年科技活动周统计表（山西大学）.xlsx", sxu_sheet.read_bytes()),
            ("视频.mp4", media.video(200).read_bytes()),
        ],
        when=AFTER,
    )
    omit = make_sheet_xlsx(files / "c.xlsx", unit="大同市科学技术局", omit=["投入经费", "媒体报道"])
    send(
        "大同市科学技术局 <dtkjj2022@163.com>",
        [("统计表.xlsx", omit.read_bytes()), ("科技活动周视频（剪辑版）.mp4", media.fake_mp4.read_bytes())],
    )
    send("晋中市科学技术局 <jzkjj@sina.com>", [("总结报告.docx", report)])
    send(
        "长治市科学技术局 <someone@163.com>",
        [("总结报告.docx", report)],
        subject="长治市科学技术局科技活动周总结",
    )
    send("陌生人 <who@example.org>", [], subject="请问材料怎么报")
    c.run("ingest", "--once")
    c.run("exempt", "sxas", "--note", "本年度不参加科技活动周，经省科技厅同意")
    path = root / "报送情况.xlsx"
    _write_workbook(c, path)
    return c, path


def _write_workbook(c, path: Path) -> None:
    """The workbook of every roster unit, each given in turn the status of one of the units that
    sent something (the rest of each row, its id, name, category and addresses, stays its own)."""
    from ingest.db import open_connection
    from reconcile.report import build_tables, write_xlsx
    from reconcile.roster import load_roster
    from reconcile.stats import collect
    from reconcile.status_cache import refresh

    config = c.config()
    conn = open_connection(config.storage.db)
    rows = refresh(conn, load_roster(config.roster.path), config)
    sent = [r for r in rows if r["state"] != "missing" or r.get("exempt") or r.get("pending_review")]
    sent += [r for r in rows if r["state"] == "missing"][:3]
    own = ("id", "name", "category", "emails")
    wide = [{**sent[i % len(sent)], **{k: r[k] for k in own if k in r}} for i, r in enumerate(rows)]
    stats = collect(conn, rows, config)
    write_xlsx(build_tables(conn, wide, stats, config), path, config.campaign.name)


def _boxes(pdf: Path) -> list[list[tuple[float, float, float, float, str]]]:
    """Each page's words with their boxes (xMin, yMin, xMax, yMax, text), from pdftotext -bbox."""
    out = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = []
    for page in re.findall(r"<page [^>]*>(.*?)</page>", out, re.S):
        words = re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', page
        )
        pages.append([(float(a), float(b), float(c), float(d), html.unescape(t)) for a, b, c, d, t in words])
    return pages


def _overlaps(words) -> list[tuple[str, str]]:
    """Pairs of words drawn over each other: their boxes share more than a point across and more
    than a third of their height (a box is the font's full height: the lines of one wrapped cell
    touch by a tenth of it; text running into the next row's lies on its line)."""
    found = []
    words = sorted(words)
    for i, (x0, y0, x1, y1, t) in enumerate(words):
        for u0, v0, u1, v1, s in words[i + 1 :]:
            if u0 >= x1 - 1:
                break
            if min(y1, v1) - max(y0, v0) > min(y1 - y0, v1 - v0) / 3 and min(x1, u1) - max(x0, u0) > 1:
                found.append((t, s))
    return found


@pytest.mark.slow
def test_the_workbook_prints_legibly_on_landscape_a4(province, tmp_path, libreoffice):
    c, path = province
    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext (poppler-utils) is needed: make system-packages")
    pdf = convert(path, "pdf")
    reader = PdfReader(pdf)
    pages = _boxes(pdf)
    assert len(pages) == len(reader.pages)
    names = {r["name"] for r in c.status()}
    sheet_of_page = {}
    for n, page in enumerate(reader.pages, start=1):
        w, h = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(w), round(h)) in ((842, 595), (595, 842)), "A4"  # points
        text = page.extract_text()
        sheet_of_page[n] = next(s for s in SHEETS if f"周 {s}" in text)
    # no text over another's: every word's box is clear of every other word's
    for n, words in enumerate(pages, start=1):
        assert _overlaps(words) == [], f"page {n} ({sheet_of_page[n]}): text drawn over other text"
    # 单位情况: 200 units on at most 8 landscape pages
    assert 1 <= len([s for s in sheet_of_page.values() if s == "单位情况"]) <= 8
    # every page of the unit sheets: landscape, the heading row, all columns, the units' names
    last_heading = {"单位情况": "人工处理", "收件明细": "邮箱", "统计汇总": "逾期"}
    for n, sheet in sheet_of_page.items():
        if sheet not in last_heading:
            continue
        page = reader.pages[n - 1]
        assert float(page.mediabox.width) > float(page.mediabox.height), f"page {n}: landscape"
        words = "".join(t for *_, t in pages[n - 1])
        assert "单位名称" in words and last_heading[sheet] in words, f"page {n} ({sheet}): a column missing"
        assert any(name in words for name in names), f"page {n} ({sheet}): no unit names"
    small = [(p, round(size, 1), t) for p, size, t in printed_text_sizes(reader) if size < 8]
    assert small == [], "text printed smaller than 8 pt"
