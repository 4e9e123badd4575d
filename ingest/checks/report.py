"""The summary report (总结报告): how much text it has, and whether it can be opened at all.

.docx: python-docx, body paragraphs and table cells. .pdf: pypdf; ``encrypted`` means it needs a
password to open (a PDF with only an owner password opens for everyone and is read normally);
``scanned`` means pages carry images but (almost) no text layer. .doc/.wps: LibreOffice converts
to text when installed. Characters are counted without whitespace.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from ingest.checks.common import (
    CheckError,
    check_ole,
    convert_with_libreoffice,
    is_ole,
    ole_is_encrypted_ooxml,
    open_ooxml_zip,
    soffice_binary,
    temp_workdir,
    unreadable,
)

MAX_PDF_PAGES = 300  # pages whose text is extracted
SCANNED_CHARS_PER_PAGE = 20  # fewer text characters per page than this, with images: scanned
_WS = re.compile(r"[\s\ufeff\u200b]+")


def count_chars(text: str) -> int:
    """Text characters, whitespace (incl. full-width spaces) not counted."""
    return len(_WS.sub("", text))


def read_docx_report(path: Path, max_xml_bytes: int) -> dict:
    import docx

    zf = open_ooxml_zip(path, max_xml_bytes, "report")
    with zf:
        names = zf.namelist()
        if "word/document.xml" not in names:
            raise CheckError("not a Word document: the file is a zip archive without a document")
        pages = _docx_pages(zf)
    try:
        with open(path, "rb") as fh:
            document = docx.Document(fh)
    except Exception as e:  # noqa: BLE001 - hostile file: python-docx raises many types; recorded as unreadable
        raise unreadable(e, "report", "docx") from None
    chars = sum(count_chars(p.text) for p in document.paragraphs)
    for table in document.tables:
        seen = set()
        for row in table.rows:
            for cell in row.cells:
                if cell._tc in seen:
                    continue
                seen.add(cell._tc)
                chars += count_chars(cell.text)
    return {"format": "docx", "pages": pages, "text_chars": chars, "encrypted": False, "scanned": False}


def _docx_pages(zf) -> int | None:
    """Page count as Word last saved it (docProps/app.xml), if present."""
    try:
        xml = zf.read("docProps/app.xml").decode("utf-8", "replace")
    except KeyError:
        return None
    m = re.search(r"<(?:\w+:)?Pages>(\d+)</", xml)
    return int(m.group(1)) if m else None


def read_pdf_report(path: Path, timeout: float = 30.0) -> dict:
    """Facts of a PDF. Text is extracted page by page until ``timeout`` s have passed (then the
    count so far is kept and ``"partial": true`` says so): a hostile PDF cannot stall the poll."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        encrypted = False
        if reader.is_encrypted:
            try:
                opened = int(reader.decrypt(""))
            except Exception:  # noqa: BLE001 - hostile file: a failed decryption means password-protected
                opened = 0
            if not opened:
                encrypted = True
        if encrypted:  # the page count is inside the encrypted part too
            return {"format": "pdf", "pages": None, "text_chars": 0, "encrypted": True, "scanned": False}
        pages = len(reader.pages)
        chars = 0
        image_pages = 0
        read_pages = 0
        deadline = time.monotonic() + timeout
        for page in list(reader.pages)[:MAX_PDF_PAGES]:
            if read_pages and time.monotonic() > deadline:
                break
            try:
                chars += count_chars(page.extract_text() or "")
            except Exception:  # noqa: BLE001 - one damaged page must not hide the rest of the text
                pass
            if _page_has_image(page):
                image_pages += 1
            read_pages += 1
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise CheckError(
            f"the report cannot be opened: the file is not a valid PDF ({str(e)[:120]})"
        ) from None
    scanned = (
        bool(read_pages) and image_pages * 2 >= read_pages and chars < SCANNED_CHARS_PER_PAGE * read_pages
    )
    facts = {"format": "pdf", "pages": pages, "text_chars": chars, "encrypted": False, "scanned": scanned}
    if read_pages < pages:
        facts["partial"] = True  # text counted on the first read_pages pages only
    return facts


def _page_has_image(page) -> bool:
    try:
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if resources else None
        if not xobjects:
            return False
        for ref in xobjects.get_object().values():
            obj = ref.get_object()
            if obj.get("/Subtype") == "/Image":
                return True
            if obj.get("/Subtype") == "/Form" and "/Resources" in obj:
                inner = obj["/Resources"].get_object().get("/XObject")
                if inner and any(
                    x.get_object().get("/Subtype") == "/Image" for x in inner.get_object().values()
                ):
                    return True
    except Exception:  # noqa: BLE001 - hostile file: damaged page resources mean no image found
        return False
    return False


def read_text_report(path: Path) -> dict:
    data = path.read_bytes()[: 20 * 1024 * 1024]
    for enc in ("utf-8-sig", "gb18030", "utf-16"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = data.decode("utf-8", "replace")
    return {
        "format": "text",
        "pages": None,
        "text_chars": count_chars(text),
        "encrypted": False,
        "scanned": False,
    }


def read_report(path: Path, fmt: str | None, limits, timeout: float) -> dict:
    """Facts of a report; raises CheckError when the file cannot be read at all."""
    if is_ole(path):
        if ole_is_encrypted_ooxml(path):
            return {"format": "docx", "pages": None, "text_chars": 0, "encrypted": True, "scanned": False}
        check_ole(path, "word", "report")
        return _via_libreoffice(path, fmt if fmt in ("doc", "wps") else "doc", timeout)
    if fmt == "pdf":
        return read_pdf_report(path, timeout)
    if fmt == "docx":
        return read_docx_report(path, limits.max_sheet_xml_bytes)
    if fmt == "text":
        return read_text_report(path)
    if fmt == "odt":
        return _via_libreoffice(path, fmt, timeout)
    if fmt in ("doc", "wps"):
        raise CheckError(
            f"the report cannot be opened: the file is damaged or not a real .{fmt} "
            f"(it is not an Office 97-2003 file)"
        )
    if fmt == "html":
        raise CheckError("not a report document: the file is a web page (perhaps a failed download)")
    if fmt in ("xlsx", "xls", "et", "ods"):
        raise CheckError(
            "not a report document: the file is a spreadsheet (send the report as .docx or .pdf)"
        )
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head.startswith(b"%PDF") or b"%PDF-" in head:
        return read_pdf_report(path, timeout)
    if head.startswith(b"PK"):
        return read_docx_report(path, limits.max_sheet_xml_bytes)
    raise CheckError("not a report document: the file is not a Word document or a PDF (send .docx or .pdf)")


def _via_libreoffice(path: Path, fmt: str, timeout: float) -> dict:
    if not soffice_binary():
        raise CheckError(f"cannot read .{fmt} without LibreOffice: please send .docx or .pdf")
    with temp_workdir() as tmp:
        converted = convert_with_libreoffice(path, fmt, "txt:Text (encoded):UTF8", timeout, Path(tmp))
        text = converted.read_text("utf-8", "replace")
    return {
        "format": fmt,
        "pages": None,
        "text_chars": count_chars(text),
        "encrypted": False,
        "scanned": False,
    }
