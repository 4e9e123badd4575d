"""The progress chart as inline SVG, drawn on the server (office networks often have no internet,
and the page runs no JavaScript): units complete (green) and incomplete (amber) at the end of each
day as stacked bars against the roster size, messages arriving per day as a line, and the
deadline as a dashed red line. Colours are SVG attributes, so the page's CSP allows them."""

from __future__ import annotations

from markupsafe import Markup, escape

from reconcile.i18n import N_, zh
from reconcile.progress import Day
from reconcile.web.words import UNIT_STATE_ZH

WIDTH, HEIGHT = 900, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 48, 28, 44
COMPLETE, INCOMPLETE, SILENT = (UNIT_STATE_ZH[s] for s in ("complete", "incomplete", "missing"))  # catalog
TITLE = zh(N_("Progress: {complete} and {incomplete} units each day, and messages")).format(
    complete=COMPLETE, incomplete=INCOMPLETE
)
PROGRESS = zh(N_("Progress"))
DEADLINE = zh(N_("deadline"))
ALL_UNITS = zh(N_("{n} units in all (dotted)"))
GREEN, AMBER, GREY, BLUE, RED = "#3b9a57", "#e0a526", "#d9d9d9", "#2d6cb5", "#c0392b"


TICKS = 4  # intervals on each vertical axis


def _nice_max(value: int) -> int:
    """The top of an axis: a round number at or above ``value`` that ``TICKS`` divides, so every
    tick is a whole number (7 messages: 0 2 4 6 8, never 1.75)."""
    step = 1
    while step * 10 < value:
        step *= 10
    top = step
    while top < value:
        top += step
    return max(TICKS, -(-top // TICKS) * TICKS)


class _Frame:
    """The plot's area and its two vertical scales (units left, messages right)."""

    def __init__(self, days: list[Day], units: int):
        self.plot_w, self.plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.slot = self.plot_w / len(days)
        self.bar = max(1.0, self.slot * 0.7)
        self.y_units = _nice_max(units)
        self.y_mail = _nice_max(max(d.arrivals for d in days))

    def y(self, value: float, top: int) -> float:
        return TOP + self.plot_h - self.plot_h * value / top


def progress_svg(days: list[Day], units: int, deadline_day) -> Markup:
    if not days:
        return Markup('<p class="empty">%s</p>') % zh(N_("No mail yet: no progress to chart."))
    f = _Frame(days, units)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(PROGRESS)}">',
        f"<title>{escape(TITLE)}</title>",
    ]
    out += _axes(f)
    out += _days(f, days, deadline_day)
    yu = f.y(units, f.y_units)
    out.append(
        f'<line x1="{LEFT}" y1="{yu:.1f}" x2="{LEFT + f.plot_w}" y2="{yu:.1f}" stroke="#888" stroke-dasharray="2 3"/>'
    )
    out += _legend(f, units)
    out.append("</svg>")
    return Markup("".join(out))


def _axes(f: _Frame) -> list[str]:
    out = []
    for k in range(TICKS + 1):  # grid and left axis (units)
        v = f.y_units * k // TICKS
        yy = f.y(v, f.y_units)
        out.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + f.plot_w}" y2="{yy:.1f}" stroke="#eeeeee"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{v:g}</text>'
        )
        m = f.y_mail * k // TICKS
        out.append(
            f'<text x="{LEFT + f.plot_w + 6}" y="{yy + 4:.1f}" font-size="11" fill="{BLUE}">{m:g}</text>'
        )
    return out


def _days(f: _Frame, days: list[Day], deadline_day) -> list[str]:
    """Each day's stacked bar, its date label, the deadline line; the arrivals polyline."""
    out, points = [], []
    label_every = max(1, len(days) // 12)
    bottom = TOP + f.plot_h
    for i, d in enumerate(days):
        x = LEFT + f.slot * i + (f.slot - f.bar) / 2
        yc, yi = f.y(d.complete, f.y_units), f.y(d.complete + d.incomplete, f.y_units)
        counts = f"{COMPLETE}{d.complete}，{INCOMPLETE}{d.incomplete}，{SILENT}{d.missing}"
        tip = f"{d.day:%m-%d}：{counts}，" + zh(N_("messages {n}")).format(n=d.arrivals)
        out.append(f"<g><title>{escape(tip)}</title>")
        out.append(
            f'<rect x="{x:.1f}" y="{yc:.1f}" width="{f.bar:.1f}" height="{bottom - yc:.1f}" fill="{GREEN}"/>'
        )
        out.append(
            f'<rect x="{x:.1f}" y="{yi:.1f}" width="{f.bar:.1f}" height="{yc - yi:.1f}" fill="{AMBER}"/>'
        )
        out.append("</g>")
        cx = LEFT + f.slot * (i + 0.5)
        points.append(f"{cx:.1f},{f.y(d.arrivals, f.y_mail):.1f}")
        if i % label_every == 0:
            out.append(
                f'<text x="{cx:.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle" '
                f'fill="#555">{d.day:%m-%d}</text>'
            )
        if d.day == deadline_day:
            dx = LEFT + f.slot * (i + 1)
            out.append(
                f'<line x1="{dx:.1f}" y1="{TOP - 6}" x2="{dx:.1f}" y2="{bottom}" stroke="{RED}" '
                'stroke-width="2" stroke-dasharray="6 4"/>'
            )
            out.append(
                f'<text x="{dx - 4:.1f}" y="{TOP - 10}" font-size="12" text-anchor="end" fill="{RED}">'
                f"{escape(DEADLINE)}</text>"
            )
    out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    return out


def _legend(f: _Frame, units: int) -> list[str]:
    out = []
    lx = LEFT
    for colour, text in [
        (GREEN, COMPLETE),
        (AMBER, INCOMPLETE),
        (BLUE, zh(N_("Messages a day (right axis)"))),
    ]:
        out.append(f'<rect x="{lx}" y="{HEIGHT - 16}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16}" y="{HEIGHT - 6}" font-size="12" fill="#333">{text}</text>')
        lx += 40 + 14 * len(text)
    out.append(
        f'<text x="{LEFT + f.plot_w}" y="{HEIGHT - 6}" font-size="12" text-anchor="end" fill="#555">'
        f"{escape(ALL_UNITS.format(n=units))}</text>"
    )
    return out
