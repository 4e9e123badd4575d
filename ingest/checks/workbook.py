"""Spreadsheet and Word files as *grids*: a list of rows of cell values per sheet or Word table.

.xlsx: openpyxl, read-only, the values saved with the file (``data_only``); a formula without a
saved value becomes :class:`UncalculatedFormula`. .xls/.et: xlrd. .docx: python-docx, every table
is a grid and the body paragraphs one more (one cell per paragraph), so a header line written
above the table is found. .doc/.wps/.ods/.odt, and .xls/.et that xlrd cannot read, go through
LibreOffice when installed. Sizes are checked before parsing; OLE files are checked to really be
Word/Excel files (LibreOffice would import any bytes as text) and not encrypted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.checks.common import (
    CheckError,
    check_ole,
    convert_with_libreoffice,
    is_ole,
    ole_streams,
    open_ooxml_zip,
    soffice_binary,
    temp_workdir,
    unreadable,
)

MAX_ROWS = 2000  # rows read per sheet/table
MAX_COLS = 60  # cells read per row
MAX_SHEETS = 30

Cell = object  # str | int | float | None
Grid = list[list[Cell]]


@dataclass
class Workbook:
    format: str
    grids: list[tuple[str, Grid]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def cell_text(value: Cell) -> str:
    return "" if value is None else str(value).strip()


def read_xlsx(path: Path, max_xml_bytes: int) -> Workbook:
    """Grids of an .xlsx (also .xlsm: macros are never run, values are read, a warning says so)."""
    zf = open_ooxml_zip(path, max_xml_bytes, "sheet")
    with zf:
        names = set(zf.namelist())
        if "xl/workbook.xml" not in names:
            if "word/document.xml" in names:
                return read_docx(path, max_xml_bytes)
            raise CheckError("not a spreadsheet: the file is a zip archive without a workbook")
        book = Workbook("xlsx")
        if any(n.lower().endswith("vbaproject.bin") for n in names):
            book.warnings.append("the workbook contains macros; they were not run, only the values were read")
        has_formulas = any(
            re.search(rb"<(?:\w+:)?f[ >]", zf.read(n))
            for n in names
            if n.startswith("xl/worksheets/") and n.endswith(".xml")
        )
    try:
        book.grids = _xlsx_grids(path, data_only=True)
        if has_formulas:
            # a formula no spreadsheet program has calculated has no saved value: say so
            formulas = _xlsx_grids(path, data_only=False)
            for (_, values), (_, raw) in zip(book.grids, formulas, strict=False):
                for row_v, row_f in zip(values, raw, strict=False):
                    for c, (v, f) in enumerate(zip(row_v, row_f, strict=False)):
                        if v is None and isinstance(f, str) and f.startswith("="):
                            row_v[c] = UncalculatedFormula(f)
    except CheckError:
        raise
    except Exception as e:  # noqa: BLE001 - openpyxl raises many types on broken files; recorded as unreadable
        raise unreadable(e, "sheet", "xlsx") from None
    return book


def _xlsx_grids(path: Path, data_only: bool) -> list[tuple[str, Grid]]:
    import openpyxl

    grids = []
    with open(path, "rb") as fh:
        wb = openpyxl.load_workbook(fh, read_only=True, data_only=data_only)
        try:
            for ws in wb.worksheets[:MAX_SHEETS]:
                if getattr(ws, "sheet_state", "visible") != "visible" and len(wb.worksheets) > 1:
                    continue
                rows: Grid = []
                for row in ws.iter_rows(max_row=MAX_ROWS, max_col=MAX_COLS, values_only=True):
                    rows.append([_xlsx_value(v) for v in row])
                grids.append((ws.title, rows))
        finally:
            wb.close()
    return grids


class UncalculatedFormula(str):
    """A formula cell without a saved value (the file was written by a program, never opened
    and saved in Excel/WPS)."""


def _xlsx_value(v: object) -> Cell:
    if v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)  # dates, times: kept as text


def read_xls(path: Path) -> Workbook:
    """Grids of a BIFF .xls (Excel 97-2003; WPS .et files are usually the same format)."""
    import xlrd
    from xlrd.biffh import XLRDError

    try:
        wb = xlrd.open_workbook(str(path), on_demand=True, logfile=_NullLog())
    except XLRDError as e:
        if "encrypt" in str(e).lower():
            raise CheckError("the sheet is password-protected") from None
        raise CheckError(f"the sheet cannot be opened: the file is not a valid .xls ({_short(e)})") from None
    except Exception as e:  # noqa: BLE001 - xlrd raises many types on broken files; recorded as unreadable
        raise CheckError(f"the sheet cannot be opened: the file is not a valid .xls ({_short(e)})") from None
    book = Workbook("xls")
    try:
        for index in range(min(wb.nsheets, MAX_SHEETS)):
            sh = wb.sheet_by_index(index)
            rows: Grid = []
            for r in range(min(sh.nrows, MAX_ROWS)):
                row: list[Cell] = []
                for c in range(min(sh.ncols, MAX_COLS)):
                    cell = sh.cell(r, c)
                    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                        row.append(None)
                    elif cell.ctype == xlrd.XL_CELL_NUMBER:
                        row.append(cell.value)
                    elif cell.ctype == xlrd.XL_CELL_ERROR:
                        row.append("#ERROR")
                    else:
                        row.append(str(cell.value))
                rows.append(row)
            book.grids.append((sh.name, rows))
            wb.unload_sheet(index)
    finally:
        wb.release_resources()
    return book


class _NullLog:
    def write(self, *_):
        pass


def read_docx(path: Path, max_xml_bytes: int) -> Workbook:
    """Grids of a Word file: each table is a grid; the body paragraphs form one more grid
    (one cell per paragraph) so '填报单位：...' written above the table is found too."""
    import docx

    zf = open_ooxml_zip(path, max_xml_bytes, "document")
    with zf:
        if "word/document.xml" not in zf.namelist():
            raise CheckError("not a Word document: the file is a zip archive without a document")
    try:
        with open(path, "rb") as fh:
            document = docx.Document(fh)
    except Exception as e:  # noqa: BLE001 - python-docx raises many types on broken files; recorded as unreadable
        raise unreadable(e, "document", "docx") from None
    book = Workbook("docx")
    for i, table in enumerate(document.tables[:MAX_SHEETS], start=1):
        rows: Grid = []
        for row in table.rows[:MAX_ROWS]:
            cells: list[Cell] = []
            previous = None
            for cell in row.cells[:MAX_COLS]:
                # a horizontally merged cell is returned once per grid column: keep it once
                if previous is not None and cell._tc is previous:
                    cells.append(None)
                    continue
                previous = cell._tc
                cells.append(cell.text.strip() or None)
            rows.append(cells)
        book.grids.append((f"表格{i}", rows))
    # after the tables: a note such as '活动总数：指…' must not shadow the table's row
    paragraphs: Grid = [[p.text] for p in document.paragraphs[:MAX_ROWS] if p.text.strip()]
    if paragraphs:
        book.grids.append(("正文", paragraphs))
    return book


def read_workbook(path: Path, fmt: str | None, limits, timeout: float) -> Workbook:
    """Pick the reader by format; OLE files are checked for encryption first."""
    if is_ole(path):
        size = path.stat().st_size
        if size > limits.max_sheet_xml_bytes:  # xlrd reads the whole file into memory
            raise CheckError(
                f"the sheet is too large to read ({size // (1024 * 1024)} MB, "
                f"limit {limits.max_sheet_xml_bytes // (1024 * 1024)} MB)"
            )
        check_ole(path, "excel", "sheet")
        if "worddocument" in (ole_streams(path) or set()):
            return _via_libreoffice(path, fmt if fmt in ("doc", "wps") else "doc", "docx", limits, timeout)
        try:
            book = read_xls(path)
            book.format = "et" if fmt == "et" else "xls"
            return book
        except CheckError as e:
            if "password" in str(e) or not soffice_binary():
                if fmt == "et" and not soffice_binary():
                    raise CheckError(
                        "cannot read this WPS .et sheet without LibreOffice: please send it as .xlsx or .docx"
                    ) from None
                raise
            return _via_libreoffice(path, fmt or "xls", "xlsx", limits, timeout)
    if fmt in ("docx",):
        return read_docx(path, limits.max_sheet_xml_bytes)
    if fmt == "xlsx":
        return read_xlsx(path, limits.max_sheet_xml_bytes)  # a damaged one says so
    if fmt in ("zip", None, "unknown", "et"):
        import zipfile

        if zipfile.is_zipfile(path):
            return read_xlsx(path, limits.max_sheet_xml_bytes)
    if fmt in ("doc", "wps", "et", "xls"):
        raise CheckError(
            f"the sheet cannot be opened: the file is damaged or not a real .{fmt} "
            f"(it is not an Office 97-2003 file)"
        )
    if fmt in ("ods", "odt"):
        return _via_libreoffice(path, fmt, "xlsx" if fmt == "ods" else "docx", limits, timeout)
    if fmt == "html":
        raise CheckError("not a spreadsheet: the file is a web page (perhaps a failed download)")
    if fmt == "pdf":
        raise CheckError(
            "the statistics sheet was sent as a PDF, which cannot be read: "
            "please send the form as .xlsx or .docx"
        )
    raise CheckError("not a spreadsheet: the file is not an Excel or Word form (send .xlsx or .docx)")


def _via_libreoffice(path: Path, fmt: str, target: str, limits, timeout: float) -> Workbook:
    if not soffice_binary():
        raise CheckError(f"cannot read a .{fmt} sheet without LibreOffice: please send it as .xlsx or .docx")
    with temp_workdir() as tmp:
        converted = convert_with_libreoffice(path, fmt, target, timeout, Path(tmp))
        book = (
            read_docx(converted, limits.max_sheet_xml_bytes)
            if target == "docx"
            else read_xlsx(converted, limits.max_sheet_xml_bytes)
        )
    book.format = fmt
    return book


def _short(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."
