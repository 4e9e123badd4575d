"""What went wrong with the mailbox, in words a user can act on.

imaplib, imapclient and the socket layer raise a dozen exception types; the rest of the package
catches ``imap_errors()`` (a broken or stalled connection: worth reconnecting), turns it into a
sentence with ``reason`` and raises ``MailboxError`` built by ``mailbox_error``. A
``MailboxError`` whose ``transient`` is False (a wrong password, a missing folder) is not retried.
"""

from __future__ import annotations

import ast
import imaplib
import socket
import ssl

from ingest.sources.base import MailboxError


class Stopped(Exception):
    """The consumer closed fetch_new: the prefetch thread stops (internal)."""


def imap_errors() -> tuple[type[BaseException], ...]:
    from imapclient.exceptions import ProtocolError

    # imaplib.IMAP4.abort: the connection broke (EOF, garbled response); ProtocolError: a reply
    # imapclient could not parse, e.g. cut off in the middle; OSError: refused, reset, timeout.
    return (OSError, imaplib.IMAP4.abort, ProtocolError, EOFError)


def mailbox_error(text: str, transient: bool = True) -> MailboxError:
    return MailboxError(text, transient=transient)


def reason(e: BaseException, timeout_s: float) -> str:
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


def server_text(e: BaseException) -> str:
    """The server's own words from an imapclient error (which often holds a bytes repr)."""
    text = str(e).strip()
    if text[:2] in ("b'", 'b"'):
        try:
            text = ast.literal_eval(text).decode("utf-8", "replace")
        except (ValueError, SyntaxError, AttributeError):
            pass
    return text.strip()
