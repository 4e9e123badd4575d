"""Sending mail: composing, SMTP, and the outbox record that makes every mail go at most once.

At most once (docs/DESIGN.md, "Outgoing mail")
------------------------------------------------
Every receipt and reminder is first written to ``outbox`` with status ``sending`` and
committed, *then* handed to SMTP, then the row is updated:

==========  ===========================================================================
status      meaning
==========  ===========================================================================
sending     being handed to the SMTP server right now (or mailroll died meanwhile)
sent        the server accepted it (``sent_at``; refused recipients, if any, in ``error``)
deferred    temporary failure (4xx, server unreachable) after ``smtp.retries`` attempts:
            tried again on the next run, with the same Message-ID
failed      permanent failure (5xx): never tried again; ``error`` says why
unknown     mailroll stopped between handing it over and recording the answer (found in
            ``sending`` at the next start, or the connection broke after the message data
            was sent): **not sent again** - a reminder twice looks careless
skipped     a deferred reminder overtaken by a later stage before it could be sent
==========  ===========================================================================

The unique indexes ``outbox_reminder_once (unit, stage)`` and ``outbox_receipt_once
(answers)`` make "never twice" hold in the database itself, also against a second process.

Headers
-------
Every mail has a Message-ID we make (``<...mailroll-receipt@domain>`` / ``...mailroll-reminder``,
stored in ``outbox.smtp_message_id`` to match bounces and replies), ``Auto-Submitted:
auto-replied`` (receipts) or ``auto-generated`` (reminders) per RFC 3834, ``X-Mailroll:
receipt|reminder``, and ``X-Auto-Response-Suppress: All`` (Exchange then sends no out-of-office
answer). We do **not** set ``Precedence: bulk``: these are personal mails to one unit, and some
providers score ``bulk`` as spam.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import socket
import sqlite3
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Our Message-IDs: '<3f2a...(20 hex).mailroll-receipt@126.com>'
OUR_MESSAGE_ID = re.compile(r"[\w.\-]*\.mailroll-(?:receipt|reminder)@[\w.\-]+", re.ASCII)


# --------------------------------------------------------------------------------------------
# Failures


class SendFailure(Exception):
    """A mail could not be handed over. ``kind``: 'temporary', 'permanent' or 'ambiguous'."""

    kind = "temporary"

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TemporaryFailure(SendFailure):
    kind = "temporary"


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
    The rate limit is ``smtp.per_minute`` mails in any 60 s.
    """

    def __init__(
        self,
        smtp,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        sent_times: deque | None = None,
    ):
        self.cfg = smtp
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
            except Exception as e:  # ConfigError: the variable is missing; keep the mail for later
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
            self._sent_times.popleft()

    def send(self, msg: EmailMessage, to: list[str]) -> Outcome:
        """Hand ``msg`` to the server for ``to``. Retries temporary failures with backoff.

        Raises PermanentFailure (5xx), TemporaryFailure (still 4xx / unreachable after
        ``smtp.retries`` attempts) or AmbiguousFailure (broke after the data was sent).
        """
        if self.unavailable:
            # the server could not be reached for an earlier mail of this batch: don't hammer it
            e = TemporaryFailure(self.unavailable)
            e.attempts = 0
            raise e
        attempts = max(1, self.cfg.retries)
        for attempt in range(1, attempts + 1):
            try:
                self._throttle()
                refused = self._send_once(msg, to)
                self._sent_times.append(self.monotonic())
                return Outcome(attempt, refused)
            except TemporaryFailure as e:
                self.close()
                e.attempts = attempt
                if attempt >= attempts:
                    if getattr(e, "connecting", False):
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


# --------------------------------------------------------------------------------------------
# Composing


def new_message_id(config, kind: str) -> str:
    """A Message-ID (without <>) that says it is ours: '...mailroll-receipt@126.com'."""
    domain = config.smtp.from_addr.rsplit("@", 1)[-1] if "@" in config.smtp.from_addr else socket.getfqdn()
    # short enough that the header is never folded: '<20 hex>.mailroll-reminder@domain'
    return f"{uuid.uuid4().hex[:20]}.mailroll-{kind}@{domain}"


