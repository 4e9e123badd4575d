"""The statistics sheet check on real .xlsx/.xls/.docx files, as units fill them in."""

from __future__ import annotations

import zipfile
from functools import partial
from pathlib import Path

import olefile
import pytest
from fixtures.files import (
    DEFAULT_FIGURES,
    check_config,
    encrypt_office,
    make_sheet_docx,
    make_sheet_xls,
    make_sheet_xlsx,
    probe_file,
    probed,
)

from ingest.checks.labels import NotANumber, normalize_label, parse_figure

read = partial(probed, kind="statistics")


# ----------------------------------------------------------------------------- labels, numbers


@pytest.mark.parametrize(
    "written",
    [
        "线上活动",
        " 线 上 活 动 ",
        "线\u3000上\u3000活动",
        "其中：线上活动",
        "其中:线上活动（项）",
        "线上活动(项)",
        "线上活动[项]",
        "线上活动：",
        "1.线上活动",
        "（一）线上活动",
        "2、线上活动",
        "一、线上活动",
        "（1）线上活动（项）：",
        "①线上活动",
    ],
)
def test_label_variants_normalise_to_the_template_label(written):
    assert normalize_label(written) == "线上活动"


@pytest.mark.parametrize(
    "raw, unit, expected",
    [
        ("1,234", "项", 1234),
        ("1，234", "项", 1234),
        ("118项", "项", 118),
        ("约20", "场", 20),
        ("１２", "项", 12),
        ("3.5万", "万人次", 3.5),
        ("35000人次", "万人次", 3.5),
        ("3.5万人次", "万人次", 3.5),
        ("3.5", "万人次", 3.5),
        ("3.5万", "人次", 35000),
        ("20余场", "场", 20),
        (" 7 ", "项", 7),
        ("-3", "项", -3),
        (12.0, "项", 12),
        (2.5, "万元", 2.5),
    ],
)
def test_figures_typed_as_text(raw, unit, expected):
    assert parse_figure(raw, unit) == expected


@pytest.mark.parametrize("raw", ["", "-", "—", " ", None, "无"])
def test_empty_marks(raw):
    assert parse_figure(raw, "项") is None


@pytest.mark.parametrize("raw", ["abc", "很多", "12（线上5）", "1.2.3"])
def test_not_numbers(raw):
    with pytest.raises(NotANumber):
        parse_figure(raw, "项")


# ----------------------------------------------------------------------------- xlsx


def test_filled_form_is_read_completely(tmp_path):
    facts = read(make_sheet_xlsx(tmp_path / "统计表.xlsx"))
    assert facts["format"] == "xlsx"
    assert facts["unit_cell"] == "太原市科学技术局"
    assert facts["contact"] == "王晓明" and facts["phone"] == "0351-4060103"
    assert facts["figures"] == DEFAULT_FIGURES
    assert facts["problems"] == {} and facts["warnings"] == []
    assert facts["text"]["重点活动名称及简介"].startswith("科技活动周启动仪式")


def test_labels_written_differently_and_text_figures(tmp_path):
    path = make_sheet_xlsx(
        tmp_path / "s.xlsx",
        figures={
            **DEFAULT_FIGURES,
            "线上活动": "5项",
            "参与人数": "3.5万",
            "线上参与": "21000人次",
            "线下参与": "1.4",
            "参与科技人员": "８６０",
            "媒体报道": "约37",
        },
        labels={
            "活动总数": "1. 活 动 总 数（项）",
            "线上活动": "其中：线上活动",
            "线下活动": "　　线下活动(项)",
            "参与人数": "参与人数（万人次）",
            "线上参与": "其中:线上参与[万人次]",
        },
    )
    facts = read(path)
    assert facts["problems"] == {}
    assert facts["figures"]["活动总数"] == 12
    assert facts["figures"]["线上活动"] == 5
    assert facts["figures"]["参与人数"] == 3.5
    assert facts["figures"]["线上参与"] == 2.1
    assert facts["figures"]["参与科技人员"] == 860
    assert facts["figures"]["媒体报道"] == 37
    assert facts["raw"]["参与人数"] == "3.5万"
    assert facts["warnings"] == []


def test_missing_empty_negative_and_wrong_figures(tmp_path):
    path = make_sheet_xlsx(
        tmp_path / "s.xlsx",
        figures={**DEFAULT_FIGURES, "科普讲座": None, "科普展览": "abc", "投入经费": -3, "发放科普资料": "-"},
        omit=["媒体报道"],
    )
    facts = read(path)
    assert facts["problems"] == {
        "科普讲座": "empty",
        "科普展览": "not a number: 'abc'",
        "发放科普资料": "empty",
        "媒体报道": "not found",
    }
    assert facts["figures"]["投入经费"] == -3  # kept: the judge flags negative figures


