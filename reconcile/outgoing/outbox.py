"""The outbox: the record that makes every mail mailroll sends go at most once.

A row is written (``sending``) and committed before the mail is handed to SMTP, and updated with
the outcome after; the states and what each means are in docs/SERVICE.md ("Mail goes out at
most once") and ``reconcile.vocab.OutboxState``. The unique indexes ``outbox_reminder_once
(campaign, unit, stage)``, ``outbox_notice_once (campaign, unit)`` and ``outbox_receipt_once
(answers)`` make "never twice" hold in the database itself, also against a second process.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from reconcile.outgoing.compose import compose, new_message_id
from reconcile.outgoing.smtp import Mailer, SendFailure, Stopping
from reconcile.vocab import OutboxState

log = logging.getLogger(__name__)


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds")


def reserve(
    conn: sqlite3.Connection,
    *,
    kind: str,
    unit: str | None,
    stage: str | None,
    answers: int | None,
    to: list[str],
    subject: str,
    body: str,
    message_id: str,
    now: datetime,
    campaign: str | None = None,
) -> int | None:
    """Commit the outbox row (status ``sending``) before SMTP. None if this mail exists already
    (same campaign, unit and stage, or same message answered): then it must not be sent."""
    try:
        cur = conn.execute(
            "INSERT INTO outbox (campaign, kind, unit, stage, answers, to_addrs, subject, body, "
            "smtp_message_id, status, attempts, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'sending', 0, ?)",
            (
                campaign,
                kind,
                unit,
                stage,
                answers,
                json.dumps(to, ensure_ascii=False),
                subject,
                body,
                message_id,
                _now_text(now),
            ),
        )
    except sqlite3.IntegrityError:
        return None
    return cur.lastrowid


def reclaim(conn: sqlite3.Connection, row_id: int, *, to: list[str], subject: str, body: str) -> bool:
    """Take a ``deferred`` row back to ``sending`` for another try (fresh content)."""
    cur = conn.execute(
        "UPDATE outbox SET status = 'sending', to_addrs = ?, subject = ?, body = ? "
        "WHERE id = ? AND status = 'deferred'",
        (json.dumps(to, ensure_ascii=False), subject, body, row_id),
    )
    return cur.rowcount == 1


def finish(
    conn: sqlite3.Connection, row_id: int, status: str, *, attempts: int, error: str | None, now: datetime
) -> None:
    conn.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + ?, error = ?, "
        "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
        (status, attempts, error, status, _now_text(now), row_id),
    )


def recover_interrupted(conn: sqlite3.Connection) -> int:
    """Rows left in ``sending`` by a process that died: ``unknown``, never sent again.

    Call with ``lock.send_lock`` held (then nobody else is sending)."""
    cur = conn.execute(
        "UPDATE outbox SET status = 'unknown', error = 'mailroll stopped while handing this mail "
        "to the SMTP server; it may or may not have arrived, so it is not sent again' "
        "WHERE status = 'sending'"
    )
    if cur.rowcount:
        log.warning(
            "%d outgoing mail(s) were interrupted by a crash: marked 'unknown', not re-sent", cur.rowcount
        )
    return cur.rowcount


def last_mail(conn: sqlite3.Connection, config, unit: str) -> datetime | None:
    """When the latest mail to ``unit`` about ``config``'s campaign was made (any kind, not
    counting mail that never went: deferred, skipped, failed)."""
    clause, params = config.campaign_clause()
    row = conn.execute(
        "SELECT max(created_at) FROM outbox WHERE unit = ? "
        "AND status NOT IN ('deferred', 'skipped', 'failed') "
        f"AND {clause}",
        (unit, *params),
    ).fetchone()
    return datetime.fromisoformat(row[0].replace("Z", "+00:00")) if row and row[0] else None


def record_folded(conn: sqlite3.Connection, config, reminder, now: datetime) -> None:
    """A reminder folded into the mail the unit just got: its stage is done (``skipped``,
    saying why), so it is never sent later (a deferred try of the same stage is taken over)."""
    cur = conn.execute(
        "UPDATE outbox SET status = 'skipped', error = ? WHERE id = ? AND status = 'deferred'",
        (
            reminder.folded,
            (
                existing(conn, kind="reminder", unit=reminder.unit, stage=reminder.stage, config=config)
                or (0,)
            )[0],
        ),
    )
    if cur.rowcount:
        return
    try:
        conn.execute(
            "INSERT INTO outbox (campaign, kind, unit, stage, to_addrs, subject, body, smtp_message_id, "
            "status, attempts, error, created_at) VALUES (?, 'reminder', ?, ?, ?, '', '', ?, 'skipped', 0, ?, ?)",
            (
                config.campaign.id,
                reminder.unit,
                reminder.stage,
                json.dumps(reminder.to, ensure_ascii=False),
                new_message_id(config, "reminder"),
                reminder.folded,
                _now_text(now),
            ),
        )
    except sqlite3.IntegrityError:  # recorded meanwhile (another process)
        pass


def answered_together(conn: sqlite3.Connection, config, receipt, message: int, now: datetime) -> None:
    """Record that ``message`` needs no receipt of its own: ``receipt`` (for a later message of
    the same unit) answered it. Its row is ``skipped``, so it is never sent (a deferred one
    from an earlier try is taken over)."""
    why = f"answered together with message #{receipt.message}"
    cur = conn.execute(
        "UPDATE outbox SET status = 'skipped', error = ? WHERE kind = 'receipt' AND answers = ? "
        "AND status = 'deferred'",
        (why, message),
    )
    if cur.rowcount:
        return
    try:
        conn.execute(
            "INSERT INTO outbox (campaign, kind, unit, answers, to_addrs, subject, body, smtp_message_id, "
            "status, attempts, error, created_at) VALUES (?, 'receipt', ?, ?, ?, ?, '', ?, 'skipped', 0, ?, ?)",
            (
                config.campaign.id,
                receipt.unit,
                message,
                json.dumps(receipt.to + receipt.cc, ensure_ascii=False),
                receipt.subject,
                new_message_id(config, "receipt"),
                why,
                _now_text(now),
            ),
        )
    except sqlite3.IntegrityError:  # answered meanwhile (another process)
        pass


def deliver(
    conn: sqlite3.Connection, mailer: Mailer, row_id: int, msg: EmailMessage, to: list[str], now: datetime
) -> tuple[str, str | None]:
    """Send a reserved row's message and record the outcome. Returns (status, error)."""
    try:
        outcome = mailer.send(msg, to)
    except SendFailure as e:
        status = OutboxState.after(e.kind)
        finish(conn, row_id, status, attempts=e.attempts, error=e.reason, now=now)
        log.warning("%s to %s: %s (%s)", msg["X-Mailroll"], ", ".join(to), status, e.reason)
        return status, e.reason
    error = None
    if outcome.refused:
        error = "refused: " + "; ".join(f"{k} ({v})" for k, v in outcome.refused.items())
    finish(conn, row_id, "sent", attempts=outcome.attempts, error=error, now=now)
    log.info("%s sent to %s", msg["X-Mailroll"], ", ".join(to))
    return "sent", error


