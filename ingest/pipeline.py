"""One poll of the mailbox: every new message from source to database.

For each message, in order::

    free space? -> poison guard -> read (worker: parse, expand archives, hash, classify;
    several messages at once) -> then in arrival order: duplicate? -> follow links
    -> store files -> probe (facts; checks in workers) -> one transaction -> source.committed()

Whatever reads sender-made bytes runs in worker processes (``ingest.workers``) with a memory
ceiling and the message's time budget; a limit hit becomes a recorded reason, never a stalled
or crashed poll (``ingest.reads``, ``_store_and_check``; docs/DESIGN.md, "Bounded work"). The
poison guard (``ingest.guards``) commits a note before messages are read, so a message during
which the process died 3 times is recorded as failed and passed; below ``limits.min_free_bytes``
the poll stops before the next message.

Messages overlap, so both cores stay busy: the source fetches ahead (IMAP: a prefetch thread,
decoding in a thread of its own); the messages that arrived are read in the worker processes
several at once (``ingest.reads``), and this thread prepares each one read, in arrival order
(duplicates, links); then a small pool of threads takes it over: storing its files (fsync),
then checking them in the worker processes (sheets, reports, images, videos), while this thread
prepares and commits the others. At most
``IN_FLIGHT`` + 1 messages are between arrival and commit (``ingest.pending``: their states).
The database is only touched in this thread, and every message still gets ONE transaction,
committed in arrival order, then ``source.committed()``: nothing is marked on the server before
its commit. A message whose content equals one still in flight waits for that one's commit, so
duplicates are found as if messages went one at a time. A message's files are noted in the
store's journal before the worker writes the first of them, and the note goes after the commit:
a crash at any moment leaves only files ``FileStore.recover`` deletes. ``stop`` is honoured
between messages: no new one is started; those in flight finish.

A message whose processing fails is recorded as ``failed`` with the reason and is not
``committed`` to the source, so it is fetched and tried again on the next poll; one that hit a
limit, or the poison guard, is failed for good (``retry = 0``): committed to the source, and
read again only after ``mailroll retry``. Nothing a message contains can stop the poll: the
worst case is one ``failed`` row.
"""

# long: the poll loop and the per-message states it moves through

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from ingest import links, worker_tasks
from ingest.checks.video import probe_timeout_reason
from ingest.config import Config
from ingest.db import transaction
from ingest.faults import crash_point
from ingest.guards import POISON_REASON, FreeSpace, PoisonGuard
from ingest.model import VIDEO, ExtractedPart
from ingest.pending import PREPARED, READING, Pending, drop_spools, header_block, headers_only
from ingest.raw import RawCopy
from ingest.reads import Reader, limit_reason
from ingest.sources import FetchedMessage, Source, open_source
from ingest.store import (
    FileStore,
    content_fingerprint,
    find_duplicate,
    record_failure,
    record_message,
)
from ingest.workers import TaskError, WorkerPool, WorkLimit

log = logging.getLogger(__name__)

# Storing and checking a message's files run in threads: they wait on fsync and on the worker
# processes (no GIL held), which then overlaps with fetching and reading the next.
CHECK_WORKERS = 4
IN_FLIGHT = 6  # messages prepared and not yet committed (bounds memory, spool space, wasted work)
# Parts held in memory (a Maildir message is parsed in memory): the messages in flight besides the
# newest hold at most this much, so a run of big messages is handled one at a time, as before.
IN_FLIGHT_BYTES = 16 * 1024 * 1024


@dataclass
class PollResult:
    seen: int = 0  # messages in the mailbox
    new: int = 0  # messages processed in this poll
    recorded_ids: list[int] = field(default_factory=list)  # newly recorded (to attribute)
    duplicate: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False


Progress = Callable[[str, int | None], None]  # (event, total): 'start' with total, 'advance'


def poll_once(
    config: Config,
    conn: sqlite3.Connection,
    source: Source | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    workers: WorkerPool | None = None,
) -> PollResult:
    """Fetch and record every new message. Call with the ingest lock held. ``workers``: worker
    processes kept between polls (``serve``: a message does not wait for them to start); by
    default a pool for this poll only."""
    store = FileStore(config.storage.files)
    store.recover(conn)
    free_space = FreeSpace(store.root, config.limits.min_free_bytes)
    source = source or open_source(config, store.tmp)
    result = PollResult()
    if workers is None:
        workers = WorkerPool(memory_bytes=config.limits.worker_memory_bytes)
        own = workers
    else:
        own = None
    with (
        own or nullcontext(),
        source,
        ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="mailroll-check") as pool,
    ):
        poll = _Poll(config, conn, store, source, pool, result, progress, workers)
        try:
            waiting = source.count_new(conn)
            if waiting != 0:  # the forkserver loads the checks' libraries while the first arrive
                workers.warm(wait=False)
            if progress:
                progress("start", waiting)
            for fetched in source.fetch_new(conn):
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
                # below limits.min_free_bytes: stop before this message (it stays unread)
                free_space.check(fetched.envelope.size or 0)
                poll.take(fetched)
            poll.drain()
        except Exception:
            try:  # e.g. the connection dropped: what was fetched before is still recorded
                poll.drain()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.warning("could not finish the messages in progress", exc_info=True)
            raise
        finally:
            poll.abandon()  # only after an error: wait for the workers, delete the spool files
            store.close()
        result.seen = max(getattr(source, "seen", 0) or 0, result.new)
    return result


