"""Every version of a unit's items, which one counts and why, and what changed between them.

Units resubmit ("更正版"): the status counts one version per item (reconcile.status); here every
file of the item the unit sent is listed in arrival order with why it counts or does not, and
for statistics sheets the figures that moved from one version to the next (``活动总数 20 → 23``).

``changed_since`` answers "which units' figures changed since TIME" (``stats --json
--changed-since``): the statistics as they stood then (``unit_statuses(as_of=TIME)``, the same
conclusions computed over the mail received up to then) against the statistics now; no second
judgement.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from reconcile.judge import judge_part
from reconcile.status import iso_text, stored_time


def _number(x):
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def figure_changes(before: dict, after: dict, labels: list[str] | None = None) -> list[dict]:
    """The figures that differ: ``[{"field", "from", "to", "text"}]`` (None where absent)."""
    fields = list(labels or []) + sorted(k for k in {*before, *after} if k not in (labels or []))
    out = []
    for f in fields:
        a, b = before.get(f), after.get(f)
        if a != b:
            shown = ("—" if a is None else f"{_number(a)}", "—" if b is None else f"{_number(b)}")
            out.append(
                {"field": f, "from": _number(a), "to": _number(b), "text": f"{f} {shown[0]} → {shown[1]}"}
            )
    return out


def _figures(facts_text: str | None) -> dict:
    try:
        facts = json.loads(facts_text) if facts_text else {}
    except ValueError:
        return {}
    figures = facts.get("figures") if isinstance(facts, dict) else None
    if not isinstance(figures, dict):
        return {}
    return {k: v for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def item_versions(conn: sqlite3.Connection, unit_id: str, status_row: dict, config) -> dict[str, list[dict]]:
    """Per item id, every file of it the unit sent (recorded, attributed messages), in arrival order."""
    campaign = config.campaign
    tz = campaign.timezone
    cols = ("id", "message", "seq", "location", "filename", "kind", "sha256", "size", "facts", "error")
    rows = conn.execute(
        f"SELECT {', '.join('p.' + c for c in cols)}, m.received_at, m.message_id FROM parts p "
        "JOIN messages m ON m.id = p.message JOIN attributions a ON a.message = m.id "
        "WHERE a.unit = ? AND a.campaign = ? AND m.status = 'recorded' ORDER BY m.received_at, m.id, p.seq",
        [unit_id, campaign.id],
    ).fetchall()
    out: dict[str, list[dict]] = {item.id: [] for item in campaign.items}
    for r in rows:
        p = dict(zip((*cols, "received_at", "message_id"), r, strict=True))
        item = campaign.item_for_file(p["kind"], p["filename"])
        if item is not None:
            out[item.id].append(p)
    result: dict[str, list[dict]] = {}
    for item in campaign.items:
        parts = out[item.id]
        st = status_row["items"][item.id]
        labels = item.sheet.labels if item.sheet is not None else []
        counted_part, counted_msg = st.get("part"), st.get("message")
        counted_sha = st.get("sha256")
        counted_at = next((stored_time(p["received_at"]) for p in parts if p["id"] == counted_part), None)
        versions, previous = [], None
        for p in parts:
            j = judge_part(p, config, item)
            at = stored_time(p["received_at"])
            v = {
                "part": p["id"],
                "message": p["message"],
                "message_id": p["message_id"],
                "received_at": iso_text(at, tz),
                "filename": p["filename"] or p["location"],
                "sha256": p["sha256"],
                "size": p["size"],
                "state": j.state,
                "reason": j.reason,
                "reason_zh": j.reason_zh,
                "counts": p["id"] == counted_part,
            }
            v["why"], v["why_zh"] = _why(v, p, st, counted_msg, counted_sha, counted_at, at)
            if item.kind == "sheet":
                figures = _figures(p["facts"])
                figures = {k: x for k, x in figures.items() if k in labels}  # (this campaign's rows)
                v["figures"] = {k: _number(x) for k, x in figures.items()}
                if previous is not None and figures and previous != figures:
                    v["changes"] = figure_changes(previous, figures, labels)
                elif previous is not None and figures:
                    v["changes"] = []
                if figures:
                    previous = figures
            versions.append(v)
        result[item.id] = versions
    return result


def _why(v, p, st, counted_msg, counted_sha, counted_at, at) -> tuple[str, str]:
    override = (st.get("override") or {}).get("action")
    staff = {
        "accept": ("; accepted by staff", "；工作人员认定合格"),
        "reject": ("; rejected by staff", "；工作人员认定不合格"),
    }
    extra = staff.get(override or "", ("", ""))
    if v["counts"]:
        if st.get("warnings") and any("could not be read" in w for w in st["warnings"]):
            return (
                "counts: the later files of this item could not be read" + extra[0],
                "计入：之后发送的文件未能读取，仍以此版本为准" + extra[1],
            )
        return "counts: the latest version" + extra[0], "计入：最新版本" + extra[1]
    if p["message"] == counted_msg:
        return "another file in the same message counts", "同一封邮件中的另一文件计入"
    if counted_sha and p["sha256"] == counted_sha:
        return "the same file as the counted version", "与计入的版本为同一文件"
    if counted_at is not None and at > counted_at:
        return (
            f"not counted: could not be read ({v['reason'] or 'unreadable'})",
            f"未计入：未能读取（{v['reason_zh'] or v['reason'] or '无法读取'}）",
        )
    return "replaced by a later version", "已被之后的版本替换"


def changed_since(
    conn: sqlite3.Connection, roster, config, rows_now: list[dict], since: datetime
) -> list[dict]:
    """Units whose counted statistics (valid sheet and figures) differ now from at ``since``
    (the campaign's first sheet item: what `stats` adds up)."""
    from reconcile.stats import collect
    from reconcile.status import unit_statuses

    rows_then = unit_statuses(conn, roster, config, as_of=since)
    then = {u["id"]: u for u in collect(conn, rows_then, config)["per_unit"]}
    now = {u["id"]: u for u in collect(conn, rows_now, config)["per_unit"]}
    sheet = config.campaign.first("sheet")
    if sheet is None:
        return []
    labels = list(config.campaign.sheet.labels)
    out = []
    for r in rows_now:
        a, b = then.get(r["id"]), now.get(r["id"])
        if a is None and b is None:
            continue
        before, after = (a or {}).get("figures") or {}, (b or {}).get("figures") or {}
        changes = figure_changes(before, after, labels)
        if a is not None and b is not None and not changes:
            continue
        item = r["items"][sheet.id]
        out.append(
            {
                "id": r["id"],
                "name": r["name"],
                "counted_then": a is not None,
                "counted_now": b is not None,
                "changes": changes,
                "filename": item.get("filename"),
                "arrived_at": item.get("arrived_at"),
            }
        )
    return out
