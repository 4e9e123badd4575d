"""Overlap: a thread fetches the next messages while the pipeline works on the current ones.

``prefetched(produce)`` runs ``produce(stop)`` in a background thread and hands out what it
yields through a ``Backlog``: at most ``PREFETCH`` messages or ``PREFETCH_BYTES`` ahead. A full
backlog lets the thread go on only once it is down to half, so that thread and pipeline hand
over messages in runs, not one wake-up per message (which, on a busy machine, each costs a turn
of the scheduler). An error in the thread is raised in the consumer. Closing the generator early
sets ``stop`` (the producer raises ``Stopped`` at its next check, or its next item is dropped),
waits for the thread and deletes the spool files of messages fetched but never handed out.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable

from ingest.sources.base import FetchedMessage
from ingest.sources.imap.errors import Stopped

PREFETCH = 16  # messages fetched ahead while the pipeline works ...
PREFETCH_BYTES = 32 * 1024 * 1024  # ... or this much mail (what is held is what is small)

_END = object()  # end of the backlog


def drop_spools(fetched: FetchedMessage) -> None:
    """Delete the spool files of a fetched message nobody will process."""
    for part in fetched.parsed.parts if fetched.parsed else []:
        if part.spool is not None:
            try:
                part.spool.unlink(missing_ok=True)
            except OSError:
                pass


def _weight(item: object) -> int:
    return (item.envelope.size or 0) if isinstance(item, FetchedMessage) else 0


class Backlog:
    """The messages fetched and not handed out yet (see module docstring)."""

    def __init__(self, most: int = PREFETCH, most_bytes: int = PREFETCH_BYTES):
        self.items: deque = deque()
        self.bytes = 0
        self.most, self.most_bytes = most, most_bytes
        self.cond = threading.Condition()
        self.closed = False

    def _full(self) -> bool:
        return bool(self.items) and (len(self.items) >= self.most or self.bytes >= self.most_bytes)

    def _half_empty(self) -> bool:
        return len(self.items) <= self.most // 2 and self.bytes <= self.most_bytes // 2

    def put(self, item: object) -> bool:
        """Add an item (waiting while full, until half empty); False once closed."""
        with self.cond:
            if self._full():
                while not self.closed and not self._half_empty():
                    self.cond.wait()
            if self.closed:
                return False
            self.items.append(item)
            self.bytes += _weight(item)
            if len(self.items) == 1:
                self.cond.notify_all()  # the consumer may be waiting for it
            return True

    def get(self) -> object:
        """The next item (waiting for one)."""
        with self.cond:
            self.cond.wait_for(lambda: self.items)
            was_full = not self._half_empty()
            item = self.items.popleft()
            self.bytes -= _weight(item)
            if was_full and self._half_empty():
                self.cond.notify_all()  # the producer may go on
            return item

    def close(self) -> list:
        """No more items: a waiting producer gives up; returns what was not handed out."""
        with self.cond:
            self.closed = True
            rest = list(self.items)
            self.items.clear()
            self.cond.notify_all()
            return rest


def prefetched(
    produce: Callable[[threading.Event], Iterable[FetchedMessage]],
) -> Generator[FetchedMessage, None, None]:
    """What ``produce`` yields, fetched ahead in the ``imap-prefetch`` thread."""
    backlog = Backlog()
    stop = threading.Event()
    worker = threading.Thread(
        target=_produce, args=(produce, backlog, stop), daemon=True, name="imap-prefetch"
    )
    worker.start()
    try:
        while True:
            item = backlog.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, FetchedMessage)
            yield item
    finally:
        stop.set()
        for item in backlog.close():
            if isinstance(item, FetchedMessage):
                drop_spools(item)
        worker.join()


def _produce(
    produce: Callable[[threading.Event], Iterable[FetchedMessage]], backlog: Backlog, stop: threading.Event
) -> None:
    try:
        for fetched in produce(stop):
            if stop.is_set() or not backlog.put(fetched):
                drop_spools(fetched)
                return
        backlog.put(_END)
    except Stopped:
        return
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
        backlog.put(e)
