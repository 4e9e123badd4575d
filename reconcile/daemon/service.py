"""``mailroll serve``: the daemon. Polls the mailbox, answers with receipts, sends reminders.

What runs (APScheduler 3, one worker thread for the poll; the sender is a thread of its own):

* **poll** every ``service.poll_every_s`` (and at start): ``poll_once`` -> attribute ->
  bounces -> the sender woken for what arrived. With IMAP and ``mailbox.idle`` (the server must
  offer IDLE), a watcher thread sits in IMAP IDLE and runs the poll at once when new mail
  arrives, so a unit's mail is processed within seconds. A failing poll (server down, login
  refused) is retried after 5 s, 10 s, 20 s ... up to the poll interval; the service stays up.
* **send**, on a thread of its own with its own SMTP and database connections
  (``reconcile.daemon.sender``): kicked by the poll when it recorded mail, and every
  ``service.remind_every_s`` for the reminders due now and receipts kept back (quiet hours,
  an SMTP outage, the cap on strangers' receipts). The SMTP rate limit, time-outs and retries
  wait there, never in the poll: IDLE is answered and mail recorded while receipts drain.

One instance per mailbox: ``serve`` holds ``lock.ingest_lock`` for its whole life (a second
``serve`` or an ``ingest --once`` meanwhile waits ``service.lock_wait_s`` and then exits 1
saying which pid holds it). Sending happens under ``lock.send_lock``; at start, outbox rows
left in ``sending`` by a crash become ``unknown`` and are never sent again.

SIGTERM / SIGINT (``reconcile.daemon.stopping``, caught from the first moment): the message in
hand is finished (``poll_once`` gets the ``stop`` event), no further mail is sent, and the
process exits 0; a second SIGTERM meanwhile changes nothing.

Heartbeat (``service_state``): ``pid``, ``started_at``, ``last_poll`` (RFC 3339, real time),
``last_poll_result`` (JSON counts), ``last_error`` (empty when the last poll succeeded),
``last_error_at``, ``last_send``, ``stopped_at``. ``mailroll serve --check`` reads it.

Time: reminders and receipts use ``clock`` (``reconcile.daemon.clock.default_clock()``: the real
time, or ``MAILROLL_FAKE_NOW`` for tests); scheduling and the heartbeat use real time. They
judge the mailbox as of that time: a message received (server arrival time) after the clock's
"now" is neither answered nor counted, so with ``MAILROLL_FAKE_NOW`` in the past only mail
that had arrived by then matters.
"""

# long: the daemon: heartbeat state, IDLE watcher and the scheduled jobs

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ingest.db import transaction
from reconcile.daemon.clock import Clock, default_clock
from reconcile.daemon.sender import Sender
from reconcile.heartbeat import poll_age

if TYPE_CHECKING:
    from ingest.workers import WorkerPool

log = logging.getLogger("mailroll.service")

RETRY_FIRST_S = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def set_state(conn: sqlite3.Connection, **values) -> None:
    """Write heartbeat keys into ``service_state`` (one small transaction)."""
    now = _iso(_utcnow())
    with transaction(conn):
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                value = json.dumps(value, ensure_ascii=False)
            conn.execute(
                "INSERT INTO service_state (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, now),
            )


def get_state(conn: sqlite3.Connection) -> dict[str, str]:
    return {k: v for k, v in conn.execute("SELECT key, value FROM service_state")}


def check(conn: sqlite3.Connection, config, now: datetime | None = None) -> tuple[bool, dict]:
    """Is the service alive? (fresh ``last_poll`` and its pid running). Returns (ok, details)."""
    state = get_state(conn)
    now = now or _utcnow()
    details: dict = {
        "pid": None,
        "running": False,
        "last_poll": state.get("last_poll"),
        "age_s": None,
        "stale": True,
        "last_error": state.get("last_error") or None,
        "last_poll_result": None,
        "started_at": state.get("started_at"),
        "stopped_at": state.get("stopped_at") or None,
    }
    if state.get("last_poll_result"):
        try:
            details["last_poll_result"] = json.loads(state["last_poll_result"])
        except ValueError:
            pass
    pid = state.get("pid")
    if pid and pid.isdigit():
        details["pid"] = int(pid)
        try:
            os.kill(int(pid), 0)
            details["running"] = not details["stopped_at"]
        except ProcessLookupError:
            details["running"] = False
        except PermissionError:
            details["running"] = True
    polled = poll_age(details["last_poll"], config, now)
    if polled is not None:
        details["age_s"], details["stale"] = round(polled[1], 1), polled[2]
    details["waiting"] = _waiting(conn, config, default_clock().now())  # (the time mail is judged by)
    ok = details["running"] and not details["stale"]
    return ok, details


