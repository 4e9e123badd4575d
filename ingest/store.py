"""Where facts are kept: attachment files by content address, messages in one transaction.

Files live under ``storage.files`` as ``ab/cd/<sha256>``; a file's name never comes from the mail.
Writing is crash-safe in two steps:

1. ``FileStore.put_*`` writes to ``.tmp/`` and renames into place (atomic); before a message's
   files are written, ``FileStore.journal`` notes their hashes in ``.tmp/pending-*.json``
   (``ingest.journal``: one file per poll, a line per message);
2. ``record_message`` commits the message, its parts and links in one transaction, and the
   note is done.

A crash between the two leaves files that no message references, listed in a journal;
``FileStore.recover`` (run at the start of every poll, under the ingest lock) deletes them and
empties ``.tmp``. So after any crash: every message is in the database exactly once or not at
all, and no file is half-written or orphaned.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ingest.db import inserted_id, transaction
from ingest.faults import crash_point
from ingest.journal import Journal, read_notes
from ingest.mime.own_text import is_question, own_text
from ingest.model import Envelope, ParsedMessage
from ingest.raw import RawCopy, RawStore
from ingest.search_index import forget_message, index_message

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _sync_file_range():
    """libc's sync_file_range (Linux), or None."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes to disk now, without waiting (Linux).

    A file written in pieces (a streamed video) then reaches the disk while the rest of it is
    still arriving, and the fsync before its commit has little left to wait for. Not a
    durability guarantee: that is the fsync's job. Elsewhere, or if refused: nothing happens."""
    if _SYNC_FILE_RANGE is not None and length > 0:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class FileStore:
    """Content-addressed attachment files."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.raw = RawStore(self.root)
        self.notes = Journal(self.tmp)  # the files being written for messages not committed yet

    def path_for(self, sha: str) -> Path:
        return self.root / sha[:2] / sha[2:4] / sha

    def spool_path(self) -> Path:
        """A fresh temp file name inside the store (same file system: rename is atomic)."""
        return self.tmp / f"spool-{uuid.uuid4().hex}"

    def put_bytes(self, data: bytes, sha: str | None = None) -> str:
        """Keep ``data`` (its sha256, if the caller has it already: not computed again)."""
        sha = sha or hashlib.sha256(data).hexdigest()
        target = self.path_for(sha)
        if not target.exists():
            tmp = self.spool_path()
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2])
                crash_point("file-write")  # half a file on disk
                f.write(data[len(data) // 2 :])
                f.flush()
                os.fsync(f.fileno())
            self._place(tmp, target)
            crash_point("file-placed")  # a file no message references yet
        return sha

    def put_file(self, path: Path, sha: str | None = None) -> str:
        """Move a spool file into the store (copy if it lives elsewhere)."""
        if sha is None:
            sha, _ = sha256_file(path)
        target = self.path_for(sha)
        if target.exists():
            path.unlink(missing_ok=True)
            return sha
        if not path.is_relative_to(self.tmp):
            tmp = self.spool_path()
            shutil.copyfile(path, tmp)
            path.unlink(missing_ok=True)
            path = tmp
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        self._place(path, target)
        return sha

    def _place(self, tmp: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    @contextmanager
    def journal(self, shas: Iterable[str], raws: Iterable[str] = ()) -> Iterator[None]:
        """Note the hashes about to be written; the note is done once they are committed (an
        exception keeps it for recover())."""
        note = self.open_journal(shas, raws)
        try:
            yield
        except BaseException:
            self.notes.keep(note)
            raise
        self.notes.done(note)

    def open_journal(self, shas: Iterable[str], raws: Iterable[str] = ()) -> int:
        """:meth:`journal` in two calls, for a message whose files are written in another thread:
        note them before the first file, :meth:`close_journal` after the COMMIT, or
        :meth:`keep_journal` when the message failed. Hashes already in the store are left out:
        another message's note (or a COMMIT) covers them, and recover() never deletes a
        referenced file."""
        new = [s for s in set(shas) if not self.path_for(s).exists()]
        raw = [s for s in set(raws) if s and not self.raw.exists(s)]
        return self.notes.note(new, raw)

    def close_journal(self, note: int) -> None:
        self.notes.done(note)

    def keep_journal(self, note: int) -> None:
        self.notes.keep(note)

    def close(self) -> None:
        """The poll is over: its journal file goes unless it holds notes for recover()."""
        self.notes.close()

    def recover(self, conn: sqlite3.Connection) -> int:
        """Delete files from interrupted writes. Returns how many files were removed."""
        removed = 0
        for note in self.tmp.glob("pending-*.json"):
            for shas, raws in read_notes(note):
                removed += self._remove_unreferenced(conn, shas, raws)
            note.unlink(missing_ok=True)
        # everything else in .tmp is a spool file of an interrupted poll (spool-*, member-*,
        # link-*, imap-part-*, part-*, ...): only a poll holding the ingest lock writes there
        for leftover in self.tmp.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d file(s) left by an interrupted run", removed)
        return removed

    def _remove_unreferenced(self, conn: sqlite3.Connection, shas: list[str], raws: list[str]) -> int:
        removed = 0
        for sha in raws:  # raw copies (ingest/raw.py) no message refers to
            if not conn.execute("SELECT 1 FROM messages WHERE raw_sha256 = ? LIMIT 1", (sha,)).fetchone():
                removed += self.raw.delete(sha)
        for sha in shas:
            referenced = conn.execute("SELECT 1 FROM parts WHERE sha256 = ? LIMIT 1", (sha,)).fetchone()
            if not referenced:
                p = self.path_for(sha)
                if p.exists():
                    p.unlink()
                    removed += 1
        return removed


def content_fingerprint(parsed: ParsedMessage) -> str:
    """What makes two deliveries 'the same message': sender, subject, Date, body and files.

    Transport headers (Received, Delivered-To) are left out on purpose: the same message
    delivered twice differs there.
    """
    h = parsed.headers
    basis = {
        "message_id": h.message_id,
        "from": h.from_addr,
        "subject": h.subject,
        "date": h.date,
        "body": parsed.body_text,
        "parts": sorted(p.sha256 or f"{p.location}:{p.error}" for p in parsed.parts if p.origin != "link"),
    }
    return hashlib.sha256(json.dumps(basis, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def find_duplicate(
    conn: sqlite3.Connection, message_id: str | None, fingerprint: str, source: str, key: str
) -> int | None:
    """The id of an earlier recording of the same message (same Message-ID and content)."""
    if not message_id:
        row = conn.execute(
            "SELECT id FROM messages WHERE content_sha256 = ? AND status = 'recorded' "
            "AND NOT (source = ? AND source_key = ?) ORDER BY id LIMIT 1",
            (fingerprint, source, key),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT id FROM messages WHERE message_id = ? AND content_sha256 = ? AND status = 'recorded' "
            "AND NOT (source = ? AND source_key = ?) ORDER BY id LIMIT 1",
            (message_id, fingerprint, source, key),
        ).fetchone()
    return row[0] if row else None


def _message_columns(envelope: Envelope, parsed: ParsedMessage | None, raw: RawCopy | None = None) -> dict:
    cols: dict[str, object] = {
        "source": envelope.source,
        "source_key": envelope.key,
        "received_at": rfc3339(envelope.received_at),
        "size": envelope.size,
        "ingested_at": utcnow(),
    }
    if parsed is not None:
        h = parsed.headers
        text = own_text(parsed.body_text)
        cols.update(
            message_id=h.message_id,
            content_sha256=parsed.content_sha256,
            from_addr=h.from_addr,
            from_name=h.from_name,
            reply_to=h.reply_to,
            to_addrs=json.dumps(h.to_addrs, ensure_ascii=False),
            subject=h.subject,
            date_header=h.date,
            headers=json.dumps(h.selected(), ensure_ascii=False),
            forwarded_from=json.dumps(
                sorted({f.from_addr for f in parsed.forwarded if f.from_addr}), ensure_ascii=False
            ),
            body_text=parsed.body_text[:65536],
            text=text,
            question=int(is_question(h.subject, text, h.selected())),
            defects=json.dumps(parsed.defects[:50], ensure_ascii=False),
        )
    if raw is not None:  # None (reprocess): the columns keep what they hold
        cols.update(raw_headers=raw.headers, raw_sha256=raw.sha256)
    return cols


def _upsert_message(conn: sqlite3.Connection, cols: dict) -> int:
    """Insert the message row, or update the row of an earlier failed attempt. The message is
    recorded: the poison guard's note that a poll is reading it goes (same transaction)."""
    conn.execute(
        "DELETE FROM reading WHERE source = ? AND source_key = ?", (cols["source"], cols["source_key"])
    )
    row = conn.execute(
        "SELECT id, attempts FROM messages WHERE source = ? AND source_key = ?",
        (cols["source"], cols["source_key"]),
    ).fetchone()
    if row:
        cols = {**cols, "attempts": row[1] + 1}
        sets = ", ".join(f"{k} = ?" for k in cols)
        conn.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*cols.values(), row[0]))
        conn.execute("DELETE FROM links WHERE message = ?", (row[0],))
        conn.execute("DELETE FROM parts WHERE message = ?", (row[0],))
        return row[0]
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    return inserted_id(conn.execute(f"INSERT INTO messages ({names}) VALUES ({marks})", tuple(cols.values())))


