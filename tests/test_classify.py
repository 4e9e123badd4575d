"""sniff and classify on real files: xlsx/docx made with openpyxl/python-docx, .doc/.xls made by
LibreOffice, media made by ffmpeg, images made by Pillow-free byte headers of real formats."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile

import docx
import openpyxl
import pytest
from fixtures.mail import gbk_zip

from ingest.classify import classify, sniff
from ingest.config import SheetTemplate
from ingest.model import ExtractedPart

TEMPLATE = SheetTemplate()


def _xlsx() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["A3"], ws["B3"] = "开展情况统计表", "活动总数", 12
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _docx(table_labels: list[str] | None = None, text: str = "2022年科技活动周工作总结") -> bytes:
    d = docx.Document()
    d.add_paragraph(text)
    if table_labels:
        t = d.add_table(rows=len(table_labels), cols=2)
        for i, label in enumerate(table_labels):
            t.cell(i, 0).text = label
            t.cell(i, 1).text = "3"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> dict[str, bytes]:
    """.doc and .xls converted by LibreOffice from real docx/xlsx (as old Office saves them)."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        pytest.fail("LibreOffice (soffice) is needed to make .doc/.xls test files")
    d = tmp_path_factory.mktemp("legacy")
    (d / "stat.docx").write_bytes(_docx(["活动总数", "线上活动", "线下活动"], "表格"))
    (d / "sheet.xlsx").write_bytes(_xlsx())
    for fmt, src in (("doc", "stat.docx"), ("xls", "sheet.xlsx")):
        subprocess.run(
            [
                soffice,
                "--headless",
                "--norestore",
                f"-env:UserInstallation=file://{d}/profile",
                "--convert-to",
                fmt,
                "--outdir",
                str(d),
                str(d / src),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return {"doc": (d / "stat.doc").read_bytes(), "xls": (d / "sheet.xls").read_bytes()}


def _part(name: str, data: bytes, declared: str | None = None) -> ExtractedPart:
    return ExtractedPart(location=name, filename=name, declared_type=declared, data=data, size=len(data))


def test_sniff_office_files(legacy, tmp_path):
    assert sniff(_xlsx(), None) == "xlsx"
    assert sniff(_docx(), None) == "docx"
    assert sniff(legacy["doc"], None) == "doc"
    assert sniff(legacy["xls"], None) == "xls"
    p = tmp_path / "x.wps"
    p.write_bytes(legacy["doc"])
    assert sniff(None, p) == "wps"  # Kingsoft .wps is Word-binary inside
    assert sniff(_xlsx()[:3000], None) == "xlsx"  # a truncated xlsx is still recognised


def test_sniff_archives_media_images_and_text(ffmpeg_available, tmp_path):
    assert sniff(gbk_zip({"统计表.xlsx": b"x"}), None) == "zip"
    assert sniff(b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 30, None) == "7z"
    assert sniff(b"Rar!\x1a\x07\x00" + b"\0" * 30, None) == "rar"
    assert sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", None) == "pdf"
    assert sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", None) == "jpeg"
    assert sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", None) == "png"
    assert (
        sniff(b"From: a@b.cn\r\nDate: Mon, 20 Jun 2022 10:00:00 +0800\r\nSubject: x\r\n\r\nhi", None) == "eml"
    )
    assert sniff("活动总数 12\n线上活动 5\n".encode("gbk"), None) == "text"
    assert sniff(b"<!DOCTYPE html><html><body>x</body></html>", None) == "html"
    assert sniff(b"\x00\x01\x02\x03garbage\x00", None) == "unknown"
    assert sniff(b"", None) == "unknown"
    for fmt, ext in (("mp4", "mp4"), ("mov", "mov"), ("avi", "avi"), ("matroska", "mkv"), ("flv", "flv")):
        out = tmp_path / f"v.{ext}"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=0.2:size=64x48:rate=5",
                "-f",
                fmt,
                "-y",
                str(out),
            ],
            check=True,
            timeout=60,
        )
        assert sniff(None, out) == ext, fmt


