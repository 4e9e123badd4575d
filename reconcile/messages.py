"""Every message ever seen and what became of it: the rows of `mailroll messages` (and the web's
/api/messages), oldest arrival first, in the contract's shape plus extras."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from reconcile.status import iso_text, stored_time

MESSAGES_SQL = """
SELECT m.id, m.message_id, m.from_addr, m.from_name, m.subject, m.received_at, m.status, m.error,
       m.duplicate_of, a.unit, a.method, a.reason, a.trust, a.campaign, a.scope,
       (SELECT COUNT(*) FROM parts p WHERE p.message = m.id) AS parts, m.retry
FROM messages m LEFT JOIN attributions a ON a.message = m.id
ORDER BY m.received_at, m.id
"""


# long: one flat row per message, every field the contract and the tables show
def message_rows(conn: sqlite3.Connection, roster, config) -> list[dict]:
    """Every message with its disposition, attributions brought up to date first (``roster`` and
    ``config``: those of all campaigns, as ``App.any_roster`` / ``App.any_config``)."""
    from reconcile.overrides import message_rejects_in_force
    from reconcile.status_cache import ensure_attributed

    ensure_attributed(conn, roster, config)
    rejected = {o.message: o for o in message_rejects_in_force(conn)}
    rows = []
    for (
        mid,
        message_id,
        from_addr,
        from_name,
        subject,
        received_at,
        status,
        error,
        duplicate_of,
        unit,
        method,
        reason,
        trust,
        campaign,
        scope,
        parts,
        retry,
    ) in conn.execute(MESSAGES_SQL):
        if status == "failed":
            disposition, why = "failed", error
        elif status == "duplicate":
            disposition, why = "duplicate", f"same Message-ID and content as message {duplicate_of}"
            unit, campaign = _unit_of(conn, duplicate_of)
        elif unit:
            disposition, why = "attributed", reason
        elif method == "other":
            disposition, why = "other", reason
        else:
            disposition, why = "unmatched", reason or "not attributed yet"
        if mid in rejected and disposition in ("attributed", "unmatched"):
            o = rejected[mid]
            done = "dismissed" if o.action == "dismiss" else "rejected"
            why = f"{done} by staff (override {o.id}): {o.note or ''}; counts for nothing (was: {why})"
        rows.append(
            {
                "message_id": message_id,
                "from": from_addr,
                "subject": subject,
                "received_at": received_at,
                "unit": unit,
                "disposition": disposition,
                "reason": why,
                "campaign": campaign,
                "id": mid,
                "from_name": from_name,
                "method": method if disposition == "attributed" else None,
                "trust": trust if disposition == "attributed" else None,
                "scope": scope,
                "parts": parts,
                # a failed message: does the next poll try it again (else after `mailroll retry`)?
                "retried_by_poll": bool(retry) if disposition == "failed" else None,
            }
        )
    return rows


def _unit_of(conn, message: int | None) -> tuple[str | None, str | None]:
    """(unit, campaign) of the message a duplicate repeats."""
    if message is None:
        return None, None
    row = conn.execute("SELECT unit, campaign FROM attributions WHERE message = ?", (message,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def message_heading(row: Sequence, tz) -> dict:
    """How `search` and `questions` name a message: {id, message_id, unit, from, subject,
    received_at (in the campaign's zone)} from a row whose first six columns are m.id,
    m.message_id, the unit, m.from_addr, m.subject, m.received_at."""
    mid, message_id, unit, from_addr, subject, received_at = row[:6]
    return {
        "id": mid,
        "message_id": message_id,
        "unit": unit,
        "from": from_addr,
        "subject": subject,
        "received_at": iso_text(stored_time(received_at), tz),
    }


def own_texts(conn: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    """What each message's sender wrote (``messages.text``), for the queue pages."""
    found: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            conn.execute(f"SELECT id, text FROM messages WHERE id IN ({marks}) AND text IS NOT NULL", chunk)
        )
    return found
