"""Where the polls got to: the watermark (UIDVALIDITY, last UID) kept in ``mailbox_state``.

A poll fetches the UIDs above the watermark plus the messages of this source recorded as
``failed`` (retried by their key ``UIDVALIDITY:UID``). When UIDVALIDITY changes every UID is
void: a warning is logged and the watermark starts again at 0; the pipeline records the re-fetched
messages as duplicates (same Message-ID and content), so nothing is counted twice.

The watermark moves only past messages that are recorded, in UID order: ``Watermark`` remembers
which UIDs this poll handed out and which of them were committed. It is written every
``SAVE_EVERY`` messages or ``SAVE_EVERY_S`` seconds, and when the source closes (``flush``), not
once per message: a watermark behind the truth only makes the next poll fetch those messages
again, find them recorded and run their post action again (which is idempotent).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from ingest.db import transaction

log = logging.getLogger("ingest.sources.imap")  # one logger for the whole package

SAVE_EVERY = 200  # messages past the saved watermark before it is written again
SAVE_EVERY_S = 2.0  # ... or seconds


def db_connection(db: Any) -> sqlite3.Connection:
    """The sqlite3 connection behind ``db`` (a connection or a sqlite_utils Database)."""
    return db if isinstance(db, sqlite3.Connection) else db.conn


class Watermark:
    """The watermark of one source, and this poll's progress towards moving it."""

    def __init__(self, source: str):
        self.source = source
        self.handed: list[int] = []  # UIDs handed out this poll, in order
        self.done: set[int] = set()  # ... of which committed
        self.frontier = 0  # handed[:frontier] are behind the watermark
        self.saved = 0  # handed[:saved] are behind the watermark as written
        self.saved_at = time.monotonic()
        self.unsaved: tuple[sqlite3.Connection, int | None] | None = None  # what flush() writes with

    def last_uid(self, conn: sqlite3.Connection, uidvalidity: int | None) -> int:
        """The watermark for the current UIDVALIDITY (resetting it when UIDVALIDITY changed)."""
        row = conn.execute(
            "SELECT uidvalidity, last_uid FROM mailbox_state WHERE source = ?", (self.source,)
        ).fetchone()
        if row and row[0] == uidvalidity:
            return int(row[1])
        if row and row[0] is not None:
            log.warning(
                "the UIDVALIDITY of %s changed (%s -> %s): the server renumbered its "
                "messages, so every message is fetched again (the ones already recorded "
                "become duplicates)",
                self.source,
                row[0],
                uidvalidity,
            )
        self.save(conn, uidvalidity, 0, force=True)
        return 0

    def save(
        self, conn: sqlite3.Connection, uidvalidity: int | None, last_uid: int, force: bool = False
    ) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with transaction(conn):
            if force:
                conn.execute(
                    "INSERT INTO mailbox_state (source, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
                    "last_uid = excluded.last_uid, updated_at = excluded.updated_at",
                    (self.source, uidvalidity, last_uid, now),
                )
            else:
                conn.execute(
                    "UPDATE mailbox_state SET last_uid = MAX(last_uid, ?), updated_at = ? "
                    "WHERE source = ? AND uidvalidity = ?",
                    (last_uid, now, self.source, uidvalidity),
                )

    def failed_uids(self, conn: sqlite3.Connection, uidvalidity: int | None) -> list[int]:
        """The UIDs (under this UIDVALIDITY) of this source's messages recorded as failed and to be
        tried again (not those failed for good: a limit hit, the poison guard; `mailroll retry`)."""
        prefix = f"{uidvalidity}:"
        uids = []
        for (key,) in conn.execute(
            "SELECT source_key FROM messages WHERE source = ? AND status = 'failed' AND retry = 1",
            (self.source,),
        ):
            if key.startswith(prefix) and key[len(prefix) :].isdigit():
                uids.append(int(key[len(prefix) :]))
        return uids

    def stored(self, conn: sqlite3.Connection, key: str) -> bool:
        """True when the message with this key is recorded, and not as failed."""
        row = conn.execute(
            "SELECT status FROM messages WHERE source = ? AND source_key = ?", (self.source, key)
        ).fetchone()
        return row is not None and row[0] != "failed"

    def start_poll(self) -> None:
        self.handed, self.done, self.frontier, self.saved = [], set(), 0, 0
        self.saved_at, self.unsaved = time.monotonic(), None

    def handed_out(self, uid: int) -> None:
        self.handed.append(uid)

    def committed(self, conn: sqlite3.Connection, uidvalidity: int | None, uid: int) -> None:
        self.done.add(uid)
        self._advance(conn, uidvalidity)

    def _advance(self, conn: sqlite3.Connection, uidvalidity: int | None) -> None:
        """Move the watermark past the handed-out UIDs (in UID order) that are committed or
        recorded: a failed message is recorded and retried by its key, so it does not hold the
        watermark back; one not recorded at all (the pipeline stopped) does."""
        handed, pos = self.handed, self.frontier
        while pos < len(handed):
            uid = handed[pos]
            if uid not in self.done:
                row = conn.execute(
                    "SELECT 1 FROM messages WHERE source = ? AND source_key = ?",
                    (self.source, f"{uidvalidity}:{uid}"),
                ).fetchone()
                if row is None:
                    break
            pos += 1
        if pos > self.frontier:
            self.frontier = pos
            self.unsaved = (conn, uidvalidity)
            if pos - self.saved >= SAVE_EVERY or time.monotonic() - self.saved_at >= SAVE_EVERY_S:
                self.flush()

    def flush(self) -> None:
        """Write the watermark as far as this poll got (the source is closing, or it is time)."""
        if self.unsaved is None or self.frontier <= self.saved:
            return
        conn, uidvalidity = self.unsaved
        self.save(conn, uidvalidity, self.handed[self.frontier - 1])
        self.saved, self.saved_at, self.unsaved = self.frontier, time.monotonic(), None
