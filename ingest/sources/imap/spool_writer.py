"""``SpoolWriter``: one streamed part decoded, hashed and written in threads of its own."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from ingest.sources.imap.decode import StreamDecoder
from ingest.store import start_writeback

DEPTH = 2  # chunks waiting for a lane: the fetching thread goes on while a lane catches up


class SpoolWriter:
    """Decode, hash and write one streamed part in a thread of its own, so the next chunk is
    fetched meanwhile (pybase64, sha256 and write let the fetching thread run). ``observer``,
    when set before the first ``put``, sees each chunk as served in a second thread beside it
    (the raw copy's hash and layout check: ingest/sources/imap/skeleton.py), so the two run on
    both cores. At most ``DEPTH`` chunks wait for each: memory stays at a few chunks whatever
    the part's size.

    ``put`` raises what went wrong in a thread (e.g. the disk is full); ``close`` finishes the
    part and returns (bytes written, damaged, sha256 hex), or raises that error."""

    def __init__(self, out: BinaryIO, encoding: str | None):
        self.out = out
        self.decoder = StreamDecoder(encoding)
        self.sha = hashlib.sha256()
        self.observer: Callable[[bytes], None] | None = None
        self.lanes = [_Lane("imap-spool", self._decode)]

    def put(self, chunk: bytes) -> None:
        if self.observer is not None and len(self.lanes) == 1:
            self.lanes.append(_Lane("imap-served", self.observer))
        for lane in self.lanes:
            lane.put(chunk)

    def close(self) -> tuple[int, bool, str]:
        for lane in self.lanes:
            lane.close()
        errors = [lane.error for lane in self.lanes if lane.error is not None]
        if not errors:
            self._write(self.decoder.finish())
            self.out.flush()
        if errors:
            raise errors[0]
        return self.out.tell(), self.decoder.damaged, self.sha.hexdigest()

    def _decode(self, chunk: bytes) -> None:
        self._write(self.decoder.feed(chunk))

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.sha.update(data)
        start = self.out.tell()
        self.out.write(data)
        self.out.flush()
        start_writeback(self.out.fileno(), start, len(data))


class _Lane:
    """A thread applying ``work`` to each chunk in order; its first error is kept (and raised
    by the next ``put``), the chunks after it only drained."""

    def __init__(self, name: str, work: Callable[[bytes], None]):
        self.work = work
        self.error: BaseException | None = None
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.work(chunk)
                except BaseException as e:  # noqa: BLE001 - raised in the fetching thread
                    self.error = e
