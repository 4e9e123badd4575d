"""Two guards a poll passes before each message: enough free disk, and not a poison message.

**Free space** (``check_free_space``): below ``limits.min_free_bytes`` free in the file store,
the poll stops *before* the next message with ``DiskFull`` (a message saying how much is free
and what to do). Nothing is lost: the messages not read yet stay on the server (or in the
Maildir) above the watermark, and the next poll, once space is back, goes on from there.
``serve`` logs the error and shows it in ``status`` and ``serve --check`` (``last_error``).

**Poison guard** (``PoisonGuard``): before reading a message the poll commits a note in the
``reading`` table (``started`` + 1); recording the message removes the note in the same
transaction, and so does finishing the reading of it (the note of a message that is read and
only waits for its commit goes with the next note written: a crash while storing or committing
is not the message's doing). A note that reaches ``POISON_STARTS`` (each time the process died
while reading that message: out of memory, a crash in a C library, SIGKILL) makes the next poll
record the message as ``failed`` with ``POISON_REASON``, not retried by itself, and move past it.
``mailroll retry MESSAGE`` tries it again on the next poll.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ingest.db import transaction
from ingest.sizes import human_size

POISON_STARTS = 3
POISON_REASON = f"mailroll stopped {POISON_STARTS} times while reading this message"


class DiskFull(Exception):
    """Free space in the file store is below ``limits.min_free_bytes``: the poll stops."""


def check_free_space(path: Path, min_free: int) -> None:
    if min_free <= 0:
        return
    free = shutil.disk_usage(path).free
    if free < min_free:
        raise DiskFull(
            f"only {human_size(free)} free on the disk of {path}, below limits.min_free_bytes "
            f"({human_size(min_free)}): polling is paused before the next message and resumes by "
            "itself once space is freed (nothing is lost: unread mail stays on the server)"
        )


class PoisonGuard:
    """The ``reading`` notes of one source during one poll (see module docstring)."""

    def __init__(self, conn: sqlite3.Connection, source: str):
        self.conn = conn
        self.source = source
        self.read_keys: list[str] = []  # read this poll, note not removed yet

    def poisoned(self, key: str) -> bool:
        """True when polls died ``POISON_STARTS`` times while reading this message."""
        row = self.conn.execute(
            "SELECT started FROM reading WHERE source = ? AND source_key = ?", (self.source, key)
        ).fetchone()
        return bool(row) and row[0] >= POISON_STARTS

    def start(self, key: str) -> None:
        """Commit the note that this message is being read (and drop the notes of messages read)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with transaction(self.conn):
            self.conn.executemany(
                "DELETE FROM reading WHERE source = ? AND source_key = ?",
                [(self.source, k) for k in self.read_keys if k != key],
            )
            self.conn.execute(
                "INSERT INTO reading (source, source_key, started, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (source, source_key) DO UPDATE SET started = started + 1, "
                "updated_at = excluded.updated_at",
                (self.source, key, now),
            )
        self.read_keys = []

    def read(self, key: str) -> None:
        """The message is read (whatever came of it): a crash from now on is not its doing."""
        self.read_keys.append(key)
