"""The workbook on paper: column widths, row heights and the A4 page setup of each sheet of
`mailroll report --xlsx` (and the PDF LibreOffice makes of it), and the 进度 sheet's native chart."""

from __future__ import annotations

import unicodedata

from reconcile.i18n import N_, zh

# Printing. A4, narrow margins; every sheet fits the page's width (fit to width: the columns are
# kept narrow enough that the scale stays at 75 % or more, so 11 pt text prints at 8.25 pt or
# more), landscape where wider than a portrait page; rows flow onto more pages, the heading row
# repeated on each. Wrapped text gets the row height it needs (LibreOffice neither grows a row
# for it nor clips it: it ran over the next rows): the lines are counted with the widths Excel
# and LibreOffice give an 11 pt font at 96 dpi.
MARGINS_IN = {"left": 0.4, "right": 0.4, "top": 0.5, "bottom": 0.5, "header": 0.2, "footer": 0.2}
PRINTABLE_MM = {"portrait": 210 - 2 * 0.4 * 25.4, "landscape": 297 - 2 * 0.4 * 25.4}
CHART_CM = (12, 8)  # the 进度 chart beside its table: both fit a landscape page
LINE_PT = 14.4  # one line of 11 pt text in a wrapped cell (Excel: 15 pt a line; LibreOffice: 13)
WIDE_PX, NARROW_PX, SPACE_PX = 14.7, 7.5, 3.5  # an 11 pt character at 96 dpi
PAD_PX = 6  # the cell's inner margins, with some room for the fonts Excel and WPS use


# the widest a sheet may be and still print at 75 % (11 pt text at 8.25 pt) on a landscape page.
# Column widths count the default font's digits: Calibri's (or metric-compatible Carlito's, which
# LibreOffice uses in its place: fonts-crosextra-carlito) are 7 px wide.
DIGIT_PX = 7
FIT_SAMPLE = 300  # rows looked at to share out the widths (every row gets its height)
LONG_TEXT = 500  # characters: a longer text's lines are reckoned from its width alone
MAX_ROW_PT = 409  # the tallest row Excel keeps
MIN_SCALE = 0.78  # 0.75 and a margin for the fonts' rounding


