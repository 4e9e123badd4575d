"""The SMTP transport: one connection, rate-limited, with failures sorted into temporary,
permanent and ambiguous (the server may have taken the message) as the outbox needs them.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Failures


class SendFailure(Exception):
    """A mail could not be handed over. ``kind``: 'temporary', 'permanent' or 'ambiguous'.

    ``attempts``: how many times it was tried (0: not tried, the server was already found
    unreachable in this batch); ``connecting``: it failed before a connection stood."""

    kind = "temporary"

    def __init__(self, reason: str, code: int | None = None, *, attempts: int = 1, connecting: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.attempts = attempts
        self.connecting = connecting


class TemporaryFailure(SendFailure):
    kind = "temporary"


class Stopping(TemporaryFailure):
    """``serve`` is stopping while this mail waited: for the rate limit (not tried, not
    recorded: answered after the next start) or between retries (the row becomes
    ``deferred``)."""


class PermanentFailure(SendFailure):
    kind = "permanent"


class AmbiguousFailure(SendFailure):
    """The connection broke after the message data was sent: the server may have it."""

    kind = "ambiguous"


def _reply_text(resp) -> str:
    if isinstance(resp, bytes):
        return resp.decode("utf-8", "replace")
    return str(resp)


def _classify(code: int, resp, what: str) -> SendFailure:
    text = f"{what}: the server answered {code} {_reply_text(resp)}".strip()
    if 400 <= code < 500:
        return TemporaryFailure(text, code)
    return PermanentFailure(text, code)


# --------------------------------------------------------------------------------------------
# SMTP


@dataclass
class Outcome:
    attempts: int
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> server answer


class Mailer:
    """An SMTP client for one batch: one connection reused, a rate limit, retries.

    Connects on the first ``send``; ``close()`` (or leaving the ``with`` block) says QUIT.
    ``sleep`` and ``monotonic`` are injectable so tests of the rate limit need not wait.
    The rate limit is ``smtp.per_minute`` mails in any 60 s. ``serve`` uses it only on its
    sender thread, so these waits never hold up the poll.
    """

    def __init__(
        self,
        smtp,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        sent_times: deque | None = None,
        stop=None,
    ):
        self.cfg = smtp
        # ``serve``'s sender passes its stop event: a wait for the rate limit or a retry ends
        # at once on SIGTERM, and the mail then waiting is kept for the next run (deferred)
        self.stop = stop
        self.sleep = sleep
        self.monotonic = monotonic
        self.conn: smtplib.SMTP | None = None
        # when mails went out; pass the same deque to successive Mailers (``serve``) so the
        # rate limit holds across batches
        self._sent_times: deque[float] = deque() if sent_times is None else sent_times
        self.unavailable: str | None = None  # set when the server stayed unreachable

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- connection -----------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        ca = getattr(self.cfg, "ca_file", None)
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        where = f"{cfg.host}:{cfg.port}"
        try:
            conn: smtplib.SMTP
            if cfg.tls == "ssl":
                conn = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout_s, context=self._tls_context()
                )
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
                if cfg.tls == "starttls":
                    conn.ehlo()
                    if not conn.has_extn("starttls"):
                        _quit(conn)
                        raise TemporaryFailure(
                            f"the SMTP server {where} does not offer STARTTLS: set smtp.tls to "
                            f'"ssl" (port 465) or check smtp.port'
                        )
                    conn.starttls(context=self._tls_context())
            conn.ehlo()
        except SendFailure:
            raise
        except ssl.SSLCertVerificationError as e:
            raise TemporaryFailure(
                f"the SMTP server {where} has a certificate we cannot trust "
                f"({e.verify_message}): check smtp.host (or smtp.ca_file)"
            ) from None
        except smtplib.SMTPResponseException as e:  # the server's problem, not the mail's
            raise TemporaryFailure(
                f"connecting to {where}: the server answered {e.smtp_code} {_reply_text(e.smtp_error)}",
                e.smtp_code,
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise TemporaryFailure(f"cannot connect to the SMTP server {where}: {e}") from None
        if cfg.username:
            try:
                password = cfg.password()
            except Exception as e:  # noqa: BLE001 - e.g. ConfigError, the variable is missing: keep the mail for later
                _quit(conn)
                raise TemporaryFailure(str(e)) from None
            try:
                try:
                    conn.login(cfg.username, password)
                except UnicodeEncodeError:  # smtplib sends ASCII only; RFC 4616 PLAIN is UTF-8
                    _login_plain_utf8(conn, cfg.username, password)
            except smtplib.SMTPAuthenticationError as e:
                _quit(conn)
                # Not the mail's fault: keep it for later rather than marking it failed.
                raise TemporaryFailure(
                    f"SMTP login as {cfg.username} at {where} was refused ({e.smtp_code} "
                    f"{_reply_text(e.smtp_error)}): check smtp.username and the password in "
                    f"${cfg.password_env}",
                    e.smtp_code,
                ) from None
            except (OSError, smtplib.SMTPException) as e:
                _quit(conn)
                raise TemporaryFailure(f"SMTP login at {where} failed: {e}") from None
        return conn

    def close(self) -> None:
        if self.conn is not None:
            _quit(self.conn)
            self.conn = None

    # -- sending -------------------------------------------------------------------------
    def _throttle(self) -> None:
        per_minute = self.cfg.per_minute
        if per_minute <= 0:
            return
        now = self.monotonic()
        while self._sent_times and now - self._sent_times[0] >= 60.0:
            self._sent_times.popleft()
        if len(self._sent_times) >= per_minute:
            wait = 60.0 - (now - self._sent_times[0])
            if wait > 0:
                log.info("rate limit (%d/min): waiting %.1f s", per_minute, wait)
                self.sleep(wait)
                self._stopping()
            self._sent_times.popleft()

    def wait_turn(self) -> None:
        """Wait until the rate limit lets the next mail go (``Stopping`` if ``serve`` stops
        meanwhile); ``send`` then goes at once."""
        self._throttle()

    def _stopping(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopping("mailroll is stopping: kept for the next run", attempts=0)

    def send(self, msg: EmailMessage, to: list[str]) -> Outcome:
        """Hand ``msg`` to the server for ``to``. Retries temporary failures with backoff.

        Raises PermanentFailure (5xx), TemporaryFailure (still 4xx / unreachable after
        ``smtp.retries`` attempts) or AmbiguousFailure (broke after the data was sent).
        """
        if self.unavailable:
            # the server could not be reached for an earlier mail of this batch: don't hammer it
            raise TemporaryFailure(self.unavailable, attempts=0)
        attempts = max(1, self.cfg.retries)
        for attempt in range(1, attempts + 1):
            try:
                self._throttle()
                refused = self._send_once(msg, to)
                self._sent_times.append(self.monotonic())
                return Outcome(attempt, refused)
            except Stopping:
                raise
            except TemporaryFailure as e:
                self.close()
                e.attempts = attempt
                if attempt >= attempts:
                    if e.connecting:
                        self.unavailable = e.reason
                    raise
                delay = self.cfg.backoff_s * (2 ** (attempt - 1))
                log.warning(
                    "sending to %s failed (%s); attempt %d of %d in %.1f s",
                    ", ".join(to),
                    e.reason,
                    attempt + 1,
                    attempts,
                    delay,
                )
                self.sleep(delay)
                self._stopping()
            except SendFailure as e:
                e.attempts = attempt
                if isinstance(e, AmbiguousFailure):
                    self.close()
                raise
        raise AssertionError("unreachable")

    def _send_once(self, msg: EmailMessage, to: list[str]) -> dict[str, str]:
        if self.conn is None:
            try:
                self.conn = self._connect()
            except TemporaryFailure as e:
                e.connecting = True
                raise
        conn = self.conn
        sender = self.cfg.from_addr
        data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
        try:
            code, resp = conn.mail(
                sender, ["SMTPUTF8"] if _needs_smtputf8(to) and conn.has_extn("smtputf8") else []
            )
            if code != 250:
                _rset(conn)
                raise _classify(code, resp, f"MAIL FROM:<{sender}>")
            refused: dict[str, str] = {}
            for rcpt in to:
                code, resp = conn.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = f"{code} {_reply_text(resp)}"
            if len(refused) == len(to):
                _rset(conn)
                codes = {int(v.split()[0]) for v in refused.values()}
                what = "; ".join(f"{k}: {v}" for k, v in refused.items())
                if all(400 <= c < 500 for c in codes):
                    raise TemporaryFailure(f"every recipient was refused for now ({what})", min(codes))
                raise PermanentFailure(f"every recipient was refused ({what})", max(codes))
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            raise TemporaryFailure(f"the SMTP connection broke before the message was sent: {e}") from None
        except UnicodeEncodeError:
            _rset(conn)
            raise PermanentFailure(
                f"the address {', '.join(to)} has non-ASCII characters and the SMTP server does "
                f"not accept those (no SMTPUTF8): fix the address in the roster"
            ) from None
        try:
            code, resp = conn.data(data)
        except smtplib.SMTPDataError as e:  # DATA itself refused: nothing was delivered
            _rset(conn)
            raise _classify(e.smtp_code, e.smtp_error, "DATA") from None
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            raise AmbiguousFailure(
                f"the SMTP connection broke after the message was sent ({e}); it may or may not "
                f"have been delivered, so it is not sent again"
            ) from None
        if code != 250:
            if code == 421:
                self.close()
            else:
                _rset(conn)
            raise _classify(code, resp, "after the message data")
        return refused


def _login_plain_utf8(conn: smtplib.SMTP, user: str, password: str) -> None:
    import base64

    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, resp = conn.docmd("AUTH", f"PLAIN {token}")
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, resp)


def _needs_smtputf8(addrs: list[str]) -> bool:
    return any(not a.isascii() for a in addrs)


def _rset(conn: smtplib.SMTP) -> None:
    try:
        conn.rset()
    except (smtplib.SMTPException, OSError):
        pass


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        try:
            conn.close()
        except OSError:
            pass
