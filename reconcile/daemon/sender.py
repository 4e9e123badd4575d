"""``serve``'s sender: receipts and reminders go out on a thread of their own.

The poll (IMAP IDLE, fetch, record, attribute) never waits for SMTP: the SMTP rate limit
(``smtp.per_minute``), time-outs and retries happen here, on this thread's own SMTP
connection and its own database connection. The poll only ``kick()``s the sender when it has
recorded something (and after the first poll, which starts the reminders: they are never
judged on a mailbox not read yet); every ``service.remind_every_s`` the sender also looks for
due reminders and receipts kept back (quiet hours, an SMTP outage, the hourly cap on
strangers' receipts).

Receipts drain in arrival order at the rate limit: each run answers what had arrived when it
began (oldest first); mail that arrives meanwhile is answered by the next run, right after.
A receipt kept back so that a unit never gets two mails in the same minute
(``receipts.SPACING``) is looked at again a few seconds later.

Every mail still goes through the outbox (``sending`` committed before SMTP, then ``sent``,
``deferred``, ``failed`` or ``unknown``), under ``lock.send_lock``; on SIGTERM the mail in
hand is finished and a wait for the rate limit ends at once (the mail then waiting stays
``deferred``, for the next start).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from reconcile.daemon.clock import Clock
from reconcile.outgoing.receipts import SPACING_WHY

log = logging.getLogger("mailroll.service")

RECHECK_S = 5.0  # a receipt kept back by the one-minute spacing: look again this soon


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Sender(threading.Thread):
    """Sends what is due whenever kicked, and every ``service.remind_every_s``.

    ``fresh()`` says whether the mailbox was read successfully lately (no reminder is sent on a
    stale picture: a unit whose mail could not be fetched must not be told it sent nothing).
    """

    def __init__(self, config, clock: Clock, stop: threading.Event, fresh: Callable[[], bool]):
        super().__init__(name="sender", daemon=True)
        self.config, self.clock, self.stop, self.fresh = config, clock, stop, fresh
        self.kicked = threading.Event()
        self.sent_times: deque = deque()  # the SMTP rate limit across runs
        self.held = False  # the last run kept a receipt back for the one-minute spacing
        self.busy = threading.Event()  # set while a run is sending
        self.polled = threading.Event()  # set once a poll has succeeded

    def _pause(self, seconds: float) -> None:
        """The rate limit's and retries' waits: over at once when ``serve`` stops."""
        self.stop.wait(seconds)

    def kick(self) -> None:
        """New mail was recorded: answer it as soon as the sender is free."""
        self.kicked.set()

    def after_poll(self, recorded: bool) -> None:
        """A poll succeeded: the first one has the reminders looked at at once (they are never
        judged on a mailbox not read yet: ``fresh``), and one that recorded mail wakes the
        sender."""
        first = not self.polled.is_set()
        self.polled.set()
        if recorded or first:
            self.kick()

    def run(self) -> None:
        every = self.config.service.remind_every_s
        next_reminders = time.monotonic() + 1.0
        judged = False  # reminders looked at once on a mailbox read successfully
        while not self.stop.is_set():
            wait = max(0.0, next_reminders - time.monotonic())
            if self.held:
                wait = min(wait, RECHECK_S)
            self.kicked.wait(wait)
            if self.stop.is_set():
                break
            self.kicked.clear()
            polled = self.polled.is_set()
            reminders = time.monotonic() >= next_reminders or (polled and not judged)
            if reminders:
                next_reminders = time.monotonic() + every
            self.run_once(reminders=reminders)
            judged = judged or (reminders and polled)

    def run_once(self, *, reminders: bool) -> None:
        from ingest.db import open_connection
        from reconcile.daemon.service import set_state

        conn = open_connection(self.config.storage.db)
        self.busy.set()
        try:
            self.send(conn, reminders=reminders)
        except Exception as e:  # noqa: BLE001 - e.g. roster file broken: say so, keep running
            log.error(
                "sending failed: %s: %s", e.__class__.__name__, e, exc_info=log.isEnabledFor(logging.DEBUG)
            )
            set_state(conn, last_error=f"sending: {e.__class__.__name__}: {e}", last_error_at=_iso_now())
        finally:
            self.busy.clear()
            conn.close()

    def send(self, conn: sqlite3.Connection, *, reminders: bool) -> None:
        """Receipts (and reminders) due now for every campaign, each about its own campaign,
        under the send lock, on one SMTP connection for the run."""
        from reconcile.daemon.lock import LockBusy, send_lock
        from reconcile.daemon.service import set_state
        from reconcile.outgoing.receipts import run_receipts
        from reconcile.outgoing.reminders import run_reminders
        from reconcile.outgoing.smtp import Mailer
        from reconcile.scope import rosters

        if not self.config.smtp.configured or self.stop.is_set():
            return
        now = self.clock.now()
        by_campaign = rosters(self.config)
        fresh = reminders and self.fresh()
        try:
            with send_lock(self.config, wait_s=30.0):
                set_state(conn, waiting=self._waiting(conn, by_campaign))  # (the overview shows it)
                receipts, due = [], []
                with Mailer(
                    self.config.smtp, sent_times=self.sent_times, sleep=self._pause, stop=self.stop
                ) as m:
                    for config in self.config.each_campaign():
                        if self.stop.is_set():
                            break
                        roster = by_campaign[config.campaign.id]
                        receipts += run_receipts(
                            conn,
                            roster,
                            config,
                            now,
                            mailer=m,
                            stop=self.stop,
                            spacing=True,
                            clock=self.clock,
                        )
                        if fresh and not self.stop.is_set():
                            due += run_reminders(
                                conn, roster, config, self.clock.now(), mailer=m, stop=self.stop
                            )
                self.held = any(r.status == "waiting" and r.error == SPACING_WHY for r in receipts)
                sent = [r for r in receipts if r.status == "sent"]
                if sent or due:
                    log.info(
                        "sent %d receipt(s); %d reminder(s) due: %s",
                        len(sent),
                        len(due),
                        ", ".join(f"{r.unit} {r.stage} {r.status}" for r in due) or "-",
                    )
                set_state(conn, last_send=_iso_now(), waiting=self._waiting(conn, by_campaign))
        except LockBusy as e:
            log.warning("not sending now: %s", e.format_message())

    def _waiting(self, conn: sqlite3.Connection, by_campaign: dict) -> dict | None:
        from reconcile.outgoing.queue import waiting

        try:
            return waiting(conn, self.config, by_campaign, self.clock.now())
        except Exception as e:  # noqa: BLE001 - only a count for the overview
            log.debug("cannot count the mails waiting: %s", e)
            return None
