"""Per-unit status: which submission of each item counts, whether it is ok, invalid or late.

Rules (docs/DESIGN.md "Judging"):

* the counted submission of an item is in the latest message (by server arrival) attributed to
  the unit that carries that item (a part of that kind; for the video also a download link);
  within that message the best part counts (an ok one if there is one);
* lateness uses the first arrival of the counted content (same sha256) at this unit, so the
  same file sent again after the deadline is not late; the deadline is the campaign's, or the
  unit's ``extend`` override;
* staff decisions: ``accept`` makes the item ok, ``reject`` invalid (the note is the reason),
  ``exempt`` marks the unit ``"exempt": true`` (its state is still computed as the contract
  says; reminders skip it).
* unit state: ``complete`` every item ok, ``missing`` no item received, else ``incomplete``.

Speed: the result is cached in the ``unit_status`` table, one JSON row per unit. Every write to
messages, parts, links, attributions or overrides bumps ``reconcile_state['version:data']``
(SQLite triggers, ingest/db.py migration 2); together with the roster's and config's mtime and
size that makes a fingerprint. ``status --json`` with a fresh cache is one look-up plus one
SELECT; otherwise ``refresh`` recomputes (and re-attributes all messages if the roster or config
changed) and stores the rows. This module imports nothing heavy.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Iterable

from reconcile import fastpath
from reconcile.judge import INVALID, ITEMS, MISSING, OK, Judgement, describe, judge_link, judge_part

log = logging.getLogger("mailroll.status")
LINK_DOCUMENT_SUFFIXES = (".xls", ".xlsx", ".et", ".doc", ".docx", ".wps", ".pdf")


def _ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime, tz=None) -> str:
    return value.astimezone(tz or timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------- fingerprint

def inputs_fingerprint(config) -> str:
    """What attributions depend on besides facts: the roster and config files."""
    return fastpath.inputs_fingerprint(config.roster.path, config.path)


def fingerprint(conn: sqlite3.Connection, config) -> str:
    """Same text as reconcile.fastpath computes, so the quick road accepts our cache."""
    row = conn.execute("SELECT value FROM reconcile_state WHERE key = 'version:data'").fetchone()
    return fastpath.fingerprint_parts(row[0] if row else "-", config.roster.path, config.path)


def _state(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM reconcile_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO reconcile_state (key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])


def cached_rows(conn: sqlite3.Connection, config) -> list[str] | None:
    """The cached JSON rows if they are current, else None. Cheap: for `status --json`."""
    if _state(conn, "status_fingerprint") != fingerprint(conn, config):
        return None
    return [r[0] for r in conn.execute("SELECT json FROM unit_status ORDER BY pos")]


# ---------------------------------------------------------------------------------- refresh

def ensure_attributed(conn: sqlite3.Connection, roster, config) -> None:
    """Attribute what is not yet attributed; everything again if the roster or config changed."""
    from reconcile.attribute import attribute

    inputs = inputs_fingerprint(config)
    if _state(conn, "attribution_inputs") != inputs:
        attribute(conn, roster, config, None)
        _set_state(conn, "attribution_inputs", inputs)
        return
    todo = [r[0] for r in conn.execute(
        "SELECT id FROM messages WHERE status = 'recorded' AND id NOT IN (SELECT message FROM attributions)")]
    stale = [r[0] for r in conn.execute(
        "SELECT a.message FROM attributions a JOIN messages m ON m.id = a.message WHERE m.status != 'recorded'")]
    if todo or stale:
        attribute(conn, roster, config, todo + stale)


def refresh(conn: sqlite3.Connection, roster, config, *, force: bool = False) -> list[dict]:
    """Bring attributions and the status cache up to date; returns the status rows."""
    fp = fingerprint(conn, config)
    if not force and _state(conn, "status_fingerprint") == fp:
        return [json.loads(r[0]) for r in conn.execute("SELECT json FROM unit_status ORDER BY pos")]
    ensure_attributed(conn, roster, config)
    # Compute from one snapshot and store the fingerprint of that snapshot: a write by ingest
    # meanwhile leaves the cache marked stale, never marked fresh with old rows.
    conn.execute("BEGIN")
    try:
        fp = fingerprint(conn, config)
        rows = unit_statuses(conn, roster, config)
    finally:
        conn.execute("COMMIT")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:  # e.g. a read-only copy of the database: answer anyway
        log.info("status not cached: %s", e)
        return rows
    try:
        conn.execute("DELETE FROM unit_status")
        conn.executemany(
            "INSERT INTO unit_status (pos, unit, state, json) VALUES (?, ?, ?, ?)",
            [(i, r["id"], r["state"], json.dumps(r, ensure_ascii=False, default=str)) for i, r in enumerate(rows)],
        )
        _set_state(conn, "status_fingerprint", fp)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return rows


# ---------------------------------------------------------------------------------- computing

def _load(conn: sqlite3.Connection):
    messages: dict[int, dict] = {}
    by_unit: dict[str, list[int]] = defaultdict(list)
    for mid, unit, method, reason, message_id, received_at, subject, from_addr in conn.execute(
        "SELECT m.id, a.unit, a.method, a.reason, m.message_id, m.received_at, m.subject, m.from_addr "
        "FROM attributions a JOIN messages m ON m.id = a.message "
        "WHERE a.unit IS NOT NULL AND m.status = 'recorded'"
    ):
        messages[mid] = {"id": mid, "unit": unit, "method": method, "reason": reason, "message_id": message_id,
                         "received_at": received_at, "at": _ts(received_at), "subject": subject, "from": from_addr}
        by_unit[unit].append(mid)
    parts: dict[int, list[dict]] = defaultdict(list)
    cols = ("id", "message", "seq", "origin", "location", "filename", "kind", "sha256", "size", "facts", "error")
    for row in conn.execute(
        f"SELECT p.{', p.'.join(cols)} FROM parts p JOIN attributions a ON a.message = p.message "
        "WHERE a.unit IS NOT NULL ORDER BY p.message, p.seq"
    ):
        p = dict(zip(cols, row))
        if p["message"] in messages:
            parts[p["message"]].append(p)
    links: dict[int, list[dict]] = defaultdict(list)
    lcols = ("id", "message", "url", "host", "provider", "filename", "status", "part", "error")
    for row in conn.execute(
        f"SELECT l.{', l.'.join(lcols)} FROM links l JOIN attributions a ON a.message = l.message "
        "WHERE a.unit IS NOT NULL AND l.status != 'downloaded' ORDER BY l.id"
    ):
        link = dict(zip(lcols, row))
        name = (link["filename"] or "").lower()
        if link["message"] in messages and not name.endswith(LINK_DOCUMENT_SUFFIXES):
            links[link["message"]].append(link)
    return messages, by_unit, parts, links


def _candidates(item: str, mid: int, parts: dict, links: dict) -> tuple[list[dict], list[dict]]:
    ps = [p for p in parts.get(mid, ()) if p["kind"] == item]
    ls = links.get(mid, []) if item == "video" and not ps else []
    return ps, ls


def _item_status(unit_id: str, item: str, mids: list[int], messages: dict, parts: dict, links: dict,
                 config, deadline: datetime, tz) -> dict[str, Any]:
    carrying = [m for m in mids if any(_candidates(item, m, parts, links))]
    if not carrying:
        return {"state": MISSING, "late": False, "reason": None, "submissions": 0}
    latest = max(carrying, key=lambda m: (messages[m]["at"], m))
    msg = messages[latest]
    ps, ls = _candidates(item, latest, parts, links)
    chosen: dict | None = None
    judgement: Judgement
    if ps:
        judged = [(p, judge_part(p, config)) for p in ps]
        chosen, judgement = next(((p, j) for p, j in judged if j.state == OK), judged[0])
    else:
        judgement = judge_link(ls[0])
    arrived = msg["at"]
    if chosen is not None and chosen["sha256"]:
        sha = chosen["sha256"]
        for m in mids:
            if messages[m]["at"] < arrived and any(p["sha256"] == sha for p in parts.get(m, ())):
                arrived = messages[m]["at"]
    late = arrived > deadline
    out: dict[str, Any] = {
        "state": judgement.state, "late": late, "reason": judgement.reason,
        "message": latest, "message_id": msg["message_id"],
        "filename": (chosen or {}).get("filename") or (ls[0]["filename"] if not chosen and ls else None),
        "location": (chosen or {}).get("location"),
        "part": (chosen or {}).get("id"),
        "sha256": (chosen or {}).get("sha256"),
        "arrived_at": _iso(arrived, tz),
        "sent_at": _iso(msg["at"], tz),
        "details": describe(chosen) if chosen else "",
        "warnings": judgement.warnings,
        "submissions": len(carrying),
    }
    if not ps and ls:
        out["link"] = ls[0]["url"]
    return out


def _apply_override(item_status: dict, o) -> None:
    item_status["override"] = {"id": o.id, "action": o.action, "note": o.note, "actor": o.actor, "at": o.created_at}
    if o.action == "accept":
        item_status["checked"] = {"state": item_status["state"], "reason": item_status["reason"]}
        item_status["state"], item_status["reason"] = OK, None
        if item_status.get("submissions", 0) == 0:
            item_status["late"] = False
    elif o.action == "reject":
        item_status["checked"] = {"state": item_status["state"], "reason": item_status["reason"]}
        item_status["state"] = INVALID
        item_status["reason"] = f"rejected by staff: {o.note}" if o.note else "rejected by staff"


def unit_statuses(conn: sqlite3.Connection, roster, config, now: datetime | None = None) -> list[dict]:
    """The status of every roster unit, in roster order (contract shape plus extras).

    Reads attributions as they are: call ``ensure_attributed`` (or ``refresh``) first.
    """
    from reconcile.overrides import in_force

    tz = config.campaign.timezone
    messages, by_unit, parts, links = _load(conn)
    decisions = in_force(conn)
    out = []
    for unit in roster.units:
        mids = by_unit.get(unit.id, [])
        deadline = config.campaign.deadline
        extended = decisions.extend.get(unit.id)
        if extended:
            deadline = extended[0]
        items: dict[str, dict] = {}
        for item in ITEMS:
            st = _item_status(unit.id, item, mids, messages, parts, links, config, deadline, tz)
            o = decisions.items.get((unit.id, item))
            if o is not None:
                _apply_override(st, o)
            items[item] = st
        states = [items[i]["state"] for i in ITEMS]
        if all(s == OK for s in states):
            state = "complete"
        elif all(s == MISSING for s in states):
            state = "missing"
        else:
            state = "incomplete"
        last = max((messages[m]["at"] for m in mids), default=None)
        ex = decisions.exempt.get(unit.id)
        out.append({
            "id": unit.id, "name": unit.name, "state": state,
            "late": any(items[i]["late"] for i in ITEMS),
            "items": items,
            "category": unit.category,
            "exempt": ex is not None,
            "exempt_note": ex.note if ex else None,
            "deadline": _iso(deadline, tz),
            "deadline_extended": extended is not None,
            "last_arrival": _iso(last, tz) if last else None,
            "messages": len(mids),
            "emails": list(unit.emails),
        })
    return out


# ---------------------------------------------------------------------------------- filters

def matches(row: dict, *, state: Iterable[str] = (), missing: Iterable[str] = (), late: bool = False,
            category: Iterable[str] = (), invalid: Iterable[str] = ()) -> bool:
    """The status filters shared by `status` and `status --json`."""
    state, missing, category, invalid = list(state), list(missing), list(category), list(invalid)
    if state:
        wanted = set(state)
        if not (row["state"] in wanted or ("exempt" in wanted and row.get("exempt"))
                or ("late" in wanted and row.get("late"))):
            return False
    if missing and not all(row["items"][i]["state"] == MISSING for i in missing):
        return False
    if invalid and not all(row["items"][i]["state"] == INVALID for i in invalid):
        return False
    if late and not row.get("late"):
        return False
    if category and row.get("category") not in category:
        return False
    return True


def summary(rows: list[dict]) -> dict[str, int]:
    out = {"units": len(rows), "complete": 0, "incomplete": 0, "missing": 0, "late": 0, "exempt": 0}
    for r in rows:
        out[r["state"]] += 1
        out["late"] += bool(r.get("late"))
        out["exempt"] += bool(r.get("exempt"))
    return out


def heartbeat(conn: sqlite3.Connection, config, now: datetime | None = None) -> dict | None:
    """The service's last poll (service_state 'last_poll'), with its age and whether it is stale."""
    try:
        rows = dict(conn.execute(
            "SELECT key, value FROM service_state WHERE key IN ('last_poll', 'last_error')").fetchall())
    except sqlite3.Error:
        return None
    if not rows.get("last_poll"):
        return None
    now = now or datetime.now(timezone.utc)
    try:
        last = _ts(rows["last_poll"])
    except ValueError:
        return None
    age = (now - last).total_seconds()
    stale_after = config.service.heartbeat_stale_s or 3 * config.service.poll_every_s
    return {"last_poll": _iso(last), "age_s": age, "stale": age > stale_after,
            "last_error": rows.get("last_error") or None}


