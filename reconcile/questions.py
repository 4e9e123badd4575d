"""Questions units asked staff, and which are still unanswered: `mailroll questions`, `answered`
and the web's 待回复 page.

A message is a question when ingest marked it so (``messages.question``: it asks something and no
program sent it, ``ingest.mime.own_text``). It is answered once staff say so (`answered`: a
decision ``answered`` about the message, revocable like any other) or a reply to it went out
(`reply`: a row of kind ``reply`` in the outbox, answering it)."""

from __future__ import annotations

import re
import sqlite3

from reconcile import overrides
from reconcile.messages import message_heading
from reconcile.status import iso_text, stored_time

QUESTIONS_SQL = """
SELECT m.id, m.message_id, a.unit, m.from_addr, m.subject, m.received_at, m.text, a.campaign,
       (SELECT o.created_at || char(31) || o.actor FROM overrides o
         WHERE o.action = 'answered' AND o.message = m.id AND o.revoked_at IS NULL ORDER BY o.id LIMIT 1),
       (SELECT coalesce(x.sent_at, x.created_at) FROM outbox x
         WHERE x.kind = 'reply' AND x.answers = m.id AND x.status IN ('sent', 'sending', 'unknown')
         ORDER BY x.id LIMIT 1)
FROM messages m LEFT JOIN attributions a ON a.message = m.id
WHERE m.status = 'recorded' AND m.question = 1
ORDER BY m.received_at, m.id
"""
SIMILAR = 0.45  # share of the shorter question's character pairs the other has, to be grouped
SIMILAR_PAIRS = 4  # and at least this many pairs in common (not only "可以吗")


def questions(
    conn: sqlite3.Connection, tz, campaign: str | None = None, include_answered: bool = False
) -> list[dict]:
    """The questions, oldest first (open ones only unless ``include_answered``): the rows of
    `questions --json`, each with ``group`` (questions that look alike share it; open ones only)."""
    rows = []
    for row in conn.execute(QUESTIONS_SQL):
        text, in_campaign, said, replied = row[6:]
        if campaign is not None and in_campaign not in (campaign, None):
            continue
        answered_at, answered_by = _answer(said, replied)
        if answered_at is not None and not include_answered:
            continue
        answered = iso_text(stored_time(answered_at), tz) if answered_at else None
        rows.append(
            {**message_heading(row, tz), "text": text, "answered_at": answered, "answered_by": answered_by}
        )
    _group_alike([r for r in rows if r["answered_at"] is None])
    return rows


def _answer(said: str | None, replied: str | None) -> tuple[str | None, str | None]:
    """The first answer: staff's `answered` (time, actor) or the reply sent (time, 'reply')."""
    answers = []
    if said:
        at, _, actor = said.partition("\x1f")
        answers.append((at, actor))
    if replied:
        answers.append((replied, "reply"))
    return min(answers, key=lambda a: stored_time(a[0])) if answers else (None, None)


def _pairs(text: str) -> set[str]:
    letters = re.sub(r"[\W_]+", "", text.lower())[:300]
    return {letters[i : i + 2] for i in range(len(letters) - 1)}


def _group_alike(rows: list[dict]) -> None:
    """Number the open questions so that those that look alike (the same pairs of characters in
    subject and text, ``SIMILAR``) share a ``group``: one answer can go to all of them."""
    groups: list[tuple[int, set[str]]] = []
    for r in rows:
        pairs = _pairs(f"{r['subject'] or ''} {r['text'] or ''}")
        for number, seen in groups:
            common = len(pairs & seen)
            if common >= SIMILAR_PAIRS and common / min(len(pairs), len(seen)) >= SIMILAR:
                r["group"] = number
                break
        else:
            groups.append((r["id"], pairs))
            r["group"] = r["id"]


def mark_answered(conn: sqlite3.Connection, message: int, actor: str, note: str | None) -> int:
    """Staff's word that ``message`` was answered without mail (by phone): a decision
    ``answered`` about it (and the unit and campaign it counts for), revocable. Its id."""
    row = conn.execute("SELECT unit, campaign FROM attributions WHERE message = ?", [message]).fetchone()
    unit, campaign = row if row else (None, None)
    return overrides.add(conn, "answered", actor, unit=unit, message=message, note=note, campaign=campaign)