class _Poll:
    """The messages of one poll in flight: read in the worker processes, prepared here in arrival
    order, stored and checked in threads, committed here in arrival order."""

    def __init__(
        self,
        config: Config,
        conn: sqlite3.Connection,
        store: FileStore,
        source: Source,
        pool: ThreadPoolExecutor,
        result: PollResult,
        progress: Progress | None,
        workers: WorkerPool,
    ):
        self.config, self.conn, self.store, self.source = config, conn, store, source
        self.pool, self.result, self.progress = pool, result, progress
        self.workers = workers
        self.guard = PoisonGuard(conn, source.name)
        self.reader = Reader(config, workers, self.guard, store.tmp)
        self.window: deque[Pending] = deque()

    def take(self, fetched: FetchedMessage) -> None:
        pending = Pending(fetched)
        key = fetched.envelope.key
        if not fetched.reprocess and _already_recorded(self.conn, fetched.envelope):
            pending.outcome = "known"  # e.g. crashed after COMMIT, before the source heard of it
            pending.parsed, pending.state = fetched.parsed, PREPARED
        elif self.guard.poisoned(key):
            log.error("message %s: %s; recorded as failed, not retried by itself", key, POISON_REASON)
            pending.parsed = fetched.parsed or headers_only(header_block(fetched, self.config), self.config)
            pending.fail(POISON_REASON, retry=False)
            pending.state = PREPARED
        elif fetched.error:
            log.warning("message %s could not be fetched: %s", key, fetched.error)
            pending.parsed = fetched.parsed or headers_only(fetched.header_bytes, self.config)
            pending.fail(fetched.error)
            pending.state = PREPARED
        else:
            pending.alone = self.guard.suspect(key)
        self.window.append(pending)
        self._move()

    def drain(self) -> None:
        self._move(until_empty=True)

    def _move(self, until_empty: bool = False) -> None:
        """Start the readings that may start, prepare the messages read (in arrival order) and
        commit the heads that are ready; wait while the window is over its bounds (or, with
        ``until_empty``, until every message is committed)."""
        window = self.window
        while window:
            self.reader.start(window)
            self._prepare_read()
            head = window[0]
            if head.ready():
                self._finish(window.popleft())
                continue
            full = len(window) > IN_FLIGHT or (len(window) > 1 and self._held() > IN_FLIGHT_BYTES)
            if not (full or until_empty):
                return
            self._wait(head)

    def _prepare_read(self) -> None:
        """Prepare the messages whose reading is done, in arrival order."""
        while True:
            p = next((p for p in self.window if p.state != PREPARED), None)
            if p is None or p.state != READING or p.reading is None or not p.reading.done():
                return
            self._prepare(p)

    def _wait(self, head: Pending) -> None:
        """Until the head's work is done, or the next reading to prepare."""
        upcoming = next((p for p in self.window if p.state != PREPARED), None)
        futures = [f for f in (head.work, head.reading, upcoming and upcoming.reading) if f is not None]
        futures = [f for f in futures if head.state != PREPARED or f is not head.reading]
        if not futures:
            raise RuntimeError(f"message {head.key} is stuck in the pipeline ({head.state})")
        wait(futures, return_when=FIRST_COMPLETED)

    def _held(self) -> int:
        return sum(p.held for p in list(self.window)[:-1])

    def abandon(self) -> None:
        """Messages not committed (the poll failed): they are fetched again next time; their
        journal notes stay for recover()."""
        while self.window:
            pending = self.window.popleft()
            for future in (pending.reading, pending.work):
                if future is not None:
                    future.cancel()
                    try:
                        future.result()
                    except BaseException:  # noqa: BLE001 - only waiting for the worker to let go
                        pass
            drop_spools(pending)
            if pending.note is not None:
                self.store.keep_journal(pending.note)

    def _prepare(self, pending: Pending) -> None:
        """The message is read: everything up to storing its files, in this thread (duplicates
        against what is committed, links); then a thread stores and checks them."""
        conn, store = self.conn, self.store
        fetched = pending.fetched
        env = fetched.envelope
        try:
            try:
                parsed = self.reader.result(pending)  # (reading it again, maybe: see ingest.reads)
            finally:
                pending.state = PREPARED
                self.guard.read(pending.key)
                pending.source = None
            if parsed is None:
                return
            pending.parsed = parsed
            pending.held = sum(len(p.data) for p in parsed.parts if p.data is not None)
            parsed.content_sha256 = content_fingerprint(parsed)
            if any(
                p is not pending and p.parsed is not None and p.parsed.content_sha256 == parsed.content_sha256
                for p in self.window
            ):
                while self.window[0] is not pending:  # the same content is in flight: commit it first
                    self._finish(self.window.popleft())
            earlier = find_duplicate(
                conn, parsed.headers.message_id, parsed.content_sha256, env.source, env.key
            )
            if earlier is not None:
                log.info("message %s is a duplicate of message #%d", env.key, earlier)
                pending.outcome, pending.duplicate_of = "duplicate", earlier
                return
            pending.link_status = self._follow_links(pending)
            to_check = [part for part in parsed.parts if not _known_facts(conn, part, fetched.reprocess)]
            pending.to_check = to_check
            raw = fetched.raw_copy
            pending.note = store.open_journal((p.sha256 for p in parsed.parts if p.sha256), _raw_shas(raw))
            pending.work = self.pool.submit(self._store_and_check, pending, list(parsed.parts), raw)
        except Exception as e:  # noqa: BLE001 - a bug or an I/O error: keep the message, retry later
            log.exception("message %s failed", env.key)
            pending.fail(f"could not be processed: {e.__class__.__name__}: {e}")

    def _in_worker(self, pending: Pending, fn, *args):
        """``fn(*args)`` in a worker, charged to the message's budget; a task's own error is a bug
        or an odd input: the message fails (retried next poll), as in the poll's thread."""
        try:
            return self.workers.run(fn, *args, budget=pending.budget)
        except TaskError as e:
            raise RuntimeError(str(e)) from None

    def _follow_links(self, pending: Pending) -> dict:
        """Download allowed big-attachment links; the files join the message's parts.

        At most ``links.max_per_message`` are fetched, within what is left of the message's byte
        budget (``limits.max_extracted_bytes``, shared with its archive members); the files are
        classified in a worker like the attachments."""
        config, parsed = self.config, pending.parsed
        status: dict[int, tuple[str, int | None, str | None]] = {}
        if not config.links.download or parsed is None:
            return status
        budget = config.limits.max_extracted_bytes - sum(
            p.size or 0 for p in parsed.parts if p.origin == "archive" and p.error is None
        )
        tried = 0
        for i, link in enumerate(parsed.links):
            if tried >= config.links.max_per_message:
                status[i] = (
                    "failed",
                    None,
                    f"more than {config.links.max_per_message} links in one message "
                    "(links.max_per_message): not fetched",
                )
                continue
            tried += 1
            # refuses hosts not allowed, bad addresses and what exceeds the budget, with the reason
            part = links.download(link, config, self.store.tmp, budget=budget)
            if part.error:
                status[i] = ("failed", None, part.error)
                continue
            budget -= part.size or 0
            worker_tasks.hash_parts([part])
            try:
                ((part.sniffed_type, part.kind),) = self._in_worker(
                    pending, worker_tasks.classify_parts, [part], config.ingest_sheet
                )
            except WorkLimit as e:
                part.error = limit_reason(e, config.limits, "reading this file")
            parsed.parts.append(part)
            status[i] = ("downloaded", len(parsed.parts) - 1, None)
        return status

    def _store_and_check(
        self,
        pending: Pending,
        parts: list[ExtractedPart],
        raw: RawCopy | None = None,
    ) -> None:
        """In a thread, while this poll's thread reads the next messages: keep the message's
        files in the store, then check them in the worker processes, side by side, each within
        what is left of the message's time budget. The commit then only waits for this."""
        if raw is not None:
            self.store.raw.put(raw)
        for part in parts:
            _keep(self.store, part)
        limits = self.config.limits
        checking = [
            (
                part,
                self.workers.submit(
                    worker_tasks.check_part,
                    dataclasses.replace(part, data=None),  # the file is in the store: send its path
                    self.store.path_for(part.sha256),
                    self.config,
                    budget=pending.budget,
                    limit=limits.probe_timeout_s if part.kind == VIDEO else None,
                ),
            )
            for part in pending.to_check
        ]
        for part, future in checking:
            try:
                part.facts, part.error = future.result()
            except WorkLimit as e:
                part.facts = None
                part.error = (
                    probe_timeout_reason(limits.probe_timeout_s)
                    if e.kind == "task time"
                    else limit_reason(e, limits, "checking this file")
                )
            except TaskError as e:
                part.facts, part.error = None, f"the file could not be checked ({e})"

    def _finish(self, pending: Pending) -> None:
        """Wait for the worker, commit the message, tell the source."""
        env = pending.fetched.envelope
        try:
            if pending.outcome == "known":
                self.source.committed(self.conn, env)
                return
            result = self.result
            result.new += 1
            msg_id, status = self._record(pending)
            if status == "failed":
                result.failed += 1
                result.errors.append(f"message {env.key}: failed")
                if not pending.retry:  # failed for good: the polls go past it
                    self.source.committed(self.conn, env)
            else:
                if status == "duplicate":
                    result.duplicate += 1
                else:
                    result.recorded_ids.append(msg_id)
                crash_point("after-commit")  # in the database, not yet committed to the source
                self.source.committed(self.conn, env)
            if self.progress:
                self.progress("advance", None)
        finally:
            drop_spools(pending)
            if pending.note is not None:  # not recorded: recover() deletes what it left
                self.store.keep_journal(pending.note)

    def _record(self, pending: Pending) -> tuple[int, str]:
        """The message's one transaction. Returns (messages.id, status); never raises for the
        message's sake."""
        conn, env, parsed = self.conn, pending.fetched.envelope, pending.parsed
        raw = pending.fetched.raw_copy
        try:
            if pending.work is not None:
                pending.work.result()
            if pending.outcome == "failed":
                with self._raw_kept(raw), self._committing():
                    return record_failure(
                        conn, env, parsed, pending.reason or "failed", retry=pending.retry, raw=raw
                    ), "failed"
            if pending.outcome == "duplicate":
                with self._raw_kept(raw), self._committing():
                    return record_message(
                        conn, env, parsed, status="duplicate", duplicate_of=pending.duplicate_of, raw=raw
                    ), "duplicate"
            with self._committing():
                msg_id = record_message(conn, env, parsed, link_status=pending.link_status, raw=raw)
            if pending.note is not None:
                self.store.close_journal(pending.note)
                pending.note = None
            log.info(
                "recorded message %s from %s: %d part(s)",
                env.key,
                parsed.headers.from_addr,
                len(parsed.parts),
            )
            return msg_id, "recorded"
        except Exception as e:  # noqa: BLE001 - a bug or an I/O error: keep the message, retry later
            log.exception("message %s failed", env.key)
            reason = f"could not be processed: {e.__class__.__name__}: {e}"
            try:
                with self._raw_kept(raw):
                    return record_failure(conn, env, parsed, reason, raw=raw), "failed"
            except Exception:  # noqa: BLE001 - e.g. the parsed headers themselves are the problem
                return record_failure(conn, env, None, reason), "failed"

    @contextmanager
    def _committing(self) -> Iterator[None]:
        """The message's transaction, which also drops the poison guard's notes of the messages
        read by now (a death from here on is not theirs), at no extra commit."""
        with transaction(self.conn):
            self.guard.forget_read()
            yield

    @contextmanager
    def _raw_kept(self, raw: RawCopy | None) -> Iterator[None]:
        """The raw copy written (journaled) for a commit in this thread: failed and duplicates."""
        with self.store.journal((), _raw_shas(raw)):
            if raw is not None:
                self.store.raw.put(raw)
            yield


