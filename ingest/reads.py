"""Reading messages in the worker processes, several at once, under the poison guard.

Reading a message (parse, open its archives, hash and classify its parts:
``worker_tasks.read_message``) is a round trip to a worker process. The poll does not wait for
it: ``Reader.start`` starts the reading of every message that has arrived and waits, in arrival
order, so the worker processes parse the next messages while the poll's thread records the
earlier ones; the poll collects each result in arrival order (``Reader.result``).

The poison guard (``ingest.guards``) sees a group: one committed write notes every message whose
reading starts together. A message left noted by a poll that died (a *suspect*) is read alone:
the messages before it finish reading first, and the next ones start only when it is read, so
that a death while reading it counts against it alone.

A message that hits a worker's memory ceiling or its time budget is read once more without
opening its archives, with a fresh budget (the archives get the reason: "the archive needs more
than 1.0 GB to open"); one that cannot be read even so, or that crashed its worker, fails for
good with the reason ("processing took over 300 s").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from pathlib import Path

from ingest import worker_tasks
from ingest.classify import ARCHIVE_TYPES
from ingest.config import Config, Limits
from ingest.faults import crash_point
from ingest.guards import PoisonGuard
from ingest.model import ParsedMessage
from ingest.pending import READING, WAITING, Pending, remove_tree
from ingest.sizes import human_size
from ingest.workers import MessageBudget, TaskError, WorkerPool, WorkLimit

log = logging.getLogger("ingest.pipeline")


class Reader:
    """Starts and collects the readings of one poll's messages (see module docstring)."""

    def __init__(self, config: Config, workers: WorkerPool, guard: PoisonGuard, spool: Path):
        self.config, self.workers, self.guard, self.spool = config, workers, guard, spool

    def start(self, window: Iterable[Pending]) -> None:
        """Start reading the waiting messages of ``window`` (in arrival order): all of them
        together, up to the first suspect, which starts alone once nothing else is read."""
        messages = list(window)
        reading = [p for p in messages if p.state == READING]
        if any(p.alone for p in reading):
            return
        group: list[Pending] = []
        for p in messages:
            if p.state != WAITING:
                continue
            if p.alone:
                if not group and not reading:
                    group = [p]
                break
            group.append(p)
        if not group:
            return
        self.workers.warm()  # (once) so that starting the workers is not counted as reading
        self.guard.start([p.key for p in group])  # committed first: a death while reading is counted
        for p in group:
            crash_point("reading", p.key)
            self._submit(p, MessageBudget(self.config.limits.message_timeout_s))

    def _submit(self, p: Pending, budget: MessageBudget, expand: bool = True) -> None:
        fetched = p.fetched
        if p.workdir is None:
            p.workdir = self.spool / f"message-{uuid.uuid4().hex}"
            # big files cross to the worker as paths: a Maildir file, a streamed message's spool files
            source = fetched.parsed if fetched.parsed is not None else fetched.raw
            p.source = source if source is not None else fetched.envelope.path
            fetched.raw = None  # the worker has it now: don't hold a message twice
        p.state, p.budget = READING, budget
        p.reading = self.workers.submit(
            worker_tasks.read_message,
            p.source,
            self.config.limits,
            p.workdir,
            self.config.ingest_sheet,
            expand,
            budget=budget,
        )

    def result(self, p: Pending) -> ParsedMessage | None:
        """The message as read (waiting for it), or None: it failed (``p.fail``, with the reason).
        A task's own error is a bug or an odd input: raised, the message fails and is retried."""
        assert p.reading is not None
        limits = self.config.limits
        try:
            return _outcome(p.reading)
        except WorkLimit as e:
            first = e
            if e.kind == "crash":
                p.fail(limit_reason(e, limits, "reading this message"), retry=False)
                return None
        log.warning(
            "message %s: %s; reading it again without opening its archives",
            p.key,
            limit_reason(first, limits, "reading it"),
        )
        remove_tree(p.workdir)
        self._submit(p, MessageBudget(limits.message_timeout_s), expand=False)
        try:
            parsed = _outcome(p.reading)
        except WorkLimit as e:
            p.fail(limit_reason(e, limits, "reading this message"), retry=False)
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


def _outcome(future) -> ParsedMessage:
    try:
        return future.result()
    except TaskError as e:
        raise RuntimeError(str(e)) from None


def limit_reason(e: WorkLimit, limits: Limits, doing: str) -> str:
    """A limit hit, in words: "processing took over 300 s", "... needs more than 1.0 GB"."""
    if e.kind == "time":
        return f"processing took over {limits.message_timeout_s:g} s ({doing}; limits.message_timeout_s)"
    if e.kind == "memory":
        return (
            f"{doing} needs more than {human_size(limits.worker_memory_bytes)} of memory "
            "(limits.worker_memory_bytes)"
        )
    return f"{doing} stopped the process that read it ({e.detail or 'it crashed'})"