def ago(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 90:
        return f"{s} seconds ago"
    if s < 90 * 60:
        return f"{round(s / 60)} minutes ago"
    if s < 36 * 3600:
        return f"{round(s / 3600)} hours ago"
    return f"{round(s / 86400)} days ago"


# ---------------------------------------------------------------------------------- one unit

def unit_detail(conn: sqlite3.Connection, roster, config, unit, status_row: dict) -> dict:
    """Everything about one unit for `show`: messages with parts and their judgements, links,
    staff decisions (also revoked ones), audit log entries and the mail sent to it (outbox)."""
    from reconcile.overrides import listing

    counted = {it.get("part") for it in status_row["items"].values() if it.get("part")}
    messages = []
    mrows = conn.execute(
        "SELECT m.id, m.message_id, m.received_at, m.from_addr, m.subject, m.status, a.method, a.reason "
        "FROM attributions a JOIN messages m ON m.id = a.message WHERE a.unit = ? ORDER BY m.received_at, m.id",
        [unit.id]).fetchall()
    pcols = ("id", "message", "seq", "origin", "location", "filename", "kind", "sha256", "size", "facts", "error")
    for mid, message_id, received_at, from_addr, subject, mstatus, method, reason in mrows:
        parts = []
        for row in conn.execute(f"SELECT {', '.join(pcols)} FROM parts WHERE message = ? ORDER BY seq", [mid]):
            p = dict(zip(pcols, row))
            entry = {k: p[k] for k in ("id", "origin", "location", "filename", "kind", "sha256", "size", "error")}
            if p["kind"] in ITEMS:
                j = judge_part(p, config)
                entry.update(state=j.state, reason=j.reason, warnings=j.warnings, details=describe(p))
            entry["counted"] = p["id"] in counted
            parts.append(entry)
        links = [dict(zip(("url", "host", "provider", "filename", "status", "error"), r)) for r in conn.execute(
            "SELECT url, host, provider, filename, status, error FROM links WHERE message = ? ORDER BY id", [mid])]
        messages.append({
            "id": mid, "message_id": message_id, "received_at": _iso(_ts(received_at), config.campaign.timezone),
            "from": from_addr, "subject": subject, "method": method,
            "attribution": f"{method}: {reason}" if method else reason, "parts": parts, "links": links,
        })
    audit_rows = []
    for at, actor, action, detail, note in conn.execute(
            "SELECT at, actor, action, detail, note FROM audit_log WHERE unit = ? ORDER BY id", [unit.id]):
        try:
            d = json.loads(detail) if detail else {}
        except ValueError:
            d = {"text": detail}
        audit_rows.append({"at": at, "actor": actor, "action": action, "detail": d, "note": note})
    outbox = []
    for kind, stage, to_addrs, subject, ostatus, error, created_at, sent_at in conn.execute(
            "SELECT kind, stage, to_addrs, subject, status, error, created_at, sent_at FROM outbox "
            "WHERE unit = ? ORDER BY id", [unit.id]):
        try:
            to = json.loads(to_addrs)
        except ValueError:
            to = [to_addrs]
        outbox.append({"kind": kind, "stage": stage, "to": to, "subject": subject, "status": ostatus,
                       "error": error, "created_at": created_at, "sent_at": sent_at})
    return {
        "id": unit.id, "name": unit.name, "aliases": list(unit.aliases), "emails": list(unit.emails),
        "category": unit.category, "contact": unit.contact, "phone": unit.phone,
        "status": status_row, "messages": messages,
        "overrides": [o.as_dict() for o in listing(conn, unit=unit.id)],
        "audit": audit_rows, "outbox": outbox,
    }
