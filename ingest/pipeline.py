"""One poll of the mailbox: every new message from source to database.

For each message, in order::

    fetch (source) -> parse (mime) -> expand archives -> hash -> duplicate? -> classify
    -> follow links -> store files -> probe (facts) -> one transaction -> source.committed()

The steps that mostly *wait* overlap with the next messages: once a message is prepared
(everything up to following its links, in this thread), storing its files (fsync) and probing
its videos (an ffprobe subprocess) run in a small pool of worker threads while this thread
prepares the next ones. The checks that are Python work (openpyxl, python-docx, Pillow) run in
this thread just before the commit: under the GIL, threads would not make them faster, and
parsing in several threads at once costs memory (a malloc arena per thread). At most
``IN_FLIGHT`` messages are between preparation and commit. The database is only touched in this
thread, and every message still gets ONE transaction, committed in arrival order, then
``source.committed()``; a message whose content equals one still in flight waits for that one's
commit, so duplicates are found as if messages went one at a time. A message's files are noted
in the store's journal before the worker writes the first of them, and the note goes after the
commit: a crash at any moment leaves only files ``FileStore.recover`` deletes. ``stop`` is
honoured between messages: no new one is started; those in flight finish.

A message whose processing fails is recorded as ``failed`` with the reason and is not
``committed`` to the source, so it is fetched and tried again on the next poll. Nothing a
message contains can stop the poll: the worst case is one ``failed`` row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ingest import archives, checks, classify, links, mime
from ingest.config import Config
from ingest.faults import crash_point
from ingest.model import VIDEO, ExtractedPart, ParsedMessage
from ingest.sources import FetchedMessage, Source, open_source
from ingest.store import (
    FileStore,
    content_fingerprint,
    find_duplicate,
    record_failure,
    record_message,
    sha256_file,
)

log = logging.getLogger(__name__)

# Storing files and probing videos run in worker threads: they wait on fsync and on ffprobe
# (no GIL held), which then overlaps with fetching, preparing and checking other messages.
CHECK_WORKERS = 2
IN_FLIGHT = 3  # messages prepared and not yet committed (bounds memory and wasted work)
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
) -> PollResult:
    """Fetch and record every new message. Call with the ingest lock held."""
    store = FileStore(config.storage.files)
    store.recover(conn)
    source = source or open_source(config, store.tmp)
    result = PollResult()
    with source, ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="mailroll-check") as pool:
        poll = _Poll(config, conn, store, source, pool, result, progress)
        try:
            if progress:
                progress("start", source.count_new(conn))
            for fetched in source.fetch_new(conn):
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
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
    check_here: list[ExtractedPart] = field(default_factory=list)  # checked before the commit
    held: int = 0  # bytes of its parts held in memory

    def fail(self, reason: str) -> None:
        self.outcome, self.reason = "failed", reason

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
    ):
        self.config, self.conn, self.store, self.source = config, conn, store, source
        self.pool, self.result, self.progress = pool, result, progress
        self.window: deque[_Pending] = deque()

    def take(self, fetched: FetchedMessage) -> None:
        pending = _Pending(fetched)
        if _already_recorded(self.conn, fetched.envelope):
            pending.outcome = "known"  # e.g. crashed after COMMIT, before the source heard of it
            pending.parsed = fetched.parsed
        else:
            self._prepare(pending)
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
            if pending.parsed is not None:
                _drop_spools(pending.parsed)

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
            parsed = fetched.parsed
            if parsed is None:
                # big attachments are decoded into spool files in store.tmp, not held in memory
                parsed = mime.parse_message(fetched.raw or b"", config.limits, spool_dir=store.tmp)
                fetched.raw = None  # everything is in `parsed` now: don't hold a big message twice
            pending.parsed = parsed
            archives.expand(parsed, config.limits, store.tmp)
            _hash_parts(parsed)
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
            template = config.campaign.sheet
            for part in parsed.parts:
                _classify(part, template)
            pending.link_status = _follow_links(config, store, parsed)
            to_check = [part for part in parsed.parts if not _known_facts(conn, part)]
            media = [part for part in to_check if part.kind == VIDEO]
            pending.check_here = [part for part in to_check if part.kind != VIDEO]
            pending.note = store.open_journal(p.sha256 for p in parsed.parts if p.sha256)
            pending.work = self.pool.submit(_store_and_probe, config, store, list(parsed.parts), media)
        except Exception as e:  # noqa: BLE001 - a bug or an I/O error: keep the message, retry later
            log.exception("message %s failed", env.key)
            pending.fail(f"could not be processed: {e.__class__.__name__}: {e}")

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
            if pending.parsed is not None:
                _drop_spools(pending.parsed)

    def _record(self, pending: _Pending) -> tuple[int, str]:
        """The message's one transaction. Returns (messages.id, status); never raises for the
        message's sake."""
        conn, env, parsed = self.conn, pending.fetched.envelope, pending.parsed
        try:
            if pending.work is not None:
                pending.work.result()
            for part in pending.check_here:
                part.facts, part.error = checks.probe(part, self.store.path_for(part.sha256), self.config)
            if pending.outcome == "failed":
                return record_failure(conn, env, parsed, pending.reason or "failed"), "failed"
            if pending.outcome == "duplicate":
                return record_message(
                    conn, env, parsed, status="duplicate", duplicate_of=pending.duplicate_of
                ), "duplicate"
            msg_id = record_message(conn, env, parsed, link_status=pending.link_status)
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
                return record_failure(conn, env, parsed, reason), "failed"
            except Exception:  # noqa: BLE001 - e.g. the parsed headers themselves are the problem
                return record_failure(conn, env, None, reason), "failed"