def existing(
    conn: sqlite3.Connection,
    *,
    kind: str,
    unit: str | None = None,
    stage: str | None = None,
    answers: int | None = None,
    config=None,
) -> tuple[int, str, str] | None:
    """The outbox row (id, status, smtp_message_id) for this receipt or reply (by the message it
    answers), or this reminder stage or notice of the unit in ``config``'s campaign."""
    if kind in ("receipt", "reply"):  # one of each per message answered
        row = conn.execute(
            "SELECT id, status, smtp_message_id FROM outbox WHERE kind = ? AND answers = ?",
            (kind, answers),
        ).fetchone()
    else:
        clause, params = config.campaign_clause() if config is not None else ("1", [])
        row = conn.execute(
            "SELECT id, status, smtp_message_id FROM outbox WHERE kind = ? AND unit = ? "
            f"AND coalesce(stage, '') = ? AND {clause}",
            (kind, unit, stage or "", *params),
        ).fetchone()
    return tuple(row) if row else None


# long: the at-most-once steps in the order the outbox table describes
def send_one(
    conn: sqlite3.Connection,
    config,
    mailer: Mailer,
    *,
    kind: str,
    to: list[str],
    subject: str,
    body: str,
    now: datetime,
    unit: str | None = None,
    stage: str | None = None,
    answers: int | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    cc: list[str] | None = None,
    attachments: list[tuple[str, bytes]] | None = None,
) -> tuple[str, str | None] | None:
    """Record and send one notice, receipt or reminder (about ``config``'s campaign), at most once.

    ``cc`` addresses get a copy (Cc header); the outbox row's ``to_addrs`` lists every
    recipient, To and Cc, so that a bounce from any of them is matched.

    A new mail gets a row in ``sending`` (committed) before SMTP; a ``deferred`` one is taken
    back and tried again with its Message-ID; anything else (sent, failed, unknown, skipped,
    or a row another process is sending) is left alone and None is returned. The SMTP rate
    limit is waited for first; ``serve`` stopping meanwhile returns ("waiting", why) with
    nothing recorded.
    """
    try:  # the rate limit is waited for before the row is written: a crash meanwhile leaves no
        mailer.wait_turn()  # row in 'sending' (which would become 'unknown', never sent)
    except Stopping as e:
        return "waiting", e.reason
    cc = [a for a in (cc or []) if a not in to]
    everyone = list(to) + cc
    row = existing(conn, kind=kind, unit=unit, stage=stage, answers=answers, config=config)
    if row is None:
        message_id = new_message_id(config, kind)
        row_id = reserve(
            conn,
            campaign=config.campaign.id,
            kind=kind,
            unit=unit,
            stage=stage,
            answers=answers,
            to=everyone,
            subject=subject,
            body=body,
            message_id=message_id,
            now=now,
        )
        if row_id is None:
            return None
    else:
        row_id, status, message_id = row
        if status != "deferred" or not reclaim(conn, row_id, to=everyone, subject=subject, body=body):
            return None
    msg = compose(
        config,
        kind=kind,
        to=to,
        subject=subject,
        body=body,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        cc=cc,
        attachments=attachments,
    )  # Date: real time
    return deliver(conn, mailer, row_id, msg, everyone, now)


def send_each(config, mailer: Mailer | None, due: list, send: Callable, stop=None) -> None:
    """Send the mails ``due`` in turn: ``send(mailer, mail)`` makes the ``send_one`` call for one
    and returns its result. Sets each mail's ``status`` and ``error`` ("already sent" when
    another run sent it meanwhile); stops early once ``stop`` is set (the rest stay due for the
    next run). Uses a ``Mailer`` of its own, closed at the end, when none is given."""
    own = mailer is None
    mailer = mailer or Mailer(config.smtp)
    try:
        for mail in due:
            if stop is not None and stop.is_set():
                break
            result = send(mailer, mail)
            mail.status, mail.error = result if result else ("already sent", None)
    finally:
        if own:
            mailer.close()
