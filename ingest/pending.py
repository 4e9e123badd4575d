"""A message between its arrival from the source and its commit (``ingest.pipeline``).

``Pending`` goes through these states, in this order, each message on its own:

* ``waiting``: arrived, its reading not started (it waits for its turn under the poison guard);
* ``reading``: being read (parsed, archives opened, hashed, classified) in a worker process;
* ``prepared``: read, compared with what is recorded (duplicates), its links followed, its files
  being stored and checked by a thread (``work``); or it needs no reading (recorded before,
  poisoned, not fetched);
* then committed, in arrival order, and dropped (``drop_spools``).
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ingest import mime
from ingest.config import Config
from ingest.model import ExtractedPart, ParsedMessage
from ingest.sources import FetchedMessage
from ingest.sources.maildir import read_header_block
from ingest.workers import MessageBudget

log = logging.getLogger("ingest.pipeline")

WAITING, READING, PREPARED = "waiting", "reading", "prepared"


@dataclass
class Pending:
    """A message between its arrival and its commit."""

    fetched: FetchedMessage
    state: str = WAITING
    parsed: ParsedMessage | None = None
    outcome: str = "recorded"  # recorded | duplicate | failed | known (recorded before)
    reason: str | None = None  # why it failed
    duplicate_of: int | None = None
    link_status: dict = field(default_factory=dict)
    note: int | None = None  # the store's journal note of the files being written
    reading: Future | None = None  # reading it, in a worker process
    work: Future | None = None  # storing the files and checking them, in a thread
    to_check: list[ExtractedPart] = field(default_factory=list)  # checked in the worker processes
    held: int = 0  # bytes of its parts held in memory
    retry: bool = True  # False: failed for good (a limit, the poison guard) until `mailroll retry`
    budget: MessageBudget | None = None  # worker time left for it (limits.message_timeout_s)
    workdir: Path | None = None  # its spool files (deleted with it)
    alone: bool = False  # a poll died while it was read among others: it is read alone
    source: ParsedMessage | bytes | Path | None = None  # what the worker reads (until it is read)

    @property
    def key(self) -> str:
        return self.fetched.envelope.key

    def fail(self, reason: str, retry: bool = True) -> None:
        self.outcome, self.reason, self.retry = "failed", reason, retry

    def ready(self) -> bool:
        """Prepared, and its files stored and checked: it can be committed without waiting."""
        return self.state == PREPARED and (self.work is None or self.work.done())


def drop_spools(pending: Pending) -> None:
    """Delete what is left of the message's spool files (those stored were moved already)."""
    if pending.parsed is not None:
        for part in pending.parsed.parts:
            if part.spool is not None:
                try:
                    if part.spool.is_dir():
                        shutil.rmtree(part.spool, ignore_errors=True)
                    else:
                        part.spool.unlink(missing_ok=True)
                except OSError:
                    pass
    remove_tree(pending.workdir)


def remove_tree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def headers_only(header_bytes: bytes | None, config: Config) -> ParsedMessage | None:
    """A message that could not be fetched still shows whose it is (From, Subject)."""
    if not header_bytes:
        return None
    try:
        return ParsedMessage(headers=mime.parse_headers(header_bytes, config.limits))
    except Exception:  # noqa: BLE001 - the failure is recorded anyway, with or without headers
        log.debug("cannot read the headers of a failed message", exc_info=True)
        return None


def header_block(fetched: FetchedMessage, config: Config) -> bytes | None:
    """The header block of a message not to be parsed (the poison guard): whose is it?"""
    raw = fetched.raw
    if raw is None and fetched.envelope.path is not None:
        return read_header_block(fetched.envelope.path, config.limits.max_header_bytes)
    if raw is None:
        return fetched.header_bytes
    head = raw[: config.limits.max_header_bytes]
    end = head.find(b"\r\n\r\n")
    end = head.find(b"\n\n") if end < 0 else end
    return head[: end + 1] if end >= 0 else head
