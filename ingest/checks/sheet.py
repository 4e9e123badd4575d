"""The statistics sheet: find the template's figures by their row labels, wherever they are.

Readers turn a file into *grids* (a list of rows of cell values per sheet or per Word
table): .xlsx (openpyxl, read-only, cached formula values), .xls/.et (xlrd), .docx tables and
paragraphs (python-docx); .et/.doc/.wps that xlrd cannot read go through LibreOffice when it is
installed. :func:`extract` then reads the grid by label, never by position, so inserted rows,
spaced or bracketed labels, merged cells and numbering do not matter.

Facts (see docs/FACTS.md): format, sheet, unit_cell, contact, phone, figures, problems,
warnings, text, raw.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.checks.common import (
    CheckError, convert_with_libreoffice, is_ole, ole_is_encrypted_ooxml, open_ooxml_zip,
    soffice_binary, temp_workdir, unreadable,
)
from ingest.checks.labels import (
    NotANumber, format_number, looks_numeric, nfkc, normalize_label, parse_figure,
)

MAX_ROWS = 2000          # rows read per sheet/table
MAX_COLS = 60            # cells read per row
MAX_SHEETS = 30
MAX_TEXT_CHARS = 4000    # per text row
QUANTITY_HEADERS = {"数量", "数值", "数据", "填报数", "填报数量", "完成数", "合计数", "数目", "统计数"}

Cell = object  # str | int | float | None
Grid = list[list[Cell]]


@dataclass
class Workbook:
    format: str
    grids: list[tuple[str, Grid]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- readers

def _cell_text(value: Cell) -> str:
    return "" if value is None else str(value).strip()


def read_xlsx(path: Path, max_xml_bytes: int) -> Workbook:
    """Grids of an .xlsx (also .xlsm: macros are never run, values are read, a warning says so)."""
    import openpyxl

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
    try:
        with open(path, "rb") as fh:
            wb = openpyxl.load_workbook(fh, read_only=True, data_only=True)
            try:
                for ws in wb.worksheets[:MAX_SHEETS]:
                    if getattr(ws, "sheet_state", "visible") != "visible" and len(wb.worksheets) > 1:
                        continue
                    rows: Grid = []
                    for row in ws.iter_rows(max_row=MAX_ROWS, max_col=MAX_COLS, values_only=True):
                        rows.append([_xlsx_value(v) for v in row])
                    book.grids.append((ws.title, rows))
            finally:
                wb.close()
    except CheckError:
        raise
    except Exception as e:  # openpyxl raises many types on broken files
        raise unreadable(e, "sheet", "xlsx") from None
    return book


def _xlsx_value(v: object) -> Cell:
    if v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)  # dates, times: kept as text


def read_xls(path: Path) -> Workbook:
    """Grids of a BIFF .xls (Excel 97-2003; WPS .et files are usually the same format)."""
    import xlrd

    try:
        wb = xlrd.open_workbook(str(path), on_demand=True, logfile=_NullLog())
    except xlrd.XLRDError as e:
        if "encrypt" in str(e).lower():
            raise CheckError("the sheet is password-protected") from None
        raise CheckError(f"the sheet cannot be opened: the file is not a valid .xls ({_short(e)})") from None
    except Exception as e:
        raise CheckError(f"the sheet cannot be opened: the file is not a valid .xls ({_short(e)})") from None
    book = Workbook("xls")
    try:
        for index in range(min(wb.nsheets, MAX_SHEETS)):
            sh = wb.sheet_by_index(index)
            rows: Grid = []
            for r in range(min(sh.nrows, MAX_ROWS)):
                row = []
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
    except Exception as e:
        raise unreadable(e, "document", "docx") from None
    book = Workbook("docx")
    paragraphs = [[p.text] for p in document.paragraphs[:MAX_ROWS] if p.text.strip()]
    if paragraphs:
        book.grids.append(("正文", paragraphs))
    for i, table in enumerate(document.tables[:MAX_SHEETS], start=1):
        rows: Grid = []
        for row in table.rows[:MAX_ROWS]:
            cells, previous = [], None
            for cell in row.cells[:MAX_COLS]:
                # a horizontally merged cell is returned once per grid column: keep it once
                if previous is not None and cell._tc is previous:
                    cells.append(None)
                    continue
                previous = cell._tc
                cells.append(cell.text.strip() or None)
            rows.append(cells)
        book.grids.append((f"表格{i}", rows))
    return book


def read_workbook(path: Path, fmt: str | None, limits, timeout: float) -> Workbook:
    """Pick the reader by format; OLE files are checked for encryption first."""
    if is_ole(path):
        if ole_is_encrypted_ooxml(path):
            raise CheckError("the sheet is password-protected")
        if fmt in ("doc", "wps"):
            return _via_libreoffice(path, fmt, "docx", limits, timeout)
        try:
            return read_xls(path)
        except CheckError as e:
            if "password" in str(e) or not soffice_binary():
                if fmt == "et" and not soffice_binary():
                    raise CheckError("cannot read this WPS .et sheet without LibreOffice: "
                                     "please send it as .xlsx or .docx") from None
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
        return _via_libreoffice(path, fmt, "docx" if fmt in ("doc", "wps") else "xlsx", limits, timeout)
    if fmt in ("ods", "odt"):
        return _via_libreoffice(path, fmt, "xlsx" if fmt == "ods" else "docx", limits, timeout)
    if fmt == "html":
        raise CheckError("not a spreadsheet: the file is a web page (perhaps a failed download)")
    if fmt == "pdf":
        raise CheckError("the statistics sheet was sent as a PDF, which cannot be read: "
                         "please send the form as .xlsx or .docx")
    raise CheckError("not a spreadsheet: the file is not an Excel or Word form (send .xlsx or .docx)")


def _via_libreoffice(path: Path, fmt: str, target: str, limits, timeout: float) -> Workbook:
    if not soffice_binary():
        raise CheckError(f"cannot read a .{fmt} sheet without LibreOffice: please send it as .xlsx or .docx")
    with temp_workdir() as tmp:
        converted = convert_with_libreoffice(path, fmt, target, timeout, Path(tmp))
        book = read_docx(converted, limits.max_sheet_xml_bytes) if target == "docx" \
            else read_xlsx(converted, limits.max_sheet_xml_bytes)
    book.format = fmt
    return book


def _short(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."


# --------------------------------------------------------------------------- extraction

def _split_inline(text: str) -> tuple[str, str] | None:
    """'活动总数：12' -> ('活动总数', '12')."""
    s = nfkc(text)
    if ":" not in s:
        return None
    head, _, rest = s.partition(":")
    return head, rest.strip()


def _header_value(grid_rows: list[Grid], label: str, all_labels: list[str]) -> str | None:
    """A header cell's value: right of the label, or after '：' in the same cell
    ('填报单位：太原市科技局   联系人：张三' holds two)."""
    key = normalize_label(label)
    others = "|".join(re.escape(x) for x in sorted(all_labels, key=len, reverse=True))
    inline = re.compile(
        re.escape(label) + r"\s*(?:\([^)]*\))?\s*:\s*(.*?)\s*(?=(?:" + others + r")\s*(?:\([^)]*\))?\s*:|$)",
        re.S)
    for rows in grid_rows:
        for row in rows:
            for c, value in enumerate(row):
                text = _cell_text(value)
                if not text or label not in nfkc(text).replace(" ", "").replace("\u3000", "") \
                        and key not in normalize_label(text):
                    continue
                if normalize_label(text) == key:
                    for right in row[c + 1:]:
                        if _cell_text(right) and normalize_label(right) not in map(normalize_label, all_labels):
                            return _cell_text(right)
                        if _cell_text(right):
                            break
                    continue
                m = inline.search(nfkc(text))
                if m:
                    found = m.group(1).strip().strip("_ ")
                    if found:
                        return found
    return None


def extract(book: Workbook, template) -> dict:
    """Read the template's header cells, figures and text rows out of the grids by label.

    The grid with the most template labels is the form (other sheets are notes or copies).
    """
    keys = {normalize_label(label): (label, unit) for label, unit in template.fields}
    text_keys = {normalize_label(label): label for label in template.text_rows}

    def score(rows: Grid) -> int:
        seen = set()
        for row in rows:
            for value in row[:6]:
                k = normalize_label(value) if isinstance(value, str) else ""
                if k in keys:
                    seen.add(k)
                elif isinstance(value, str) and (split := _split_inline(value)) and normalize_label(split[0]) in keys:
                    seen.add(normalize_label(split[0]))
        return len(seen)

    scored = [(score(rows), i) for i, (_, rows) in enumerate(book.grids)]
    best = max(scored, default=(0, -1))
    if book.format == "docx":
        # Word forms put the figures in one table and the header lines elsewhere: read all
        form_grids = [rows for _, rows in book.grids]
        sheet_name = book.grids[best[1]][0] if best[1] >= 0 else None
    else:
        form_grids = [book.grids[best[1]][1]] if best[1] >= 0 else []
        sheet_name = book.grids[best[1]][0] if best[1] >= 0 else None

    figures: dict[str, int | float] = {}
    problems: dict[str, str] = {}
    raw: dict[str, str] = {}
    text: dict[str, str] = {}
    warnings = list(book.warnings)

    found: dict[str, tuple[list, int, object]] = {}   # label -> (row, col, inline value or ...)
    found_text: dict[str, tuple[Grid, int, int]] = {}
    for rows in form_grids:
        qty_col = None
        for r, row in enumerate(rows):
            header_cols = [c for c, value in enumerate(row)
                           if isinstance(value, str) and normalize_label(value) in QUANTITY_HEADERS]
            if header_cols:
                # the table's header row (指标|单位|数量|备注): its cells are not row labels
                qty_col = header_cols[0]
                continue
            for c, value in enumerate(row):
                if not isinstance(value, str):
                    continue
                k = normalize_label(value)
                if k in keys and keys[k][0] not in found:
                    found[keys[k][0]] = (row, c, qty_col, ...)
                elif k in text_keys and text_keys[k] not in found_text:
                    found_text[text_keys[k]] = (rows, r, c)
                elif (split := _split_inline(value)) and split[1]:
                    k2 = normalize_label(split[0])
                    if k2 in keys and keys[k2][0] not in found:
                        found[keys[k2][0]] = (row, c, None, split[1])
                    elif k2 in text_keys and text_keys[k2] not in found_text:
                        text[text_keys[k2]] = split[1][:MAX_TEXT_CHARS]
                        found_text[text_keys[k2]] = (rows, r, -1)

    for label, unit in template.fields:
        if label not in found:
            problems[label] = "not found"
            continue
        row, c, qty_col, inline = found[label]
        if inline is not ...:
            cell = inline
        else:
            cell = _figure_cell(row, c, qty_col, unit)
        if isinstance(cell, str):
            raw[label] = cell
        try:
            value = parse_figure(cell, unit)
        except NotANumber as e:
            problems[label] = f"not a number: '{e}'"
            continue
        if value is None:
            problems[label] = "empty"
        else:
            figures[label] = value

    for label in template.text_rows:
        if label in text or label not in found_text:
            continue
        rows, r, c = found_text[label]
        value = _text_right_or_below(rows, r, c, set(keys) | set(text_keys))
        if value:
            text[label] = value[:MAX_TEXT_CHARS]

    for check in template.sum_checks:
        total, parts = check[0], check[1:]
        if total in figures and all(p in figures for p in parts):
            added = sum(figures[p] for p in parts)
            if abs(added - figures[total]) > 1e-6 * max(1.0, abs(figures[total])):
                warnings.append(f"{' + '.join(parts)} = {format_number(added)}, "
                                f"but {total} is {format_number(figures[total])}")
    if best[0] == 0:
        warnings.append("none of the form's rows were found: is this the statistics form?")

    all_header = list(template.header_cells)
    others = [rows for _, rows in book.grids if all(rows is not g for g in form_grids)]
    header = {label: _header_value(form_grids + others, label, all_header) for label in all_header}
    names = list(all_header) + [None, None, None]
    return {
        "format": book.format,
        "sheet": sheet_name,
        "unit_cell": header.get(names[0]) if names[0] else None,
        "contact": header.get(names[1]) if names[1] else None,
        "phone": header.get(names[2]) if names[2] else None,
        "header": header,
        "figures": figures,
        "problems": problems,
        "warnings": warnings,
        "text": text,
        "raw": raw,
    }


def _figure_cell(row: list, c: int, qty_col: int | None, unit: str) -> Cell:
    """The cell that holds a label's figure: the '数量' column when the table has one, else
    the first number right of the label, else the first non-empty cell that is not the unit."""
    if qty_col is not None and qty_col > c:
        value = row[qty_col] if qty_col < len(row) else None
        if _cell_text(value):
            return value
        # merged or shifted value: look right of the label anyway
    unit_key = normalize_label(unit)
    candidates = []
    for value in row[c + 1:]:
        t = _cell_text(value)
        if not t:
            continue
        if normalize_label(t) in (unit_key, normalize_label(f"({unit})")) or t in ("单位",):
            continue
        candidates.append(value)
    for value in candidates:
        if looks_numeric(value, unit):
            return value
    if qty_col is not None and qty_col > c:
        return None
    return candidates[0] if candidates else None


def _text_right_or_below(rows: Grid, r: int, c: int, labels: set[str]) -> str:
    row = rows[r]
    parts = []
    for value in row[c + 1:]:
        t = _cell_text(value)
        if t and t not in parts:
            parts.append(t)
    if parts:
        return "\n".join(parts)
    if r + 1 < len(rows):
        below = [_cell_text(v) for v in rows[r + 1] if _cell_text(v)]
        if below and normalize_label(below[0]) not in labels:
            return "\n".join(dict.fromkeys(below))
    return ""


def read_sheet(path: Path, fmt: str | None, template, limits, timeout: float) -> dict:
    """Facts of a statistics sheet (raises CheckError when it cannot be read at all)."""
    book = read_workbook(path, fmt, limits, timeout)
    return extract(book, template)
