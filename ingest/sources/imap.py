"""An IMAP folder as the mailbox (the campaign's 126.com / 163.com inbox in production).

What it does, and why:

* **Never changes the mail.** Messages are read with ``BODY.PEEK`` (no ``\\Seen``); the folder is
  opened read-only (EXAMINE) unless the post action needs to write. The post action flags a
  message with a keyword, or moves it (MOVE when the server has it, else COPY + keyword); it
  never deletes or expunges.
* **IMAP ID after login.** NetEase (126/163/yeah) answers SELECT with "Unsafe Login" to clients
  that do not say who they are.
* **Incremental.** ``mailbox_state`` keeps (UIDVALIDITY, last UID) per source. A poll fetches
  UIDs above the watermark plus the messages of this source recorded as ``failed`` (retried).
  When UIDVALIDITY changes every UID is void: a warning is logged and everything is fetched
  again; the pipeline records the re-fetched messages as duplicates (same Message-ID and
  content), so nothing is counted twice.
* **Arrival time is INTERNALDATE** (when the server received the message), never the sender's
  Date header.
* **Bounded memory.** Messages up to ``limits.stream_threshold_bytes`` are fetched whole in
  batches (about 20 messages or 20 MB per FETCH). Bigger ones are fetched per MIME part: the
  header and BODYSTRUCTURE first, then each leaf part; big leaves are fetched in chunks with
  partial FETCH (``BODY.PEEK[2]<0.4194304>``), decoded on the fly (base64, quoted-printable) into
  a spool file. A 300 MB video never sits in memory.
* **Overlap.** A prefetch thread fetches the next few messages while the pipeline checks the
  current one (the connection is shared under a lock, one command at a time).
* **Network faults.** Every IMAP command runs through ``_op``: on a broken or stalled connection
  (socket timeout ``mailbox.timeout_s``) it reconnects with backoff and repeats the command
  (every command used is idempotent; a partial fetch resumes at its offset). When the retries
  are used up it raises ``MailboxError`` saying what to check; the caller retries the poll later.
"""
from __future__ import annotations

import ast
import binascii
import hashlib
import imaplib
import logging
import os
import queue
import re
import socket
import sqlite3
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ingest import mime
from ingest.config import Limits, Mailbox
from ingest.db import transaction
from ingest.model import Envelope, ExtractedPart, Headers, ParsedMessage
from ingest.sources.base import FetchedMessage, MailboxError
from ingest.sizes import human_size

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_MESSAGES = 20                 # small messages per FETCH command
BATCH_BYTES = 20 * 1024 * 1024      # ... or this many bytes, whichever comes first
SIZE_BATCH = 1000                   # UIDs per FETCH (RFC822.SIZE INTERNALDATE)
CHUNK_BYTES = 4 * 1024 * 1024       # partial FETCH size for streamed parts
PREFETCH = 4                        # messages fetched ahead while the pipeline works
WHOLE_PART_MAX = 1024 * 1024        # parts of a streamed message up to this are fetched whole
TEXT_PART_MAX = 4 * 1024 * 1024     # a text body part bigger than this is kept as a file

try:  # the version we announce with IMAP ID
    from importlib.metadata import version as _version

    CLIENT_VERSION = _version("mailroll")
except Exception:  # noqa: BLE001 - not installed (running from the source tree)
    CLIENT_VERSION = "0"
CLIENT_ID = {"name": "mailroll", "version": CLIENT_VERSION, "vendor": "mailroll",
             "os": "linux", "support-url": "https://github.com/mailroll/mailroll"}


# ---------------------------------------------------------------------------------------------
# Errors and retries
# ---------------------------------------------------------------------------------------------

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


def _imap_errors() -> tuple[type[BaseException], ...]:
    from imapclient.exceptions import ProtocolError

    # imaplib.IMAP4.abort: the connection broke (EOF, garbled response); ProtocolError: a reply
    # imapclient could not parse, e.g. cut off in the middle; OSError: refused, reset, timeout.
    return (OSError, imaplib.IMAP4.abort, ProtocolError, EOFError)


class _Stopped(Exception):
    """The consumer closed fetch_new: the prefetch thread stops (internal)."""


_END = object()  # end of the prefetch queue


def _drop_spools(fetched: FetchedMessage) -> None:
    """Delete the spool files of a fetched message nobody will process."""
    for part in (fetched.parsed.parts if fetched.parsed else []):
        if part.spool is not None:
            try:
                part.spool.unlink(missing_ok=True)
            except OSError:
                pass