def test_extra_rows_and_rows_in_another_order_do_not_matter(tmp_path):
    figures = dict(reversed(list(DEFAULT_FIGURES.items())))
    path = make_sheet_xlsx(
        tmp_path / "s.xlsx",
        figures=figures,
        extra_rows=[("其他活动", "项", 3), ("科普讲座（补充）", "场", 99)],
    )
    facts = read(path)
    assert facts["figures"]["科普讲座"] == 24
    assert facts["problems"] == {}


def test_rows_shifted_down_and_right(tmp_path):
    """A unit inserts rows above the table and a column before it: labels still find the figures."""
    import openpyxl

    path = make_sheet_xlsx(tmp_path / "s.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    ws.unmerge_cells("A1:D1")
    for rng in list(ws.merged_cells.ranges):
        ws.unmerge_cells(str(rng))
    ws.insert_rows(1, 3)
    ws.insert_cols(1)
    ws["A1"] = "附件"
    wb.save(path)
    facts = read(path)
    assert facts["figures"] == DEFAULT_FIGURES
    assert facts["unit_cell"] == "太原市科学技术局"


def test_sum_mismatch_is_a_warning_not_a_problem(tmp_path):
    facts = read(make_sheet_xlsx(tmp_path / "s.xlsx", figures={**DEFAULT_FIGURES, "线上活动": 4}))
    assert facts["warnings"] == ["线上活动 + 线下活动 = 11, but 活动总数 is 12"]
    assert facts["problems"] == {}


def test_formula_cells_give_their_cached_value(tmp_path):
    # 活动总数 is row 6, 线上活动 row 7, 线下活动 row 8 in the form
    path = make_sheet_xlsx(tmp_path / "s.xlsx", formulas={"活动总数": ("=C7+C8", 12)})
    assert "<f>C7+C8</f>" in zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    facts = read(path)
    assert facts["figures"]["活动总数"] == 12


def test_header_cells_inline_after_colon(tmp_path):
    import openpyxl

    path = make_sheet_xlsx(tmp_path / "s.xlsx", unit=None, contact=None, phone=None)
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    ws.insert_rows(2)
    ws["A2"] = "填报单位：太原市科技局　　联系人：李娜　 联系电话：13803510000"
    wb.save(path)
    facts = read(path)
    assert (facts["unit_cell"], facts["contact"], facts["phone"]) == ("太原市科技局", "李娜", "13803510000")


def test_figure_written_next_to_the_label_in_one_cell(tmp_path):
    import openpyxl

    path = make_sheet_xlsx(tmp_path / "s.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for row in ws.iter_rows(min_row=6):
        if row[0].value == "媒体报道":
            row[0].value, row[2].value = "媒体报道：40篇", None
    wb.save(path)
    assert read(path)["figures"]["媒体报道"] == 40


def test_merged_value_cells(tmp_path):
    """Values in cells merged across the 数量 and 备注 columns are read."""
    import openpyxl

    path = make_sheet_xlsx(tmp_path / "s.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for r in range(6, 6 + len(DEFAULT_FIGURES)):
        ws.merge_cells(start_row=r, start_column=3, end_row=r, end_column=4)
    ws.merge_cells("A6:A6")
    wb.save(path)
    assert read(path)["figures"] == DEFAULT_FIGURES


def test_no_quantity_header_takes_first_number_right_of_label(tmp_path):
    import openpyxl

    path = make_sheet_xlsx(tmp_path / "s.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    ws["C5"] = None  # the '数量' header cell is gone
    wb.save(path)
    assert read(path)["figures"] == DEFAULT_FIGURES


def test_the_form_is_found_on_a_later_sheet(tmp_path):
    import openpyxl

    path = make_sheet_xlsx(tmp_path / "s.xlsx")
    wb = openpyxl.load_workbook(path)
    notes = wb.create_sheet("说明", 0)
    notes["A1"] = "填表说明：请如实填写"
    notes["A2"] = "活动总数"
    wb.save(path)
    facts = read(path)
    assert facts["sheet"] == "统计表"
    assert facts["figures"] == DEFAULT_FIGURES


def test_a_sheet_that_is_not_the_form(tmp_path):
    import openpyxl

    path = tmp_path / "名单.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["姓名", "电话"])
    wb.active.append(["张三", "13800000000"])
    wb.save(path)
    facts = read(path)
    assert set(facts["problems"].values()) == {"not found"}
    assert "none of the form's rows were found" in facts["warnings"][-1]


def test_macros_are_read_with_a_warning(tmp_path):
    facts = read(make_sheet_xlsx(tmp_path / "s.xlsm", macros=True))
    assert facts["figures"] == DEFAULT_FIGURES
    assert any("macros" in w for w in facts["warnings"])


def test_a_renamed_xlsx_is_read_by_content(tmp_path):
    path = make_sheet_xlsx(tmp_path / "s.xlsx").rename(tmp_path / "统计表.xls")
    facts = read(path)
    assert facts["format"] == "xlsx" and facts["figures"] == DEFAULT_FIGURES


# ----------------------------------------------------------------------------- broken and hostile


def test_zip_posing_as_a_sheet(tmp_path):
    path = tmp_path / "统计表.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("统计表.txt", "活动总数 12")
    facts, error = probe_file(path, "statistics")
    assert facts is None
    assert error == "not a spreadsheet: the file is a zip archive without a workbook"


def test_truncated_xlsx(tmp_path):
    good = make_sheet_xlsx(tmp_path / "g.xlsx").read_bytes()
    path = tmp_path / "统计表.xlsx"
    path.write_bytes(good[: len(good) // 2])
    facts, error = probe_file(path, "statistics")
    assert facts is None and "cannot be opened" in error


def test_empty_file(tmp_path):
    path = tmp_path / "统计表.xlsx"
    path.write_bytes(b"")
    assert probe_file(path, "statistics") == (None, "the file is empty (0 bytes)")


def test_password_protected_xlsx(tmp_path):
    path = encrypt_office(make_sheet_xlsx(tmp_path / "plain.xlsx"), tmp_path / "统计表.xlsx", "secret")
    with olefile.OleFileIO(str(path)) as ole:  # as Excel writes it: an OLE file around the package
        assert ole.exists("EncryptedPackage")
    facts, error = probe_file(path, "statistics")
    assert facts is None and error == "the sheet is password-protected"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def rewrite_member(src: Path, dst: Path, member: str, change) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == member:
                data = change(data.decode("utf-8")).encode("utf-8")
            zout.writestr(info, data)
    return dst


def _bomb(xml: str) -> str:
    import re

    body = re.sub(r"^<\?xml[^>]*\?>\s*", "", xml)
    body = body.replace("王晓明", "&lol9;")
    body = re.sub(r'(<c r="B3"[^>]*><is><t>)[^<]*(</t>)', r"\1&lol9;\2", body)
    return BILLION_LAUGHS + body


@pytest.mark.parametrize("kind", ["xlsx", "docx"])
def test_billion_laughs_is_refused(tmp_path, kind):
    if kind == "xlsx":
        src, member = make_sheet_xlsx(tmp_path / "g.xlsx"), "xl/worksheets/sheet1.xml"
    else:
        src, member = make_sheet_docx(tmp_path / "g.docx"), "word/document.xml"
    path = rewrite_member(src, tmp_path / f"统计表.{kind}", member, _bomb)
    assert "&lol9;" in zipfile.ZipFile(path).read(member).decode()
    facts, error = probe_file(path, "statistics")
    assert facts is None and "XML bomb" in error  # refused before a single entity is expanded


def test_huge_uncompressed_xml_is_refused_before_parsing(tmp_path):
    src = make_sheet_xlsx(tmp_path / "g.xlsx")
    path = rewrite_member(
        src,
        tmp_path / "big.xlsx",
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace("</worksheet>", "<!--" + " " * 3_000_000 + "--></worksheet>"),
    )
    facts, error = probe_file(
        path, "statistics", config=check_config(limits={"max_sheet_xml_bytes": 1_000_000})
    )
    assert facts is None and error.startswith("the sheet is too large to read")


# ----------------------------------------------------------------------------- docx, xls


def test_docx_form_table(tmp_path):
    path = make_sheet_docx(
        tmp_path / "统计表.docx",
        figures={**DEFAULT_FIGURES, "参与人数": "3.5万", "科普展览": ""},
        labels={"线上活动": "其中：线上活动"},
    )
    facts = read(path)
    assert facts["format"] == "docx"
    assert facts["unit_cell"] == "太原市科学技术局" and facts["phone"] == "0351-4060103"
    assert facts["figures"]["参与人数"] == 3.5 and facts["figures"]["线上活动"] == 5
    assert facts["problems"] == {"科普展览": "empty"}


def test_docx_header_written_above_the_table(tmp_path):
    import docx

    path = make_sheet_docx(tmp_path / "统计表.docx", unit=None, contact=None, phone=None)
    document = docx.Document(path)
    document.paragraphs[0].insert_paragraph_before("填报单位（盖章）：大同市科学技术局    联系人：赵敏")
    document.save(path)
    facts = read(path)
    assert facts["unit_cell"] == "大同市科学技术局" and facts["contact"] == "赵敏"
    assert facts["figures"] == DEFAULT_FIGURES


def test_xls_made_by_libreoffice(tmp_path, libreoffice):
    path = make_sheet_xls(tmp_path / "统计表.xls", figures={**DEFAULT_FIGURES, "线上活动": "5项"})
    assert path.read_bytes()[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    facts = read(path)
    assert facts["format"] == "xls"
    assert facts["figures"] == DEFAULT_FIGURES
    assert facts["unit_cell"] == "太原市科学技术局"


def test_doc_form_through_libreoffice(media, libreoffice):
    facts = read(media.sheet_doc)
    assert facts["format"] == "doc" and facts["figures"] == DEFAULT_FIGURES


def test_wps_without_libreoffice_asks_for_xlsx(tmp_path, monkeypatch, media, libreoffice):
    import shutil

    from ingest.checks import common

    path = tmp_path / "统计表.wps"  # WPS writes Word-compatible files
    shutil.copyfile(media.sheet_doc, path)
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    facts, error = probe_file(path, "statistics")
    assert facts is None
    assert error == "cannot read a .wps sheet without LibreOffice: please send it as .xlsx or .docx"


def test_wps_et_sheet_is_read_like_xls(tmp_path, libreoffice):
    path = make_sheet_xls(tmp_path / "统计表.xls").rename(tmp_path / "统计表.et")
    facts = read(path)
    assert facts["format"] == "et" and facts["figures"] == DEFAULT_FIGURES


def test_stored_files_without_extension(tmp_path, media, libreoffice):
    """The store keeps files as files/ab/cd/<sha256>: the name comes from the part, not the path."""
    import shutil

    for name, src in (
        ("统计表.xlsx", media.sheet_xlsx),
        ("统计表.docx", media.sheet_docx),
        ("统计表.doc", media.sheet_doc),
    ):
        stored = tmp_path / ("0" * 64)
        shutil.copyfile(src, stored)
        facts, error = probe_file(stored, "statistics", filename=name)
        assert error is None, (name, error)
        assert facts["figures"] == DEFAULT_FIGURES, name


def test_horizontal_form_with_labels_heading_the_columns(tmp_path):
    """填报单位 | 活动总数（项） | 线上活动 | ... with the figures on the row below (or in a 合计 row)."""
    import openpyxl

    labels = list(DEFAULT_FIGURES)
    path = tmp_path / "横表.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["2022年科技活动周开展情况统计表"])
    ws.append(["填报单位"] + [f"{label}" for label in labels])
    ws.append([None] + ["（项）"] * len(labels))
    ws.append(["太原市科学技术局"] + [DEFAULT_FIGURES[label] for label in labels])
    wb.save(path)
    facts = read(path)
    assert facts["figures"] == DEFAULT_FIGURES and facts["problems"] == {}
    assert facts["unit_cell"] == "太原市科学技术局"

    ws.delete_rows(4)
    ws.append(["小店区"] + [1] * len(labels))
    ws.append(["迎泽区"] + [2] * len(labels))
    ws.append(["合计"] + [DEFAULT_FIGURES[label] for label in labels])
    wb.save(path)
    assert read(path)["figures"] == DEFAULT_FIGURES


def test_formula_never_calculated_is_named_as_such(tmp_path):
    """openpyxl (and other programs) write formulas without a value; Excel would show one."""
    path = make_sheet_xlsx(tmp_path / "s.xlsx", figures={**DEFAULT_FIGURES, "活动总数": "=C7+C8"})
    facts = read(path)
    assert facts["problems"] == {
        "活动总数": "a formula (=C7+C8) without a saved value: open the file in Excel or WPS and save it again"
    }


def test_formula_calculated_by_libreoffice(tmp_path, libreoffice):
    """The same sheet after a spreadsheet program saved it: the calculated value is read."""
    from fixtures.files import convert

    src = make_sheet_xlsx(tmp_path / "s.xlsx", figures={**DEFAULT_FIGURES, "活动总数": "=C7+C8"})
    saved = convert(src, "xlsx", "Calc MS Excel 2007 XML")  # opened and saved again
    assert saved == src
    assert read(saved)["figures"]["活动总数"] == 12


def test_docx_notes_do_not_shadow_the_table(tmp_path):
    import docx

    path = make_sheet_docx(tmp_path / "统计表.docx")
    document = docx.Document(path)
    document.add_paragraph("填表说明：")
    document.add_paragraph("活动总数：指线上活动与线下活动之和。")
    document.save(path)
    facts = read(path)
    assert facts["figures"] == DEFAULT_FIGURES and facts["problems"] == {}


def test_plain_big_number_in_a_wan_row_gets_a_hint(tmp_path):
    facts = read(
        make_sheet_xlsx(
            tmp_path / "s.xlsx", figures={**DEFAULT_FIGURES, "发放科普资料": 12000, "投入经费": "45800元"}
        )
    )
    assert facts["figures"]["发放科普资料"] == 12000  # recorded as written
    assert facts["figures"]["投入经费"] == 4.58  # the unit was written: converted
    assert "发放科普资料 is 12000 万份: if 12000 份 was meant, write 1.2" in facts["warnings"]
    assert not any("投入经费" in w for w in facts["warnings"])
