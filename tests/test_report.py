"""The report check on real .docx/.pdf/.doc files."""

from __future__ import annotations

from functools import partial

import docx
import pytest
from fixtures.files import (
    encrypt_office,
    make_report_docx,
    make_report_pdf,
    probe_file,
    probed,
    report_text,
)

read = partial(probed, kind="report")


def test_docx_counts_text_without_whitespace(tmp_path):
    facts = read(make_report_docx(tmp_path / "总结.docx", text="科技 活动周\n总结　报告\t完"))
    # heading '2022年山西省科技活动周总结报告' (17) + 科技活动周总结报告完 (10)
    assert facts["text_chars"] == 17 + 10
    assert facts["format"] == "docx" and facts["encrypted"] is False and facts["scanned"] is False


def test_docx_text_in_tables_counts(tmp_path):
    path = make_report_docx(tmp_path / "r.docx", text="")
    document = docx.Document(path)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "启动仪式"
    table.cell(0, 1).text = "五月二十一日"
    document.save(path)
    assert read(path)["text_chars"] == 17 + 4 + 6


def test_docx_long_report(tmp_path):
    assert read(make_report_docx(tmp_path / "r.docx", chars=800))["text_chars"] == 800


def test_pdf_with_text_layer(tmp_path):
    facts = read(make_report_pdf(tmp_path / "总结.pdf", chars=600, pages=2))
    assert facts["format"] == "pdf" and facts["pages"] == 2
    assert facts["text_chars"] == 600
    assert facts["encrypted"] is False and facts["scanned"] is False


def test_scanned_pdf(tmp_path):
    facts = read(make_report_pdf(tmp_path / "扫描件.pdf", scanned=True, pages=3))
    assert facts == {"format": "pdf", "pages": 3, "text_chars": 0, "encrypted": False, "scanned": True}


def test_pdf_with_little_text_and_no_images_is_not_scanned(tmp_path):
    facts = read(make_report_pdf(tmp_path / "短.pdf", text="总结报告"))
    assert facts["text_chars"] == 4 and facts["scanned"] is False


def test_encrypted_pdf(tmp_path):
    facts = read(make_report_pdf(tmp_path / "加密.pdf", password="123456"))
    assert facts["encrypted"] is True and facts["text_chars"] == 0


def test_password_protected_docx_report(tmp_path):
    path = encrypt_office(make_report_docx(tmp_path / "r.docx"), tmp_path / "总结.docx")
    assert read(path)["encrypted"] is True


def test_not_a_pdf(tmp_path):
    path = tmp_path / "总结.pdf"
    path.write_bytes(b"%PDF-1.4\n garbage that is not a pdf")
    facts, error = probe_file(path, "report")
    assert facts is None and error.startswith("the report cannot be opened")


def test_web_page_named_docx(tmp_path):
    path = tmp_path / "总结.docx"
    path.write_text("<!DOCTYPE html><html><body>文件已过期</body></html>", encoding="utf-8")
    facts, error = probe_file(path, "report")
    assert facts is None and error.startswith("not a report document")


def test_doc_through_libreoffice(media, libreoffice):
    facts = read(media.report_doc)
    assert facts["format"] == "doc"
    assert facts["text_chars"] == 800


def test_doc_without_libreoffice(media, libreoffice, monkeypatch):
    from ingest.checks import common

    path = media.report_doc
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    facts, error = probe_file(path, "report")
    assert facts is None
    assert error == "cannot read .doc without LibreOffice: please send .docx or .pdf"


def test_report_text_helper_is_exact():
    assert len("".join(report_text(1234).split())) == 1234


@pytest.mark.parametrize("kind", ["statistics", "report", "video", "image"])
@pytest.mark.parametrize(
    "name, data",
    [
        ("x.xlsx", b"PK\x03\x04" + bytes(range(256)) * 4),
        ("x.docx", b"PK\x05\x06" + b"\0" * 18),
        (
            "x.pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
        ),
        ("x.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 600),
        ("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64),
        ("x.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20),
        ("x.bin", bytes(range(256))),
    ],
)
def test_garbage_gives_a_reason_never_a_crash(tmp_path, kind, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    facts, error = probe_file(path, kind)
    assert error and isinstance(error, str)
    assert facts is None


def test_pdf_text_extraction_is_bounded_in_time(tmp_path):
    from ingest.checks.report import read_pdf_report

    path = make_report_pdf(tmp_path / "长.pdf", chars=900, pages=3)
    facts = read_pdf_report(path, timeout=0)
    assert facts["pages"] == 3 and facts["partial"] is True
    assert 0 < facts["text_chars"] < 900
    assert "partial" not in read_pdf_report(path, timeout=30)
