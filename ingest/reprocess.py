"""Derive the facts of recorded messages again from their kept raw bytes (``mailroll reprocess``).

After an upgrade (a parser or check fixed), the facts can be derived again without the mailbox,
which may have been cleaned meanwhile: ``KeptRawSource`` hands the pipeline
(``ingest.pipeline.poll_once``) each chosen message as the server served it, read back from its
raw copy (ingest/raw.py), marked ``reprocess``. The pipeline then does exactly what it does for
new mail, in the same per-message transaction: the message row is updated in place (same id,
so staff decisions and mail sent stay attached) and its parts and links replaced; files are
journaled, so a crash (even SIGKILL) at any moment leaves every message with either its old or
its new facts, never neither. Messages without a raw copy (kept before ``keep_raw``, or over
the size limit) are listed as skipped.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingest.model import Envelope
from ingest.sources.base import FetchedMessage
from ingest.store import FileStore

log = logging.getLogger(__name__)


@dataclass
class Selection:
    ids: list[int] = field(default_factory=list)  # with a raw copy, in arrival order
    skipped: list[dict] = field(default_factory=list)  # {"message": id, "reason": ...}


def select(conn: sqlite3.Connection, store: FileStore, ids: Iterable[int] | None) -> Selection:
    """The messages to derive again (``None``: every message that has a raw copy)."""
    rows = conn.execute(
        "SELECT id, raw_sha256, raw_headers IS NOT NULL FROM messages ORDER BY received_at, id"
    ).fetchall()
    wanted = None if ids is None else set(ids)
    out = Selection()
    for mid, sha, has_headers in rows:
        if wanted is not None and mid not in wanted:
            continue
        if not sha:
            why = "only the header was kept" if has_headers else "no raw copy was kept"
            out.skipped.append({"message": mid, "reason": why})
        elif not store.raw.exists(sha):
            out.skipped.append(
                {"message": mid, "reason": f"the raw copy {sha[:12]}… is missing from the store"}
            )
        else:
            out.ids.append(mid)
    return out


class KeptRawSource:
    """Recorded messages, read back from their raw copies, as a pipeline source."""

    def __init__(self, conn: sqlite3.Connection, store: FileStore, ids: list[int]):
        self.conn, self.store, self.ids = conn, store, ids
        self.name = "kept raw copies"
        self.seen = len(ids)
        self.spools: set[Path] = set()  # written back, not yet committed

    def __enter__(self) -> KeptRawSource:
        return self

    def __exit__(self, *exc) -> None:
        for spool in self.spools:  # messages that failed (``recover`` would sweep them too)
            spool.unlink(missing_ok=True)
        self.spools.clear()

    def count_new(self, db) -> int | None:
        return len(self.ids)

    def fetch_new(self, db) -> Iterator[FetchedMessage]:
        """Each message written back to a spool file, which the pipeline's worker reads (as it
        reads a Maildir file): a big message is never held whole. The pipeline reads a few
        ahead: a file goes once its message is committed, the rest when the source closes
        (and ``recover`` sweeps any left by a crash)."""
        for mid in self.ids:
            row = self.conn.execute(
                "SELECT source, source_key, received_at, size, raw_sha256 FROM messages WHERE id = ?",
                [mid],
            ).fetchone()
            if row is None:
                continue
            source, key, received_at, size, sha = row
            spool = self.store.tmp / f"spool-reprocess-{uuid.uuid4().hex}.eml"
            self.spools.add(spool)
            try:
                with open(spool, "wb") as f:
                    for chunk in self.store.raw.open(sha, self.store.path_for):
                        f.write(chunk)
            except (OSError, ValueError) as e:
                log.warning("message #%d: cannot read its raw copy: %s", mid, e)
                continue
            env = Envelope(
                source=source, key=key, received_at=_stored_time(received_at), size=size, path=spool
            )
            yield FetchedMessage(env, reprocess=True)

    def committed(self, db, envelope: Envelope) -> None:
        if envelope.path is not None:
            envelope.path.unlink(missing_ok=True)
            self.spools.discard(envelope.path)


def _stored_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