def _raw_shas(raw: RawCopy | None) -> list[str]:
    return [raw.sha256] if raw is not None and raw.sha256 else []


def _already_recorded(conn: sqlite3.Connection, env) -> bool:
    row = conn.execute(
        "SELECT status FROM messages WHERE source = ? AND source_key = ?", (env.source, env.key)
    ).fetchone()
    return bool(row) and row[0] != "failed"


def _known_facts(conn: sqlite3.Connection, part: ExtractedPart, recheck: bool = False) -> bool:
    """True when the part needs no check: nothing to check, or the same file was checked before
    and measured (facts don't change; they are copied). A file whose earlier check failed is
    checked again: the failure may have been this server's (a timeout, LibreOffice missing).
    ``recheck`` (reprocess): every file is checked again, the checks may have changed."""
    if part.sha256 is None or part.error:
        return True
    if recheck:
        return False
    known = conn.execute(
        "SELECT facts FROM parts WHERE sha256 = ? AND kind = ? AND facts IS NOT NULL AND error IS NULL LIMIT 1",
        (part.sha256, part.kind),
    ).fetchone()
    if known:
        part.facts = json.loads(known[0])
        return True
    return False


def _keep(store: FileStore, part: ExtractedPart) -> None:
    if part.sha256 is None:
        return
    if part.data is not None:
        store.put_bytes(part.data, part.sha256)
    elif part.spool is not None and part.spool.exists():
        store.put_file(part.spool, part.sha256)
        part.spool = None
