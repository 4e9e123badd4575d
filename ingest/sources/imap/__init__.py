"""An IMAP folder as the mailbox (the campaign's 126.com / 163.com inbox in production).

The flow of a poll, one module per step:

* ``connection``: open the folder (TLS, login, IMAP ID for NetEase, read-only unless the post
  action writes); every IMAP command goes through ``Connection._op``, which reconnects with
  backoff on a broken or stalled link and repeats the command, and raises ``MailboxError`` with
  advice (``errors``) when the tries are used up. ``idle_wait`` waits for new mail (IDLE).
* ``state``: which UIDs to fetch: those above the watermark (UIDVALIDITY, last UID) plus the
  messages recorded as failed; a changed UIDVALIDITY fetches everything again.
* ``prefetch`` + ``fetch``: a thread fetches a few messages ahead while the pipeline checks the
  current one: small messages whole in batches, big ones part by part (``stream``: BODYSTRUCTURE
  from ``structure``, partial FETCHes decoded by ``decode`` into spool files), so a 300 MB video
  never sits in memory. Arrival time is INTERNALDATE.
* ``actions``: once a message is stored, ``committed`` flags or moves it, then moves the
  watermark past it. The mail is never changed otherwise: read with ``BODY.PEEK``, never deleted
  or expunged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.config import Limits, Mailbox
from ingest.model import Envelope
from ingest.sources.base import FetchedMessage, MailboxError
from ingest.sources.imap.actions import PostAction
from ingest.sources.imap.connection import CLIENT_ID, CLIENT_VERSION, Connection, Op, log, with_retries
from ingest.sources.imap.decode import StreamDecoder, decode_all
from ingest.sources.imap.fetch import Fetcher
from ingest.sources.imap.prefetch import prefetched
from ingest.sources.imap.state import Watermark, db_connection
from ingest.sources.imap.structure import Leaf, leaves

__all__ = [
    "CLIENT_ID",
    "CLIENT_VERSION",
    "ImapSource",
    "Leaf",
    "StreamDecoder",
    "decode_all",
    "leaves",
    "with_retries",
]


class ImapSource(Connection):
    """One IMAP folder as a ``Source``. Use as a context manager: connects (with retries) on enter."""

    def __init__(
        self,
        mailbox: Mailbox,
        limits: Limits,
        spool_dir: Path,
        *,
        attempts: int | None = None,
        backoff_s: float | None = None,
        keep_raw: bool = True,
    ):
        super().__init__(mailbox, attempts=attempts, backoff_s=backoff_s)
        self.limits = limits
        self.spool_dir = Path(spool_dir)
        self.name = mailbox.source_name
        self._pending: list[tuple[int, bool]] | None = None  # (uid, retry) from count_new
        self._watermark = Watermark(self.name)
        self._post = PostAction(mailbox)
        self._second: Connection | None = None  # for the second stream, opened when first needed
        self._one_only = False
        self._fetcher = Fetcher(
            self._op, limits, self.spool_dir, self._envelope, keep_raw=keep_raw, stream_ops=self._stream_ops
        )

    def _stream_ops(self) -> list[Op]:
        """The connections the two streams of big messages use (``fetch.STREAMS``): a second
        one, opened at the first big message of the poll (``mailbox.connections = 2``), else
        this one twice (their commands then take turns)."""
        if self.mailbox.connections < 2 or self._one_only:
            return [self._op, self._op]
        if self._second is None:
            second = Connection(self.mailbox, attempts=self.attempts, backoff_s=self.backoff_s, readonly=True)
            second.uidvalidity = self.uidvalidity  # (a change in between is an error)
            try:
                second.connect(once=True)  # else the first one does (its commands retry as usual)
            except MailboxError as e:
                log.warning("a second IMAP connection could not be opened (%s): big messages share one", e)
                self._one_only = True  # (not tried again in this poll)
                return [self._op, self._op]
            self._second = second
        return [self._op, self._second._op]

    def close(self) -> None:
        second, self._second = self._second, None
        if second is not None:
            second.close()
        super().close()

    def _pending_uids(self, conn: Any) -> list[tuple[int, bool]]:
        """(uid, is_retry) to fetch, in UID order."""
        last = self._watermark.last_uid(conn, self.uidvalidity)
        # 'N:*' always matches the highest UID, even when it is below N: filter.
        found = self._op(lambda c: c.search(["UID", f"{last + 1}:*"]), "searching for new messages")
        uids = {int(u): False for u in found if int(u) > last}
        for uid in self._watermark.failed_uids(conn, self.uidvalidity):
            uids.setdefault(uid, True)
        return sorted(uids.items())

    def count_new(self, db: Any) -> int | None:
        self._pending = self._pending_uids(db_connection(db))
        return len(self._pending)

    def fetch_new(self, db: Any) -> Iterator[FetchedMessage]:
        """Hand out the pending messages in UID order.

        A background thread fetches ahead (``prefetch``) while the pipeline checks and stores the
        current one, so network and processing overlap. The IMAP connection is shared under a
        lock, one command at a time; the database is only touched here, in the caller's thread.
        Closing the generator early stops the thread and deletes the spool files of messages
        fetched but never handed out."""
        conn = db_connection(db)
        pending = self._pending if self._pending is not None else self._pending_uids(conn)
        self._pending = None
        self._watermark.start_poll()
        uids = [u for u, _ in pending]
        if not uids:
            return
        with closing(prefetched(lambda stop: self._fetcher.messages(uids, stop))) as items:
            for item in items:
                self._watermark.handed_out(item.envelope.uid or 0)  # IMAP messages have one
                yield item

    def _envelope(self, uid: int, size: int, when: datetime) -> Envelope:
        return Envelope(
            source=self.name, key=f"{self.uidvalidity}:{uid}", received_at=when, size=size, uid=uid
        )

    def committed(self, db: Any, envelope: Envelope) -> None:
        """Run the post action, then advance the watermark past this message. If the post action
        cannot reach the server, the error propagates and the watermark stays: the next poll
        fetches the message again, finds it recorded and runs the post action again."""
        conn = db_connection(db)
        uid = envelope.uid
        if uid is None:
            return
        if self._post.active and self._watermark.stored(conn, envelope.key):
            self._post.run(self._op, self.capabilities, uid)
        self._watermark.committed(conn, self.uidvalidity, uid)

    def __exit__(self, *exc) -> None:
        """Write the watermark as far as the poll got, then log out."""
        try:
            self._watermark.flush()
        finally:
            super().__exit__(*exc)
