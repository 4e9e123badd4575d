"""One poll of the mailbox: every new message from source to database.

For each message, in order::

    fetch (source) -> parse (mime) -> expand archives -> hash -> duplicate? -> classify
    -> follow links -> store files -> probe (facts) -> one transaction -> source.committed()

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
from dataclasses import dataclass, field
from typing import Callable

from ingest import archives, checks, classify, links, mime
from ingest.config import Config
from ingest.faults import crash_point
from ingest.model import ExtractedPart, ParsedMessage
from ingest.sources import FetchedMessage, Source, open_source
from ingest.store import (
    FileStore, content_fingerprint, find_duplicate, record_failure, record_message, sha256_file,
)

log = logging.getLogger(__name__)


@dataclass
class PollResult:
    seen: int = 0                  # messages in the mailbox
    new: int = 0                   # messages processed in this poll
    recorded_ids: list[int] = field(default_factory=list)   # newly recorded (to attribute)
    duplicate: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False


Progress = Callable[[str, int | None], None]   # (event, total): 'start' with total, 'advance'


def poll_once(config: Config, conn: sqlite3.Connection, source: Source | None = None,
              progress: Progress | None = None, stop: threading.Event | None = None) -> PollResult:
    """Fetch and record every new message. Call with the ingest lock held."""
    store = FileStore(config.storage.files)
    store.recover(conn)
    source = source or open_source(config, store.tmp)
    result = PollResult()
    with source:
        if progress:
            progress("start", source.count_new(conn))
        for fetched in source.fetch_new(conn):
            if stop is not None and stop.is_set():
                result.interrupted = True
                break
            known = _already_recorded(conn, fetched.envelope)
            if known:  # e.g. crashed after COMMIT, before the source heard of it
                source.committed(conn, fetched.envelope)
                continue
            result.new += 1
            msg_id, status = process(config, conn, store, fetched)
            if status == "failed":
                result.failed += 1
                result.errors.append(f"message {fetched.envelope.key}: failed")
            else:
                if status == "duplicate":
                    result.duplicate += 1
                else:
                    result.recorded_ids.append(msg_id)
                crash_point("after-commit")        # in the database, not yet committed to the source
                source.committed(conn, fetched.envelope)
            if progress:
                progress("advance", None)
        result.seen = max(getattr(source, "seen", 0) or 0, result.new)
    return result


def _already_recorded(conn: sqlite3.Connection, env) -> bool:
    row = conn.execute("SELECT status FROM messages WHERE source = ? AND source_key = ?",
                       (env.source, env.key)).fetchone()
    return bool(row) and row[0] != "failed"


def process(config: Config, conn: sqlite3.Connection, store: FileStore,
            fetched: FetchedMessage) -> tuple[int, str]:
    """Record one message. Returns (messages.id, status). Never raises for the message's sake."""
    env = fetched.envelope
    if fetched.error:
        log.warning("message %s could not be fetched: %s", env.key, fetched.error)
        return record_failure(conn, env, fetched.parsed, fetched.error), "failed"
    parsed: ParsedMessage | None = fetched.parsed
    try:
        if parsed is None:
            parsed = mime.parse_message(fetched.raw or b"", config.limits)
            fetched.raw = None   # everything is in `parsed` now: don't hold a big message twice
        archives.expand(parsed, config.limits, store.tmp)
        _hash_parts(parsed)
        parsed.content_sha256 = content_fingerprint(parsed)
        earlier = find_duplicate(conn, parsed.headers.message_id, parsed.content_sha256, env.source, env.key)
        if earlier is not None:
            log.info("message %s is a duplicate of message #%d", env.key, earlier)
            msg_id = record_message(conn, env, parsed, status="duplicate", duplicate_of=earlier)
            return msg_id, "duplicate"
        template = config.campaign.sheet
        for part in parsed.parts:
            _classify(part, template)
        link_status = _follow_links(config, store, parsed)
        with store.journal(p.sha256 for p in parsed.parts if p.sha256):
            for part in parsed.parts:
                _keep(store, part)
            for part in parsed.parts:
                _probe(config, conn, store, part)
            msg_id = record_message(conn, env, parsed, link_status=link_status)
        log.info("recorded message %s from %s: %d part(s)", env.key, parsed.headers.from_addr, len(parsed.parts))
        return msg_id, "recorded"
    except Exception as e:  # noqa: BLE001 - a bug or an I/O error: keep the message, retry later
        log.exception("message %s failed", env.key)
        reason = f"could not be processed: {e.__class__.__name__}: {e}"
        try:
            return record_failure(conn, env, parsed, reason), "failed"
        except Exception:  # noqa: BLE001 - e.g. the parsed headers themselves are the problem
            return record_failure(conn, env, None, reason), "failed"
    finally:
        if parsed is not None:
            _drop_spools(parsed)


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
    """Download allowed big-attachment links; the files join the message's parts."""
    status: dict[int, tuple[str, int | None, str | None]] = {}
    for i, link in enumerate(parsed.links):
        if not config.links.download:
            continue
        part = links.download(link, config, store.tmp)   # refuses hosts not allowed, with the reason
        if part.error:
            status[i] = ("failed", None, part.error)
            continue
        parsed.parts.append(part)
        _hash_parts(parsed)
        _classify(part, config.campaign.sheet)
        status[i] = ("downloaded", len(parsed.parts) - 1, None)
    return status


def _keep(store: FileStore, part: ExtractedPart) -> None:
    if part.sha256 is None:
        return
    if part.data is not None:
        store.put_bytes(part.data)
    elif part.spool is not None and part.spool.exists():
        store.put_file(part.spool, part.sha256)
        part.spool = None


def _probe(config: Config, conn: sqlite3.Connection, store: FileStore, part: ExtractedPart) -> None:
    if part.sha256 is None or part.error:
        return
    known = conn.execute(
        "SELECT facts, error FROM parts WHERE sha256 = ? AND kind = ? AND (facts IS NOT NULL OR error IS NOT NULL) LIMIT 1",
        (part.sha256, part.kind)).fetchone()
    if known:  # the same file was checked before: facts don't change
        part.facts = json.loads(known[0]) if known[0] else None
        part.error = known[1]
        return
    facts, error = checks.probe(part, store.path_for(part.sha256), config)
    part.facts, part.error = facts, error


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
