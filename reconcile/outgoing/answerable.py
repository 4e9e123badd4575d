"""Which messages get a receipt: the ones not answered yet, minus automatic mail and our own.

Never answered (the reason is logged):

* automatic mail: ``Auto-Submitted`` other than ``no``; ``Precedence`` bulk/junk/list;
  ``List-Id``; ``X-Autoreply``/``X-Autorespond``; an empty Return-Path (``<>``);
  ``multipart/report`` (bounces, read receipts); From ``MAILER-DAEMON``, ``postmaster``,
  ``noreply``...; out-of-office subjects ("自动回复", "Automatic reply", ...);
* our own mail: ``X-Mailroll`` header, our Message-ID form, or our own From address;
* a reply to one of our receipts that carries no file (a "thank you" must not start a
  ping-pong);
* messages received more than ``reminders.receipts_max_age`` ago (so that starting mailroll on
  a mailbox with weeks of history does not answer all of it), unless their receipt was already
  tried and kept back by the SMTP server (``deferred``): a receipt the server once refused for
  now is never aged out; duplicates and failed messages.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime

from reconcile.outgoing.compose import is_our_message_id

NO_REPLY_LOCALS = re.compile(
    r"^(mailer-?daemon|mail-daemon|postmaster|no-?reply|do-?not-?reply|noreply\..*|bounces?|"
    r"notification|notifications|auto-?reply|system)$",
    re.I,
)
AUTO_SUBJECT = re.compile(
    r"^\s*(自动回复|自动答复|自动应答|auto(matic)?[ -]?reply|auto(matic)?[ -]?response|autoreply|"
    r"out of (the )?office|abwesenheit|absence|vacation|休假)",
    re.I,
)


def auto_reason(
    config,
    from_addr: str | None,
    subject: str | None,
    message_id: str | None,
    headers: dict,
) -> str | None:
    """Why this message must get no automatic answer; None if it may."""
    h = {str(k).lower().replace("-", "_"): v for k, v in headers.items()}
    auto = str(h.get("auto_submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"it is automatic mail (Auto-Submitted: {auto})"
    prec = str(h.get("precedence") or "").strip().lower()
    if prec in ("bulk", "junk", "list", "auto_reply"):
        return f"it is bulk or list mail (Precedence: {prec})"
    if h.get("list_id"):
        return "it came through a mailing list (List-Id)"
    for key in ("x_autoreply", "x_autorespond"):
        if h.get(key):
            return f"it is an auto-reply ({key.replace('_', '-').title()})"
    if h.get("x_mailroll"):
        return "it is mail mailroll sent itself"
    rp = h.get("return_path")
    if rp is not None and str(rp).strip() in ("", "<>"):
        return "it has an empty Return-Path (a bounce or other automatic mail)"
    ctype = str(h.get("content_type") or "").lower()
    if ctype.startswith("multipart/report"):
        return "it is a delivery or read report (multipart/report)"
    addr = (from_addr or "").lower()
    local = addr.split("@", 1)[0]
    if NO_REPLY_LOCALS.match(local):
        return f"it comes from {addr}, which does not read replies"
    if addr and addr == config.smtp.from_addr.lower():
        return "it comes from our own address"
    if is_our_message_id(message_id):
        return "it is mail mailroll sent itself (its Message-ID is ours)"
    if subject and AUTO_SUBJECT.search(subject):
        return f"its subject says it is an auto-reply ({subject[:40]})"
    return None


def pending(conn: sqlite3.Connection, config, now: datetime) -> list[tuple[dict, str | None]]:
    """Messages from units received up to ``now`` that have no receipt yet (or a deferred
    one), with the reason not to answer each (None: answer it)."""
    since = (now - config.reminders.receipts_max_age).astimezone(UTC).isoformat(timespec="seconds")
    until = now.astimezone(UTC).isoformat(timespec="seconds")
    rows = conn.execute(
        "SELECT m.id, m.message_id, m.from_addr, m.reply_to, m.subject, m.headers, m.received_at, a.unit, a.trust, "
        "  (SELECT count(*) FROM parts p WHERE p.message = m.id) + "
        "  (SELECT count(*) FROM links l WHERE l.message = m.id) AS files "
        "FROM messages m JOIN attributions a ON a.message = m.id "
        "WHERE m.status = 'recorded' AND a.unit IS NOT NULL AND a.campaign = ? "
        "AND m.received_at <= ? AND (m.received_at >= ? OR EXISTS (SELECT 1 FROM outbox d "
        "     WHERE d.kind = 'receipt' AND d.answers = m.id AND d.status = 'deferred')) "
        "AND m.id NOT IN (SELECT message FROM bounces) "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.kind = 'receipt' AND o.answers = m.id "
        "                AND o.status != 'deferred') "
        "ORDER BY m.received_at, m.id",
        (config.campaign.id, until, since),
    ).fetchall()
    keys = (
        "id",
        "message_id",
        "from_addr",
        "reply_to",
        "subject",
        "headers",
        "received_at",
        "unit",
        "trust",
        "files",
    )
    out = []
    for r in rows:
        row = dict(zip(keys, r, strict=True))
        try:
            row["headers"] = json.loads(row["headers"]) if row["headers"] else {}
        except ValueError:
            row["headers"] = {}
        if not isinstance(row["headers"], dict):
            row["headers"] = {}
        reason = auto_reason(config, row["from_addr"], row["subject"], row["message_id"], row["headers"])
        if reason is None and not row["files"]:
            irt = row["headers"].get("in_reply_to")
            if irt and is_our_message_id(str(irt)):
                reason = "it answers one of our mails and carries no file"
        out.append((row, reason))
    return out