def with_retries(fn: Callable[[], T], attempts: int = 3, backoff_s: float = 1.0, what: str = "",
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` until it succeeds, at most ``attempts`` times, waiting ``backoff_s``, then twice
    that, ... between tries. Retries ``MailboxError`` unless its ``transient`` is False (a wrong
    password does not get better by asking again)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except MailboxError as e:
            if attempt >= attempts or getattr(e, "transient", True) is False:
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("%s failed (%s); trying again in %.1f s", what or "mailbox access", e, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _mailbox_error(text: str, transient: bool = True) -> MailboxError:
    e = MailboxError(text)
    e.transient = transient  # type: ignore[attr-defined]
    return e


def _reason(e: BaseException, timeout_s: float) -> str:
    """A network error in words."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the server running, and is mailbox.port right?)"
    if isinstance(e, socket.gaierror):
        return "the host name could not be resolved (check mailbox.host)"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout_s:g} s"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate could not be verified ({e.verify_message})"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed ({e.reason or e}); is mailbox.tls right for this port?"
    if isinstance(e, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(e, (EOFError, imaplib.IMAP4.abort)) or "EOF" in str(e):
        return f"the connection was closed by the server ({e})"
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _server_text(e: BaseException) -> str:
    """The server's own words from an imapclient error (which often holds a bytes repr)."""
    text = str(e).strip()
    if text[:2] in ("b'", 'b"'):
        try:
            text = ast.literal_eval(text).decode("utf-8", "replace")
        except (ValueError, SyntaxError, AttributeError):
            pass
    return text.strip()


# ---------------------------------------------------------------------------------------------
# Transfer-encoding decoders for streamed parts
# ---------------------------------------------------------------------------------------------

_B64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DROP = bytes(b for b in range(256) if b not in _B64_KEEP)


class StreamDecoder:
    """Undo a Content-Transfer-Encoding chunk by chunk, with bounded carry-over.

    base64: incomplete 4-character quanta are carried to the next chunk; characters outside the
    alphabet (line breaks, junk) are dropped. quoted-printable: the text after the last line
    break is carried (a soft line break or ``=XX`` escape may be cut by the chunk boundary).
    Anything else (7bit, 8bit, binary, unknown) passes through."""

    QP_CARRY_MAX = 64 * 1024

    def __init__(self, encoding: str | None):
        self.encoding = (encoding or "7bit").strip().lower()
        self.carry = b""
        self.damaged = False

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            data = self.carry + data.translate(None, _B64_DROP)
            cut = len(data) - len(data) % 4
            self.carry = data[cut:]
            return self._b64(data[:cut])
        if self.encoding == "quoted-printable":
            data = self.carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) > self.QP_CARRY_MAX:  # no line breaks at all: broken QP
                cut = len(data) - 2
                while cut > 0 and b"=" in data[cut:]:
                    cut -= 1
            self.carry = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data

    def finish(self) -> bytes:
        data, self.carry = self.carry, b""
        if not data:
            return b""
        if self.encoding == "base64":
            data = data.rstrip(b"=")
            if len(data) % 4 == 1:  # a lone character cannot encode anything
                data, self.damaged = data[:-1], True
            return self._b64(data + b"=" * (-len(data) % 4))
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(data)
        return data

    def _b64(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            # padding in the middle (two base64 blobs glued together): decode quantum by quantum
            self.damaged = True
            out = bytearray()
            for i in range(0, len(data), 4):
                try:
                    out += binascii.a2b_base64(data[i:i + 4])
                except binascii.Error:
                    pass
            return bytes(out)


def decode_all(data: bytes, encoding: str | None) -> bytes:
    d = StreamDecoder(encoding)
    return d.feed(data) + d.finish()


# ---------------------------------------------------------------------------------------------
# BODYSTRUCTURE
# ---------------------------------------------------------------------------------------------

@dataclass
class Leaf:
    section: str           # IMAP part number, '1', '2.1', ...
    ctype: str             # 'application/pdf'
    encoding: str | None   # Content-Transfer-Encoding
    size: int              # encoded size in octets
    inner: Any = None      # message/rfc822: the encapsulated message's BODYSTRUCTURE


def _s(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("ascii", "replace")
    return "" if v is None else str(v)


def leaves(body: Any, prefix: str = "", top: bool = True) -> Iterator[Leaf]:
    """The leaf parts of a BODYSTRUCTURE (imapclient ``BodyData``), with their section numbers."""
    from imapclient.response_types import BodyData

    if not isinstance(body, BodyData):
        body = BodyData.create(body)
    if body.is_multipart:
        for i, child in enumerate(body[0], start=1):
            yield from leaves(child, f"{prefix}{i}.", top=False)
        return
    section = (prefix + "1") if top else prefix[:-1]
    ctype = f"{_s(body[0]).lower()}/{_s(body[1]).lower()}"
    try:
        size = int(body[6] or 0)
    except (TypeError, ValueError, IndexError):
        size = 0
    inner = body[8] if ctype in ("message/rfc822", "message/global") and len(body) > 8 else None
    yield Leaf(section, ctype, _s(body[5]).lower() or None, size, inner)


# ---------------------------------------------------------------------------------------------
# The source
# ---------------------------------------------------------------------------------------------

class ImapSource:
    """One IMAP folder. Use as a context manager: connects (with retries) on enter."""

    def __init__(self, mailbox: Mailbox, limits: Limits, spool_dir: Path, *, attempts: int | None = None,
                 backoff_s: float | None = None):
        self.mailbox = mailbox
        self.limits = limits
        self.spool_dir = Path(spool_dir)
        self.attempts = max(1, attempts if attempts is not None else getattr(mailbox, "retries", 3))
        self.backoff_s = backoff_s if backoff_s is not None else getattr(mailbox, "retry_backoff_s", 1.0)
        self.name = mailbox.source_name
        self.where = f"{mailbox.host}:{mailbox.port}"
        self.seen = 0                       # messages in the folder (EXISTS)
        self.uidvalidity: int | None = None
        self.capabilities: set[str] = set()
        self.sent_id = False
        self._client = None
        self._pending: list[tuple[int, bool]] | None = None   # (uid, retry) from count_new
        self._handed: list[int] = []        # UIDs handed out this poll, in order
        self._done: set[int] = set()        # ... of which committed
        self._frontier = 0                  # _handed[:_frontier] are behind the watermark
        self._post_folder_ready = False
        self._lock = threading.RLock()      # one IMAP command at a time (prefetch thread + caller)

    # -- connection --------------------------------------------------------------------------
    def __enter__(self) -> "ImapSource":
        with_retries(self._connect, self.attempts, self.backoff_s, f"connecting to {self.where}")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - already broken: just drop the socket
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    @property
    def readonly(self) -> bool:
        return self.mailbox.post_action not in ("flag", "move")

    def _connect(self) -> None:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError, LoginError

        m = self.mailbox
        password = m.password()  # ConfigError (exit 2) when the variable is not set
        self.close()
        try:
            context = ssl.create_default_context() if m.tls else None
            client = IMAPClient(m.host, port=m.port, ssl=m.tls, ssl_context=context, timeout=m.timeout_s)
        except _imap_errors() as e:
            reason = _reason(e, m.timeout_s)
            if not m.tls and isinstance(e, (socket.timeout, TimeoutError)):
                # an IMAPS port waits for a TLS hello and never greets a plain client
                reason += " (is mailbox.tls right for this port? IMAPS, usually port 993, needs tls = true)"
            raise _mailbox_error(f"cannot connect to the mailbox at {self.where}: {reason}") from e
        client.normalise_times = False  # INTERNALDATE as aware datetimes
        _quiet_imaplib(client)
        try:
            try:
                client.login(m.username, password)
            except LoginError as e:
                raise _mailbox_error(
                    f"login failed for user {m.username} at {self.where}: check mailbox.username and "
                    f"the password in ${m.password_env} (server said: {_server_text(e)})",
                    transient=False) from e
            self.capabilities = {_s(c).upper() for c in client.capabilities()}
            if "ID" in self.capabilities:
                try:
                    client.id_(CLIENT_ID)
                    self.sent_id = True
                except IMAPClientError as e:
                    log.warning("the server refused the IMAP ID command: %s", _server_text(e))
            try:
                info = client.select_folder(m.folder, readonly=self.readonly)
            except IMAPClientError as e:
                said = _server_text(e)
                hint = "check mailbox.folder"
                if "unsafe login" in said.lower():  # NetEase 126/163/yeah
                    hint = ("NetEase refuses this login: turn on IMAP/SMTP in the mailbox's web settings "
                            "and use the authorization code (授权码) it gives as the password"
                            + ("" if self.sent_id else "; the server did not accept the IMAP ID command"))
                raise _mailbox_error(f"cannot open folder {m.folder!r} at {self.where}: {said} ({hint})",
                                     transient=False) from e
        except MailboxError:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass
            raise
        except _imap_errors() as e:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass
            raise _mailbox_error(f"the connection to {self.where} broke while logging in: {_reason(e, m.timeout_s)}") from e
        uidvalidity = int(info.get(b"UIDVALIDITY") or 0)
        if self.uidvalidity is not None and uidvalidity != self.uidvalidity:
            client.shutdown()
            raise _mailbox_error(
                f"the UIDVALIDITY of {m.folder!r} changed during the poll ({self.uidvalidity} -> "
                f"{uidvalidity}); the next poll fetches the folder again")
        self.uidvalidity = uidvalidity
        self.seen = int(info.get(b"EXISTS") or 0)
        self._client = client
        log.debug("connected to %s as %s, folder %s (UIDVALIDITY %s, %d messages)",
                  self.where, m.username, m.folder, uidvalidity, self.seen)

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
                if getattr(e, "transient", True) is False:
                    raise
                last = e
            except _imap_errors() as e:
                last = e
                log.warning("connection to %s lost while %s: %s", self.where, what,
                            _reason(e, self.mailbox.timeout_s))
                try:
                    if self._client is not None:
                        self._client.shutdown()
                except Exception:  # noqa: BLE001
                    pass
                self._client = None
            if attempt < attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        reason = str(last) if isinstance(last, MailboxError) else _reason(last, self.mailbox.timeout_s)
        tries = f"{attempts} tries" if attempts > 1 else "1 try"
        raise _mailbox_error(f"lost the connection to {self.where} while {what} ({tries}): {reason}") from last

    # -- state -------------------------------------------------------------------------------
    @staticmethod
    def _conn(db: Any) -> sqlite3.Connection:
        return db if isinstance(db, sqlite3.Connection) else db.conn

    def _state(self, conn: sqlite3.Connection) -> int:
        """The watermark for the current UIDVALIDITY (resetting it when UIDVALIDITY changed)."""
        row = conn.execute("SELECT uidvalidity, last_uid FROM mailbox_state WHERE source = ?",
                           (self.name,)).fetchone()
        if row and row[0] == self.uidvalidity:
            return int(row[1])
        if row and row[0] is not None:
            log.warning("the UIDVALIDITY of %s changed (%s -> %s): the server renumbered its "
                        "messages, so every message is fetched again (the ones already recorded "
                        "become duplicates)", self.name, row[0], self.uidvalidity)
        self._save(conn, 0, force=True)
        return 0

    def _save(self, conn: sqlite3.Connection, last_uid: int, force: bool = False) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with transaction(conn):
            if force:
                conn.execute(
                    "INSERT INTO mailbox_state (source, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
                    "last_uid = excluded.last_uid, updated_at = excluded.updated_at",
                    (self.name, self.uidvalidity, last_uid, now))
            else:
                conn.execute(
                    "UPDATE mailbox_state SET last_uid = MAX(last_uid, ?), updated_at = ? "
                    "WHERE source = ? AND uidvalidity = ?", (last_uid, now, self.name, self.uidvalidity))

    def _pending_uids(self, conn: sqlite3.Connection) -> list[tuple[int, bool]]:
        """(uid, is_retry) to fetch, in UID order."""
        last = self._state(conn)
        # 'N:*' always matches the highest UID, even when it is below N: filter.
        found = self._op(lambda c: c.search(["UID", f"{last + 1}:*"]), "searching for new messages")
        uids = {int(u): False for u in found if int(u) > last}
        prefix = f"{self.uidvalidity}:"
        for (key,) in conn.execute("SELECT source_key FROM messages WHERE source = ? AND status = 'failed'",
                                   (self.name,)):
            if key.startswith(prefix) and key[len(prefix):].isdigit():
                uids.setdefault(int(key[len(prefix):]), True)
        return sorted(uids.items())

    def count_new(self, db: Any) -> int | None:
        self._pending = self._pending_uids(self._conn(db))
        return len(self._pending)

    # -- fetching ----------------------------------------------------------------------------
    def fetch_new(self, db: Any) -> Iterator[FetchedMessage]:
        """Hand out the pending messages in UID order.

        A background thread fetches ahead (at most PREFETCH messages) while the pipeline checks
        and stores the current one, so network and processing overlap. The IMAP connection is
        shared under a lock, one command at a time; the database is only touched here, in the
        caller's thread. Closing the generator early stops the thread and deletes the spool files
        of messages fetched but never handed out."""
        conn = self._conn(db)
        pending = self._pending if self._pending is not None else self._pending_uids(conn)
        self._pending = None
        self._handed, self._done, self._frontier = [], set(), 0
        uids = [u for u, _ in pending]
        if not uids:
            return
        q: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(uids, q, stop), daemon=True,
                                  name="imap-prefetch")
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                self._handed.append(item.envelope.uid)
                yield item
        finally:
            stop.set()
            while worker.is_alive() or not q.empty():
                try:
                    item = q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(item, FetchedMessage):
                    _drop_spools(item)
            worker.join()

    def _produce(self, uids: list[int], q: "queue.Queue", stop: threading.Event) -> None:
        try:
            for fetched in self._fetch_all(uids, stop):
                if stop.is_set():
                    _drop_spools(fetched)
                    return
                q.put(fetched)
            q.put(_END)
        except _Stopped:
            return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            q.put(e)

    def _fetch_all(self, uids: list[int], stop: threading.Event) -> Iterator[FetchedMessage]:
        for start in range(0, len(uids), SIZE_BATCH):
            chunk = uids[start:start + SIZE_BATCH]
            meta = self._op(lambda c: c.fetch(chunk, ["RFC822.SIZE", "INTERNALDATE"]),
                            "reading message sizes")
            small: list[tuple[int, int, datetime]] = []
            for uid in chunk:
                if stop.is_set():
                    raise _Stopped()
                d = meta.get(uid)
                if d is None:  # expunged since the search
                    continue
                size = int(d.get(b"RFC822.SIZE") or 0)
                when = _utc(d.get(b"INTERNALDATE"))
                if size > self.limits.stream_threshold_bytes:
                    yield from self._flush(small)
                    small = []
                    yield self._big(uid, size, when, stop)
                else:
                    small.append((uid, size, when))
                    if len(small) >= BATCH_MESSAGES or sum(s for _, s, _ in small) >= BATCH_BYTES:
                        yield from self._flush(small)
                        small = []
            yield from self._flush(small)

    def _envelope(self, uid: int, size: int, when: datetime) -> Envelope:
        return Envelope(source=self.name, key=f"{self.uidvalidity}:{uid}", received_at=when,
                        size=size, uid=uid)

    def _flush(self, batch: list[tuple[int, int, datetime]]) -> Iterator[FetchedMessage]:
        """Fetch small messages together. When a connection breaks under a batch, the batch is
        halved for the next try (a link that drops every few hundred kB still lets single
        messages through); a single message gets the full number of tries."""
        todo = list(batch)
        size = len(todo)
        while todo:
            part = todo[:size]
            uids = [u for u, _, _ in part]
            what = f"fetching message {uids[0]}" if len(uids) == 1 else f"fetching messages {uids[0]}-{uids[-1]}"
            try:
                data = self._op(lambda c: c.fetch(uids, ["BODY.PEEK[]"]), what,
                                attempts=1 if len(uids) > 1 else None)
            except MailboxError as e:
                if len(uids) == 1 or getattr(e, "transient", True) is False:
                    raise
                size = max(1, len(uids) // 2)
                continue
            for uid, msize, when in part:
                d = data.get(uid)
                if d is None:  # expunged meanwhile
                    continue
                raw = d.get(b"BODY[]")
                env = self._envelope(uid, msize, when)
                if raw is None:
                    yield FetchedMessage(env, error="the server returned no content for this message")
                else:
                    # parsed here, in the prefetch thread, while the pipeline works on the previous one
                    raw = bytes(raw)
                    try:
                        parsed = mime.parse_message(raw, self.limits)
                    except Exception:  # noqa: BLE001 - the pipeline parses again and records why
                        log.exception("parsing message %s ahead failed", env.key)
                        parsed = None
                    # raw only when the parser is to try again: never hold a message twice
                    yield FetchedMessage(env, raw=None if parsed is not None else raw, parsed=parsed)
            del data
            todo = todo[len(part):]

    def _big(self, uid: int, size: int, when: datetime, stop: threading.Event | None = None) -> FetchedMessage:
        env = self._envelope(uid, size, when)
        streamer = _Streamer(self, uid, stop)
        if size > self.limits.max_message_bytes:
            return FetchedMessage(env, error=(
                f"the message is {human_size(size)}, over the limit of {human_size(self.limits.max_message_bytes)} "
                "(limits.max_message_bytes): not fetched"), header_bytes=streamer.header_only())
        try:
            parsed = streamer.run()
        except (MailboxError, _Stopped):
            streamer.drop_spools()
            raise
        except Exception as e:  # noqa: BLE001 - a bug or a weird structure: record, don't stop the poll
            log.exception("streaming message %s failed", env.key)
            streamer.drop_spools()
            return FetchedMessage(env, error=f"the message could not be fetched part by part: {type(e).__name__}: {e}")
        return FetchedMessage(env, parsed=parsed)

    # -- after the message is stored -----------------------------------------------------------
    def committed(self, db: Any, envelope: Envelope) -> None:
        """Run the post action, then advance the watermark past this message. If the post action
        cannot reach the server, the error propagates and the watermark stays: the next poll
        fetches the message again, finds it recorded and runs the post action again."""
        conn = self._conn(db)
        uid = envelope.uid
        if uid is None:
            return
        row = conn.execute("SELECT status FROM messages WHERE source = ? AND source_key = ?",
                           (self.name, envelope.key)).fetchone()
        if row is not None and row[0] != "failed":
            self._post_action(uid)
        self._done.add(uid)
        self._advance(conn)

    def _advance(self, conn: sqlite3.Connection) -> None:
        """Move the watermark past the handed-out UIDs (in UID order) that are committed or
        recorded: a failed message is recorded and retried by its key, so it does not hold the
        watermark back; one not recorded at all (the pipeline stopped) does."""
        handed, pos = self._handed, self._frontier
        while pos < len(handed):
            uid = handed[pos]
            if uid not in self._done:
                row = conn.execute("SELECT 1 FROM messages WHERE source = ? AND source_key = ?",
                                   (self.name, f"{self.uidvalidity}:{uid}")).fetchone()
                if row is None:
                    break
            pos += 1
        if pos > self._frontier:
            self._frontier = pos
            self._save(conn, handed[pos - 1])

    def _post_action(self, uid: int) -> None:
        m = self.mailbox
        try:
            if m.post_action == "flag":
                self._op(lambda c: c.add_flags([uid], [m.post_flag]), f"flagging message {uid}")
            elif m.post_action == "move":
                if not self._post_folder_ready:
                    def ensure(c):
                        if not c.folder_exists(m.post_folder):
                            c.create_folder(m.post_folder)
                    self._op(ensure, f"creating folder {m.post_folder!r}")
                    self._post_folder_ready = True
                if "MOVE" in self.capabilities:
                    self._op(lambda c: c.move([uid], m.post_folder), f"moving message {uid}")
                else:  # no MOVE: copy and mark, never delete
                    self._op(lambda c: c.copy([uid], m.post_folder), f"copying message {uid}")
                    self._op(lambda c: c.add_flags([uid], [m.post_flag]), f"flagging message {uid}")
        except MailboxError:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. the server refuses keywords: the mail is safe anyway
            log.warning("post action %r on message %s failed: %s", m.post_action, uid, _server_text(e))

    # -- waiting for mail (serve) ----------------------------------------------------------------
    def idle_wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for new mail. True when the server signalled some (IDLE);
        False on timeout, or at once-per-timeout when the server lacks IDLE (plain wait)."""
        if self._client is None:
            with_retries(self._connect, self.attempts, self.backoff_s, f"connecting to {self.where}")
        if "IDLE" not in self.capabilities or not self.mailbox.idle:
            time.sleep(timeout_s)
            return False
        client = self._client
        try:
            client.idle()
            try:
                responses = client.idle_check(timeout=timeout_s)
            finally:
                client.idle_done()
        except _imap_errors() as e:
            self._client = None
            raise _mailbox_error(f"the connection to {self.where} broke while waiting for mail: "
                                 f"{_reason(e, self.mailbox.timeout_s)}") from e
        return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)


# ---------------------------------------------------------------------------------------------
# A big message, part by part
# ---------------------------------------------------------------------------------------------

class _Streamer:
    """Fetch one big message per MIME part and build its ParsedMessage (see module docstring)."""

    def __init__(self, source: ImapSource, uid: int, stop: threading.Event | None = None):
        self.src = source
        self.uid = uid
        self.stop = stop
        self.limits = source.limits
        self.parsed = ParsedMessage(headers=Headers())
        self.plain: list[str] = []
        self.html: list[str] = []
        self.digest = hashlib.sha256()
        self.count = 0
        self.spools: list[Path] = []

    def fetch(self, items: list[str], what: str) -> dict:
        if self.stop is not None and self.stop.is_set():
            raise _Stopped()
        data = self.src._op(lambda c: c.fetch([self.uid], items), what)
        if self.uid not in data:
            raise _mailbox_error(f"message {self.uid} disappeared from the folder while it was fetched")
        return data[self.uid]

    def header_only(self) -> bytes | None:
        """Just the header block (for a message too big to fetch: whose is it?)."""
        try:
            d = self.fetch(["BODY.PEEK[HEADER]"], f"reading the header of message {self.uid}")
        except _Stopped:
            return None
        return bytes(d.get(b"BODY[HEADER]") or b"")[: self.limits.max_header_bytes]

    def run(self) -> ParsedMessage:
        d = self.fetch(["BODY.PEEK[HEADER]", "BODYSTRUCTURE"], f"reading the structure of message {self.uid}")
        header = bytes(d.get(b"BODY[HEADER]") or b"")
        self.digest.update(header)
        self.parsed.headers = mime.parse_headers(header, self.limits)
        self.walk(d[b"BODYSTRUCTURE"], prefix="", top_header=header, origin="attachment",
                  parent=None, depth=0)
        self.finish()
        return self.parsed

    def walk(self, structure: Any, *, prefix: str, top_header: bytes | None, origin: str,
             parent: int | None, depth: int, loc: str = "") -> None:
        """Fetch the leaves under ``structure``; ``loc`` prefixes their locations
        ('forwarded message 1.eml/')."""
        found = list(leaves(structure, prefix, top=True))
        if len(found) + self.count > self.limits.max_parts:
            self.parsed.defects.append(f"the message has more than {self.limits.max_parts:,} MIME parts; "
                                       "the rest were not read")
            found = found[:max(0, self.limits.max_parts - self.count)]
        self.count += len(found)
        # the MIME headers of every leaf in one command (a single-part body's header is the message's)
        headers: dict[str, bytes] = {}
        wanted = [lf.section for lf in found if not (top_header is not None and lf.section == "1"
                                                    and not prefix and len(found) == 1)]
        if top_header is not None and not prefix and len(found) == 1:
            headers[found[0].section] = top_header
        for i in range(0, len(wanted), 50):
            sections = wanted[i:i + 50]
            d = self.fetch([f"BODY.PEEK[{s}.MIME]" for s in sections], f"reading part headers of message {self.uid}")
            for s in sections:
                headers[s] = bytes(_item(d, f"BODY[{s}.MIME]") or b"")
        for lf in found:
            self.leaf(lf, headers.get(lf.section, b""), origin=origin, parent=parent, depth=depth, loc=loc)

    def leaf(self, lf: Leaf, mime_header: bytes, *, origin: str, parent: int | None, depth: int,
             loc: str = "") -> None:
        info = mime.entity_info(mime_header)
        ctype = info["content_type"] or lf.ctype
        encoding = info["transfer_encoding"] or lf.encoding
        filename = info["filename"]
        self.digest.update(mime_header)
        if ctype in ("message/rfc822", "message/global"):
            self.forwarded(lf, mime_header, filename, origin=origin, parent=parent, depth=depth, loc=loc)
            return
        if ctype.startswith("message/") and ctype != "message/partial":  # delivery status etc.
            return
        is_body = ctype in ("text/plain", "text/html") and info["disposition"] != "attachment" and not filename
        if is_body and lf.size <= TEXT_PART_MAX:
            data = decode_all(self.whole(lf), encoding)
            text = mime.decode_text(data, info["charset"])[0]
            (self.plain if ctype == "text/plain" else self.html).append(text)
            return
        estimate = lf.size * 3 // 4 if encoding == "base64" else lf.size
        if estimate > self.limits.max_part_bytes:
            part = mime.part_from_entity(mime_header, origin=origin, parent=parent, size=estimate)
            part.location = loc + part.location
            part.error = (f"the attachment is about {human_size(estimate)}, over the limit of "
                          f"{human_size(self.limits.max_part_bytes)}: not kept")
            self.parsed.parts.append(part)
            return
        if lf.size <= WHOLE_PART_MAX:
            data = decode_all(self.whole(lf), encoding)
            part = mime.part_from_entity(mime_header, data=data, origin=origin, parent=parent)
            part.location = loc + part.location
            self.parsed.parts.append(part)
            return
        spool, size, damaged, digest = self.stream(lf, encoding)
        part = mime.part_from_entity(mime_header, spool=spool, size=size, origin=origin, parent=parent)
        part.location = loc + part.location
        part.sha256 = digest
        if damaged:
            self.parsed.defects.append(f"{part.location}: the attachment's base64 encoding is damaged")
        self.parsed.parts.append(part)

    def whole(self, lf: Leaf) -> bytes:
        d = self.fetch([f"BODY.PEEK[{lf.section}]"], f"fetching part {lf.section} of message {self.uid}")
        data = bytes(_item(d, f"BODY[{lf.section}]") or b"")
        self.digest.update(data)
        return data

    def stream(self, lf: Leaf, encoding: str | None) -> tuple[Path, int, bool, str]:
        """Fetch a part in chunks, decoding into a spool file.

        Returns (path, decoded size, damaged, sha256). The hash is taken and the file fsynced
        here, in the prefetch thread, so the pipeline neither reads it again to hash it nor
        waits long for the store's fsync."""
        self.src.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="imap-part-", dir=self.src.spool_dir)
        path = Path(name)
        self.spools.append(path)
        decoder = StreamDecoder(encoding)
        sha = hashlib.sha256()
        offset = written = 0
        with os.fdopen(fd, "wb") as out:
            while True:
                item = f"BODY.PEEK[{lf.section}]<{offset}.{CHUNK_BYTES}>"
                d = self.fetch([item], f"fetching part {lf.section} of message {self.uid} at byte {offset:,}")
                chunk = _item(d, f"BODY[{lf.section}]<{offset}>")
                chunk = bytes(chunk or b"")
                if not chunk:
                    break
                got = len(chunk)
                offset += got
                data = decoder.feed(chunk)
                del d, chunk
                sha.update(data)
                out.write(data)
                # a short piece at or past the announced size is the last one (a full piece: ask
                # again even past the size, BODYSTRUCTURE sizes are not trusted; a short one
                # before it: a server that caps partial fetches, go on)
                if got < CHUNK_BYTES and offset >= lf.size:
                    break
            data = decoder.finish()
            sha.update(data)
            out.write(data)
            written = out.tell()
            out.flush()
            os.fsync(out.fileno())
        digest = sha.hexdigest()
        self.digest.update(digest.encode())
        return path, written, decoder.damaged, digest

    def drop_spools(self) -> None:
        for p in self.spools:
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass

    def forwarded(self, lf: Leaf, mime_header: bytes, filename: str | None, *, origin: str,
                  parent: int | None, depth: int, loc: str = "") -> None:
        """A message/rfc822 part: small ones go to the parser whole; big ones are walked too."""
        label = filename or f"forwarded message {len(self.parsed.forwarded) + 1}.eml"
        if lf.size <= self.limits.stream_threshold_bytes or lf.inner is None:
            raw = decode_all(self.whole(lf), lf.encoding)
            inner = mime.parse_message(raw, self.limits)
            index = len(self.parsed.parts)
            self.parsed.parts.append(ExtractedPart(location=loc + label, filename=filename,
                                                   declared_type=lf.ctype, origin=origin,
                                                   parent=parent, data=raw, size=len(raw)))
            self.parsed.forwarded.append(inner.headers)
            self.parsed.forwarded.extend(inner.forwarded)
            for p in inner.parts:
                p.location = f"{loc}{label}/{p.location}"
                p.origin = "forwarded"
                p.parent = index if p.parent is None else p.parent + index + 1
                self.parsed.parts.append(p)
            if inner.body_text.strip():
                self.plain.append(f"\n---------- forwarded message ({label}) ----------\n{inner.body_text}")
            self.parsed.defects.extend(f"{label}: {d}" for d in inner.defects)
            return
        # a big forwarded message: its header, then its parts, streamed like the outer ones (the
        # forwarded message itself is not kept as a file: only what it carries)
        index = len(self.parsed.parts)
        self.parsed.parts.append(ExtractedPart(
            location=loc + label, filename=filename, declared_type=lf.ctype, origin=origin, parent=parent,
            size=lf.size, error=None))
        if depth + 1 > self.limits.max_forward_depth:
            self.parsed.defects.append(f"{label}: forwarded messages nested deeper than "
                                       f"{self.limits.max_forward_depth} levels were not opened")
            return
        d = self.fetch([f"BODY.PEEK[{lf.section}.HEADER]"], f"reading a forwarded message in message {self.uid}")
        inner_header = bytes(_item(d, f"BODY[{lf.section}.HEADER]") or b"")
        self.parsed.forwarded.append(mime.parse_headers(inner_header, self.limits))
        before = (len(self.plain), len(self.html))
        self.walk(lf.inner, prefix=f"{lf.section}.", top_header=None, origin="forwarded",
                  parent=index, depth=depth + 1, loc=f"{loc}{label}/")
        # its text follows the main text, marked as parse_message marks it
        for texts, start in ((self.plain, before[0]), (self.html, before[1])):
            if len(texts) > start:
                texts[start] = f"\n---------- forwarded message ({label}) ----------\n" + texts[start]

    def finish(self) -> None:
        p = self.parsed
        html = "\n".join(self.html)
        p.html = mime.bounded_utf8(html, mime.HTML_MAX)
        plain = "\n".join(self.plain)
        text = plain if plain.strip() else (mime.html_to_text(p.html) if html else "")
        p.body_text = mime.bounded_utf8(text.replace("\r\n", "\n"), mime.BODY_TEXT_MAX)
        p.content_sha256 = self.digest.hexdigest()


def _item(d: dict, name: str) -> Any:
    """A FETCH response item by name (servers differ in quoting and case: compare loosely)."""
    key = name.encode()
    if key in d:
        return d[key]
    want = re.sub(rb"\s+", b"", key).upper()
    for k, v in d.items():
        if isinstance(k, bytes) and re.sub(rb"\s+", b"", k).upper() == want:
            return v
    return None


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.now(timezone.utc)
    if value.tzinfo is None:
        value = value.astimezone()  # imapclient gave local time
    return value.astimezone(timezone.utc)


