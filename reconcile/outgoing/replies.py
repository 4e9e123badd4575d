"""Answers staff write to units' questions: `mailroll reply` and the web's 待回复 form.

A reply goes from the campaign's address in the question's thread (In-Reply-To and References,
"Re: " subject), through the outbox like every mail mailroll sends: at most once per question
(the outbox row of kind ``reply`` answering it), at the SMTP rate. It goes to the sender when
the sender is trusted for the unit (a registered address, the unit's domain, a reply in our
thread, or staff's assignment); a sender only named (a personal mailbox) is not believed to
speak for the unit, so the answer goes to the unit's roster addresses; a message no unit could
be found for is answered to its sender (staff chose to answer a stranger). The text is staff's,
followed by the office's contacts; the question is then answered (``reconcile.questions``).

Answers units need again and again (where the template is, whether a video may be longer) are
saved under a short name (table ``saved_answers``) and reused with ``--saved NAME``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconcile.attribute import TRUSTED
from reconcile.i18n import N_, zh
from reconcile.i18n import gettext as _
from reconcile.outgoing.compose import contact_lines, valid_address
from reconcile.outgoing.outbox import existing, send_one
from reconcile.outgoing.reminders import unit_addresses

REPLY_PREFIXES = ("re:", "回复:", "回复：", "答复:", "答复：")
ANSWER_NAME_MAX = 40
ANSWER_TEXT_MAX = 10_000


# what became of a reply, in words (the outbox's states, and one earlier reply found)
STATUS_WORDS = {
    "sent": N_("sent"),
    "deferred": N_("not taken by the mail server for now: sent again on the next run"),
    "failed": N_("refused by the mail server"),
    "unknown": N_("perhaps sent (the connection broke): not sent again"),
    "already answered": N_("already answered by an earlier reply"),
    "waiting": N_("waiting for the SMTP rate"),
}


def status_text(status: str) -> str:
    """What became of a reply, in the reader's language."""
    return _(STATUS_WORDS[status]) if status in STATUS_WORDS else status


class ReplyProblem(ValueError):
    """A reply that cannot be sent: no such message, nobody to send it to, empty text."""


@dataclass
class Reply:
    message: int
    unit: str | None
    to: list[str]
    subject: str
    body: str
    in_reply_to: str | None
    references: list[str] = field(default_factory=list)
    status: str = "due"
    error: str | None = None

    def as_dict(self) -> dict:
        return {
            "message": self.message,
            "unit": self.unit,
            "to": self.to,
            "subject": self.subject,
            "status": self.status,
            "error": self.error,
        }


def reply_subject(subject: str | None) -> str:
    """ "Re: " and the question's subject (once: not "Re: Re: ...")."""
    text = (subject or "").strip()
    return text if text.lower().startswith(REPLY_PREFIXES) else f"Re: {text}" if text else "Re:"


def build(conn: sqlite3.Connection, config, roster, message: int, text: str) -> Reply:
    """The reply to ``message`` with staff's ``text``: its recipients, subject, body, thread."""
    text = (text or "").strip()
    if not text:
        raise ReplyProblem(_("the answer is empty: give --text, --file or --saved"))
    row = conn.execute(
        "SELECT m.message_id, m.subject, m.from_addr, m.headers, a.unit, a.trust FROM messages m "
        "LEFT JOIN attributions a ON a.message = m.id WHERE m.id = ? AND m.status = 'recorded'",
        [message],
    ).fetchone()
    if row is None:
        raise ReplyProblem(_("no message #{id} to answer: see `mailroll questions`").format(id=message))
    message_id, subject, sender, headers_json, unit_id, trust = row
    unit = roster.by_id.get(unit_id) if unit_id else None
    if unit is not None and trust not in TRUSTED:
        to = unit_addresses(conn, unit)  # a sender only named does not speak for the unit
    else:
        to = [sender] if sender and valid_address(sender) else []
    if not to:
        raise ReplyProblem(_("message #{id} has nobody to answer to (no valid address)").format(id=message))
    try:
        headers = json.loads(headers_json or "{}")
    except ValueError:
        headers = {}
    references = (
        [str(r) for r in (headers.get("references") or [])][-10:] if isinstance(headers, dict) else []
    )
    contacts = contact_lines(config)
    body = text + ("\n\n" + zh(N_("Contacts:")) + "\n" + "\n".join(contacts) if contacts else "")
    body += "\n\n" + config.campaign.name
    return Reply(message, unit_id, to, reply_subject(subject), body, message_id, references)


def send(conn: sqlite3.Connection, config, mailer, reply: Reply, now: datetime | None = None) -> Reply:
    """Send ``reply`` through the outbox, at most once per question (an earlier reply to the same
    message: ``status`` "already answered"). Sets ``status`` and ``error``."""
    earlier = existing(conn, kind="reply", answers=reply.message)
    if earlier is not None and earlier[1] != "deferred":
        reply.status, reply.error = "already answered", None
        return reply
    result = send_one(
        conn,
        config,
        mailer,
        kind="reply",
        to=reply.to,
        subject=reply.subject,
        body=reply.body,
        now=now or datetime.now(UTC),
        unit=reply.unit,
        answers=reply.message,
        in_reply_to=reply.in_reply_to,
        references=reply.references,
    )
    reply.status, reply.error = result if result else ("already answered", None)
    return reply


# ---------------------------------------------------------------- saved answers


def save_answer(conn: sqlite3.Connection, name: str, text: str, actor: str) -> None:
    """Keep ``text`` under ``name`` (replacing an earlier one of that name)."""
    name, text = name.strip(), text.strip()
    if not name or len(name) > ANSWER_NAME_MAX:
        raise ReplyProblem(_("a saved answer's name has 1 to {n} characters").format(n=ANSWER_NAME_MAX))
    if not text or len(text) > ANSWER_TEXT_MAX:
        raise ReplyProblem(_("a saved answer has 1 to {n} characters").format(n=ANSWER_TEXT_MAX))
    conn.execute(
        "INSERT INTO saved_answers (name, text, saved_by, saved_at, used) VALUES (?, ?, ?, ?, 0) "
        "ON CONFLICT(name) DO UPDATE SET text = excluded.text, saved_by = excluded.saved_by, "
        "saved_at = excluded.saved_at",
        (name, text, actor, datetime.now(UTC).isoformat(timespec="seconds")),
    )


def saved_answer(conn: sqlite3.Connection, name: str) -> str:
    """The text saved as ``name``, counted as used once more."""
    row = conn.execute("SELECT text FROM saved_answers WHERE name = ?", (name.strip(),)).fetchone()
    if row is None:
        names = [n for (n,) in conn.execute("SELECT name FROM saved_answers ORDER BY name")]
        raise ReplyProblem(
            _("no saved answer {name}: the saved ones are {names}").format(
                name=name, names=_(", ").join(names) or _("(none)")
            )
        )
    conn.execute("UPDATE saved_answers SET used = used + 1 WHERE name = ?", (name.strip(),))
    return row[0]


def saved_answers(conn: sqlite3.Connection) -> list[dict]:
    """`answers --json`: [{"name", "text", "used"}], by name."""
    return [
        {"name": n, "text": t, "used": u}
        for n, t, u in conn.execute("SELECT name, text, used FROM saved_answers ORDER BY name")
    ]
