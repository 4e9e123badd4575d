"""The statistics sheet: find the template's figures by their row labels, wherever they are.

:mod:`ingest.checks.workbook` turns the file into grids; :func:`extract` reads them by label,
never by position, so inserted rows, spaced or bracketed labels, numbering, merged cells, a
quantity column anywhere, a horizontal layout (labels heading the columns) and header lines
like '填报单位：…' do not matter.

Facts (docs/FACTS.md): format, sheet, unit_cell, contact, phone, header, figures, problems,
warnings, text, raw.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.checks.labels import (
    NotANumber,
    format_number,
    looks_numeric,
    nfkc,
    normalize_label,
    parse_figure,
    unit_multiplier,
)
from ingest.checks.workbook import Cell, Grid, UncalculatedFormula, Workbook, cell_text, read_workbook

MAX_TEXT_CHARS = 4000  # per text row
QUANTITY_HEADERS = {"数量", "数值", "数据", "填报数", "填报数量", "完成数", "合计数", "数目", "统计数"}


# --------------------------------------------------------------------------- extraction


def _split_inline(text: str) -> tuple[str, str] | None:
    """'活动总数：12' -> ('活动总数', '12')."""
    s = nfkc(text)
    if ":" not in s:
        return None
    head, _, rest = s.partition(":")
    return head, rest.strip()


def _header_value(
    grid_rows: list[Grid], label: str, all_labels: list[str], stop: frozenset[str] | set[str] = frozenset()
) -> str | None:
    """A header cell's value: right of the label, or after '：' in the same cell
    ('填报单位：太原市科技局   联系人：张三' holds two)."""
    key = normalize_label(label)
    others = "|".join(re.escape(x) for x in sorted(all_labels, key=len, reverse=True))
    inline = re.compile(
        re.escape(label) + r"\s*(?:\([^)]*\))?\s*:\s*(.*?)\s*(?=(?:" + others + r")\s*(?:\([^)]*\))?\s*:|$)",
        re.S,
    )
    for rows in grid_rows:
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                text = cell_text(value)
                if (
                    not text
                    or label not in nfkc(text).replace(" ", "").replace("\u3000", "")
                    and key not in normalize_label(text)
                ):
                    continue
                if normalize_label(text) == key:
                    labels = {normalize_label(x) for x in all_labels} | set(stop)
                    right = next((v for v in row[c + 1 :] if cell_text(v)), None)
                    if right is not None and normalize_label(right) not in labels:
                        return cell_text(right)
                    if right is not None and normalize_label(right) in stop:
                        # a horizontal form: the value is under the label
                        for below in rows[r + 1 : r + 4]:
                            value = cell_text(below[c]) if c < len(below) else ""
                            if value and normalize_label(value) not in labels:
                                return value
                    continue
                m = inline.search(nfkc(text))
                if m:
                    found = m.group(1).strip().strip("_ ")
                    if found:
                        return found
    return None


# long: one scan of the form's grids; label, figure and text lookups share the found cells
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
                elif (
                    isinstance(value, str)
                    and (split := _split_inline(value))
                    and normalize_label(split[0]) in keys
                ):
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

    # label -> (row, col, the quantity column or None, inline value or ... for none)
    found: dict[str, tuple[list, int, int | None, object]] = {}
    found_text: dict[str, tuple[Grid, int, int]] = {}
    for rows in form_grids:
        qty_col = None
        for r, row in enumerate(rows):
            header_cols = [
                c
                for c, value in enumerate(row)
                if isinstance(value, str) and normalize_label(value) in QUANTITY_HEADERS
            ]
            if header_cols:
                # the table's header row (指标|单位|数量|备注): its cells are not row labels
                qty_col = header_cols[0]
                continue
            in_row = [
                c for c, value in enumerate(row) if isinstance(value, str) and normalize_label(value) in keys
            ]
            if len(in_row) >= 3:
                # a horizontal form: the labels head the columns, the figures are below them
                for c in in_row:
                    label = keys[normalize_label(row[c])][0]
                    if label not in found:
                        found[label] = (row, c, None, _below(rows, r, c, keys[normalize_label(row[c])][1]))
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
        if isinstance(cell, UncalculatedFormula):
            problems[label] = (
                f"a formula ({cell}) without a saved value: open the file in Excel or WPS and save it again"
            )
            continue
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
            if hint := _magnitude_hint(label, unit, cell, value):
                warnings.append(hint)

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
                warnings.append(
                    f"{' + '.join(parts)} = {format_number(added)}, "
                    f"but {total} is {format_number(figures[total])}"
                )
    if best[0] == 0:
        warnings.append("none of the form's rows were found: is this the statistics form?")

    all_header = list(template.header_cells)
    others = [rows for _, rows in book.grids if all(rows is not g for g in form_grids)]
    stop = set(keys) | set(text_keys) | QUANTITY_HEADERS
    header = {label: _header_value(form_grids + others, label, all_header, stop) for label in all_header}
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
        if cell_text(value):
            return value
        # merged or shifted value: look right of the label anyway
    unit_key = normalize_label(unit)
    candidates = []
    for value in row[c + 1 :]:
        t = cell_text(value)
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


def _magnitude_hint(label: str, unit: str, cell: Cell, value: float) -> str | None:
    """A warning when a plain number in a 万 row looks like it was counted in single units
    ('12000' in a 万份 row is 1.2亿 copies; most likely 12000 份 was meant)."""
    mult, base = unit_multiplier(unit)
    typed_plain = not isinstance(cell, str) or re.fullmatch(r"[\d.,，\s]+", nfkc(cell)) is not None
    if mult >= 1e4 and typed_plain and abs(value) >= 1000:
        return (
            f"{label} is {format_number(value)} {unit}: if {format_number(value)} {base} was meant, "
            f"write {format_number(value / mult)}"
        )
    return None


TOTAL_LABELS = {"合计", "总计", "合计数", "小计", "全市合计", "全省合计", "汇总"}


def _below(rows: Grid, r: int, c: int, unit: str) -> Cell:
    """The figure under a column label: in a '合计' row when the table has several data rows,
    else the first non-empty cell below (a unit line such as '（项）' is skipped)."""
    below = rows[r + 1 : r + 1 + 200]
    for row in below:
        if any(isinstance(v, str) and normalize_label(v) in TOTAL_LABELS for v in row[: c + 1]):
            return row[c] if c < len(row) else None
    unit_keys = {normalize_label(unit), ""}
    for row in below[:4]:
        value = row[c] if c < len(row) else None
        text = cell_text(value)
        if not text:
            continue
        if isinstance(value, str) and (normalize_label(text) in unit_keys or text.strip("()（）") == unit):
            continue
        return value
    return None


def _text_right_or_below(rows: Grid, r: int, c: int, labels: set[str]) -> str:
    row = rows[r]
    parts = []
    for value in row[c + 1 :]:
        t = cell_text(value)
        if t and t not in parts:
            parts.append(t)
    if parts:
        return "\n".join(parts)
    if r + 1 < len(rows):
        below = [cell_text(v) for v in rows[r + 1] if cell_text(v)]
        if below and normalize_label(below[0]) not in labels:
            return "\n".join(dict.fromkeys(below))
    return ""


def read_sheet(path: Path, fmt: str | None, template, limits, timeout: float) -> dict:
    """Facts of a statistics sheet (raises CheckError when it cannot be read at all)."""
    book = read_workbook(path, fmt, limits, timeout)
    return extract(book, template)
