"""``SpoolWriter``: one streamed part decoded, hashed and written in a thread of its own."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from ingest.sources.imap.decode import StreamDecoder
from ingest.store import start_writeback


class SpoolWriter:
    """Decode, hash and write one streamed part in a thread of its own, so the next chunk is
    fetched meanwhile (pybase64, sha256 and write let the fetching thread run). At most one
    chunk waits for it: memory stays at a few chunks whatever the part's size.

    ``put`` raises what went wrong in the thread (e.g. the disk is full); ``close`` finishes the
    part and returns (bytes written, damaged, sha256 hex), or raises that error. ``observer``,
    when set (before the first ``put``), sees each chunk as served, in the thread too (the raw
    copy's hash and layout check: ingest/sources/imap/skeleton.py)."""

    def __init__(self, out: BinaryIO, encoding: str | None):
        self.out = out
        self.decoder = StreamDecoder(encoding)
        self.sha = hashlib.sha256()
        self.error: BaseException | None = None
        self.observer: Callable[[bytes], None] | None = None
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="imap-spool", daemon=True)
        self.thread.start()

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def close(self) -> tuple[int, bool, str]:
        self.queue.put(None)
        self.thread.join()
        if self.error is None:
            self._write(self.decoder.finish())
            self.out.flush()
        if self.error is not None:
            raise self.error
        return self.out.tell(), self.decoder.damaged, self.sha.hexdigest()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:  # after an error: only empty the queue
                try:
                    if self.observer is not None:
                        self.observer(chunk)
                    self._write(self.decoder.feed(chunk))
                except BaseException as e:  # noqa: BLE001 - raised in the fetching thread
                    self.error = e

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.sha.update(data)
        start = self.out.tell()
        self.out.write(data)
        self.out.flush()
        start_writeback(self.out.fileno(), start, len(data))
