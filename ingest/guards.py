"""Two guards a poll passes before each message: enough free disk, and not a poison message.

**Free space** (``check_free_space``, ``FreeSpace``): below ``limits.min_free_bytes`` free in
the file store, the poll stops *before* the next message with ``DiskFull`` (a message saying how
much is free and what to do). The disk is asked at the start of a poll and again before a
message once ``FREE_SPACE_EVERY_S`` have passed or the messages since the last look add up to an
eighth of the room that was left above the floor (asking costs a system call that a busy disk
makes slow; 10,000 small messages do not need 10,000 of them). Nothing is lost: the messages
not read yet stay on the server (or in the Maildir) above the watermark, and the next poll, once
space is back, goes on from there.
``serve`` logs the error and shows it in ``status`` and ``serve --check`` (``last_error``).

**Poison guard** (``PoisonGuard``): before reading messages the poll commits a note for each in
the ``reading`` table (``started`` + 1), one write for all the messages whose reading starts
together (the poll reads several at once, in the worker processes); recording a message removes
its note in the same transaction, and so does finishing the reading of it (the note of a message
that is read and only waits for its commit goes with the next note or commit written: a crash
while storing or committing is not the message's doing). A note left by a poll that died makes its message a
*suspect*: the next poll reads it alone, nothing else being read meanwhile, so that a death
while reading it is its own doing and not a neighbour's (a message read among others when the
process died is counted once, then read alone). A note that reaches ``POISON_STARTS`` (each time
the process died while reading that message: out of memory, a crash in a C library, SIGKILL)
makes the next poll record the message as ``failed`` with ``POISON_REASON``, not retried by
itself, and move past it. ``mailroll retry MESSAGE`` tries it again on the next poll.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from ingest.db import transaction
from ingest.sizes import human_size

POISON_STARTS = 3
POISON_REASON = f"mailroll stopped {POISON_STARTS} times while reading this message"


FREE_SPACE_EVERY_S = 0.5


class DiskFull(Exception):
    """Free space in the file store is below ``limits.min_free_bytes``: the poll stops."""


def check_free_space(path: Path, min_free: int) -> int:
    """Raise ``DiskFull`` below the floor; else the bytes free (0: no floor, not asked)."""
    if min_free <= 0:
        return 0
    free = shutil.disk_usage(path).free
    if free < min_free:
        raise DiskFull(
            f"only {human_size(free)} free on the disk of {path}, below limits.min_free_bytes "
            f"({human_size(min_free)}): polling is paused before the next message and resumes by "
            "itself once space is freed (nothing is lost: unread mail stays on the server)"
        )
    return free


class FreeSpace:
    """``check_free_space`` before each message, asking the disk only when it may have changed
    enough to matter (see module docstring)."""

    def __init__(self, path: Path, min_free: int):
        self.path, self.min_free = path, min_free
        self.checked_at = 0.0
        self.room = 0  # bytes above the floor at the last look
        self.since = 0  # bytes of messages since then
        self.check(0)

    def check(self, size: int) -> None:
        """Before a message of ``size`` bytes."""
        if self.min_free <= 0:
            return
        self.since += size
        recent = time.monotonic() - self.checked_at < FREE_SPACE_EVERY_S
        if self.checked_at and recent and self.since * 8 < self.room:
            return
        self.room = check_free_space(self.path, self.min_free) - self.min_free
        self.checked_at, self.since = time.monotonic(), 0


class PoisonGuard:
    """The ``reading`` notes of one source during one poll (see module docstring)."""

    def __init__(self, conn: sqlite3.Connection, source: str):
        self.conn = conn
        self.source = source
        self.read_keys: list[str] = []  # read this poll, note not removed yet
        # the notes left by polls that died (key -> deaths): those messages are read alone
        self.suspects: dict[str, int] = dict(
            conn.execute("SELECT source_key, started FROM reading WHERE source = ?", (source,)).fetchall()
        )

    def poisoned(self, key: str) -> bool:
        """True when polls died ``POISON_STARTS`` times while reading this message."""
        return self.suspects.get(key, 0) >= POISON_STARTS

    def suspect(self, key: str) -> bool:
        """A poll died while this message was being read (maybe among others): read it alone."""
        return key in self.suspects

    def start(self, keys: list[str]) -> None:
        """Commit the notes that these messages are being read (and drop the notes of messages
        read), in one write."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        starting = set(keys)
        with transaction(self.conn):
            self.conn.executemany(
                "DELETE FROM reading WHERE source = ? AND source_key = ?",
                [(self.source, k) for k in self.read_keys if k not in starting],
            )
            self.conn.executemany(
                "INSERT INTO reading (source, source_key, started, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (source, source_key) DO UPDATE SET started = started + 1, "
                "updated_at = excluded.updated_at",
                [(self.source, key, now) for key in keys],
            )
        self.read_keys = []

    def forget_read(self) -> None:
        """Drop the notes of the messages read, inside the caller's transaction (a message's
        commit): so a death while they wait for their own commit does not count against them."""
        self.conn.executemany(
            "DELETE FROM reading WHERE source = ? AND source_key = ?",
            [(self.source, k) for k in self.read_keys],
        )
        self.read_keys = []

    def read(self, key: str) -> None:
        """The message is read (whatever came of it): a crash from now on is not its doing.
        Others' notes go with the next write (``start``, ``forget_read``); a suspect's goes at
        once, in a write of its own (suspects are few and read alone): else a poll killed while
        the suspect waits for its commit counted against it again, and a message that was only
        in flight when the process was killed three times was recorded as poison."""
        if key not in self.suspects:
            self.read_keys.append(key)
            return
        with transaction(self.conn):
            self.conn.execute("DELETE FROM reading WHERE source = ? AND source_key = ?", (self.source, key))
