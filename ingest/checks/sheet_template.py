"""The blank statistics form (and, for tests and the demo, a filled-in copy).

Layout, for both .xlsx and .docx::

    <title>
    填报单位 | ____          (one row per template header cell)
    指标 | 单位 | 数量 | 备注
    活动总数 | 项 | 12 |
    ...
    重点活动名称及简介 | <text>  (one row per template text row)

``write_xlsx(path, template)`` and ``write_docx(path, template)`` write the blank form;
``values`` (a :class:`FormValues`) fills it in. The sheet reader reads both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

TABLE_HEADER = ("指标", "单位", "数量", "备注")


@dataclass
class FormValues:
    """What a unit writes into the form. Figures may be numbers or text as typed ('1,234')."""

    header: dict[str, str] = field(default_factory=dict)  # 填报单位 -> 太原市科学技术局
    figures: dict[str, object] = field(default_factory=dict)  # 活动总数 -> 12
    text: dict[str, str] = field(default_factory=dict)  # 备注 -> ...
    labels: dict[str, str] = field(default_factory=dict)  # 活动总数 -> '1. 活 动 总 数（项）'
    omit: list[str] = field(default_factory=list)  # template labels left out
    extra_rows: list[tuple[str, str, object]] = field(default_factory=list)  # (label, unit, value)


def _title(template, title: str | None) -> str:
    return title or template.title


def _rows(template, values: FormValues | None):
    v = values or FormValues()
    for label, unit in template.fields:
        if label in v.omit:
            continue
        yield v.labels.get(label, label), unit, v.figures.get(label)
    for label, unit, value in v.extra_rows:
        yield label, unit, value


# long: the form drawn cell by cell, top to bottom, as it looks
def write_xlsx(
    path: str | Path,
    template,
    values: FormValues | None = None,
    title: str | None = None,
    sheet_name: str = "统计表",
) -> Path:
    """Write the form as .xlsx (宋体, borders, column widths, merged title and text cells)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.worksheet.worksheet import Worksheet

    v = values or FormValues()
    wb = Workbook()
    ws = cast(Worksheet, wb.active)  # a new workbook has one sheet
    ws.title = sheet_name
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    body = Font(name="宋体", size=11)
    bold = Font(name="黑体", size=11, bold=True)
    center = Alignment(horizontal="center", vertical="center", wrap_text=True)
    left = Alignment(horizontal="left", vertical="center", wrap_text=True)
    for col, width in zip("ABCD", (30, 10, 14, 24), strict=True):
        ws.column_dimensions[col].width = width

    ws.append([_title(template, title)])
    ws.merge_cells("A1:D1")
    ws["A1"].font = Font(name="黑体", size=16, bold=True)
    ws["A1"].alignment = center
    ws.row_dimensions[1].height = 32

    def styled(row: int, font=body, align=left, fill=None):
        for col in range(1, 5):
            cell = ws.cell(row=row, column=col)
            cell.border = border
            cell.font = font
            cell.alignment = align
            if fill:
                cell.fill = fill

    for label in template.header_cells:
        ws.append([label, v.header.get(label)])
        r = ws.max_row
        ws.merge_cells(start_row=r, start_column=2, end_row=r, end_column=4)
        styled(r)
        ws.cell(row=r, column=1).font = bold

    ws.append(list(TABLE_HEADER))
    styled(ws.max_row, bold, center, PatternFill("solid", fgColor="DDEBF7"))
    for label, unit, value in _rows(template, v):
        ws.append([label, unit, value, None])
        r = ws.max_row
        styled(r)
        ws.cell(row=r, column=2).alignment = center
        ws.cell(row=r, column=3).alignment = Alignment(horizontal="right", vertical="center")
    for label in template.text_rows:
        ws.append([label, v.text.get(label)])
        r = ws.max_row
        ws.merge_cells(start_row=r, start_column=2, end_row=r, end_column=4)
        styled(r)
        ws.cell(row=r, column=1).font = bold
        ws.row_dimensions[r].height = 60
    path = Path(path)
    wb.save(path)
    return path


# long: the form drawn row by row, top to bottom, as it looks
def write_docx(
    path: str | Path, template, values: FormValues | None = None, title: str | None = None
) -> Path:
    """Write the form as .docx: a centred title and one bordered table (as the notice's 附件)."""
    import docx
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    v = values or FormValues()
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.name = "宋体"
    style.font.size = Pt(11)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")

    heading = document.add_paragraph()
    heading.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = heading.add_run(_title(template, title))
    run.bold = True
    run.font.size = Pt(16)

    rows = list(_rows(template, v))
    n = len(template.header_cells) + 1 + len(rows) + len(template.text_rows)
    table = document.add_table(rows=n, cols=4)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    widths = (Cm(5.5), Cm(2.2), Cm(3), Cm(4.5))
    r = 0

    def put(row, col, text, bold_text=False):
        cell = table.cell(row, col)
        cell.text = "" if text is None else str(text)
        if bold_text:
            for run_ in cell.paragraphs[0].runs:
                run_.bold = True
        return cell

    for label in template.header_cells:
        put(r, 0, label, True)
        merged = table.cell(r, 1).merge(table.cell(r, 3))
        merged.text = v.header.get(label) or ""
        r += 1
    for col, text in enumerate(TABLE_HEADER):
        put(r, col, text, True).paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
    r += 1
    for label, unit, value in rows:
        put(r, 0, label)
        put(r, 1, unit).paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
        put(r, 2, value).paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
        r += 1
    for label in template.text_rows:
        put(r, 0, label, True)
        merged = table.cell(r, 1).merge(table.cell(r, 3))
        merged.text = v.text.get(label) or ""
        r += 1
    for row in table.rows:
        for cell, width in zip(row.cells, widths, strict=False):
            cell.width = width
    path = Path(path)
    document.save(str(path))
    return path
