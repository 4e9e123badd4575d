"""The IMAP connection to the campaign folder: connect, log in, say who we are, reconnect.

``Connection`` opens the folder (TLS when ``mailbox.tls``, read-only unless the post action
writes), sends IMAP ID after login (NetEase 126/163/yeah answers SELECT with "Unsafe Login" to
clients that do not say who they are) and runs every IMAP command through ``_op``: on a broken or
stalled connection (socket timeout ``mailbox.timeout_s``) it reconnects with backoff and repeats
the command (every command used is idempotent). When the tries are used up it raises
``MailboxError`` saying what to check. One command at a time: the connection is shared by the
prefetch thread and the caller under a lock.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ingest.config import Mailbox
from ingest.sources.base import MailboxError
from ingest.sources.imap.errors import imap_errors, mailbox_error, reason, server_text
from ingest.sources.imap.structure import as_text

log = logging.getLogger("ingest.sources.imap")  # one logger for the whole package

T = TypeVar("T")
C = TypeVar("C", bound="Connection")

# how the other modules run an IMAP command on the shared connection (``Connection._op``):
# op(command, what, attempts=None) -> what command(client) returned
Op = Callable[..., Any]

try:  # the version we announce with IMAP ID
    from importlib.metadata import version as _version

    CLIENT_VERSION = _version("mailroll")
except Exception:  # noqa: BLE001 - not installed (running from the source tree)
    CLIENT_VERSION = "0"
CLIENT_ID = {
    "name": "mailroll",
    "version": CLIENT_VERSION,
    "vendor": "mailroll",
    "os": "linux",
    "support-url": "https://github.com/mailroll/mailroll",
}


def _quiet_imaplib(client: Any) -> None:
    """Switch off imaplib's debug output unless it would be printed.

    IMAPClient sets imaplib's debug level to 5 and sends it to the ``imapclient.imaplib`` logger,
    so imaplib builds a ``repr()`` of every response, literal bodies included, before that logger
    drops it: for each 4 MB piece of a video, two strings of up to 16 MB built for nothing in the
    prefetch thread, holding the GIL (a third of the CPU time of a bulk ingest, and the pipeline's
    checks wait for the GIL meanwhile). With the logger at DEBUG, the output is kept."""
    imap = getattr(client, "_imap", None)
    if imap is not None and not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        imap.debug = 0


def with_retries(
    fn: Callable[[], T],
    attempts: int = 3,
    backoff_s: float = 1.0,
    what: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, at most ``attempts`` times, waiting ``backoff_s``, then twice
    that, ... between tries. Retries ``MailboxError`` unless its ``transient`` is False (a wrong
    password does not get better by asking again)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except MailboxError as e:
            if attempt >= attempts or not e.transient:
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("%s failed (%s); trying again in %.1f s", what or "mailbox access", e, delay)
            sleep(delay)
    raise AssertionError("unreachable")


class Connection:
    """One IMAP folder, opened on enter (with retries). Use as a context manager."""

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        attempts: int | None = None,
        backoff_s: float | None = None,
        readonly: bool | None = None,
    ):
        self.mailbox = mailbox
        self._readonly = readonly  # None: read-only unless the post action writes
        self.attempts = max(1, attempts if attempts is not None else getattr(mailbox, "retries", 3))
        self.backoff_s = backoff_s if backoff_s is not None else getattr(mailbox, "retry_backoff_s", 1.0)
        self.where = f"{mailbox.host}:{mailbox.port}"
        self.seen = 0  # messages in the folder (EXISTS)
        self.uidvalidity: int | None = None
        self.capabilities: set[str] = set()
        self.sent_id = False
        self._client: Any = None  # an IMAPClient while connected
        self._lock = threading.RLock()  # one IMAP command at a time (prefetch thread + caller)

    def __enter__(self: C) -> C:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self, once: bool = False) -> None:
        """Open the folder, trying ``attempts`` times with backoff (``once``: one try)."""
        if once:
            self._connect()
            return
        with_retries(self._connect, self.attempts, self.backoff_s, f"connecting to {self.where}")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - already broken: just drop the socket
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - already broken: just drop the socket
                pass

    @property
    def readonly(self) -> bool:
        if self._readonly is not None:
            return self._readonly
        return self.mailbox.post_action not in ("flag", "move")

    @property
    def can_idle(self) -> bool:
        """The server offers IDLE and the config allows it (``mailbox.idle``); after connect."""
        return "IDLE" in self.capabilities and self.mailbox.idle

    # long: connect, login, ID, select: each failure gets its own advice
    def _connect(self) -> None:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError, LoginError

        m = self.mailbox
        password = m.password()  # ConfigError (exit 2) when the variable is not set
        self.close()
        try:
            context = ssl.create_default_context() if m.tls else None
            client = IMAPClient(m.host, port=m.port, ssl=m.tls, ssl_context=context, timeout=m.timeout_s)
        except imap_errors() as e:
            why = reason(e, m.timeout_s)
            if not m.tls and isinstance(e, (socket.timeout, TimeoutError)):
                # an IMAPS port waits for a TLS hello and never greets a plain client
                why += " (is mailbox.tls right for this port? IMAPS, usually port 993, needs tls = true)"
            raise mailbox_error(f"cannot connect to the mailbox at {self.where}: {why}") from e
        client.normalise_times = False  # INTERNALDATE as aware datetimes
        _quiet_imaplib(client)
        try:
            try:
                client.login(m.username, password)
            except LoginError as e:
                raise mailbox_error(
                    f"login failed for user {m.username} at {self.where}: check mailbox.username and "
                    f"the password in ${m.password_env} (server said: {server_text(e)})",
                    transient=False,
                ) from e
            self.capabilities = {as_text(c).upper() for c in client.capabilities()}
            if "ID" in self.capabilities:
                try:
                    client.id_(CLIENT_ID)
                    self.sent_id = True
                except IMAPClientError as e:
                    log.warning("the server refused the IMAP ID command: %s", server_text(e))
            try:
                info = client.select_folder(m.folder, readonly=self.readonly)
            except IMAPClientError as e:
                said = server_text(e)
                hint = "check mailbox.folder"
                if "unsafe login" in said.lower():  # NetEase 126/163/yeah
                    hint = (
                        "NetEase refuses this login: turn on IMAP/SMTP in the mailbox's web settings "
                        "and use the authorization code (授权码) it gives as the password"
                        + ("" if self.sent_id else "; the server did not accept the IMAP ID command")
                    )
                raise mailbox_error(
                    f"cannot open folder {m.folder!r} at {self.where}: {said} ({hint})", transient=False
                ) from e
        except MailboxError:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - already failing: the MailboxError is the one to report
                pass
            raise
        except imap_errors() as e:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - already failing: the mailbox error is the one to report
                pass
            raise mailbox_error(
                f"the connection to {self.where} broke while logging in: {reason(e, m.timeout_s)}"
            ) from e
        uidvalidity = int(info.get(b"UIDVALIDITY") or 0)
        if self.uidvalidity is not None and uidvalidity != self.uidvalidity:
            client.shutdown()
            raise mailbox_error(
                f"the UIDVALIDITY of {m.folder!r} changed during the poll ({self.uidvalidity} -> "
                f"{uidvalidity}); the next poll fetches the folder again"
            )
        self.uidvalidity = uidvalidity
        self.seen = int(info.get(b"EXISTS") or 0)
        self._client = client
        log.debug(
            "connected to %s as %s, folder %s (UIDVALIDITY %s, %d messages)",
            self.where,
            m.username,
            m.folder,
            uidvalidity,
            self.seen,
        )

    def _op(self, fn: Callable[[Any], T], what: str, attempts: int | None = None) -> T:
        """Run one IMAP command; on a broken connection reconnect and repeat it."""
        with self._lock:
            return self._op_locked(fn, what, attempts)

    def _op_locked(self, fn: Callable[[Any], T], what: str, attempts: int | None) -> T:
        last: BaseException | None = None
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                if self._client is None:
                    self._connect()
                return fn(self._client)
            except MailboxError as e:
                if not e.transient:
                    raise
                last = e
            except imap_errors() as e:
                last = e
                log.warning(
                    "connection to %s lost while %s: %s", self.where, what, reason(e, self.mailbox.timeout_s)
                )
                try:
                    if self._client is not None:
                        self._client.shutdown()
                except Exception:  # noqa: BLE001 - dropping a broken connection
                    pass
                self._client = None
            if attempt < attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        assert last is not None, "the loop ran at least once"
        why = str(last) if isinstance(last, MailboxError) else reason(last, self.mailbox.timeout_s)
        tries = f"{attempts} tries" if attempts > 1 else "1 try"
        raise mailbox_error(f"lost the connection to {self.where} while {what} ({tries}): {why}") from last

    def idle_wait(
        self,
        timeout_s: float,
        stop: threading.Event | None = None,
        active: threading.Event | None = None,
    ) -> bool:
        """Wait up to ``timeout_s`` for new mail. True when the server signalled some (IDLE);
        False on timeout or once ``stop`` is set (looked at every second). ``active`` is set
        while in IDLE. Without IDLE (see ``can_idle``) a plain wait."""
        if self._client is None:
            self.connect()
        if not self.can_idle:
            if stop is not None:
                stop.wait(timeout_s)
            else:
                time.sleep(timeout_s)
            return False
        deadline = time.monotonic() + timeout_s
        with self._lock:
            client = self._client
            try:
                client.idle()
                if active is not None:
                    active.set()
                try:
                    while (left := deadline - time.monotonic()) > 0 and not (stop and stop.is_set()):
                        responses = client.idle_check(timeout=min(1.0, left))
                        if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                            return True
                    return False
                finally:
                    if active is not None:
                        active.clear()
                    client.idle_done()
            except imap_errors() as e:
                self._client = None
                raise mailbox_error(
                    f"the connection to {self.where} broke while waiting for mail: "
                    f"{reason(e, self.mailbox.timeout_s)}"
                ) from e