def is_our_message_id(message_id: str | None) -> bool:
    return bool(message_id and OUR_MESSAGE_ID.fullmatch(message_id.strip().strip("<>")))


def compose(
    config,
    *,
    kind: str,
    to: list[str],
    subject: str,
    body: str,
    message_id: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    now: datetime | None = None,
    cc: list[str] | None = None,
) -> EmailMessage:
    """The mail as it goes out (UTF-8 text). ``cc``: copies, shown in a Cc header."""
    msg = EmailMessage()
    msg["From"] = formataddr((config.campaign.name, config.smtp.from_addr))
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(config.campaign.timezone))
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
        refs = [r.strip("<>") for r in (references or []) if r] + [in_reply_to.strip("<>")]
        seen: list[str] = []
        for r in refs:
            if r not in seen:
                seen.append(r)
        msg["References"] = " ".join(f"<{r}>" for r in seen[-20:])
    msg["Auto-Submitted"] = "auto-replied" if kind == "receipt" else "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Mailroll"] = kind
    msg.set_content(body, cte="base64")  # 7-bit safe for any server
    return msg


def template_env(config):
    """Jinja2 environment: ``reminders.templates_dir``, then the config's folder, then built-in."""
    import jinja2

    dirs = []
    if config.reminders.templates_dir:
        dirs.append(str(config.reminders.templates_dir))
    dirs.append(str(Path(config.path).parent))
    dirs.append(str(TEMPLATES))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs, encoding="utf-8"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(config, name: str, **context) -> tuple[str, str]:
    """Render template ``name`` (e.g. 'reminder.j2'): first line 'Subject: ...', a blank line,
    then the body. Returns (subject, body)."""
    text = template_env(config).get_template(name).render(**context)
    head, _, body = text.partition("\n")
    if not head.lower().startswith("subject:"):
        raise ValueError(f"template {name} must start with a 'Subject: ...' line")
    return " ".join(head[len("subject:") :].split()), body.lstrip("\n")


# --------------------------------------------------------------------------------------------
# The outbox record


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds")


def reserve(
    conn: sqlite3.Connection,
    *,
    kind: str,
    unit: str | None,
    stage: str | None,
    answers: int | None,
    to: list[str],
    subject: str,
    body: str,
    message_id: str,
    now: datetime,
) -> int | None:
    """Commit the outbox row (status ``sending``) before SMTP. None if this mail exists already
    (same unit and stage, or same message answered): then it must not be sent."""
    try:
        cur = conn.execute(
            "INSERT INTO outbox (kind, unit, stage, answers, to_addrs, subject, body, smtp_message_id,"
            " status, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sending', 0, ?)",
            (
                kind,
                unit,
                stage,
                answers,
                json.dumps(to, ensure_ascii=False),
                subject,
                body,
                message_id,
                _now_text(now),
            ),
        )
    except sqlite3.IntegrityError:
        return None
    return cur.lastrowid


def reclaim(conn: sqlite3.Connection, row_id: int, *, to: list[str], subject: str, body: str) -> bool:
    """Take a ``deferred`` row back to ``sending`` for another try (fresh content)."""
    cur = conn.execute(
        "UPDATE outbox SET status = 'sending', to_addrs = ?, subject = ?, body = ? "
        "WHERE id = ? AND status = 'deferred'",
        (json.dumps(to, ensure_ascii=False), subject, body, row_id),
    )
    return cur.rowcount == 1


def finish(
    conn: sqlite3.Connection, row_id: int, status: str, *, attempts: int, error: str | None, now: datetime
) -> None:
    conn.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + ?, error = ?, "
        "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
        (status, attempts, error, status, _now_text(now), row_id),
    )


