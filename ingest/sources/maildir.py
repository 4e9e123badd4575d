"""A local Maildir as the mailbox (the embedded default, used by ``make demo``).

Read-only: files are never moved from new/ to cur/, renamed or flagged. A message's key is its
Maildir unique name (the file name up to ':'), so a message moved from new/ to cur/ by a mail
client is still the same message. Arrival time is the delivery time that the Maildir file name
starts with (seconds since the epoch); failing that, the newest Received header; failing that,
the file's modification time.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

from ingest import raw
from ingest.config import Limits, Mailbox
from ingest.model import Envelope
from ingest.sizes import human_size
from ingest.sources.base import FetchedMessage, MailboxError

log = logging.getLogger(__name__)
_DELIVERY_TIME = re.compile(r"^(\d{9,11})(?:\.|$)")


class MaildirSource:
    def __init__(
        self, mailbox: Mailbox, limits: Limits, keep_raw: bool = True, spool_dir: Path | None = None
    ):
        if mailbox.path is None:
            raise ValueError('mailbox.path is required for kind = "maildir"')
        self.root = Path(mailbox.path)
        self.name = mailbox.source_name
        self.limits = limits
        self.keep_raw = keep_raw
        self.spool_dir = Path(spool_dir) if spool_dir is not None else self.root / ".." / ".mailroll-spool"
        self.seen = 0
        self._counted: list[tuple[str, Path]] | None = None

    def __enter__(self) -> MaildirSource:
        if not (self.root / "cur").is_dir() and not (self.root / "new").is_dir():
            raise MailboxError(f"{self.root} is not a Maildir (no cur/ or new/ folder): check mailbox.path")
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for sub in ("new", "cur"):
            folder = self.root / sub
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.startswith(".") or not path.is_file():
                    continue
                found.setdefault(path.name.split(":", 1)[0], path)
        return found

    def _pending(self, db) -> list[tuple[str, Path]]:
        files = self._files()
        self.seen = len(files)
        done = {  # recorded, or failed for good (until `mailroll retry`)
            row[0]
            for row in db.execute(
                "SELECT source_key FROM messages WHERE source = ? AND (status != 'failed' OR retry = 0)",
                (self.name,),
            )
        }
        return [(key, path) for key, path in files.items() if key not in done]

    def count_new(self, db) -> int | None:
        self._counted = self._pending(db)  # (fetch_new, next, takes these: no second listing)
        return len(self._counted)

    def fetch_new(self, db) -> Iterator[FetchedMessage]:
        counted, self._counted = self._counted, None
        pending = []
        for key, path in counted if counted is not None else self._pending(db):
            try:
                pending.append((arrival_time(path), key, path))
            except OSError as e:
                log.warning("cannot read %s: %s", path, e)
        pending.sort()
        for when, key, path in pending:
            env = Envelope(source=self.name, key=key, received_at=when, path=path)
            try:
                size = path.stat().st_size
                env.size = size
                if size > self.limits.max_message_bytes:
                    header = read_header_block(path, self.limits.max_header_bytes)
                    yield FetchedMessage(
                        env,
                        error=f"message is {human_size(size)}, over the limit of "
                        f"{human_size(self.limits.max_message_bytes)} "
                        "(limits.max_message_bytes): not read",
                        header_bytes=header,
                        raw_copy=raw.headers_only(header),
                    )
                    continue
                # read by a worker process from env.path; the raw copy is compressed from the file
                yield FetchedMessage(env, raw_copy=self._copy(path))
            except OSError as e:  # vanished or unreadable: recorded as failed, retried next poll
                yield FetchedMessage(env, error=f"cannot read {path.name}: {e.strerror}")

    def committed(self, db, envelope: Envelope) -> None:
        return None

    def _copy(self, path: Path) -> raw.RawCopy | None:
        """The raw copy kept as evidence (storage.keep_raw), compressed from the file in pieces."""
        if self.keep_raw:
            return raw.from_file(path, self.spool_dir, self.limits.max_header_bytes)
        return raw.headers_only(read_header_block(path, self.limits.max_header_bytes))


def read_header_block(path: Path, limit: int) -> bytes | None:
    """The message's header block (up to the first blank line, at most ``limit`` bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(limit)
    except OSError:
        return None
    end = head.find(b"\n\n")
    if end < 0:
        end = head.find(b"\r\n\r\n")
    return head[: end + 1] if end >= 0 else head


def arrival_time(path: Path) -> datetime:
    m = _DELIVERY_TIME.match(path.name)
    if m:
        return datetime.fromtimestamp(int(m.group(1)), UTC)
    received = newest_received(path)
    if received:
        return received
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def newest_received(path: Path) -> datetime | None:
    """The newest date among the Received headers (each ends with '; <date>')."""
    with open(path, "rb") as f:
        head = f.read(256 * 1024)
    end = head.find(b"\n\n")
    headers = BytesHeaderParser().parsebytes(head[: end if end >= 0 else len(head)])
    newest = None
    for value in headers.get_all("Received") or []:
        _, _, date_text = str(value).rpartition(";")
        try:
            when = email.utils.parsedate_to_datetime(date_text.strip())
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if newest is None or when > newest:
            newest = when
    return newest
