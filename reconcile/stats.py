"""The statistics sheets' figures added up over the units whose counted sheet is valid.

One sheet per unit: the counted one (see reconcile.status). A unit whose sheet is missing or
invalid adds nothing and is listed, so the totals never silently include a rejected sheet.
"""
from __future__ import annotations

import json
import sqlite3

from reconcile.judge import OK


def _number(x: float) -> int | float:
    x = round(float(x), 6)
    return int(x) if x.is_integer() else x


def collect(conn: sqlite3.Connection, rows: list[dict], config) -> dict:
    """``{"units": N, "fields": {label: total}}`` plus per-unit figures and the units left out."""
    labels = config.campaign.sheet.labels
    part_ids = [r["items"]["statistics"].get("part") for r in rows]
    facts: dict[int, dict] = {}
    wanted = [p for p in part_ids if p]
    if wanted:
        for pid, text in conn.execute(
            "SELECT id, facts FROM parts WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(wanted)]
        ):
            try:
                facts[pid] = json.loads(text) if text else {}
            except ValueError:
                facts[pid] = {}
    totals = {label: 0.0 for label in labels}
    per_unit, left_out = [], []
    for r in rows:
        st = r["items"]["statistics"]
        pid = st.get("part")
        if st["state"] != OK or not pid:
            why = st.get("reason") or ("accepted by staff without a sheet" if st["state"] == OK else "no sheet received")
            if r.get("exempt"):
                why = "exempt" + (f": {r['exempt_note']}" if r.get("exempt_note") else "")
            left_out.append({"id": r["id"], "name": r["name"], "state": st["state"], "reason": why})
            continue
        f = facts.get(pid, {})
        figures = {k: v for k, v in (f.get("figures") or {}).items() if isinstance(v, (int, float))}
        for label in labels:
            if label in figures:
                totals[label] += figures[label]
        per_unit.append({
            "id": r["id"], "name": r["name"], "category": r.get("category", ""),
            "unit_cell": f.get("unit_cell"), "contact": f.get("contact"), "phone": f.get("phone"),
            "figures": {label: _number(figures[label]) for label in labels if label in figures},
            "late": st.get("late", False), "filename": st.get("filename"),
        })
    return {
        "units": len(per_unit),
        "fields": {label: _number(totals[label]) for label in labels},
        "units_without_valid_sheet": len(left_out),
        "per_unit": per_unit,
        "left_out": left_out,
    }
