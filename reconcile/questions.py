"""Questions units asked staff, and which are still unanswered: `mailroll questions`, `answered`
and the web's 待回复 page.

A message is a question when ingest marked it so (``messages.question``: it asks something and no
program sent it, ``ingest.mime.own_text``). It is answered once staff say so (`answered`: a
decision ``answered`` about the message, revocable like any other) or a reply to it went out
(`reply`: a row of kind ``reply`` in the outbox, answering it). A message staff dismissed or
rejected (``reject``/``dismiss MESSAGE``: advertising, spam) asks nothing of them."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter

from reconcile import overrides
from reconcile.i18n import gettext as _
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
  AND NOT EXISTS (SELECT 1 FROM overrides d WHERE d.action IN ('reject', 'dismiss') AND d.message = m.id
                  AND d.revoked_at IS NULL)
ORDER BY m.received_at, m.id
"""
OPEN_COUNT_SQL = """
SELECT count(*) FROM messages m LEFT JOIN attributions a ON a.message = m.id
WHERE m.status = 'recorded' AND m.question = 1 AND (? IS NULL OR a.campaign IS NULL OR a.campaign = ?)
  AND NOT EXISTS (SELECT 1 FROM overrides o WHERE o.action = 'answered' AND o.message = m.id
                  AND o.revoked_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.kind = 'reply' AND x.answers = m.id
                  AND x.status IN ('sent', 'sending', 'unknown'))
  AND NOT EXISTS (SELECT 1 FROM overrides d WHERE d.action IN ('reject', 'dismiss') AND d.message = m.id
                  AND d.revoked_at IS NULL)
"""
SIMILAR = 0.45  # share of the shorter question's character pairs the other has, to be grouped
SIMILAR_PAIRS = 4  # and at least this many pairs in common (not only "可以吗")
GROUPED_AT_MOST = 500  # open questions compared for grouping (the oldest); later ones stand alone


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
    subject and text, ``SIMILAR``) share a ``group``: one answer can go to all of them. Each is
    compared only with the groups it shares a pair with (an index of pairs), and only the
    oldest ``GROUPED_AT_MOST`` are compared: a flood of mail cannot make this slow."""
    pairs_of: dict[int, set[str]] = {}
    by_pair: dict[str, list[int]] = {}
    for n, r in enumerate(rows):
        r["group"] = r["id"]
        if n >= GROUPED_AT_MOST:
            continue
        pairs = _pairs(f"{r['subject'] or ''} {r['text'] or ''}")
        shared = Counter(g for p in pairs for g in by_pair.get(p, ()))
        alike = next(
            (
                group
                for group, common in shared.most_common()
                if common >= SIMILAR_PAIRS and common / min(len(pairs), len(pairs_of[group])) >= SIMILAR
            ),
            None,
        )
        if alike is not None:
            r["group"] = alike
            continue
        pairs_of[r["id"]] = pairs
        for p in pairs:
            by_pair.setdefault(p, []).append(r["id"])


def open_count(conn: sqlite3.Connection, campaign: str | None = None) -> int:
    """How many questions wait for an answer (the web's header): one count, no grouping."""
    return conn.execute(OPEN_COUNT_SQL, (campaign, campaign)).fetchone()[0]


class NotAQuestion(ValueError):
    """``answered`` about a message that asks nothing, or one answered already."""


def mark_answered(conn: sqlite3.Connection, message: int, actor: str, note: str | None) -> int:
    """Staff's word that ``message`` was answered without mail (by phone): a decision
    ``answered`` about it (and the unit and campaign it counts for), revocable. Its id.
    NotAQuestion when it asks nothing or is answered already (a second click adds nothing)."""
    row = conn.execute(
        "SELECT question FROM messages WHERE id = ? AND status = 'recorded'", [message]
    ).fetchone()
    if row is None or not row[0]:
        raise NotAQuestion(_("message #{id} asks nothing: see `mailroll questions`").format(id=message))
    done = conn.execute(
        "SELECT id FROM overrides WHERE action = 'answered' AND message = ? AND revoked_at IS NULL", [message]
    ).fetchone()
    if done is not None:
        raise NotAQuestion(
            _("message #{id} is answered already (decision {override})").format(id=message, override=done[0])
        )
    row = conn.execute("SELECT unit, campaign FROM attributions WHERE message = ?", [message]).fetchone()
    unit, campaign = row if row else (None, None)
    return overrides.add(conn, "answered", actor, unit=unit, message=message, note=note, campaign=campaign)
