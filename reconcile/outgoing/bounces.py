"""Bounces: delivery failure notices for our receipts and reminders, found among ingested mail.

A bounce arrives in the campaign mailbox like any other message. We recognise

* standard DSNs (RFC 3464): ``multipart/report; report-type=delivery-status``;
* the usual non-standard ones: From ``MAILER-DAEMON``/``postmaster``, or a subject such as
  "Undelivered Mail Returned to Sender", "Delivery Status Notification (Failure)",
  "Undeliverable", "系统退信", "退信" together with ``X-Failed-Recipients`` or our Message-ID.

and match each to the outbox row it reports on, in this order:

1. one of our Message-IDs (``...mailroll-receipt@...`` / ``...mailroll-reminder@...``) found in
   the bounce's text (ingest puts the ``message/delivery-status`` and ``text/rfc822-headers``
   parts into ``messages.body_text``; non-standard bounces quote the original there), in its
   In-Reply-To/References, or in ``messages.headers['forwarded_message_ids']`` when ingest
   records the returned message's Message-ID;
2. else the failed recipient (``Final-Recipient``, ``X-Failed-Recipients``) against the latest
   outbox row sent to that address before the bounce arrived.

The result is a row in ``bounces`` (message, outbox, recipient, DSN status, diagnostic), shown
by ``show UNIT``. The bounce itself is never a submission: its attribution is set to no unit,
method ``bounce``, with a reason such as "bounce of our reminder (after-1) to x@y: 5.1.1 ...".
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.db import transaction
from reconcile.outgoing.compose import OUR_MESSAGE_ID
from reconcile.scope import json_object

log = logging.getLogger(__name__)

DAEMON_LOCALS = {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon"}
BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|returned to sender|delivery status notification|delivery failure|"
    r"delivery has failed|mail delivery failed|failure notice|non[- ]?delivery|"
    r"系统退信|退信|投递失败|无法投递|发送失败|邮件未送达",
    re.IGNORECASE,
)
_FIELD = {
    "recipient": re.compile(
        r"^\s*Final-Recipient\s*:\s*(?:rfc822\s*;)?\s*<?([^\s<>;]+@[^\s<>;]+)>?", re.I | re.M
    ),
    "original": re.compile(
        r"^\s*Original-Recipient\s*:\s*(?:rfc822\s*;)?\s*<?([^\s<>;]+@[^\s<>;]+)>?", re.I | re.M
    ),
    "status": re.compile(r"^\s*Status\s*:\s*([245]\.\d{1,3}\.\d{1,3})", re.I | re.M),
    "diagnostic": re.compile(r"^\s*Diagnostic-Code\s*:\s*(?:smtp\s*;)?\s*(.+(?:\n[ \t]+.+)*)", re.I | re.M),
}
_ENHANCED = re.compile(r"\b([45]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([45]\d\d[ -].{5,200})")


@dataclass
class Bounce:
    message: int
    outbox: int | None
    recipient: str | None
    status: str | None
    diagnostic: str | None
    reason: str


_headers = json_object


def looks_like_bounce(from_addr: str | None, subject: str | None, headers: dict, body: str) -> bool:
    ctype = str(headers.get("content_type") or "").lower()
    if ctype.startswith("multipart/report") and "delivery-status" in ctype:
        return True
    local = (from_addr or "").split("@", 1)[0].lower()
    if local in DAEMON_LOCALS:
        return True
    if subject and BOUNCE_SUBJECT.search(subject):
        return bool(
            headers.get("x_failed_recipients")
            or OUR_MESSAGE_ID.search(body or "")
            or _FIELD["recipient"].search(body or "")
        )
    return False


def _our_ids(headers: dict, body: str) -> list[str]:
    found: list[str] = []
    for key in ("forwarded_message_ids", "references"):
        v = headers.get(key)
        for x in v if isinstance(v, list) else [v] if v else []:
            found += OUR_MESSAGE_ID.findall(str(x))
    for key in ("in_reply_to",):
        if headers.get(key):
            found += OUR_MESSAGE_ID.findall(str(headers[key]))
    found += OUR_MESSAGE_ID.findall(body or "")
    return list(dict.fromkeys(found))


def _details(headers: dict, body: str) -> tuple[str | None, str | None, str | None]:
    body = body or ""
    m = _FIELD["recipient"].search(body) or _FIELD["original"].search(body)
    recipient = m.group(1).lower() if m else None
    if recipient is None and headers.get("x_failed_recipients"):
        recipient = str(headers["x_failed_recipients"]).split(",")[0].strip().strip("<>").lower() or None
    m = _FIELD["status"].search(body) or _ENHANCED.search(body)
    status = m.group(1) if m else None
    m = _FIELD["diagnostic"].search(body)
    diagnostic = " ".join(m.group(1).split())[:500] if m else None
    if diagnostic is None:
        m = _SMTP_REPLY.search(body)
        diagnostic = " ".join(m.group(1).split())[:300] if m else None
    return recipient, status, diagnostic


def _match(conn: sqlite3.Connection, ids: list[str], recipient: str | None, arrived: str) -> tuple | None:
    for mid in ids:
        row = conn.execute(
            "SELECT id, kind, stage, unit, to_addrs FROM outbox WHERE smtp_message_id = ?", (mid.strip("<>"),)
        ).fetchone()
        if row:
            return row
    if recipient:
        return conn.execute(
            "SELECT id, kind, stage, unit, to_addrs FROM outbox WHERE coalesce(sent_at, created_at) <= ? "
            "AND EXISTS (SELECT 1 FROM json_each(outbox.to_addrs) WHERE lower(value) = ?) "
            "ORDER BY coalesce(sent_at, created_at) DESC LIMIT 1",
            (arrived, recipient),
        ).fetchone()
    return None


def _reason(row: tuple | None, recipient: str | None, status: str | None, diagnostic: str | None) -> str:
    why = ": ".join(x for x in (status, diagnostic) if x)
    if row is None:
        what = "a bounce (delivery failure notice) that matches none of our mails"
        if recipient:
            what += f", for {recipient}"
    else:
        _id, kind, stage, unit, to_addrs = row
        target = recipient or ", ".join(json.loads(to_addrs or "[]"))
        label = {"receipt": "receipt", "reminder": "reminder"}.get(kind, kind)
        what = f"bounce of our {label}" + (f" ({stage})" if stage else "") + f" to {target}"
        if unit:
            what += f" (unit {unit})"
    return what + (f": {why}" if why else "")


def record_bounces(
    conn: sqlite3.Connection, config=None, message_ids: list[int] | None = None
) -> list[Bounce]:
    """Find bounces among recorded messages (all not yet looked at, or ``message_ids``), record
    them in ``bounces`` and mark their attribution; also re-mark bounces that a fresh
    attribution pass took for submissions. Returns the new bounces."""
    where = "m.status = 'recorded' AND m.id NOT IN (SELECT message FROM bounces)"
    params: list = []
    if message_ids is not None:
        where += " AND m.id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps([int(i) for i in message_ids]))
    rows = conn.execute(
        f"SELECT m.id, m.from_addr, m.subject, m.headers, m.body_text, m.received_at FROM messages m WHERE {where}",
        params,
    ).fetchall()
    found: list[Bounce] = []
    for mid, from_addr, subject, headers_text, body, received_at in rows:
        headers = _headers(headers_text)
        if not looks_like_bounce(from_addr, subject, headers, body or ""):
            continue
        recipient, status, diagnostic = _details(headers, body or "")
        row = _match(conn, _our_ids(headers, body or ""), recipient, received_at)
        if recipient is None and row is not None:
            to = json.loads(row[4] or "[]")
            recipient = to[0] if len(to) == 1 else None
        found.append(
            Bounce(
                mid,
                row[0] if row else None,
                recipient,
                status,
                diagnostic,
                _reason(row, recipient, status, diagnostic),
            )
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with transaction(conn):
        for b in found:
            conn.execute(
                "INSERT OR IGNORE INTO bounces (message, outbox, recipient, status, diagnostic) "
                "VALUES (?, ?, ?, ?, ?)",
                (b.message, b.outbox, b.recipient, b.status, b.diagnostic),
            )
            if b.outbox is not None:
                conn.execute(
                    "UPDATE outbox SET error = coalesce(error || '; ', '') || ? WHERE id = ?",
                    (f"bounced ({b.recipient or '?'}: {b.status or b.diagnostic or 'no details'})", b.outbox),
                )
            log.warning("message #%d is a %s", b.message, b.reason)
        _mark_attributions(conn, now)
    return found


def _mark_attributions(conn: sqlite3.Connection, now: str) -> None:
    """Every recorded bounce: attributed to no unit, method 'bounce', with the reason."""
    rows = conn.execute(
        "SELECT b.message, b.outbox, b.recipient, b.status, b.diagnostic, o.id, o.kind, o.stage, o.unit, o.to_addrs "
        "FROM bounces b LEFT JOIN outbox o ON o.id = b.outbox "
        "LEFT JOIN attributions a ON a.message = b.message "
        "WHERE a.message IS NULL OR a.method IS NOT 'bounce' OR a.unit IS NOT NULL"
    ).fetchall()
    for mid, _ob, recipient, status, diagnostic, *orow in rows:
        reason = _reason(tuple(orow) if orow[0] is not None else None, recipient, status, diagnostic)
        conn.execute(
            "INSERT OR REPLACE INTO attributions (message, unit, method, reason, decided_at) "
            "VALUES (?, NULL, 'bounce', ?, ?)",
            (mid, reason, now),
        )


def bounces_for_unit(conn: sqlite3.Connection, unit: str) -> list[dict]:
    """The bounces of mail we sent to ``unit`` (for ``show UNIT``)."""
    rows = conn.execute(
        "SELECT b.message, m.received_at, b.recipient, b.status, b.diagnostic, o.kind, o.stage "
        "FROM bounces b JOIN outbox o ON o.id = b.outbox JOIN messages m ON m.id = b.message "
        "WHERE o.unit = ? ORDER BY m.received_at",
        (unit,),
    ).fetchall()
    return [
        dict(
            zip(
                ("message", "received_at", "recipient", "status", "diagnostic", "kind", "stage"),
                r,
                strict=True,
            )
        )
        for r in rows
    ]