def _waiting(conn: sqlite3.Connection, config, now: datetime) -> dict | None:
    """The mails waiting to go out and why (reconcile.outgoing.queue); None if nothing is sent
    (no SMTP server set) or it cannot be told (e.g. the roster file is broken)."""
    from reconcile.outgoing.queue import waiting
    from reconcile.scope import rosters

    if not config.smtp.configured:
        return None  # nothing is sent at all ([smtp] host/from not set)
    try:
        return waiting(conn, config, rosters(config), now)
    except Exception as e:  # noqa: BLE001 - the check itself must answer
        log.debug("cannot count the mails waiting: %s", e)
        return None


# ----------------------------------------------------------------------------------- IMAP IDLE


class _Watching(threading.Event):
    """Set while the watcher is in IDLE. The first time on each connection (once the server has
    accepted IDLE) the log says "IMAP IDLE: watching ...": from then on new mail wakes the poll
    at once (people reading the journal, and the tests, wait for that line)."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder, self.announced = folder, False

    def set(self) -> None:
        if not self.announced:
            self.announced = True
            log.info("IMAP IDLE: watching %s for new mail", self.folder)
        super().set()


class IdleWatcher(threading.Thread):
    """Sits in IMAP IDLE on the configured folder and calls ``wake()`` when mail arrives.

    IDLE runs on an ingest ``Connection`` of its own (login, IMAP ID and select as for the poll,
    read-only): renewed every ``service.idle_timeout_s``, the stop event looked at every second,
    a lost connection opened again with backoff. If the server lacks IDLE, the thread ends and
    the poll interval alone applies.
    """

    def __init__(self, config, wake, stop: threading.Event):
        super().__init__(name="imap-idle", daemon=True)
        self.config, self.wake, self.stop = config, wake, stop
        self.active = _Watching(config.mailbox.folder)  # set while in IDLE
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self._session() is False:
                    return
                self.failures = 0
            except Exception as e:  # noqa: BLE001 - network trouble: wait and retry
                self.active.clear()
                self.failures += 1
                delay = min(self.config.service.poll_every_s, RETRY_FIRST_S * 2 ** (self.failures - 1))
                log.warning("IMAP IDLE connection lost (%s); retrying in %.0f s", e, delay)
                self.stop.wait(delay)

    def _session(self) -> bool | None:
        from ingest.sources.imap.connection import Connection

        with Connection(self.config.mailbox, attempts=1, readonly=True) as conn:
            if not conn.can_idle:
                log.info(
                    "the IMAP server does not offer IDLE: polling every %.0f s",
                    self.config.service.poll_every_s,
                )
                return False
            self.failures = 0  # connected: the next loss starts the backoff afresh
            self.active.announced = False  # a new connection says again that it watches
            while not self.stop.is_set():
                if conn.idle_wait(self.config.service.idle_timeout_s, stop=self.stop, active=self.active):
                    log.info("IMAP IDLE: new mail")
                    self.wake()
        return None


# ----------------------------------------------------------------------------------- service


class Service:
    """The daemon. ``run()`` blocks until ``stop`` is set; returns the exit status."""

    def __init__(self, config, *, clock: Clock | None = None, stop: threading.Event | None = None):
        self.config = config
        self.clock = clock or default_clock()
        self.stop = stop or threading.Event()
        self.wake_pending = threading.Event()
        self.polling = threading.Event()  # set while poll_job runs
        self.failures = 0
        self.last_good_poll: float | None = None  # monotonic time of the last successful poll
        self.sender: Sender | None = None  # receipts and reminders, on a thread of their own
        self.scheduler: Any = None  # an APScheduler BackgroundScheduler while running
        self.idle: IdleWatcher | None = None
        self.workers: WorkerPool | None = None  # ingest's worker processes, kept between polls

    # -- helpers ------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        from ingest.db import open_connection

        return open_connection(self.config.storage.db)

    def _roster(self):
        from reconcile.roster import load_roster

        return load_roster(self.config.roster.path)

    def wake(self) -> None:
        """Run the poll now (called by the IDLE watcher)."""
        self.wake_pending.set()
        if self.polling.is_set():
            return  # the running poll looks again when it is done
        if self.scheduler is not None and not self.stop.is_set():
            try:
                self.scheduler.modify_job("poll", next_run_time=_utcnow())
            except Exception:  # noqa: BLE001 - job gone during shutdown
                pass

    def _reschedule_poll(self, delay_s: float) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.modify_job("poll", next_run_time=_utcnow() + timedelta(seconds=delay_s))
            except Exception:  # noqa: BLE001 - job gone during shutdown
                pass

    # -- jobs ---------------------------------------------------------------------------------
    def poll_job(self) -> None:
        """Poll until no wake-up is pending (new mail during a poll is fetched right after)."""
        self.polling.set()
        try:
            while not self.stop.is_set():
                self.wake_pending.clear()
                ok = self.poll_and_answer()
                if not ok or not self.wake_pending.is_set():
                    return
        finally:
            self.polling.clear()
            if self.wake_pending.is_set() and not self.stop.is_set():
                self._reschedule_poll(0)  # woken just as the poll ended (or it failed): again soon

    def poll_and_answer(self) -> bool:
        from ingest.pipeline import poll_once
        from ingest.workers import WorkerPool
        from reconcile.attribute import attribute
        from reconcile.outgoing.bounces import record_bounces

        conn = self._conn()
        try:
            try:
                if self.workers is None:  # started once, at the first poll: no receipt waits for them
                    self.workers = WorkerPool(memory_bytes=self.config.limits.worker_memory_bytes)
                    self.workers.warm()
                result = poll_once(self.config, conn, stop=self.stop, workers=self.workers)
                roster = self._roster()
                attribute(conn, roster, self.config, result.recorded_ids)
                record_bounces(conn, self.config, result.recorded_ids)
            except Exception as e:  # noqa: BLE001 - mailbox down, login refused, disk...: retry
                self.failures += 1
                delay = min(self.config.service.poll_every_s, RETRY_FIRST_S * 2 ** (self.failures - 1))
                text = (
                    f"{e.__class__.__name__}: {e}" if not str(e).startswith(e.__class__.__name__) else str(e)
                )
                log.error(
                    "poll failed (%s); retrying in %.0f s",
                    text,
                    delay,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                set_state(conn, last_error=text, last_error_at=_iso(_utcnow()))
                self._reschedule_poll(delay)
                return False
            self.failures = 0
            self.last_good_poll = time.monotonic()
            counts = {
                "seen": result.seen,
                "new": result.new,
                "recorded": len(result.recorded_ids),
                "duplicate": result.duplicate,
                "failed": result.failed,
            }
            set_state(conn, last_poll=_iso(_utcnow()), last_poll_result=counts, last_error="")
            if result.new:
                log.info(
                    "poll: %d new message(s) (%d recorded, %d duplicate, %d failed)",
                    result.new,
                    len(result.recorded_ids),
                    result.duplicate,
                    result.failed,
                )
            if self.sender is not None:  # answered on the sender's thread: the poll never waits for SMTP
                self.sender.after_poll(recorded=bool(result.recorded_ids))
            return True
        finally:
            conn.close()

    def _data_fresh(self) -> bool:
        """Remind only on a recent picture of the mailbox: a unit whose mail could not be
        fetched (mailbox down) must not be told it sent nothing."""
        limit = 2 * self.config.service.poll_every_s + 60
        if self.last_good_poll is None or time.monotonic() - self.last_good_poll > limit:
            log.warning("no reminders now: the mailbox has not been read successfully lately")
            return False
        return True

    # -- life cycle ---------------------------------------------------------------------------
    # long: start, schedule, wait, stop: the daemon's life in order
    def run(self) -> int:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from reconcile.daemon.lock import ingest_lock, sending

        cfg = self.config
        with ingest_lock(cfg):
            if self.stop.is_set():  # asked to stop while starting: nothing was started yet
                log.info("stopped before the first poll")
                return 0
            conn = self._conn()
            try:
                self._roster()  # a broken roster is a config error: fail now, not every poll
                set_state(
                    conn, pid=str(os.getpid()), started_at=_iso(_utcnow()), stopped_at="", last_error=""
                )
                with sending(cfg, conn):
                    pass  # only the recovery, now: nothing is sent before the first poll
            finally:
                conn.close()
            if not cfg.smtp.configured:
                log.warning(
                    "[smtp] host/from not set: no receipts or reminders will be sent "
                    "(set smtp.host and smtp.from in %s)",
                    cfg.path,
                )
            elif not cfg.reminders.receipts:
                log.info("receipts are switched off (reminders.receipts = false): only reminders are sent")
            log.info(
                "mailroll serve (pid %d): polling %s every %.0f s",
                os.getpid(),
                cfg.mailbox.source_name,
                cfg.service.poll_every_s,
            )
            self.scheduler = BackgroundScheduler(
                executors={"default": ThreadPoolExecutor(1)},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
                timezone=UTC,
            )
            self.scheduler.add_job(
                self.poll_job,
                "interval",
                seconds=cfg.service.poll_every_s,
                id="poll",
                next_run_time=_utcnow(),
            )
            self.sender = Sender(cfg, self.clock, self.stop, self._data_fresh)
            self.sender.start()
            self.scheduler.start()
            if cfg.mailbox.kind == "imap" and cfg.mailbox.idle:
                self.idle = IdleWatcher(cfg, self.wake, self.stop)
                self.idle.start()
            try:
                while not self.stop.wait(1.0):
                    pass
            finally:
                log.info("stopping: finishing the work in hand")
                self.stop.set()
                self.scheduler.shutdown(wait=True)
                if self.sender is not None:
                    self.sender.kick()  # (it may sit waiting for work: it sees the stop at once)
                    self.sender.join()  # the mail in hand is finished; a rate-limit wait ends at once
                if self.idle is not None:
                    self.idle.join(timeout=5)
                if self.workers is not None:
                    self.workers.close()
                conn = self._conn()
                try:
                    set_state(conn, stopped_at=_iso(_utcnow()))
                finally:
                    conn.close()
        log.info("stopped")
        return 0
