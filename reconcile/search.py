"""`mailroll search` and the web's search box: the messages whose subject, sender (address or
name), text or attachment names hold every word, newest first, each with a snippet around the
first word found. The index is ingest's (``ingest.search_index``); this module only reads it."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from ingest.search_index import match_expression
from reconcile.messages import message_heading

SNIPPET_AROUND = 30  # characters shown on each side of the first word found
MARK_OPEN, MARK_CLOSE = "«", "»"  # around each word found, in `snippet` (the web marks them itself)

# The index is walked from the newest message recorded backwards and stops at ``limit`` found
# (FTS5 reads its rowids in reverse without sorting every match): a word in every message costs
# no more than a rare one. Those found are shown by arrival time, newest first.
SEARCH_SQL = """
SELECT m.id, m.message_id, a.unit, m.from_addr, m.subject, m.received_at, m.body_text, m.from_name,
       (SELECT group_concat(p.location, char(10)) FROM parts p WHERE p.message = m.id) AS names
FROM (SELECT rowid FROM message_search WHERE message_search MATCH ? ORDER BY rowid DESC LIMIT ?) s
JOIN messages m ON m.id = s.rowid
LEFT JOIN attributions a ON a.message = m.id
ORDER BY m.received_at DESC, m.id DESC
"""


@dataclass(frozen=True)
class Piece:
    """A run of snippet text; ``found``: it is one of the words searched for."""

    text: str
    found: bool


def search(conn: sqlite3.Connection, words: list[str], tz, limit: int = 50) -> list[dict]:
    """The rows of `search --json`: the ``limit`` messages recorded last that hold every word,
    newest arrival first: {id, message_id, unit, from, subject, received_at, snippet} (plus
    ``pieces``: the snippet as runs, for the web to mark)."""
    expression = match_expression(words)
    if expression is None:
        return []
    rows = []
    for row in conn.execute(SEARCH_SQL, (expression, limit)):
        head = message_heading(row, tz)
        body, from_name, names = row[6:]
        fields = (body or "", names or "", head["subject"] or "", f"{from_name or ''} {head['from'] or ''}")
        pieces = snippet(words, fields)
        marked = "".join(f"{MARK_OPEN}{p.text}{MARK_CLOSE}" if p.found else p.text for p in pieces)
        rows.append({**head, "snippet": marked, "pieces": pieces})
    return rows


def snippet(words: list[str], fields: tuple[str, ...]) -> list[Piece]:
    """Up to ``SNIPPET_AROUND`` characters each side of the first word found in the first field
    that holds one (the text, then attachment names, subject, sender), every word marked; lines
    joined by spaces. Found with a case-blind regular expression over the text itself, so the
    marks sit where the words are whatever lower-casing would do to the text's length."""
    wanted = sorted({w for w in words if w.strip()}, key=len, reverse=True)
    if not wanted:
        return []
    pattern = re.compile("|".join(re.escape(w) for w in wanted), re.IGNORECASE)
    for field in fields:
        flat = " ".join(field.split())
        first = pattern.search(flat)
        if first is None:
            continue
        start = max(0, first.start() - SNIPPET_AROUND)
        end = min(len(flat), first.start() + SNIPPET_AROUND * 2)
        pieces: list[Piece] = [Piece("…", False)] if start > 0 else []
        at = start
        for found in pattern.finditer(flat, start, end):
            if found.start() > at:
                pieces.append(Piece(flat[at : found.start()], False))
            pieces.append(Piece(found.group(), True))
            at = found.end()
        if at < end:
            pieces.append(Piece(flat[at:end], False))
        if end < len(flat):
            pieces.append(Piece("…", False))
        return pieces
    return []