# long: one transaction: the message row, its parts (keeping their ids when recorded again) and links
def record_message(
    conn: sqlite3.Connection,
    envelope: Envelope,
    parsed: ParsedMessage,
    status: str = "recorded",
    duplicate_of: int | None = None,
    link_status: dict[int, tuple[str, int | None, str | None]] | None = None,
    raw: RawCopy | None = None,
) -> int:
    """Write one message with its parts and links in a single transaction. Returns its id.
    ``raw``: its raw copy, already in the store (``FileStore.raw``)."""
    with transaction(conn):
        cols = _message_columns(envelope, parsed, raw)
        cols.update(status=status, duplicate_of=duplicate_of, error=None, retry=1)
        # recorded again (reprocess, a retry): its parts keep their numbers, seq by seq
        old_ids = dict(
            conn.execute(
                "SELECT p.seq, p.id FROM parts p JOIN messages m ON m.id = p.message "
                "WHERE m.source = ? AND m.source_key = ?",
                (envelope.source, envelope.key),
            ).fetchall()
        )
        msg_id = _upsert_message(conn, cols)
        if status != "recorded":
            forget_message(conn, msg_id)
            return msg_id
        ids: list[int] = []
        for seq, part in enumerate(parsed.parts):
            parent = ids[part.parent] if part.parent is not None and part.parent < len(ids) else None
            ids.append(
                inserted_id(
                    conn.execute(
                        "INSERT INTO parts (id, message, parent, seq, origin, location, filename, declared_type, "
                        "sniffed_type, kind, sha256, size, facts, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            old_ids.get(seq),
                            msg_id,
                            parent,
                            seq,
                            part.origin,
                            part.location,
                            part.filename,
                            part.declared_type,
                            part.sniffed_type,
                            part.kind,
                            part.sha256,
                            part.size,
                            json.dumps(part.facts, ensure_ascii=False) if part.facts is not None else None,
                            part.error,
                        ),
                    )
                )
            )
        crash_point("before-commit")  # rows written, transaction not committed
        for i, link in enumerate(parsed.links):
            state, part_index, error = (link_status or {}).get(i, ("recorded", None, None))
            conn.execute(
                "INSERT INTO links (message, url, host, provider, filename, status, part, error) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    msg_id,
                    link.url,
                    link.host,
                    link.provider,
                    link.filename,
                    state,
                    ids[part_index] if part_index is not None else None,
                    error,
                ),
            )
        index_message(conn, msg_id)
    return msg_id


def record_failure(
    conn: sqlite3.Connection,
    envelope: Envelope,
    parsed: ParsedMessage | None,
    error: str,
    retry: bool = True,
    raw: RawCopy | None = None,
) -> int:
    """Keep a message that could not be processed, with the reason. It is retried next poll,
    unless ``retry`` is False (a limit it will hit again, the poison guard): then only after
    `mailroll retry`."""
    with transaction(conn):
        cols = _message_columns(envelope, parsed, raw)
        cols.update(status="failed", error=error[:2000], retry=int(retry))
        msg_id = _upsert_message(conn, cols)
        forget_message(conn, msg_id)
        return msg_id
