"""The search index of messages: subject, sender, body text and attachment names of every
recorded message in the SQLite FTS5 table ``message_search`` (rowid = ``messages.id``), written
in the same transaction as the message (``ingest.store.record_message``).

Chinese has no spaces between words, and clerks search for words of one or two characters
(经费, 李明). FTS5's ``unicode61`` tokenizer would take a run of Chinese as one token, and its
``trigram`` tokenizer finds nothing shorter than three characters. So every CJK character is
indexed as a token of its own (``spaced``), and a search word is looked up as a phrase of its
characters (``match_expression``): a word of any length is found through the index."""

from __future__ import annotations

import functools
import re
import sqlite3

from ingest.mime.own_text import from_stored, own_text

# Han ideographs, kana, hangul, CJK radicals and compatibility ideographs: one token each.
_CJK_RANGES = (
    (0x2E80, 0x2FDF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
)
# ideographs beyond the BMP (extensions B-G), rare: a regular expression, run only when needed
_ASTRAL_CJK = re.compile("([\U00020000-\U0003134f])")
_TOKEN = re.compile(r"\w+")

INDEXED_TEXT_MAX = 65536  # characters of a message's own text indexed (its body is kept to 64 KiB)
SCHEMA = """
CREATE VIRTUAL TABLE message_search USING fts5(
    subject, sender, body, names, tokenize = 'unicode61 remove_diacritics 2'
)
"""


@functools.cache
def _spacing_table() -> dict[int, str]:
    return {c: f" {chr(c)} " for low, high in _CJK_RANGES for c in range(low, high + 1)}


def spaced(text: str | None) -> str:
    """``text`` with a space around every CJK character, so FTS5 indexes each as a token.
    (``str.translate`` over a table: some 8x faster than a regular expression on Chinese text.)"""
    if not text:
        return ""
    out = text.translate(_spacing_table())
    return _ASTRAL_CJK.sub(r" \1 ", out) if max(out) > "\uffff" else out


def match_expression(words: list[str]) -> str | None:
    """An FTS5 query that matches rows holding every word: each word a quoted phrase of its
    tokens (the last one a prefix, so ``taiyu`` finds ``taiyuan``). Quoting makes any input
    plain text to FTS5 (no operators, columns or syntax errors from what a person types).
    None when the words hold nothing searchable (only punctuation)."""
    phrases = []
    for word in words:
        tokens = _TOKEN.findall(spaced(word).lower())
        if tokens:
            phrases.append('"' + " ".join(tokens) + '"*')
    return " AND ".join(phrases) or None


def index_message(conn: sqlite3.Connection, message: int) -> None:
    """(Re)write the search row of one message from its stored columns and parts. The text
    indexed is the sender's own (``own_text``, unbounded): the notice every reply quotes would
    make each of them found by any word of it."""
    row = conn.execute(
        "SELECT subject, from_addr, from_name, body_text FROM messages WHERE id = ?", (message,)
    ).fetchone()
    forget_message(conn, message)
    if row is None:
        return
    subject, from_addr, from_name, body = row
    names = [
        n for (n,) in conn.execute("SELECT location FROM parts WHERE message = ? ORDER BY seq", (message,))
    ]
    conn.execute(
        "INSERT INTO message_search (rowid, subject, sender, body, names) VALUES (?, ?, ?, ?, ?)",
        (
            message,
            spaced(subject),
            spaced(" ".join(filter(None, (from_name, from_addr)))),
            spaced(own_text(body, limit=INDEXED_TEXT_MAX)),
            spaced("\n".join(names)),
        ),
    )


def forget_message(conn: sqlite3.Connection, message: int) -> None:
    """Take a message out of the index (recorded again as a duplicate or a failure)."""
    conn.execute("DELETE FROM message_search WHERE rowid = ?", (message,))


BACKFILL_KEY = "search_backfill_upto"  # reconcile_state: messages up to this id still to fill
BACKFILL_BATCH = 500  # messages a transaction (the write lock is held a second or two, not minutes)


def create_and_fill(conn: sqlite3.Connection) -> None:
    """Migration 7: the columns of each message's own text and question mark, the index, and a
    note of the messages recorded before they existed, filled in batches by ``catch_up``."""
    conn.execute("ALTER TABLE messages ADD COLUMN text TEXT")  # own text, at most 2,000 characters
    conn.execute(
        "ALTER TABLE messages ADD COLUMN question INTEGER NOT NULL DEFAULT 0"
    )  # asks staff something
    conn.execute("CREATE INDEX messages_question ON messages(received_at) WHERE question = 1")
    conn.execute(SCHEMA)
    last = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
    if last:
        conn.execute("INSERT INTO reconcile_state (key, value) VALUES (?, ?)", (BACKFILL_KEY, last))


def catch_up(conn: sqlite3.Connection, transaction) -> int:
    """Fill the text, question mark and index of messages recorded before migration 7, newest
    first, ``BACKFILL_BATCH`` a transaction (``transaction``: ``ingest.db.transaction``), so
    other processes keep writing meanwhile. Returns how many were filled (0: nothing left)."""
    filled = 0
    while True:
        with transaction(conn):
            row = conn.execute("SELECT value FROM reconcile_state WHERE key = ?", (BACKFILL_KEY,)).fetchone()
            if row is None:
                return filled
            rows = conn.execute(
                "SELECT id, subject, body_text, headers FROM messages WHERE id <= ? AND status = 'recorded' "
                "ORDER BY id DESC LIMIT ?",
                (int(row[0]), BACKFILL_BATCH),
            ).fetchall()
            for message, subject, body, headers in rows:
                text, question = from_stored(subject, body, headers)
                conn.execute(
                    "UPDATE messages SET text = ?, question = ? WHERE id = ?", (text, int(question), message)
                )
                index_message(conn, message)
            if len(rows) < BACKFILL_BATCH:
                conn.execute("DELETE FROM reconcile_state WHERE key = ?", (BACKFILL_KEY,))
            else:
                conn.execute(
                    "UPDATE reconcile_state SET value = ? WHERE key = ?", (rows[-1][0] - 1, BACKFILL_KEY)
                )
            filled += len(rows)