def recover_interrupted(conn: sqlite3.Connection) -> int:
    """Rows left in ``sending`` by a process that died: ``unknown``, never sent again.

    Call with ``lock.send_lock`` held (then nobody else is sending)."""
    cur = conn.execute(
        "UPDATE outbox SET status = 'unknown', error = 'mailroll stopped while handing this mail "
        "to the SMTP server; it may or may not have arrived, so it is not sent again' "
        "WHERE status = 'sending'"
    )
    if cur.rowcount:
        log.warning(
            "%d outgoing mail(s) were interrupted by a crash: marked 'unknown', not re-sent", cur.rowcount
        )
    return cur.rowcount


def deliver(
    conn: sqlite3.Connection, mailer: Mailer, row_id: int, msg: EmailMessage, to: list[str], now: datetime
) -> tuple[str, str | None]:
    """Send a reserved row's message and record the outcome. Returns (status, error)."""
    try:
        outcome = mailer.send(msg, to)
    except SendFailure as e:
        status = {"temporary": "deferred", "permanent": "failed", "ambiguous": "unknown"}[e.kind]
        finish(conn, row_id, status, attempts=getattr(e, "attempts", 1), error=e.reason, now=now)
        log.warning("%s to %s: %s (%s)", msg["X-Mailroll"], ", ".join(to), status, e.reason)
        return status, e.reason
    error = None
    if outcome.refused:
        error = "refused: " + "; ".join(f"{k} ({v})" for k, v in outcome.refused.items())
    finish(conn, row_id, "sent", attempts=outcome.attempts, error=error, now=now)
    log.info("%s sent to %s", msg["X-Mailroll"], ", ".join(to))
    return "sent", error


def existing(
    conn: sqlite3.Connection,
    *,
    kind: str,
    unit: str | None = None,
    stage: str | None = None,
    answers: int | None = None,
) -> tuple[int, str, str] | None:
    """The outbox row (id, status, smtp_message_id) for this reminder stage or this receipt."""
    if kind == "receipt":
        row = conn.execute(
            "SELECT id, status, smtp_message_id FROM outbox WHERE kind = 'receipt' AND answers = ?",
            (answers,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT id, status, smtp_message_id FROM outbox WHERE kind = 'reminder' AND unit = ? AND stage = ?",
            (unit, stage),
        ).fetchone()
    return tuple(row) if row else None


def send_one(
    conn: sqlite3.Connection,
    config,
    mailer: Mailer,
    *,
    kind: str,
    to: list[str],
    subject: str,
    body: str,
    now: datetime,
    unit: str | None = None,
    stage: str | None = None,
    answers: int | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    cc: list[str] | None = None,
) -> tuple[str, str | None] | None:
    """Record and send one receipt or reminder, at most once.

    ``cc`` addresses get a copy (Cc header); the outbox row's ``to_addrs`` lists every
    recipient, To and Cc, so that a bounce from any of them is matched.

    A new mail gets a row in ``sending`` (committed) before SMTP; a ``deferred`` one is taken
    back and tried again with its Message-ID; anything else (sent, failed, unknown, skipped,
    or a row another process is sending) is left alone and None is returned.
    """
    cc = [a for a in (cc or []) if a not in to]
    everyone = list(to) + cc
    row = existing(conn, kind=kind, unit=unit, stage=stage, answers=answers)
    if row is None:
        message_id = new_message_id(config, kind)
        row_id = reserve(
            conn,
            kind=kind,
            unit=unit,
            stage=stage,
            answers=answers,
            to=everyone,
            subject=subject,
            body=body,
            message_id=message_id,
            now=now,
        )
        if row_id is None:
            return None
    else:
        row_id, status, message_id = row
        if status != "deferred" or not reclaim(conn, row_id, to=everyone, subject=subject, body=body):
            return None
    msg = compose(
        config,
        kind=kind,
        to=to,
        subject=subject,
        body=body,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        cc=cc,
    )  # Date: real time
    return deliver(conn, mailer, row_id, msg, everyone, now)
