"""Everything about one unit, for `mailroll show`: its messages, files, checks, figures,
decisions and the mail sent to it."""

from __future__ import annotations

import json
import sqlite3

from reconcile.judge import describe, judge_part
from reconcile.status import iso_text, part_rows, stored_time


# long: the `show` data gathered section after section, as printed
def unit_detail(conn: sqlite3.Connection, roster, config, unit, status_row: dict) -> dict:
    """Everything about one unit for `show`: messages with parts and their judgements, links,
    staff decisions (also revoked ones), audit log entries and the mail sent to it (outbox)."""
    from reconcile.overrides import listing
    from reconcile.versions import item_versions

    counted = {it.get("part") for it in status_row["items"].values() if it.get("part")}
    messages = []
    mrows = conn.execute(
        "SELECT m.id, m.message_id, m.received_at, m.from_addr, m.subject, m.status, a.method, a.reason, "
        "a.trust, m.text, m.question "
        "FROM attributions a JOIN messages m ON m.id = a.message WHERE a.unit = ? AND a.campaign = ? "
        "ORDER BY m.received_at, m.id",
        [unit.id, config.campaign.id],
    ).fetchall()
    pending = {p["message"]: p for p in status_row.get("pending_review") or []}
    for (
        mid,
        message_id,
        received_at,
        from_addr,
        subject,
        _mstatus,
        method,
        reason,
        trust,
        text,
        question,
    ) in mrows:
        parts = []
        for p in part_rows(conn, "WHERE p.message = ?", [mid]):
            entry = {
                k: p[k] for k in ("id", "origin", "location", "filename", "kind", "sha256", "size", "error")
            }
            item = config.campaign.item_for_file(p["kind"], p["filename"])
            if item is not None:
                j = judge_part(p, config, item)
                entry.update(
                    state=j.state,
                    reason=j.reason,
                    reason_zh=j.reason_zh,
                    warnings_zh=j.warnings_zh or list(j.warnings),
                    warnings=j.warnings,
                    details=describe(p),
                    item=item.id,
                )
            entry["counted"] = p["id"] in counted
            parts.append(entry)
        links = [
            dict(zip(("url", "host", "provider", "filename", "status", "error"), r, strict=True))
            for r in conn.execute(
                "SELECT url, host, provider, filename, status, error FROM links WHERE message = ? ORDER BY id",
                [mid],
            )
        ]
        messages.append(
            {
                "id": mid,
                "message_id": message_id,
                "received_at": iso_text(stored_time(received_at), config.campaign.timezone),
                "from": from_addr,
                "subject": subject,
                "text": text,
                "question": bool(question),
                "method": method,
                "trust": trust,
                "pending_review": pending[mid]["reason"] if mid in pending else None,
                "attribution": f"{method}: {reason}" if method else reason,
                "parts": parts,
                "links": links,
            }
        )
    audit_rows = []
    for at, actor, action, detail, note in conn.execute(
        "SELECT at, actor, action, detail, note FROM audit_log WHERE unit = ? ORDER BY id", [unit.id]
    ):
        try:
            d = json.loads(detail) if detail else {}
        except ValueError:
            d = {"text": detail}
        audit_rows.append({"at": at, "actor": actor, "action": action, "detail": d, "note": note})
    outbox = []
    clause, params = config.campaign_clause()
    for kind, stage, to_addrs, subject, ostatus, error, created_at, sent_at in conn.execute(
        "SELECT kind, stage, to_addrs, subject, status, error, created_at, sent_at FROM outbox "
        f"WHERE unit = ? AND {clause} ORDER BY id",
        [unit.id, *params],
    ):
        try:
            to = json.loads(to_addrs)
        except ValueError:
            to = [to_addrs]
        outbox.append(
            {
                "kind": kind,
                "stage": stage,
                "to": to,
                "subject": subject,
                "status": ostatus,
                "error": error,
                "created_at": created_at,
                "sent_at": sent_at,
            }
        )
    return {
        "id": unit.id,
        "name": unit.name,
        "aliases": list(unit.aliases),
        "emails": list(unit.emails),
        "category": unit.category,
        "contact": unit.contact,
        "phone": unit.phone,
        "status": status_row,
        "versions": item_versions(conn, unit.id, status_row, config),
        "messages": messages,
        "overrides": [o.as_dict() for o in listing(conn, unit=unit.id, config=config)],
        "audit": audit_rows,
        "outbox": outbox,
    }
