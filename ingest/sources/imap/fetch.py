"""Fetch messages by UID: small ones whole and in batches, big ones part by part.

First the size and arrival time (INTERNALDATE, when the server received the message; never the
sender's Date header) of up to ``SIZE_BATCH`` UIDs. Messages up to
``limits.stream_threshold_bytes`` are fetched whole, ``BATCH_MESSAGES`` or ``BATCH_BYTES`` per
FETCH (the pipeline parses them in a worker process). Bigger ones go to ``stream.Streamer``; one over
``limits.max_message_bytes`` is not fetched: only its header is read, so staff see whose it is.
Everything is read with ``BODY.PEEK`` (no ``\\Seen``).

``STREAMS`` big messages are streamed at once, each in an ``imap-stream`` thread, their commands
taking turns on the one connection (``Op`` holds a lock per command): while one message's
chunks are decoded and hashed, or its last chunk is finished off, the other's are on the wire,
so the connection is not left idle. They are handed out in UID order all the same.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import raw
from ingest.config import Limits
from ingest.model import Envelope
from ingest.sizes import human_size
from ingest.sources.base import FetchedMessage, MailboxError
from ingest.sources.imap import skeleton
from ingest.sources.imap.connection import Op
from ingest.sources.imap.errors import Stopped
from ingest.sources.imap.prefetch import drop_spools
from ingest.sources.imap.stream import Streamer, response_item

log = logging.getLogger("ingest.sources.imap")  # one logger for the whole package

BATCH_MESSAGES = 20  # small messages per FETCH command
BATCH_BYTES = 20 * 1024 * 1024  # ... or this many bytes, whichever comes first
SIZE_BATCH = 1000  # UIDs per FETCH (RFC822.SIZE INTERNALDATE)
STREAMS = 2  # big messages streamed at once (see the module docstring)


class Fetcher:
    """Turns UIDs into FetchedMessages (see module docstring)."""

    def __init__(
        self,
        op: Op,
        limits: Limits,
        spool_dir: Path,
        envelope: Callable[[int, int, datetime], Envelope],
        keep_raw: bool = True,
        stream_ops: Callable[[], list[Op]] | None = None,
    ):
        self._op = op
        self._stream_ops = stream_ops or (lambda: [op] * STREAMS)
        self.limits = limits
        self.keep_raw = keep_raw
        self.spool_dir = spool_dir
        self._envelope = envelope  # (uid, size, INTERNALDATE) -> Envelope

    def messages(self, uids: list[int], stop: threading.Event) -> Iterator[FetchedMessage]:
        """The messages with these UIDs, in order (expunged ones are skipped)."""
        ahead: deque[Future | FetchedMessage] = deque()  # in UID order: big ones may be streaming
        with ThreadPoolExecutor(STREAMS, thread_name_prefix="imap-stream") as streams:
            try:
                for item in self._in_order(uids, stop, _Streams(streams, self._stream_ops)):
                    ahead.append(item)
                    yield from _handed_out(ahead, keep=STREAMS)
                yield from _handed_out(ahead, keep=0)
            except BaseException:  # stopped or failed: the other streams stop, nothing is kept
                stop.set()
                for item in ahead:
                    _drop(item)
                raise

    def _in_order(
        self, uids: list[int], stop: threading.Event, streams: _Streams
    ) -> Iterator[Future | FetchedMessage]:
        for start in range(0, len(uids), SIZE_BATCH):
            chunk = uids[start : start + SIZE_BATCH]
            meta = self._op(
                lambda c, chunk=chunk: c.fetch(chunk, ["RFC822.SIZE", "INTERNALDATE"]),
                "reading message sizes",
            )
            small: list[tuple[int, int, datetime]] = []
            for uid in chunk:
                if stop.is_set():
                    raise Stopped()
                d = meta.get(uid)
                if d is None:  # expunged since the search
                    continue
                size = int(d.get(b"RFC822.SIZE") or 0)
                when = _utc(d.get(b"INTERNALDATE"))
                if size > self.limits.stream_threshold_bytes:
                    yield from self._flush(small)
                    small = []
                    yield streams.submit(self._big, uid, size, when, stop)
                else:
                    small.append((uid, size, when))
                    if len(small) >= BATCH_MESSAGES or sum(s for _, s, _ in small) >= BATCH_BYTES:
                        yield from self._flush(small)
                        small = []
            yield from self._flush(small)

    def _flush(self, batch: list[tuple[int, int, datetime]]) -> Iterator[FetchedMessage]:
        """Fetch small messages together. When a connection breaks under a batch, the batch is
        halved for the next try (a link that drops every few hundred kB still lets single
        messages through); a single message gets the full number of tries."""
        todo = list(batch)
        size = len(todo)
        while todo:
            part = todo[:size]
            uids = [u for u, _, _ in part]
            what = (
                f"fetching message {uids[0]}" if len(uids) == 1 else f"fetching messages {uids[0]}-{uids[-1]}"
            )
            try:
                data = self._op(
                    lambda c, uids=uids: c.fetch(uids, ["BODY.PEEK[]"]),
                    what,
                    attempts=1 if len(uids) > 1 else None,
                )
            except MailboxError as e:
                if len(uids) == 1 or not e.transient:
                    raise
                size = max(1, len(uids) // 2)
                continue
            for uid, msize, when in part:
                d = data.get(uid)
                if d is None:  # expunged meanwhile
                    continue
                raw = d.get(b"BODY[]")
                env = self._envelope(uid, msize, when)
                if raw is None:
                    yield FetchedMessage(env, error="the server returned no content for this message")
                else:
                    # parsed by the pipeline, in a worker process with time and memory limits;
                    # the raw copy kept as evidence is compressed here, in the prefetch thread
                    body = bytes(raw)
                    yield FetchedMessage(env, raw=body, raw_copy=self._copy(body))
            del data
            todo = todo[len(part) :]

    def _big(
        self, uid: int, size: int, when: datetime, stop: threading.Event | None = None, op: Op | None = None
    ) -> FetchedMessage:
        env = self._envelope(uid, size, when)
        streamer = Streamer(op or self._op, self.limits, self.spool_dir, uid, stop)
        if self.keep_raw:
            streamer.trail = skeleton.RawTrail(self._range_of(streamer), size)
        if size > self.limits.max_message_bytes:
            header = streamer.header_only()
            return FetchedMessage(
                env,
                error=(
                    f"the message is {human_size(size)}, over the limit of {human_size(self.limits.max_message_bytes)} "
                    "(limits.max_message_bytes): not fetched"
                ),
                header_bytes=header,
                raw_copy=raw.headers_only(header),
            )
        try:
            parsed = streamer.run()
            raw_copy = self._streamed_copy(streamer, size)
        except (MailboxError, Stopped):
            streamer.drop_spools()
            raise
        except Exception as e:  # noqa: BLE001 - a bug or a weird structure: record, don't stop the poll
            log.exception("streaming message %s failed", env.key)
            streamer.drop_spools()
            return FetchedMessage(
                env, error=f"the message could not be fetched part by part: {type(e).__name__}: {e}"
            )
        return FetchedMessage(env, parsed=parsed, raw_copy=raw_copy)

    def _copy(self, data: bytes) -> raw.RawCopy | None:
        if self.keep_raw:
            return raw.whole(data, self.limits.max_header_bytes)
        return raw.headers_only(raw.header_block(data, self.limits.max_header_bytes))

    def _streamed_copy(self, streamer: Streamer, size: int) -> raw.RawCopy | None:
        """A streamed message's raw copy: a skeleton referring to its big parts (skeleton.py),
        else the whole message fetched again."""
        if streamer.trail is None:
            return raw.headers_only(streamer.header)
        made = streamer.trail.copy()
        if made is not None:
            return made
        header_limit = self.limits.max_header_bytes
        return skeleton.whole(self._range_of(streamer), size, self.spool_dir, header_limit, streamer.header)

    @staticmethod
    def _range_of(streamer: Streamer) -> skeleton.FetchRange:
        def fetch_range(offset: int, length: int) -> bytes:
            d = streamer.fetch(
                [f"BODY.PEEK[]<{offset}.{length}>"], f"keeping the raw copy of message {streamer.uid}"
            )
            return bytes(response_item(d, f"BODY[]<{offset}>") or b"")

        return fetch_range


class _Streams:
    """The streams of big messages: each runs in a thread of ``pool`` with a connection of its
    own, checked out for the message (the connections are asked for at the first one)."""

    def __init__(self, pool: ThreadPoolExecutor, connections: Callable[[], list[Op]]):
        self.pool, self.connections = pool, connections
        self.free: queue.SimpleQueue[Op] | None = None

    def submit(self, big: Callable[..., FetchedMessage], *args: Any) -> Future:
        if self.free is None:
            self.free = queue.SimpleQueue()
            for op in self.connections()[:STREAMS]:
                self.free.put(op)
        return self.pool.submit(self._run, big, *args)

    def _run(self, big: Callable[..., FetchedMessage], *args: Any) -> FetchedMessage:
        assert self.free is not None
        op = self.free.get()
        try:
            return big(*args, op=op)
        finally:
            self.free.put(op)


def _handed_out(ahead: deque[Future | FetchedMessage], keep: int) -> Iterator[FetchedMessage]:
    """The messages at the head of ``ahead`` that are ready, and more (waiting for them) while
    over ``keep`` are waiting; an error of a streamed one is raised in its turn."""
    while ahead and (len(ahead) > keep or not isinstance(ahead[0], Future) or ahead[0].done()):
        head = ahead[0]
        fetched = head.result() if isinstance(head, Future) else head
        ahead.popleft()
        yield fetched


def _drop(item: Future | FetchedMessage) -> None:
    """Delete the spool files of a message fetched (or being fetched) that nobody will process."""
    if isinstance(item, Future):
        if item.cancel():  # not started
            return
        try:
            fetched = item.result()
        except BaseException:  # noqa: BLE001 - it failed: it kept nothing (Streamer.drop_spools)
            return
    else:
        fetched = item
    drop_spools(fetched)
    if fetched.raw_copy is not None and fetched.raw_copy.blob_path is not None:
        fetched.raw_copy.blob_path.unlink(missing_ok=True)


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.now(UTC)
    if value.tzinfo is None:
        value = value.astimezone()  # imapclient gave local time
    return value.astimezone(UTC)
