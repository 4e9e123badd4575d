"""What every mailbox source offers the pipeline.

A source hands out the messages it has not handed out before, oldest first, and is told when a
message is safely committed so it can remember that (and run the post-processing action).
It never deletes mail and never marks it read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import sqlite_utils

from ingest.model import Envelope, ParsedMessage
from ingest.raw import RawCopy


class MailboxError(Exception):
    """The mailbox cannot be reached or read (connection, login, missing folder).

    The message says what to check; polls that hit it are retried with backoff unless
    ``transient`` is False (a wrong password does not get better by asking again).
    """

    def __init__(self, text: str, transient: bool = True):
        super().__init__(text)
        self.transient = transient


@dataclass
class FetchedMessage:
    envelope: Envelope
    raw: bytes | None = None  # the whole message, for the parser
    parsed: ParsedMessage | None = None  # already parsed (a big IMAP message streamed per part)
    error: str | None = None  # the source could not fetch it: recorded as failed
    header_bytes: bytes | None = None  # with an error: the header block, if it could be read,
    # so staff see whose message is stuck
    raw_copy: RawCopy | None = None  # what is kept of the raw bytes (storage.keep_raw; ingest/raw.py)
    reprocess: bool = False  # derive the facts again although the message is recorded (reprocess)


class Source(Protocol):
    name: str  # Mailbox.source_name, stored in messages.source
    seen: int  # messages in the mailbox at the last fetch_new

    def __enter__(self) -> Source: ...
    def __exit__(self, *exc) -> None: ...

    def fetch_new(self, db: sqlite_utils.Database | sqlite3.Connection) -> Iterator[FetchedMessage]:
        """New messages since the last poll, plus earlier ones whose processing failed."""

    def count_new(self, db: sqlite_utils.Database | sqlite3.Connection) -> int | None:
        """How many fetch_new will yield, if cheap to know (the progress bar; whether to start the
        worker processes early). Called once at most before fetch_new, which may reuse the count."""

    def committed(self, db: sqlite_utils.Database | sqlite3.Connection, envelope: Envelope) -> None:
        """The message is in the database: advance the watermark, run the post action."""
