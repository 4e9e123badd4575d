"""The workbook for people: `mailroll report --xlsx PATH` (or `--csv DIR`).

Six sheets, Chinese headings, as the office's staff write them:

* 汇总        counts by state, by item and by category;
* 进度        units complete / incomplete / silent day by day and mail per day
              (reconcile.progress), with a native Excel chart of the same series;
* 单位情况    one row per unit: each item's state (filled green / red / yellow) and what is
              wrong with it, late marks, staff decisions: what the leadership reads;
* 收件明细    one row per unit: each item's counted file, its arrival time and sender, the last
              message, the deadline, messages waiting for review, the unit's addresses;
* 统计汇总    (reconcile/report_stats.py) each unit's figures from its counted valid sheet, a 全省合计 totals row, then
              the units whose sheet is missing or invalid (so totals are never silently short);
* 未匹配邮件  messages not attributed to any unit, with the reason.

The content is built once as plain tables (``build_tables``) and written either as .xlsx
(openpyxl: bold frozen header row, auto filter, column widths that fit CJK text, long text
wrapped in rows tall enough for it) or as one CSV per sheet (UTF-8 with BOM, so Excel opens it
correctly). Every sheet prints legibly on A4 (``reconcile.report_print``): all its columns on
the page's width at 75 % or more (text 8.25 pt or larger), landscape where wide, the heading row
repeated on every page, campaign name and page numbers in the header and footer. A character XML
cannot hold (a sender's U+0001) is dropped from the cell.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reconcile.i18n import N_, zh
from reconcile.vocab import ItemState, Trust, UnitState

UNIT_STATE_CN: dict[str, str] = {s: s.label for s in UnitState}
ITEM_STATE_CN: dict[str, str] = {s: s.label for s in ItemState}
# who sent the counted file (attributions.trust, docs/RECONCILE.md "Sender trust")
TRUST_CN: dict[str, str] = {t: t.label for t in Trust}
# the workbook's words: the message catalog's Chinese (as the web page's and the mails')
LATE = zh(N_("late"))  # 逾期
SEP = zh(", ")  # 、
PROGRESS_SHEET = zh(N_("Progress sheet"))  # 进度
FILLS = {
    "ok": "C6EFCE",
    "invalid": "FFC7CE",
    "missing": "FFEB9C",
    "complete": "C6EFCE",
    "incomplete": "FFEB9C",
    "exempt": "DDEBF7",
    "late": "F8CBAD",
}
WRAP_WIDTH = 32  # longer text (reasons, subjects) wraps in a column at most this wide
HEADING_WIDTH = 10  # a longer heading (统计表收到时间) wraps rather than widen its column


@dataclass
class Table:
    """One sheet: rows of cells; which rows are headings; which cells get a state colour."""

    name: str
    rows: list[list] = field(default_factory=list)
    header_rows: list[int] = field(default_factory=list)  # 0-based
    fills: dict[tuple[int, int], str] = field(default_factory=dict)
    bold_rows: list[int] = field(default_factory=list)
    filter_range: tuple[int, int, int] | None = None  # (header row, last row, columns), 0-based
    freeze_row: int | None = None  # rows above this stay visible (1-based)
    chart: str | None = None  # "progress": a native chart of this table's series

    def add(self, row: list, *, header: bool = False, bold: bool = False) -> int:
        self.rows.append(row)
        i = len(self.rows) - 1
        if header:
            self.header_rows.append(i)
        if bold:
            self.bold_rows.append(i)
        return i


def _local(iso: str | None, tz) -> str:
    if not iso:
        return ""
    value = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def display_width(text) -> int:
    """Columns a text takes in a spreadsheet: CJK (wide) characters count 2."""
    width = 0
    for line in str(text).splitlines() or [""]:
        w = sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)
        width = max(width, w)
    return width


def _summary_table(rows: list[dict], config, generated: str) -> Table:
    t = Table(zh(N_("Summary")))
    t.add([zh(N_("{campaign}: material sent")).format(campaign=config.campaign.name)], bold=True)
    t.add([zh(N_("Deadline")), _local(config.campaign.deadline.isoformat(), config.campaign.timezone)])
    t.add([zh(N_("Generated")), generated])
    t.add([])
    t.add([zh(N_("State")), zh(N_("Units"))], header=True)
    counts = {k: 0 for k in UNIT_STATE_CN}
    for r in rows:
        counts[r["state"]] += 1
    for state, label in UNIT_STATE_CN.items():
        i = t.add([label, counts[state]])
        t.fills[(i, 0)] = state if state != "missing" else "invalid"
    t.add([zh(N_("Of which late")), sum(1 for r in rows if r["late"])])
    t.add([zh(N_("Total")), len(rows)], bold=True)
    t.add([])
    t.add([zh(N_("Item")), *ITEM_STATE_CN.values(), LATE], header=True)
    for item, label in config.campaign.labels.items():
        states = [r["items"][item]["state"] for r in rows]
        t.add(
            [
                label,
                *(states.count(s) for s in ITEM_STATE_CN),
                sum(1 for r in rows if r["items"][item]["late"]),
            ]
        )
    t.add([])
    t.add([zh(N_("Category")), zh(N_("Units")), *UNIT_STATE_CN.values(), LATE], header=True)
    categories: dict[str, list[dict]] = {}
    for r in rows:
        categories.setdefault(r.get("category") or zh(N_("(no category)")), []).append(r)
    for cat, members in categories.items():
        t.add(
            [
                cat,
                len(members),
                *(sum(1 for r in members if r["state"] == s) for s in UNIT_STATE_CN),
                sum(1 for r in members if r["late"]),
            ]
        )
    return t


def _override_text(item: dict) -> str:
    o = item.get("override")
    if not o:
        return ""
    verb = {"accept": zh(N_("Accepted by staff")), "reject": zh(N_("Rejected by staff"))}.get(
        o["action"], o["action"]
    )
    return zh(N_("{verb} ({actor})")).format(verb=verb, actor=o["actor"]) + (
        zh(N_(": {note}")).format(note=o["note"]) if o.get("note") else ""
    )


def _units_header(labels: dict[str, str]) -> list[str]:
    header = [
        zh(N_("Row")),
        zh(N_("Unit id")),
        zh(N_("Unit name")),
        zh(N_("Category")),
        zh(N_("State")),
        LATE,
    ]
    for cn in labels.values():
        header += [cn, zh(N_("{item}: why")).format(item=cn)]
    return [*header, zh(N_("Staff decision"))]


def _unit_notes(r: dict, labels: dict[str, str], tz) -> str:
    """Staff decisions about the unit and its items, in one cell."""
    notes = [
        f"{cn}{_override_text(r['items'][item])}"
        for item, cn in labels.items()
        if r["items"][item].get("override")
    ]
    if r.get("exempt"):
        notes.append(
            zh(N_("exempt"))
            + (zh(N_(": {note}")).format(note=r["exempt_note"]) if r.get("exempt_note") else "")
        )
    if r.get("deadline_extended"):
        notes.append(zh(N_("deadline extended to {time}")).format(time=_local(r["deadline"], tz)))
    return "；".join(notes)


def _units_table(rows: list[dict], config) -> Table:
    tz = config.campaign.timezone
    t = Table(zh(N_("Unit by unit")), freeze_row=1)
    labels = config.campaign.labels
    header = _units_header(labels)
    t.add(header, header=True)
    for n, r in enumerate(rows, start=1):
        state = UNIT_STATE_CN[r["state"]]  # 免报 is a state of its own
        row = [n, r["id"], r["name"], r.get("category") or "", state, LATE if r["late"] else ""]
        fill_cols = {}
        for item in labels:
            it = r["items"][item]
            label = ITEM_STATE_CN[it["state"]] + (zh(N_("(late)")) if it["late"] else "")
            explain = it.get("reason_zh") or it.get("reason") or ""
            warnings = it.get("warnings_zh") or it.get("warnings") or []
            if warnings:
                explain = "；".join([explain, *warnings]) if explain else "；".join(warnings)
            fill_cols[len(row)] = "late" if it["late"] and it["state"] == "ok" else it["state"]
            row += [label, explain]
        row.append(_unit_notes(r, labels, tz))
        i = t.add(row)
        t.fills[(i, 4)] = {
            "complete": "ok",
            "incomplete": "missing",
            "missing": "invalid",
            "exempt": "exempt",
        }[r["state"]]
        if r["late"]:
            t.fills[(i, 5)] = "late"
        for col, state in fill_cols.items():
            t.fills[(i, col)] = state
    t.filter_range = (0, len(t.rows) - 1, len(header))
    return t


def _arrivals_table(rows: list[dict], config) -> Table:
    """收件明细: when each item arrived and who sent it, the unit's last message, its deadline
    and addresses (beside 单位情况, which keeps to what the leadership reads: both print on a
    landscape page at a legible size)."""
    tz = config.campaign.timezone
    t = Table(zh(N_("Arrivals and senders")), freeze_row=1)
    labels = config.campaign.labels
    header = [zh(N_("Row")), zh(N_("Unit id")), zh(N_("Unit name"))]
    for cn in labels.values():
        header += [
            zh(N_("{item}: file")).format(item=cn),
            zh(N_("{item}: received")).format(item=cn),
            zh(N_("{item}: sender")).format(item=cn),
        ]
    header += [
        zh(N_("Last message")),
        zh(N_("Deadline")),
        zh(N_("Messages waiting for review")),
        zh(N_("Addresses")),
    ]
    t.add(header, header=True)
    for n, r in enumerate(rows, start=1):
        row = [n, r["id"], r["name"]]
        for item in labels:
            it = r["items"][item]
            trust = TRUST_CN.get(it.get("trust") or "", it.get("trust") or "")
            sent = (it.get("filename") or it.get("link") or "") if it["state"] != "missing" else ""
            row += [sent, _local(it.get("arrived_at"), tz), trust]
        pending = "；".join(
            f"#{p['message']} {p['from'] or '?'}：{p['subject'] or ''}" for p in r.get("pending_review") or []
        )
        row += [_local(r.get("last_arrival"), tz), _local(r.get("deadline"), tz), pending]
        t.add([*row, "; ".join(r.get("emails") or [])])
    t.filter_range = (0, len(t.rows) - 1, len(header))
    return t


def _unmatched_table(conn: sqlite3.Connection, config) -> Table:
    tz = config.campaign.timezone
    t = Table(zh(N_("Unmatched messages")), freeze_row=1)
    t.add(
        [
            zh(N_("No.")),
            zh(N_("Received")),
            zh(N_("From")),
            zh(N_("Subject")),
            zh(N_("Attachments")),
            zh(N_("Why")),
        ],
        header=True,
    )
    for mid, received_at, from_addr, from_name, subject, reason, files in conn.execute(
        "SELECT m.id, m.received_at, m.from_addr, m.from_name, m.subject, a.reason, "
        "(SELECT group_concat(coalesce(p.filename, p.location), '; ') FROM parts p WHERE p.message = m.id) "
        "FROM messages m JOIN attributions a ON a.message = m.id "
        "WHERE a.unit IS NULL AND m.status = 'recorded' AND a.method IS NOT 'other' "
        # dismissed or rejected by staff: out of the queue (reconcile/queue.py)
        "AND m.id NOT IN (SELECT message FROM overrides WHERE action IN ('reject', 'dismiss') "
        "AND message IS NOT NULL AND revoked_at IS NULL) "
        "AND (a.campaign = ? OR a.campaign IS NULL) ORDER BY m.received_at, m.id",
        [config.campaign.id],
    ):
        sender = f"{from_name} <{from_addr}>" if from_name else (from_addr or "")
        t.add([mid, _local(received_at, tz), sender, subject or "", files or "", reason or ""])
    t.filter_range = (0, len(t.rows) - 1, 6)
    return t


def _progress_table(conn: sqlite3.Connection, rows: list[dict], config) -> Table:
    """进度: the units complete / incomplete / silent at the end of each day and the mail that
    arrived that day (reconcile.progress), with a native chart of the same series."""
    from reconcile.progress import progress_series

    t = Table(PROGRESS_SHEET, freeze_row=1, chart="progress")
    days = (UnitState.COMPLETE, UnitState.INCOMPLETE, UnitState.MISSING)
    t.add([zh(N_("Day")), *(s.label for s in days), zh(N_("Messages that day"))], header=True)
    for d in progress_series(conn, rows, config):
        t.add([d.day.isoformat(), d.complete, d.incomplete, d.missing, d.arrivals])
    return t


def build_tables(
    conn: sqlite3.Connection, rows: list[dict], stats: dict, config, now: datetime | None = None
) -> list[Table]:
    generated = (now or datetime.now(UTC)).astimezone(config.campaign.timezone).strftime("%Y-%m-%d %H:%M")
    from reconcile.report_stats import stats_table  # it builds on this module

    return [
        _summary_table(rows, config, generated),
        _progress_table(conn, rows, config),
        _units_table(rows, config),
        _arrivals_table(rows, config),
        stats_table(stats, config),
        _unmatched_table(conn, config),
    ]


# long: the workbook's styles and every table's cells written in one pass
def write_xlsx(tables: list[Table], path: Path, title: str | None = None) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    from reconcile.report_print import fit_columns, fit_rows, print_setup, progress_chart

    wb = Workbook()
    wb.remove(wb.worksheets[0])
    bold = Font(bold=True)
    heading_fill = PatternFill("solid", fgColor="DDEBF7")
    top = Alignment(vertical="top", wrap_text=False)
    for table in tables:
        ws = wb.create_sheet(table.name)
        headings = set(table.header_rows)
        # a row of one cell (a title, a note) spans the table: it does not widen column A
        lone = {i for i, row in enumerate(table.rows) if len(row) == 1 and i not in headings}
        widths = _write_cells(ws, table, top, lone)
        for r in table.header_rows:
            for c in range(1, len(table.rows[r]) + 1):
                cell = ws.cell(row=r + 1, column=c)
                cell.font = bold
                cell.fill = heading_fill
                cell.alignment = Alignment(vertical="top", wrap_text=True)
        for r in table.bold_rows:
            for c in range(1, max(1, len(table.rows[r])) + 1):
                ws.cell(row=r + 1, column=c).font = bold
        for (r, c), state in table.fills.items():
            ws.cell(row=r + 1, column=c + 1).fill = PatternFill("solid", fgColor=FILLS[state])
        columns = fit_columns(table, {c: max(6, w + 2) for c, w in widths.items()}, WRAP_WIDTH, lone)
        wrapped = {c for c, w in widths.items() if w + 2 > columns[c]}
        wrap = Alignment(vertical="top", wrap_text=True)
        for c, w in columns.items():
            ws.column_dimensions[get_column_letter(c)].width = w
            for r in range(len(table.rows)) if c in wrapped else ():
                if r not in headings and r not in lone and c <= len(table.rows[r]):
                    ws.cell(row=r + 1, column=c).alignment = wrap
        fit_rows(ws, table, columns, wrapped, lone)
        if table.freeze_row:
            ws.freeze_panes = ws.cell(row=table.freeze_row + 1, column=1)
        if table.filter_range:
            first, last, ncols = table.filter_range
            ws.auto_filter.ref = f"A{first + 1}:{get_column_letter(ncols)}{max(last, first) + 1}"
        if table.chart == "progress" and len(table.rows) > 1:
            progress_chart(ws, len(table.rows))
        print_setup(ws, table, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    wb.save(tmp)
    tmp.replace(path)
    return path


def _write_cells(ws, table: Table, alignment, lone: set[int]) -> dict[int, int]:
    """The table's values into the sheet; returns each column's widest display width (but for
    the ``lone`` rows: a title or a note spanning the table)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    widths: dict[int, int] = {}
    headings = set(table.header_rows)
    for r, row in enumerate(table.rows, start=1):
        for c, value in enumerate(row, start=1):
            if isinstance(value, str):  # a sender's control characters (U+0001) are not XML
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell = ws.cell(row=r, column=c, value=value)
            if cell.data_type == "f":  # text a sender wrote ("=HYPERLINK(...)"): text, never a formula
                cell.data_type = "s"
            cell.alignment = alignment
            if value not in (None, "") and r - 1 not in lone:
                w = display_width(value if not isinstance(value, str) else value[:400])  # wraps anyway
                widths[c] = max(widths.get(c, 0), min(w, HEADING_WIDTH) if r - 1 in headings else w)
    return widths