def _already_recorded(conn: sqlite3.Connection, env) -> bool:
    row = conn.execute(
        "SELECT status FROM messages WHERE source = ? AND source_key = ?", (env.source, env.key)
    ).fetchone()
    return bool(row) and row[0] != "failed"


def _hash_parts(parsed: ParsedMessage) -> None:
    for part in parsed.parts:
        if part.sha256:
            continue
        if part.data is not None:
            part.sha256 = hashlib.sha256(part.data).hexdigest()
            part.size = len(part.data)
        elif part.spool is not None and part.spool.exists():
            part.sha256, part.size = sha256_file(part.spool)


def _classify(part: ExtractedPart, template) -> None:
    if part.data is None and part.spool is None:
        return
    if part.sniffed_type is None:
        part.sniffed_type = classify.sniff(part.data, part.spool)
    part.kind = classify.classify(part, template)


def _follow_links(config: Config, store: FileStore, parsed: ParsedMessage) -> dict:
    """Download allowed big-attachment links; the files join the message's parts.

    At most ``links.max_per_message`` are fetched, within what is left of the message's byte
    budget (``limits.max_extracted_bytes``, shared with its archive members)."""
    status: dict[int, tuple[str, int | None, str | None]] = {}
    if not config.links.download:
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
        part = links.download(link, config, store.tmp, budget=budget)
        if part.error:
            status[i] = ("failed", None, part.error)
            continue
        budget -= part.size or 0
        parsed.parts.append(part)
        _hash_parts(parsed)
        _classify(part, config.campaign.sheet)
        status[i] = ("downloaded", len(parsed.parts) - 1, None)
    return status


def _headers_only(header_bytes: bytes | None, config: Config) -> ParsedMessage | None:
    """A message that could not be fetched still shows whose it is (From, Subject)."""
    if not header_bytes:
        return None
    try:
        return ParsedMessage(headers=mime.parse_headers(header_bytes, config.limits))
    except Exception:  # noqa: BLE001 - the failure is recorded anyway, with or without headers
        log.debug("cannot read the headers of a failed message", exc_info=True)
        return None


def _known_facts(conn: sqlite3.Connection, part: ExtractedPart) -> bool:
    """True when the part needs no check: nothing to check, or the same file was checked before
    and measured (facts don't change; they are copied). A file whose earlier check failed is
    checked again: the failure may have been this server's (a timeout, LibreOffice missing)."""
    if part.sha256 is None or part.error:
        return True
    known = conn.execute(
        "SELECT facts FROM parts WHERE sha256 = ? AND kind = ? AND facts IS NOT NULL AND error IS NULL LIMIT 1",
        (part.sha256, part.kind),
    ).fetchone()
    if known:
        part.facts = json.loads(known[0])
        return True
    return False


def _store_and_probe(
    config: Config, store: FileStore, parts: list[ExtractedPart], media: list[ExtractedPart]
) -> None:
    """In a worker thread: keep the message's files in the store, then probe its videos."""
    for part in parts:
        _keep(store, part)
    for part in media:
        part.facts, part.error = checks.probe(part, store.path_for(part.sha256), config)


def _keep(store: FileStore, part: ExtractedPart) -> None:
    if part.sha256 is None:
        return
    if part.data is not None:
        store.put_bytes(part.data)
    elif part.spool is not None and part.spool.exists():
        store.put_file(part.spool, part.sha256)
        part.spool = None


def _drop_spools(parsed: ParsedMessage) -> None:
    for part in parsed.parts:
        if part.spool is not None:
            try:
                if part.spool.is_dir():
                    shutil.rmtree(part.spool, ignore_errors=True)
                else:
                    part.spool.unlink(missing_ok=True)
            except OSError:
                pass