def fit_columns(table, natural: dict[int, int], widest: int, lone: set[int]) -> dict[int, int]:
    """Column widths: each column's ``natural`` width (none over ``widest``) where the sheet fits
    a landscape page at ``MIN_SCALE``; else, from 8 characters each, the width goes two characters
    at a time to the column where it saves the most lines: a row is as tall as its tallest cell
    (and a tenth of a line counts for each line of the other cells, so that two columns wrapping
    in the same rows are widened in turn); the room left is shared by all columns."""
    room_px = PRINTABLE_MM["landscape"] / MIN_SCALE / 25.4 * 96
    natural = {c: min(w, widest) for c, w in natural.items()}
    if sum(column_px(w) for w in natural.values()) <= room_px:
        return natural
    rows = [row for r, row in enumerate(table.rows) if r not in lone]
    rows = rows[:: max(1, len(rows) // FIT_SAMPLE)]  # the widths of many rows: from a sample
    cache: dict[tuple[int, int], list[int]] = {}

    def lines(c: int, w: int) -> list[int]:
        if (c, w) not in cache:
            cache[c, w] = [
                text_lines(row[c - 1], column_px(w)) if c <= len(row) and row[c - 1] not in (None, "") else 1
                for row in rows
            ]
        return cache[c, w]

    width = {c: min(w, 8) for c, w in natural.items()}
    used = sum(column_px(w) for w in width.values())
    while True:
        tallest = _two_tallest({c: lines(c, w) for c, w in width.items()})
        best, best_rate = None, 0.0
        for c, w in width.items():
            now = lines(c, w)
            for wider in range(w + 2, natural[c] + 1, 2):  # the next few widths: a line saved
                if used + (wider - w) * DIGIT_PX > room_px:  # may need several steps
                    break
                saved = _saved(tallest, c, now, lines(c, wider))
                if saved / (wider - w) > best_rate:
                    best, best_rate = (c, wider), saved / (wider - w)
        if best is None:
            break
        used += (best[1] - width[best[0]]) * DIGIT_PX
        width[best[0]] = best[1]
    # the room left widens every column alike: the page is filled, so the sheet prints at the
    # scale it was fitted for (a narrower one would print larger, with fewer rows on a page)
    extra = int((room_px - used) // (DIGIT_PX * len(width)))
    return {c: w + max(0, extra) for c, w in width.items()}


def _saved(tallest: list[tuple[int, int, int]], c: int, now: list[int], wider: list[int]) -> float:
    """Lines saved when column ``c``'s cells take ``wider`` lines instead of ``now``."""
    saved = 0.1 * (sum(now) - sum(wider))
    for (top, col, second), a, b in zip(tallest, now, wider, strict=True):
        others = second if col == c else top
        saved += max(others, a) - max(others, b)
    return saved


def _two_tallest(lines: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    """Per row: the most lines of a cell, its column, and the most lines of the other cells."""
    out = []
    for cells in zip(*lines.values(), strict=True):
        ranked = sorted(zip(cells, lines, strict=True), reverse=True)
        out.append((ranked[0][0], ranked[0][1], ranked[1][0] if len(ranked) > 1 else 0))
    return out


def column_px(width: float) -> float:
    """Pixels (96 dpi) of a column ``width`` characters wide."""
    return width * DIGIT_PX + 5


def sheet_width_mm(ws) -> float:
    from openpyxl.utils import get_column_letter

    total_px = 0.0
    for c in range(1, ws.max_column + 1):
        total_px += column_px(ws.column_dimensions[get_column_letter(c)].width or 8.43)
    return total_px / 96 * 25.4


def _pieces(text: str) -> list[tuple[str, float]]:
    """Where a line may break: each CJK character, each run of other characters, each space;
    with its width in pixels."""
    out: list[tuple[str, float]] = []
    word = ""
    for ch in text:
        if ch == " " or unicodedata.east_asian_width(ch) in ("W", "F"):
            if word:
                out.append((word, len(word) * NARROW_PX))
                word = ""
            out.append((ch, SPACE_PX if ch == " " else WIDE_PX))
        else:
            word += ch
    if word:
        out.append((word, len(word) * NARROW_PX))
    return out


def text_lines(text, width_px: float) -> int:
    """Lines ``text`` takes wrapped in a cell ``width_px`` wide: each piece on the line where it
    fits whole; a piece wider than a line (an address, a long file name) on lines of its own."""
    room = max(width_px - PAD_PX, WIDE_PX)
    text = str(text)
    if len(text) > LONG_TEXT:  # a stranger's 4,000-character subject: reckoned from its start
        sample = text[:LONG_TEXT].replace("\n", "")
        px = text_lines_px(sample) * len(text) / max(1, len(sample))
        return text.count("\n") + 1 + int(px // (room * 0.9))
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        used = 0.0
        for piece, px in _pieces(paragraph):
            if used + px <= room or piece == " ":
                used += px
            elif px > room:
                lines += (used > 0) + int(px // room)
                used = px % room
            else:
                lines += 1
                used = px
    return lines


def fit_rows(ws, table, columns: dict[int, int], wrapped: set[int], lone: set[int]) -> None:
    """Row heights for the wrapped cells (body cells in ``wrapped`` columns, headings), and each
    ``lone`` row (a title, a note) wider than column A merged across the table, wrapped."""
    from openpyxl.styles import Alignment

    last = max(columns, default=1)
    total_px = sum(column_px(w) for w in columns.values())
    headings = set(table.header_rows)
    for r, row in enumerate(table.rows):
        if r in lone:
            if last == 1 or column_px(columns.get(1, 8.43)) - PAD_PX >= text_lines_px(row[0]):
                continue
            ws.merge_cells(start_row=r + 1, start_column=1, end_row=r + 1, end_column=last)
            ws.cell(row=r + 1, column=1).alignment = Alignment(vertical="top", wrap_text=True)
            lines = text_lines(row[0], total_px)
        else:
            lines = max(
                (
                    text_lines(v, column_px(columns.get(c, 8.43)))
                    for c, v in enumerate(row, start=1)
                    if v not in (None, "") and (c in wrapped or r in headings)
                ),
                default=1,
            )
        if lines > 1:
            ws.row_dimensions[r + 1].height = min(MAX_ROW_PT, lines * LINE_PT + 3)


def text_lines_px(text) -> float:
    """The width of ``text`` on one line, in pixels."""
    return max((sum(px for _, px in _pieces(p)) for p in str(text).split("\n")), default=0.0)


def print_setup(ws, table, title: str | None) -> None:
    """Page setup for printing (and PDF): A4, landscape where wide, fit to the page's width, the
    heading row on every page, campaign name and page numbers."""
    from openpyxl.worksheet.page import PageMargins

    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    width = sheet_width_mm(ws) + (CHART_CM[0] * 10 + 10 if table.chart else 0)
    ws.page_setup.orientation = "portrait" if width <= PRINTABLE_MM["portrait"] else "landscape"
    ws.page_margins = PageMargins(**MARGINS_IN)
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as the rows need
    if table.freeze_row:
        ws.print_title_rows = f"1:{table.freeze_row}"
    ws.print_options.gridLines = True
    for header in (ws.oddHeader, ws.evenHeader):
        header.center.text = f"{title or ''} {table.name}".strip()
        header.center.size = 11
    for footer in (ws.oddFooter, ws.evenFooter):
        footer.center.text = zh(N_("Page &P of &N"))
        footer.center.size = 11


def progress_chart(ws, nrows: int) -> None:
    """A native Excel chart of the 进度 sheet: stacked columns 齐全/不齐全, a line for 当日来信."""
    from openpyxl.chart import BarChart, LineChart, Reference

    bars = BarChart()
    bars.type = "col"
    bars.grouping = "stacked"
    bars.overlap = 100
    bars.title = zh(N_("Progress"))
    bars.y_axis.title = zh(N_("Units"))
    bars.x_axis.title = zh(N_("Day"))
    bars.add_data(Reference(ws, min_col=2, max_col=3, min_row=1, max_row=nrows), titles_from_data=True)
    bars.set_categories(Reference(ws, min_col=1, min_row=2, max_row=nrows))
    line = LineChart()
    line.add_data(Reference(ws, min_col=5, max_col=5, min_row=1, max_row=nrows), titles_from_data=True)
    line.y_axis.axId = 200
    line.y_axis.title = zh(N_("Messages that day"))
    line.y_axis.crosses = "max"
    bars += line
    bars.width, bars.height = CHART_CM
    ws.add_chart(bars, "G2")
