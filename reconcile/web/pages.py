"""The pages (GET): 总览 overview, 单位 unit, 未匹配 unmatched, 统计 stats, the workbook, and the
JSON of `status --json` / `messages --json`, byte for byte."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, abort, current_app, g, render_template, request, send_file
from markupsafe import Markup

from reconcile.i18n import N_, zh
from reconcile.status import matches, stored_time, summary
from reconcile.web.words import EXEMPT_ZH, ITEM_STATE_ZH, LATE_ZH, QUEUE_STATE_ZH, UNIT_STATE_ZH

bp = Blueprint("pages", __name__)

STATE_FILTERS = {**UNIT_STATE_ZH, "late": LATE_ZH, "exempt": EXEMPT_ZH}


def item_filters(config) -> dict[str, str]:
    """'missing:video' -> '影像资料未收到', for every item of the campaign."""
    labels = config.campaign.labels
    return {
        f"{how}:{item}": f"{labels[item]}{ITEM_STATE_ZH[how]}"
        for item in config.campaign.item_ids
        for how in ("missing", "invalid")
    }


def sources():
    return current_app.extensions["mailroll"]


def _json(text: str) -> Response:
    return Response(text, mimetype="application/json")


def local_text(iso: str | None, tz) -> str:
    """'YYYY-MM-DD HH:MM' in the campaign's zone (as the CLI shows times)."""
    if not iso:
        return ""
    try:
        return stored_time(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def short_time(iso: str | None) -> str:
    """A time the status rows already give in the campaign's zone, as 'YYYY-MM-DD HH:MM'."""
    return iso[:16].replace("T", " ") if iso else ""


class Row(NamedTuple):
    id: str
    url: str
    name: str
    exempt: bool
    category: str
    state: str
    state_zh: str
    late: bool
    cells: list[tuple]
    last: str


def table_rows(rows: list[dict], items: list[str], query: str = "") -> list[Row]:
    """What the overview's table shows, worked out here rather than in the template: at 2,000
    units a Jinja2 macro and filter per cell cost more than the rest of the page."""
    out = []
    for r in rows:
        cells = []
        for i in items:
            it = r["items"][i]
            cells.append(
                (
                    it["state"],
                    ITEM_STATE_ZH[it["state"]],
                    it.get("late"),
                    bool(it.get("override")),
                    it.get("reason_zh") or it.get("reason") or "",
                    it.get("filename") or "",
                    it.get("unit_cell") or "",
                )
            )
        out.append(
            Row(
                r["id"],
                "/units/" + quote(r["id"], safe="") + query,
                r["name"],
                bool(r.get("exempt")),
                r.get("category") or "",
                r["state"],
                UNIT_STATE_ZH[r["state"]],
                r["late"],
                cells,
                short_time(r.get("last_arrival")),
            )
        )
    return out


@bp.route("/")
def overview():
    """The heartbeat (time-dependent) around the page's body, which is rendered once per data
    change and filter (``Sources.memo``): 2,000 units' rows cost tens of ms in Jinja2."""
    from reconcile.heartbeat import heartbeat

    src = sources()
    filters = {k: request.args.get(k, "") for k in ("state", "item", "category")}
    body = src.memo(
        "overview?" + urlencode(filters),
        lambda: Markup(render_template("overview_body.html", **overview_body(src, filters))),
    )
    return render_template("overview.html", body=body, heartbeat=heartbeat(src.connection(), src.config()))


def overview_body(src, filters: dict[str, str]) -> dict:
    """What the overview shows of the status rows: counts, chart, filters, the (filtered) table."""
    from reconcile.web.chart import progress_svg

    config, rows = src.config(), src.rows()
    items = config.campaign.item_ids
    how, _, which = filters["item"].partition(":")
    shown = [
        r
        for r in rows
        if matches(
            r,
            state=[filters["state"]] if filters["state"] in STATE_FILTERS else [],
            missing=[which] if how == "missing" and which in items else [],
            invalid=[which] if how == "invalid" and which in items else [],
            category=[filters["category"]] if filters["category"] else [],
        )
    ]
    tz = config.campaign.timezone
    query = "?" + urlencode({"campaign": config.campaign.id}) if src.several() else ""
    return {
        "rows": table_rows(shown, items, query),
        "counts": summary(rows),
        "shown_counts": summary(shown),
        "filters": filters,
        "state_filters": STATE_FILTERS,
        "item_filters": item_filters(config),
        "categories": sorted({r.get("category") for r in rows if r.get("category")}),
        # the units expected to send (an exempt one is not: reconcile/progress.py leaves it out)
        "chart": progress_svg(
            src.progress(),
            sum(r["state"] != "exempt" for r in rows),
            config.campaign.deadline.astimezone(tz).date(),
        ),
    }


@bp.route("/units/<unit_id>")
def unit(unit_id: str):
    from reconcile.unit_detail import unit_detail
    from reconcile.web.previews import preview_states

    src = sources()
    roster = src.roster()
    u = roster.by_id.get(unit_id)
    if u is None:
        abort(404, zh(N_("No unit {unit} in the roster")).format(unit=unit_id))
    row = next(r for r in src.rows() if r["id"] == u.id)
    detail = unit_detail(src.connection(), roster, src.config(), u, row)
    videos = [p["id"] for m in detail["messages"] for p in m["parts"] if p["kind"] == "video" and p["sha256"]]
    previewed = preview_states(src.connection(), src.config(), videos)
    return render_template("unit.html", d=detail, previewed=previewed)


@bp.route("/unmatched")
def unmatched():
    """未匹配: the open queue (as `mailroll [--campaign ID] unmatched`), the messages waiting for
    review, and with ``?all=1`` 已处理: what staff decided, by whom, when and why."""
    from reconcile.messages import own_texts
    from reconcile.queue import OPEN, queue_rows

    src = sources()
    config = src.config()
    tz = config.campaign.timezone
    show_all = request.args.get("all") == "1"
    queue = [
        {**r, "when": local_text(r["received_at"], tz), "decided": local_text(r.get("decided_at"), tz)}
        for r in queue_rows(
            src.connection(), src.messages(config.campaign.id if src.several() else None), decided=show_all
        )
    ]
    review = sorted(
        (
            {**p, "unit": r["id"], "unit_name": r["name"], "when": local_text(p["received_at"], tz)}
            for r in src.rows()
            for p in r.get("pending_review") or []
        ),
        key=lambda p: (p["when"], p["message"]),
    )
    texts = own_texts(src.connection(), [r["id"] for r in queue] + [p["message"] for p in review])
    for r in queue:
        r["text"] = texts.get(r["id"])
    for p in review:
        p["text"] = texts.get(p["message"])
    return render_template(
        "unmatched.html",
        messages=[r for r in queue if r.get("state", OPEN) == OPEN],
        decided=[r for r in queue if r.get("state", OPEN) != OPEN],
        show_all=show_all,
        queue_states=QUEUE_STATE_ZH,
        review=review,
        units=src.roster().units,
    )


@bp.route("/stats")
def stats():
    src = sources()
    sheet = src.config().campaign.first("sheet")
    units = dict(sheet.sheet.fields) if sheet is not None and sheet.sheet else {}
    body = src.memo(
        "stats", lambda: Markup(render_template("stats_body.html", data=src.stats(), field_units=units))
    )
    return render_template("stats.html", body=body)


@bp.route("/report.xlsx")
def report_xlsx():
    from reconcile import report as rep
    from reconcile.stats import collect

    src = sources()
    config, conn, rows = src.config(), src.connection(), src.rows()
    tables = rep.build_tables(conn, rows, collect(conn, rows, config), config)
    with tempfile.TemporaryDirectory(prefix="mailroll-web-") as tmp:
        path = rep.write_xlsx(tables, Path(tmp) / "report.xlsx", config.campaign.name)
        data = path.read_bytes()
    return send_file(
        io.BytesIO(data),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=zh(N_("{campaign}-status.xlsx")).format(campaign=config.campaign.name),
    )


@bp.route("/api/status")
def api_status():
    """Exactly `mailroll [--campaign ID] status --json` on the same database (the same
    serialisation); with several campaigns and no ``?campaign=ID``, refused as the CLI refuses."""
    from reconcile.status_cache import json_text, status_json

    src = sources()
    if src.several() and not g.campaign_given:
        ids = src.all_config().campaign_ids
        error = {"error": f"several campaigns: say which with ?campaign=ID; the ids are {', '.join(ids)}"}
        return Response(json_text(error), status=400, mimetype="application/json")
    return _json(status_json(src.connection(), src.config(), src.roster))


@bp.route("/api/messages")
def api_messages():
    """Exactly `mailroll [--campaign ID] messages --json`."""
    return _json(sources().messages_json(g.campaign_id if g.campaign_given else None))
