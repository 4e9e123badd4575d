"""The workbook on paper: A4 page setup for each sheet of `mailroll report --xlsx` (and the PDF
LibreOffice makes of it) and the 进度 sheet's native chart."""

from __future__ import annotations

from reconcile.i18n import N_, zh

# Printing. A4, margins 0.7 in; a column of width w (characters of the default 11 pt font) takes
# about w * 8 + 5 pixels at 96 dpi as LibreOffice prints it. Nothing is shrunk (fitting the 19
# columns of 单位情况 to one page width printed them too small to read): a sheet is printed at
# full size, landscape when it is wider than a portrait page; long texts and headings wrap; a
# sheet still wider than a landscape page continues on pages to
# the right, its first columns (the unit) repeated on each, like its heading row.
PRINTABLE_MM = {"portrait": 210 - 2 * 17.8, "landscape": 297 - 2 * 17.8}
CHART_CM = (12, 8)  # the 进度 chart beside its table: both fit a landscape page


def sheet_width_mm(ws) -> float:
    from openpyxl.utils import get_column_letter

    total_px = 0.0
    for c in range(1, ws.max_column + 1):
        width = ws.column_dimensions[get_column_letter(c)].width or 8.43
        total_px += width * 8 + 5
    return total_px / 96 * 25.4


def print_setup(ws, table, title: str | None) -> None:
    """Page setup for printing (and PDF): A4, landscape where wide, full size (11 pt), the
    heading row (and the unit columns) on every page, campaign name and page numbers."""
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    width = sheet_width_mm(ws) + (CHART_CM[0] * 10 + 10 if table.chart else 0)
    orientation = "portrait" if width <= PRINTABLE_MM["portrait"] else "landscape"
    ws.page_setup.orientation = orientation
    ws.sheet_properties.pageSetUpPr.fitToPage = False
    ws.page_setup.scale = 100
    if width > PRINTABLE_MM[orientation] and table.print_title_cols:
        ws.print_title_cols = table.print_title_cols
    if table.freeze_row:
        ws.print_title_rows = f"1:{table.freeze_row}"
    ws.print_options.gridLines = True
    for header in (ws.oddHeader, ws.evenHeader):
        header.center.text = f"{title or ''} {table.name}".strip()
        header.center.size = 10
    for footer in (ws.oddFooter, ws.evenFooter):
        footer.center.text = zh(N_("Page &P of &N"))
        footer.center.size = 10


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
