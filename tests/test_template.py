"""The blank statistics form: written from the template, and read back by the sheet check."""

from __future__ import annotations

import docx
import openpyxl
from fixtures.files import DEFAULT_FIGURES, probe_file

from ingest.checks.sheet_template import TABLE_HEADER, FormValues, write_docx, write_xlsx
from ingest.config import SheetTemplate


def test_blank_xlsx_form_layout(tmp_path, sheet_template):
    path = write_xlsx(tmp_path / "统计表.xlsx", sheet_template, title="2022年山西省科技活动周开展情况统计表")
    ws = openpyxl.load_workbook(path).active
    assert ws["A1"].value == "2022年山西省科技活动周开展情况统计表"
    assert "A1:D1" in {str(r) for r in ws.merged_cells.ranges}
    column_a = [ws.cell(row=r, column=1).value for r in range(1, ws.max_row + 1)]
    for label in sheet_template.header_cells + sheet_template.labels + sheet_template.text_rows:
        assert label in column_a
    header_row = column_a.index("指标") + 1
    assert tuple(c.value for c in ws[header_row]) == TABLE_HEADER
    first = header_row + 1
    assert (ws.cell(first, 1).value, ws.cell(first, 2).value) == ("活动总数", "项")
    assert ws.cell(first, 1).border.left.style == "thin"
    assert ws.column_dimensions["A"].width >= 20


def test_blank_form_reads_as_all_empty(tmp_path, sheet_template):
    facts, error = probe_file(write_xlsx(tmp_path / "统计表.xlsx", sheet_template), "statistics")
    assert error is None
    assert facts["problems"] == {label: "empty" for label in sheet_template.labels}
    assert facts["unit_cell"] is None and facts["figures"] == {}


def test_filled_copies_read_back(tmp_path, sheet_template):
    values = FormValues(
        header={"填报单位": "晋中市科学技术局", "联系人": "刘洋", "联系电话": "0354-3033333"},
        figures=DEFAULT_FIGURES,
        text={"备注": "无"},
    )
    for writer, name in ((write_xlsx, "f.xlsx"), (write_docx, "f.docx")):
        facts, error = probe_file(writer(tmp_path / name, sheet_template, values), "statistics")
        assert error is None, name
        assert facts["unit_cell"] == "晋中市科学技术局", name
        assert facts["figures"] == DEFAULT_FIGURES, name
        assert facts["problems"] == {}, name
        assert facts["text"]["备注"] == "无", name


def test_blank_docx_form_layout(tmp_path, sheet_template):
    path = write_docx(tmp_path / "统计表.docx", sheet_template)
    document = docx.Document(path)
    assert document.paragraphs[0].text == sheet_template.title
    table = document.tables[0]
    texts = [row.cells[0].text for row in table.rows]
    assert texts[:3] == sheet_template.header_cells
    assert [c.text for c in table.rows[3].cells] == list(TABLE_HEADER)
    assert sheet_template.labels == texts[4 : 4 + len(sheet_template.labels)]
    assert table.style.name == "Table Grid"


def test_a_configured_template(tmp_path):
    template = SheetTemplate(
        fields=[("讲座场次", "场"), ("观众人数", "人")],
        header_cells=["单位名称"],
        text_rows=["说明"],
        sum_checks=[],
        title="科普讲座统计",
    )
    values = FormValues(header={"单位名称": "省科协"}, figures={"讲座场次": "6场", "观众人数": "1,200"})
    from fixtures.files import check_config

    config = check_config(
        sheet={
            "fields": [{"label": "讲座场次", "unit": "场"}, {"label": "观众人数", "unit": "人"}],
            "header_cells": ["单位名称"],
            "text_rows": ["说明"],
            "sum_checks": [],
        }
    )
    facts, error = probe_file(write_xlsx(tmp_path / "t.xlsx", template, values), "statistics", config=config)
    assert error is None
    assert facts["figures"] == {"讲座场次": 6, "观众人数": 1200}
    assert facts["unit_cell"] == "省科协"


def test_template_command_writes_both_forms_that_read_back(campaign):
    xlsx, docx_path = campaign.root / "form" / "统计表.xlsx", campaign.root / "form" / "统计表.docx"
    out = campaign.run("template", "--xlsx", str(xlsx), "--docx", str(docx_path)).output
    assert str(xlsx) in out and str(docx_path) in out
    ws = openpyxl.load_workbook(xlsx).active
    assert ws["A1"].value == "2022年山西省科技活动周开展情况统计表"
    assert docx.Document(docx_path).paragraphs[0].text == "2022年山西省科技活动周开展情况统计表"
    for path in (xlsx, docx_path):
        facts, error = probe_file(path, "statistics")
        assert error is None and set(facts["problems"]) == set(campaign.config().campaign.sheet.labels)


def test_template_command_needs_a_destination(campaign):
    res = campaign.run_process("template", expect=2)
    assert "--xlsx" in res.stderr
