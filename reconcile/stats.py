"""The statistics sheets' figures added up over the units whose counted sheet is valid.

One sheet per unit: the counted one (see reconcile.status). A unit whose sheet is missing or
invalid adds nothing and is listed, so the totals never silently include a rejected sheet. Each
填报单位's figures are added once: a sheet of another unit that staff accepted for its sender is
left out when that unit's own sheet counts (``excluded`` lists every sheet left out, and why).

Counted, but noted (``notes``, and per kind ``accepted_with_missing_figures``,
``sheet_names_other_unit``, ``same_sheet``): a sheet accepted by staff although figures are
missing (what is there is added); a sheet whose 填报单位 names another roster unit than the
sender; the same file (sha256) counted for two or more units.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from reconcile.i18n import N_, zh
from reconcile.judge import MISSING, OK

COUNTED_ELSEWHERE = N_(
    "the sheet holds the figures of {owner}, which are counted once, from the sheet of {kept}"
)


def counted_elsewhere(rows: list[dict], key: str) -> dict[str, tuple[str, dict]]:
    """Valid counted sheets that hold the figures of a unit already counted: unit id -> (the
    unit the sheet is for, the row whose sheet counts instead). Each 填报单位's figures are added
    once: its own sheet if it sent one, else the first in roster order."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        st = r["items"][key]
        if st["state"] == OK and st.get("part"):
            groups.setdefault(st.get("sheet_unit") or r["id"], []).append(r)
    out = {}
    for owner, members in groups.items():
        kept = next((r for r in members if r["id"] == owner), members[0])
        out.update({r["id"]: (owner, kept) for r in members if r is not kept})
    return out


def excluded(left_out: list[dict], key: str) -> list[dict]:
    """`stats --json` "excluded": the sheets received but not added up, and why."""
    return [
        {"unit": u["id"], "item": key, "reason": u["reason"], "name": u["name"], "reason_zh": u["reason_zh"]}
        for u in left_out
        if u["state"] != MISSING
    ]


def _number(x: float) -> int | float:
    x = round(float(x), 6)
    return int(x) if x.is_integer() else x


# long: one pass over the counted sheets; totals and notes share the per-unit figures
def collect(conn: sqlite3.Connection, rows: list[dict], config) -> dict:
    """``{"units": N, "fields": {label: total}}`` plus per-unit figures and the units left out."""
    item = config.campaign.first("sheet")
    if item is None:  # the campaign asks for no statistics sheet: nothing to add up
        rows = []
    labels = item.sheet.labels if item is not None and item.sheet else []
    key = item.id if item is not None else ""
    part_ids = [r["items"][key].get("part") for r in rows]
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
    accepted_missing, other_unit = [], []
    by_sha: dict[str, list[dict]] = {}
    elsewhere = counted_elsewhere(rows, key) if key else {}
    names = {r["id"]: r["name"] for r in rows}
    for r in rows:
        st = r["items"][key]
        pid = st.get("part")
        if r["id"] in elsewhere:
            owner, kept = elsewhere[r["id"]]
            words = {"owner": names.get(owner, owner), "kept": kept["name"]}
            left_out.append(
                {
                    "id": r["id"],
                    "name": r["name"],
                    "state": st["state"],
                    "reason": COUNTED_ELSEWHERE.format(**words),
                    "reason_zh": zh(COUNTED_ELSEWHERE).format(**words),
                }
            )
            continue
        if st["state"] != OK or not pid:
            why = st.get("reason") or (
                "accepted by staff without a sheet" if st["state"] == OK else "no sheet received"
            )
            why_zh = st.get("reason_zh") or (
                "工作人员认定合格，但没有统计表" if st["state"] == OK else "未收到统计表"
            )
            if r.get("exempt"):
                why = "exempt" + (f": {r['exempt_note']}" if r.get("exempt_note") else "")
                why_zh = "免报" + (f"：{r['exempt_note']}" if r.get("exempt_note") else "")
            left_out.append(
                {"id": r["id"], "name": r["name"], "state": st["state"], "reason": why, "reason_zh": why_zh}
            )
            continue
        f = facts.get(pid, {})
        figures = {k: v for k, v in (f.get("figures") or {}).items() if isinstance(v, (int, float))}
        for label in labels:
            if label in figures:
                totals[label] += figures[label]
        per_unit.append(
            {
                "id": r["id"],
                "name": r["name"],
                "category": r.get("category", ""),
                "unit_cell": f.get("unit_cell"),
                "contact": f.get("contact"),
                "phone": f.get("phone"),
                "figures": {label: _number(figures[label]) for label in labels if label in figures},
                "late": st.get("late", False),
                "filename": st.get("filename"),
            }
        )
        lacking = [label for label in labels if label not in figures]
        if lacking and (st.get("override") or {}).get("action") == "accept":
            accepted_missing.append({"id": r["id"], "name": r["name"], "missing": lacking})
        if st.get("sheet_unit"):
            other_unit.append(
                {"id": r["id"], "name": r["name"], "unit_cell": f.get("unit_cell"), "names": st["sheet_unit"]}
            )
        if st.get("sha256"):
            by_sha.setdefault(st["sha256"], []).append({"id": r["id"], "name": r["name"]})
    same: list[dict[str, Any]] = [
        {"sha256": sha, "units": units} for sha, units in by_sha.items() if len(units) > 1
    ]
    notes = []
    if accepted_missing:
        notes.append(
            "accepted by staff with figures missing: "
            + "; ".join(f"{u['name']} ({', '.join(u['missing'])})" for u in accepted_missing)
        )
    for u in other_unit:
        notes.append(f"the sheet of {u['name']} says 填报单位 {u['unit_cell']} ({u['names']})")
    for d in same:
        notes.append(
            "the same sheet (one file) is counted for " + " and ".join(u["name"] for u in d["units"])
        )
    return {
        "units": len(per_unit),
        "fields": {label: _number(totals[label]) for label in labels},
        "units_without_valid_sheet": len(left_out),
        "per_unit": per_unit,
        "left_out": left_out,
        "excluded": excluded(left_out, key),
        "accepted_with_missing_figures": accepted_missing,
        "sheet_names_other_unit": other_unit,
        "same_sheet": same,
        "notes": notes,
    }