@pytest.mark.parametrize(
    "name,expected",
    [
        ("2022年科技活动周开展情况统计表.xlsx", "statistics"),
        ("运城市.xlsx", "statistics"),  # any sheet is statistics
        ("科技活动周工作总结.docx", "report"),
        ("科技周汇报材料.docx", "report"),
        ("科技周统计表.docx", "statistics"),  # keyword decides for documents
        ("材料.docx", "report"),  # no keyword, no template table
    ],
)
def test_classify_by_type_and_name(name, expected):
    data = _xlsx() if name.endswith(".xlsx") else _docx()
    assert classify(_part(name, data), TEMPLATE) == expected


def test_docx_without_keyword_holding_the_template_table_is_statistics():
    assert classify(_part("材料.docx", _docx(["活动总数", "线上活动", "参与人数"])), TEMPLATE) == "statistics"
    # a single label in a table is not enough; text outside tables does not count
    assert classify(_part("材料.docx", _docx(["活动总数"])), TEMPLATE) == "report"
    assert classify(_part("材料.docx", _docx(None, "活动总数 线上活动 线下活动")), TEMPLATE) == "report"


def test_legacy_doc_xls_and_kingsoft_names(legacy):
    assert classify(_part("材料.doc", legacy["doc"]), TEMPLATE) == "statistics"  # holds the labels
    assert classify(_part("总结.doc", legacy["doc"]), TEMPLATE) == "report"  # keyword wins
    p = _part("总结.wps", legacy["doc"])
    assert classify(p, TEMPLATE) == "report" and p.sniffed_type == "wps"
    p = _part("表.et", legacy["xls"])
    assert classify(p, TEMPLATE) == "statistics" and p.sniffed_type == "et"


def test_pdf_is_a_report_unless_named_as_the_sheet():
    pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF"
    assert classify(_part("科技周总结.pdf", pdf), TEMPLATE) == "report"
    assert classify(_part("材料.pdf", pdf), TEMPLATE) == "report"
    # a sheet sent as PDF cannot be read: statistics, so the check says "send xlsx or docx"
    assert classify(_part("开展情况统计表.pdf", pdf), TEMPLATE) == "statistics"


def test_media_images_archives_messages_and_other():
    assert classify(_part("a.mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"), TEMPLATE) == "video"
    assert (
        classify(_part("IMG_0001.HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), TEMPLATE)
        == "image"
    )
    assert classify(_part("p.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), TEMPLATE) == "image"
    assert classify(_part("材料.zip", gbk_zip({"a.xlsx": b"x"})), TEMPLATE) == "archive"
    assert (
        classify(_part("fw.eml", b"From: a@b.cn\r\nDate: x\r\n\r\nhi", "message/rfc822"), TEMPLATE)
        == "message"
    )
    assert classify(_part("readme.txt", "说明".encode()), TEMPLATE) == "other"
    assert classify(_part("setup.exe", b"MZ\x90\x00" + b"\0" * 60), TEMPLATE) == "other"


def test_files_whose_content_does_not_match_their_name():
    # a plain zip renamed .xlsx: classified by its name so the sheet check reports it as invalid
    fake = gbk_zip({"a.txt": b"x"})
    p = _part("统计表.xlsx", fake)
    assert classify(p, TEMPLATE) == "statistics" and p.sniffed_type == "zip"
    # a damaged video is still the video item: the check then says it is not a video
    assert classify(_part("科技周视频.mp4", b"\x00\x01garbage\x00"), TEMPLATE) == "video"
    assert classify(_part("统计表.xlsx", b"\x00\x01garbage\x00"), TEMPLATE) == "statistics"
    # a download page saved under the video's name (a big-attachment link clicked and saved)
    page = b"<!DOCTYPE html><html><body>\xe4\xb8\x8b\xe8\xbd\xbd</body></html>"
    assert classify(_part("山西大学.mp4", page), TEMPLATE) == "video"
    assert classify(_part("说明.html", page), TEMPLATE) == "other"


def test_password_protected_office_file(corpus_dir):
    # an encrypted .docx/.xlsx is an OLE file with an EncryptedPackage stream
    from ingest.config import Limits
    from ingest.mime import parse_message

    eml = corpus_dir / "apache-spamassassin" / "data" / "spam" / "olevbmacro" / "encrypted.eml"
    part = next(
        p for p in parse_message(eml.read_bytes(), Limits()).parts if p.filename == "encrypted_word_doc.docx"
    )
    assert classify(part, TEMPLATE) == "report"
    assert part.sniffed_type == "encrypted-office"


def test_zip_member_listing_is_bounded():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    assert sniff(buf.getvalue(), None) == "xlsx"
