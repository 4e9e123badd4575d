"""One poll of the mailbox: every new message from source to database.

For each message, in order::

    free space? -> poison guard -> read (worker: parse, expand archives, hash, classify)
    -> duplicate? -> follow links -> store files -> probe (facts; checks in workers)
    -> one transaction -> source.committed()

Whatever reads sender-made bytes runs in worker processes (``ingest.workers``) with a memory
ceiling and the message's time budget; a limit hit becomes a recorded reason, never a stalled
or crashed poll (``_read``, ``_check``; docs/DESIGN.md, "Bounded work"). The poison guard
(``ingest.guards``) commits a note before a message is read, so a message during which the
process died 3 times is recorded as failed and passed; below ``limits.min_free_bytes`` the poll
stops before the next message.

Messages overlap, so both cores stay busy: the source fetches ahead (IMAP: a prefetch thread,
decoding in a thread of its own), this thread prepares a message (read in a worker process,
duplicates, links), then a small pool of threads takes it over: storing its files (fsync),
then checking them, sheets, reports and images in the worker processes and videos with ffprobe
in the thread, side by side, while this thread reads the next messages. At most ``IN_FLIGHT``
messages are between preparation and commit. The database is only touched in this thread, and every
message still gets ONE transaction, committed in arrival order, then ``source.committed()``; a
message whose content equals one still in flight waits for that one's commit, so duplicates
are found as if messages went one at a time. A message's files are noted in the store's
journal before the worker writes the first of them, and the note goes after the commit: a
crash at any moment leaves only files ``FileStore.recover`` deletes. ``stop`` is honoured
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
import shutil
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ingest import checks, links, mime, worker_tasks
from ingest.classify import ARCHIVE_TYPES
from ingest.config import Config
from ingest.faults import crash_point
from ingest.guards import POISON_REASON, PoisonGuard, check_free_space
from ingest.model import VIDEO, ExtractedPart, ParsedMessage
from ingest.raw import RawCopy
from ingest.sizes import human_size
from ingest.sources import FetchedMessage, Source, open_source
from ingest.sources.maildir import read_header_block
from ingest.store import (
    FileStore,
    content_fingerprint,
    find_duplicate,
    record_failure,
    record_message,
)
from ingest.workers import MessageBudget, TaskError, WorkerPool, WorkLimit

log = logging.getLogger(__name__)

# Storing and checking a message's files run in threads: they wait on fsync, on ffprobe and on
# the worker processes (no GIL held), which then overlaps with fetching and reading the next.
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
    check_free_space(store.root, config.limits.min_free_bytes)
    source = source or open_source(config, store.tmp)
    result = PollResult()
    with (
        source,
        ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="mailroll-check") as pool,
        (
            nullcontext(workers)
            if workers is not None
            else WorkerPool(memory_bytes=config.limits.worker_memory_bytes)
        ) as workers,
    ):
        poll = _Poll(config, conn, store, source, pool, result, progress, workers)
        try:
            if progress:
                progress("start", source.count_new(conn))
            for fetched in source.fetch_new(conn):
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
                # below limits.min_free_bytes: stop before this message (it stays unread)
                check_free_space(store.root, config.limits.min_free_bytes)
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
        result.seen = max(getattr(source, "seen", 0) or 0, result.new)
    return result


@dataclass
class _Pending:
    """A message between its preparation and its commit."""

    fetched: FetchedMessage
    parsed: ParsedMessage | None = None
    outcome: str = "recorded"  # recorded | duplicate | failed | known (recorded before)
    reason: str | None = None  # why it failed
    duplicate_of: int | None = None
    link_status: dict = field(default_factory=dict)
    note: Path | None = None  # the journal note of the files being written
    work: Future | None = None  # storing the files and probing the videos, in a worker
    check_here: list[ExtractedPart] = field(default_factory=list)  # checked in the worker processes
    held: int = 0  # bytes of its parts held in memory
    retry: bool = True  # False: failed for good (a limit, the poison guard) until `mailroll retry`
    budget: MessageBudget | None = None  # worker time left for it (limits.message_timeout_s)
    workdir: Path | None = None  # its spool files (deleted with it)

    def fail(self, reason: str, retry: bool = True) -> None:
        self.outcome, self.reason, self.retry = "failed", reason, retry

    def ready(self) -> bool:
        return self.work is None or self.work.done()


class _Poll:
    """The messages of one poll in flight: prepared here, stored and checked in workers,
    committed here in arrival order."""

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
        self.window: deque[_Pending] = deque()

    def take(self, fetched: FetchedMessage) -> None:
        pending = _Pending(fetched)
        key = fetched.envelope.key
        if not fetched.reprocess and _already_recorded(self.conn, fetched.envelope):
            pending.outcome = "known"  # e.g. crashed after COMMIT, before the source heard of it
            pending.parsed = fetched.parsed
        elif self.guard.poisoned(key):
            log.error("message %s: %s; recorded as failed, not retried by itself", key, POISON_REASON)
            pending.parsed = fetched.parsed or _headers_only(_header_block(fetched, self.config), self.config)
            pending.fail(POISON_REASON, retry=False)
        else:
            self.workers.warm()  # (once) so that starting the workers is not counted as reading
            self.guard.start(key)  # committed before reading: a death while reading is counted
            crash_point("reading")
            try:
                self._prepare(pending)
            finally:
                self.guard.read(key)
        self.window.append(pending)
        while self.window and (
            len(self.window) > IN_FLIGHT
            or self.window[0].ready()
            or (len(self.window) > 1 and self._held() > IN_FLIGHT_BYTES)
        ):
            self._finish(self.window.popleft())

    def _held(self) -> int:
        return sum(p.held for p in list(self.window)[:-1])

    def drain(self) -> None:
        while self.window:
            self._finish(self.window.popleft())

    def abandon(self) -> None:
        """Messages not committed (the poll failed): they are fetched again next time; their
        journal notes stay for recover()."""
        while self.window:
            pending = self.window.popleft()
            if pending.work is not None:
                pending.work.cancel()
                try:
                    pending.work.result()
                except BaseException:  # noqa: BLE001 - only waiting for the worker to let go
                    pass
            _drop_spools(pending)

    def _prepare(self, pending: _Pending) -> None:
        """Everything up to storing the files, in this thread; then hand them to a worker."""
        config, conn, store = self.config, self.conn, self.store
        fetched = pending.fetched
        env = fetched.envelope
        if fetched.error:
            log.warning("message %s could not be fetched: %s", env.key, fetched.error)
            pending.parsed = fetched.parsed or _headers_only(fetched.header_bytes, config)
            pending.fail(fetched.error)
            return
        try:
            pending.budget = MessageBudget(config.limits.message_timeout_s)
            pending.workdir = store.tmp / f"message-{uuid.uuid4().hex}"
            parsed = self._read(pending)
            if parsed is None:
                return
            pending.parsed = parsed
            pending.held = sum(len(p.data) for p in parsed.parts if p.data is not None)
            parsed.content_sha256 = content_fingerprint(parsed)
            if any(
                p.parsed is not None and p.parsed.content_sha256 == parsed.content_sha256 for p in self.window
            ):
                self.drain()  # the same content is in flight: let it commit first
            earlier = find_duplicate(
                conn, parsed.headers.message_id, parsed.content_sha256, env.source, env.key
            )
            if earlier is not None:
                log.info("message %s is a duplicate of message #%d", env.key, earlier)
                pending.outcome, pending.duplicate_of = "duplicate", earlier
                return
            pending.link_status = self._follow_links(pending)
            to_check = [part for part in parsed.parts if not _known_facts(conn, part, fetched.reprocess)]
            media = [part for part in to_check if part.kind == VIDEO]
            pending.check_here = [part for part in to_check if part.kind != VIDEO]
            raw = fetched.raw_copy
            pending.note = store.open_journal((p.sha256 for p in parsed.parts if p.sha256), _raw_shas(raw))
            pending.work = self.pool.submit(self._store_and_check, pending, list(parsed.parts), media, raw)
        except Exception as e:  # noqa: BLE001 - a bug or an I/O error: keep the message, retry later
            log.exception("message %s failed", env.key)
            pending.fail(f"could not be processed: {e.__class__.__name__}: {e}")

    def _read(self, pending: _Pending) -> ParsedMessage | None:
        """Parse the message, open its archives, hash and classify its parts: in a worker process,
        within the message's time budget and the worker's memory ceiling. A message that hits
        either is read once more without opening its archives, with a fresh budget (the archives
        get the reason: "the archive needs more than 1.0 GB to open"); one that cannot be read
        even so fails for good, with the reason ("processing took over 300 s"). Returns None
        then."""
        fetched, limits = pending.fetched, self.config.limits
        # big files cross to the worker as paths: a Maildir file, a streamed message's spool files
        source: ParsedMessage | bytes | Path | None = (
            fetched.parsed if fetched.parsed is not None else fetched.raw
        )
        if source is None:
            source = fetched.envelope.path
        fetched.raw = None  # the worker has it now: don't hold a message twice
        args = (source, limits, pending.workdir, self.config.campaign.sheet)
        try:
            return self._in_worker(pending, worker_tasks.read_message, *args)
        except WorkLimit as e:
            first = e
            if e.kind == "crash":
                pending.fail(limit_reason(e, limits, "reading this message"), retry=False)
                return None
        log.warning(
            "message %s: %s; reading it again without opening its archives",
            fetched.envelope.key,
            limit_reason(first, limits, "reading it"),
        )
        _remove_tree(pending.workdir)
        pending.budget = MessageBudget(limits.message_timeout_s)
        try:
            parsed = self._in_worker(pending, worker_tasks.read_message, *args, False)
        except WorkLimit as e:
            pending.fail(limit_reason(e, limits, "reading this message"), retry=False)
            return None
        for part in parsed.parts:
            if part.sniffed_type in ARCHIVE_TYPES and part.error is None:
                part.error = (
                    f"the archive needs more than {human_size(limits.worker_memory_bytes)} to open "
                    "(limits.worker_memory_bytes)"
                    if first.kind == "memory"
                    else f"opening the archive took over {limits.message_timeout_s:g} s "
                    "(limits.message_timeout_s)"
                )
        return parsed

    def _in_worker(self, pending: _Pending, fn, *args):
        """``fn(*args)`` in a worker, charged to the message's budget; a task's own error is a bug
        or an odd input: the message fails (retried next poll), as in the poll's thread."""
        try:
            return self.workers.run(fn, *args, budget=pending.budget)
        except TaskError as e:
            raise RuntimeError(str(e)) from None

    def _follow_links(self, pending: _Pending) -> dict:
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
                    pending, worker_tasks.classify_parts, [part], config.campaign.sheet
                )
            except WorkLimit as e:
                part.error = limit_reason(e, config.limits, "reading this file")
            parsed.parts.append(part)
            status[i] = ("downloaded", len(parsed.parts) - 1, None)
        return status

    def _store_and_check(
        self,
        pending: _Pending,
        parts: list[ExtractedPart],
        media: list[ExtractedPart],
        raw: RawCopy | None = None,
    ) -> None:
        """In a thread, while this poll's thread reads the next messages: keep the message's
        files in the store, then check them, sheets, reports and images in the worker processes
        and videos with ffprobe here, side by side, each within what is left of the message's
        time budget. The commit then only waits for this."""
        if raw is not None:
            self.store.raw.put(raw)
        for part in parts:
            _keep(self.store, part)
        checking = [
            (
                part,
                self.workers.submit(
                    worker_tasks.check_part,
                    dataclasses.replace(part, data=None),  # the file is in the store: send its path
                    self.store.path_for(part.sha256),
                    self.config,
                    budget=pending.budget,
                ),
            )
            for part in pending.check_here
        ]
        for part in media:
            part.facts, part.error = checks.probe(part, self.store.path_for(part.sha256), self.config)
        for part, future in checking:
            try:
                part.facts, part.error = future.result()
            except WorkLimit as e:
                part.facts, part.error = None, limit_reason(e, self.config.limits, "checking this file")
            except TaskError as e:
                part.facts, part.error = None, f"the file could not be checked ({e})"

    def _finish(self, pending: _Pending) -> None:
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
            _drop_spools(pending)

    def _record(self, pending: _Pending) -> tuple[int, str]:
        """The message's one transaction. Returns (messages.id, status); never raises for the
        message's sake."""
        conn, env, parsed = self.conn, pending.fetched.envelope, pending.parsed
        raw = pending.fetched.raw_copy
        try:
            if pending.work is not None:
                pending.work.result()
            if pending.outcome == "failed":
                with self._raw_kept(raw):
                    return record_failure(
                        conn, env, parsed, pending.reason or "failed", retry=pending.retry, raw=raw
                    ), "failed"
            if pending.outcome == "duplicate":
                with self._raw_kept(raw):
                    return record_message(
                        conn, env, parsed, status="duplicate", duplicate_of=pending.duplicate_of, raw=raw
                    ), "duplicate"
            msg_id = record_message(conn, env, parsed, link_status=pending.link_status, raw=raw)
            self.store.close_journal(pending.note)
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


def _headers_only(header_bytes: bytes | None, config: Config) -> ParsedMessage | None:
    """A message that could not be fetched still shows whose it is (From, Subject)."""
    if not header_bytes:
        return None
    try:
        return ParsedMessage(headers=mime.parse_headers(header_bytes, config.limits))
    except Exception:  # noqa: BLE001 - the failure is recorded anyway, with or without headers
        log.debug("cannot read the headers of a failed message", exc_info=True)
        return None


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


def _drop_spools(pending: _Pending) -> None:
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
    _remove_tree(pending.workdir)


def _remove_tree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def limit_reason(e: WorkLimit, limits, doing: str) -> str:
    """A limit hit, in words: "processing took over 300 s", "... needs more than 1.0 GB"."""
    if e.kind == "time":
        return f"processing took over {limits.message_timeout_s:g} s ({doing}; limits.message_timeout_s)"
    if e.kind == "memory":
        return (
            f"{doing} needs more than {human_size(limits.worker_memory_bytes)} of memory "
            "(limits.worker_memory_bytes)"
        )
    return f"{doing} stopped the process that read it ({e.detail or 'it crashed'})"


def _header_block(fetched: FetchedMessage, config: Config) -> bytes | None:
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
