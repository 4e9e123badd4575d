"""The progress chart as inline SVG, drawn on the server (office networks often have no internet,
and the page runs no JavaScript): units complete (green) and incomplete (amber) at the end of each
day as stacked bars against the roster size, messages arriving per day as a line, and the
deadline as a dashed red line. Colours are SVG attributes, so the page's CSP allows them."""

from __future__ import annotations

from markupsafe import Markup, escape

from reconcile.progress import Day

WIDTH, HEIGHT = 900, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 48, 28, 44
GREEN, AMBER, GREY, BLUE, RED = "#3b9a57", "#e0a526", "#d9d9d9", "#2d6cb5", "#c0392b"


def _nice_max(value: int) -> int:
    step = 1
    while step * 10 < value:
        step *= 10
    top = step
    while top < value:
        top += step
    return max(top, 1)


def progress_svg(days: list[Day], units: int, deadline_day) -> Markup:
    if not days:
        return Markup('<p class="empty">还没有收到邮件，暂无进度图。</p>')
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(days)
    slot = plot_w / n
    bar = max(1.0, slot * 0.7)
    y_units = _nice_max(units)
    y_mail = max(4, _nice_max(max(d.arrivals for d in days)))  # at least 4: whole-number ticks

    def y(value: float, top: int) -> float:
        return TOP + plot_h - plot_h * value / top

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="报送进度">',
        "<title>报送进度：每日齐全、不齐全单位数与来信数</title>",
    ]
    for k in range(5):  # grid and left axis (units)
        v = y_units * k / 4
        yy = y(v, y_units)
        out.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + plot_w}" y2="{yy:.1f}" stroke="#eeeeee"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{v:g}</text>'
        )
        m = y_mail * k / 4
        out.append(
            f'<text x="{LEFT + plot_w + 6}" y="{yy + 4:.1f}" font-size="11" fill="{BLUE}">{m:g}</text>'
        )
    label_every = max(1, n // 12)
    points = []
    for i, d in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        yc, yi = y(d.complete, y_units), y(d.complete + d.incomplete, y_units)
        tip = f"{d.day:%m-%d}：齐全{d.complete}，不齐全{d.incomplete}，未报送{d.missing}，来信{d.arrivals}"
        out.append(f"<g><title>{escape(tip)}</title>")
        out.append(
            f'<rect x="{x:.1f}" y="{yc:.1f}" width="{bar:.1f}" height="{TOP + plot_h - yc:.1f}" '
            f'fill="{GREEN}"/>'
        )
        out.append(
            f'<rect x="{x:.1f}" y="{yi:.1f}" width="{bar:.1f}" height="{yc - yi:.1f}" fill="{AMBER}"/>'
        )
        out.append("</g>")
        cx = LEFT + slot * (i + 0.5)
        points.append(f"{cx:.1f},{y(d.arrivals, y_mail):.1f}")
        if i % label_every == 0:
            out.append(
                f'<text x="{cx:.1f}" y="{TOP + plot_h + 16}" font-size="11" text-anchor="middle" '
                f'fill="#555">{d.day:%m-%d}</text>'
            )
        if d.day == deadline_day:
            dx = LEFT + slot * (i + 1)
            out.append(
                f'<line x1="{dx:.1f}" y1="{TOP - 6}" x2="{dx:.1f}" y2="{TOP + plot_h}" stroke="{RED}" '
                'stroke-width="2" stroke-dasharray="6 4"/>'
            )
            out.append(
                f'<text x="{dx - 4:.1f}" y="{TOP - 10}" font-size="12" text-anchor="end" '
                f'fill="{RED}">截止</text>'
            )
    out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    out.append(
        f'<line x1="{LEFT}" y1="{y(units, y_units):.1f}" x2="{LEFT + plot_w}" y2="{y(units, y_units):.1f}" '
        f'stroke="#888" stroke-dasharray="2 3"/>'
    )
    legend = [(GREEN, "齐全"), (AMBER, "不齐全"), (BLUE, "每日来信（右轴）")]
    lx = LEFT
    for colour, text in legend:
        out.append(f'<rect x="{lx}" y="{HEIGHT - 16}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16}" y="{HEIGHT - 6}" font-size="12" fill="#333">{text}</text>')
        lx += 40 + 14 * len(text)
    out.append(
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 6}" font-size="12" text-anchor="end" fill="#555">'
        f"共{units}个单位（虚线）</text>"
    )
    out.append("</svg>")
    return Markup("".join(out))
