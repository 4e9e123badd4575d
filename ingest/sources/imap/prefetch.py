"""Overlap: a thread fetches the next few messages while the pipeline checks the current one.

``prefetched(produce)`` runs ``produce(stop)`` in a background thread and hands out what it
yields, at most ``PREFETCH`` ahead. An error in the thread is raised in the consumer. Closing the
generator early sets ``stop`` (the producer raises ``Stopped`` at its next check, or its next item
is dropped), waits for the thread and deletes the spool files of messages fetched but never
handed out.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable

from ingest.sources.base import FetchedMessage
from ingest.sources.imap.errors import Stopped

PREFETCH = 4  # messages fetched ahead while the pipeline works

_END = object()  # end of the prefetch queue


def drop_spools(fetched: FetchedMessage) -> None:
    """Delete the spool files of a fetched message nobody will process."""
    for part in fetched.parsed.parts if fetched.parsed else []:
        if part.spool is not None:
            try:
                part.spool.unlink(missing_ok=True)
            except OSError:
                pass


def prefetched(
    produce: Callable[[threading.Event], Iterable[FetchedMessage]],
) -> Generator[FetchedMessage, None, None]:
    """What ``produce`` yields, fetched ahead in the ``imap-prefetch`` thread."""
    q: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(produce, q, stop), daemon=True, name="imap-prefetch")
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive() or not q.empty():
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, FetchedMessage):
                drop_spools(item)
        worker.join()


def _produce(
    produce: Callable[[threading.Event], Iterable[FetchedMessage]], q: queue.Queue, stop: threading.Event
) -> None:
    try:
        for fetched in produce(stop):
            if stop.is_set():
                drop_spools(fetched)
                return
            q.put(fetched)
        q.put(_END)
    except Stopped:
        return
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
        q.put(e)
