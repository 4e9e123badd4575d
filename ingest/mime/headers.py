"""Headers of a message: sender, recipients, subject, date, Message-ID, bounce and auto-reply signs.

``headers_from(msg)`` fills ``Headers`` from a parsed (compat32) message. Address lists are
split by mail-parser's recovering address parser (``mailparser``), with a plain scan as fallback;
names and other values are decoded with ``header_text`` (GBK-tolerant); a few extra headers
(X-Mailer, auto-reply and loop markers, Delivered-To...) go to ``Headers.extra``; the
Authentication-Results headers are kept as received, in order (``authentication_results``),
with where they stand: ``auth_order`` lists the authentication headers and the first
``Received:`` lines (the mailbox's own servers' receipt lines, ``received:<by host>``) in their
order, topmost first; both read from the raw header block as the mail server cut it
(``header_fields``: lines end at LF or CRLF only).
``parse_headers(raw_header_bytes)`` does the same for a bare header block, bounded first.
``mailparser_defects`` lists the Date / Received defects mail-parser finds in a top-level header.
"""

from __future__ import annotations

import logging
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from ingest.mime.bounds import bound_header
from ingest.mime.filenames import raw_header, raw_headers
from ingest.mime.text import HEADER_VALUE_MAX, clean_text, decode_words, header_text, raw8, unfold
from ingest.model import RECEIVED_KEPT, Headers

log = logging.getLogger("ingest.mime")  # one logger for the whole package

_EXTRA_HEADERS = (
    "x-mailer",
    "user-agent",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "x-failed-recipients",
    "x-loop",
    "x-mailroll",
    "x-original-to",
    "delivered-to",
    "x-ms-exchange-generated-message-source",
)
AUTH_RESULTS_MAX = 50  # Authentication-Results / Received-SPF headers kept per message (topmost first)
# characters kept of each: a header longer than this is kept with one more character, so that
# reconcile/authresults.py sees it was cut off (unreadable, never read as "no failure")
AUTH_RESULT_CHARS = 32 * 1024
AUTH_HEADERS = ("authentication-results", "received-spf")  # the kinds in Headers.auth_order
FROM_ADDRESSES_MAX = 10  # addresses kept of all From headers together
_ID = re.compile(r"<([^<>\s]+)>")
_ADDR = re.compile(r"[A-Za-z0-9._%+\-=']+@[A-Za-z0-9.\-]+")
_COMMENT = re.compile(r"\([^()]*\)")
_HOST = re.compile(r"[a-z0-9_:\[\]][a-z0-9._:\-\[\]]*")


def _msgid(value: str) -> str | None:
    v = header_text(value)
    m = _ID.search(v)
    if m:
        return m.group(1)
    v = v.strip().strip("<>").strip()
    return v.split()[0] if v else None


def _addresses(value: Any, defects: list[str] | None = None, label: str = "") -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs from an address header, via mail-parser's
    recovering address parser; encoded words in names decoded here (GBK-tolerant)."""
    if value is None:
        return []
    s, _ = raw8(str(value)[:HEADER_VALUE_MAX])
    s = unfold(s)
    pairs: list[tuple[str, str]] = []
    try:
        from mailparser.utils import get_addresses

        diag: list = []
        pairs = [(n, a) for n, a in get_addresses(s, defects=diag) if a]
        if diag and defects is not None:
            defects.append(f"the {label} header is malformed: {diag[0].get('reason', 'unreadable')}")
    except Exception:  # noqa: BLE001 - any failure: fall back to a plain scan
        pairs = []
    if not pairs:
        decoded = decode_words(s)
        found = _ADDR.findall(decoded)
        if found:
            name = decoded.split("<", 1)[0].strip().strip('"').strip() if "<" in decoded else ""
            pairs = [(name if i == 0 else "", a) for i, a in enumerate(found)]
    out = []
    for name, addr in pairs:
        name = clean_text(decode_words(name)).strip().strip('"').strip()[:200]
        out.append((name, addr.strip().strip("<>").lower()[:320]))
    return out


_LOOSE_ADDR = re.compile(r'[^\s<>(),;:"\[\]@]+@[^\s<>(),;:"\]]+')
UNREAD_FROM = "(a From no mail server reads as an address)"


def _shown(text: str) -> str:
    """Raw bytes kept as surrogates (8-bit headers) made storable: each as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace"
    )  # makes the From untrusted (several)


def _parsed_mailboxes(value: Any) -> set[str]:
    """The addresses the address parser itself finds in a From value (no fallback scan)."""
    s = unfold(raw8(str(value)[:HEADER_VALUE_MAX])[0])
    try:
        from mailparser.utils import get_addresses

        return {a.strip().strip("<>").lower() for _, a in get_addresses(s, defects=[]) if a}
    except Exception:  # noqa: BLE001 - unreadable: no mailbox
        return set()


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """(lower-case name, value) of each header of a raw header block, topmost first, cut the way
    a mail server cuts them: lines end at LF or CRLF only (a lone CR stays inside the value,
    where the stdlib parser would start a new header at it), a line starting with space or tab
    continues the header before it (the line break removed)."""
    fields: list[tuple[str, list[str]]] = []
    text = raw.decode("ascii", "surrogateescape")
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        if not line:
            break  # the blank line ending the header
        if line[0] in " \t":
            if fields:
                fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(":")
        if colon and name and not any(ch in name for ch in " \t"):
            fields.append((name.strip().lower(), [value.lstrip(" \t")]))
    return [(name, "".join(parts)) for name, parts in fields]


_LONE_CR = re.compile(rb"\r(?!\n)")


_FIELD_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")


def _split_differently(raw: bytes) -> bool:
    """Whether a mail server and the stdlib parser would cut this header block differently: a
    lone CR or a control character other than tab outside line ends, or a line that is neither a
    header field ("name:" with a printable name and no space before the colon) nor a folded
    continuation (the stdlib parser ends the header block there and reads the rest, a second
    From among it, as body; a mail server reads on)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if _LONE_CR.search(head) or any(b < 32 and b not in (9, 10, 13) or b == 127 for b in head):
        return True
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line and line[:1] not in (b" ", b"\t") and not _FIELD_LINE.match(line):
            return True
    return False


def _controls(value: str) -> bool:
    """Whether a header value holds a control character other than tab (a lone CR among them)."""
    return any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value)


def _kept(fields: list[tuple[str, str]], name: str) -> list[str]:
    """The values of an authentication header, topmost first, each whole up to AUTH_RESULT_CHARS.
    A value holding a control character keeps it (reconcile/authgrammar.py reads it as unreadable)."""
    out: list[str] = []
    for kind, v in fields:
        if kind == name and len(out) < AUTH_RESULTS_MAX:
            text = raw8(v[:HEADER_VALUE_MAX])[0]
            out.append((text if _controls(text) else clean_text(text))[: AUTH_RESULT_CHARS + 1])
    return out


def received_by(value: str) -> str:
    """The host of a Received: value's ``by`` clause (lower case, no trailing dot), "" if none.
    Comments are dropped first and the ``from`` clause's word skipped (a HELO name chosen by the
    sender is never read as the ``by`` keyword)."""
    text = value
    for _ in range(10):
        text, n = _COMMENT.subn(" ", text)
        if not n:
            break
    words = text.replace(";", " ; ").split()
    if words[:1] and words[0].lower() == "from":
        words = words[2:]
    for i, w in enumerate(words[:-1]):
        if w == ";":
            break
        if w.lower() == "by":
            host = words[i + 1].lower().rstrip(".")
            return host[:255] if _HOST.fullmatch(host) else ""
    return ""


def _auth_order(fields: list[tuple[str, str]]) -> list[str]:
    """The kinds of the authentication headers and ``received:<by host>`` for each ``Received:``,
    topmost first, up to the ``RECEIVED_KEPT``-th Received (``end`` after them when the header
    block ended before): which of them the mailbox's own servers wrote, above their receipt lines."""
    order: list[str] = []
    auth = received = 0
    for kind, value in fields:
        if kind == "received":
            host = received_by(value)
            order.append(f"received:{host}" if host else "received")
            received += 1
            if received == RECEIVED_KEPT:
                return order
        elif kind in AUTH_HEADERS and auth < AUTH_RESULTS_MAX * 2:
            order.append(kind)
            auth += 1
    return [*order, "end"]


def _message_fields(msg: Message) -> list[tuple[str, str]]:
    """Fields of a parsed message without its raw bytes (a forwarded message's headers)."""
    return [(str(k).strip().lower(), str(v)) for k, v in getattr(msg, "_headers", [])]


def _read_from(h: Headers, values: list, defects: list[str] | None) -> None:
    """``from_addr``/``from_name``/``from_addrs`` from the From header values. Every address of
    every From header (a second one is a sign of forgery); Sender never stands in for a missing
    From. Also every address a plain scan of the raw values finds (a From the address parser
    reads as one mailbox, ``"x" <attacker@163.com>;dtkjj2022@163.com``, is several), and a From
    only the parser's fallback found (an RFC 2047-encoded "address", broken syntax: no mail
    server read it) is marked ``UNREAD_FROM``: never trusted."""
    frm = [pair for v in values for pair in _addresses(v, defects, "From")]
    if frm:
        h.from_name = frm[0][0] or None
        h.from_addr = frm[0][1] or None
    parsed = {a for v in values for a in _parsed_mailboxes(v)}
    scanned = [a.lower() for v in values for a in _ADDR.findall(unfold(raw8(str(v))[0]))]
    # and on the raw value, before any charset decoding (a GBK lead byte before "@" would join it
    # into one character and hide a second address from both the parser and the scan above)
    scanned += [_shown(a).lower().strip("<>") for v in values for a in _LOOSE_ADDR.findall(unfold(str(v)))]
    unread = [UNREAD_FROM] if h.from_addr and h.from_addr not in parsed else []
    h.from_addrs = list(dict.fromkeys([*(a for _, a in frm), *scanned, *unread]))[:FROM_ADDRESSES_MAX]


def headers_from(msg: Message, defects: list[str] | None = None, raw: bytes | None = None) -> Headers:
    """Headers of a parsed (compat32) message; ``raw``: its header block, from which the
    authentication headers and their positions are read (``header_fields``)."""
    h = Headers()

    def first(name: str) -> Any:
        return raw_header(msg, name)

    _read_from(h, raw_headers(msg, "From"), defects)
    rt = _addresses(first("Reply-To"), defects, "Reply-To")
    h.reply_to = rt[0][1] if rt else None
    to: list[str] = []
    for v in raw_headers(msg, "To"):
        to += [a for _, a in _addresses(v, defects, "To")]
    h.to_addrs = to[:200]
    h.subject = header_text(first("Subject"))
    d = first("Date")
    h.date = header_text(d) or None if d is not None else None
    mid = first("Message-ID") or first("Message-Id")
    h.message_id = _msgid(mid) if mid else None
    irt = first("In-Reply-To")
    h.in_reply_to = _msgid(irt) if irt else None
    refs = header_text(first("References"))
    h.references = _ID.findall(refs)[:100] or [r.strip("<>") for r in refs.split()][:100]
    for attr, name in (
        ("auto_submitted", "Auto-Submitted"),
        ("precedence", "Precedence"),
        ("list_id", "List-Id"),
    ):
        v = first(name)
        setattr(h, attr, header_text(v) or None if v is not None else None)
    rp = first("Return-Path")
    if rp is not None:
        rpt = header_text(rp)
        m = _ADDR.search(rpt)
        h.return_path = m.group(0).lower() if m else (rpt.strip("<> ") or "<>")
    try:
        ctype = msg.get_content_type()
        rtype = msg.get_param("report-type")
        h.content_type = ctype + (f"; report-type={rtype}" if isinstance(rtype, str) and rtype else "")
    except Exception:  # noqa: BLE001 - hostile Content-Type: left unknown
        h.content_type = None
    fields = header_fields(raw) if raw is not None else _message_fields(msg)
    h.authentication_results = _kept(fields, "authentication-results")
    h.received_spf = _kept(fields, "received-spf")
    # a lone CR (or another control character) in the header block: the mail server and
    # Python's parser would not see the same headers (a From hidden from the server's DMARC
    # check, a second header cut out of the server's own): no authentication result is read
    h.auth_order = ["header-split"] if raw is not None and _split_differently(raw) else _auth_order(fields)
    for name in _EXTRA_HEADERS:
        v = first(name)
        if v is not None:
            h.extra[name.replace("-", "_")] = header_text(v)[:500]
    return h


def parse_headers(raw_header_bytes: bytes, limits: Any = None) -> Headers:
    """Decode a header block (bytes up to, or including, the blank line). Never raises."""
    max_bytes = getattr(limits, "max_header_bytes", 1024 * 1024)
    data, _ = bound_header(raw_header_bytes.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0], max_bytes)
    try:
        msg = BytesParser(policy=compat32).parsebytes(data + b"\n\n", headersonly=True)
        return headers_from(msg, raw=data)
    except Exception:  # noqa: BLE001 - hostile headers: logged, read as empty
        log.exception("header block unreadable")
        return Headers()


def mailparser_defects(header_bytes: bytes) -> list[str]:
    """Date / Received / address defects mail-parser finds in a top-level header block."""
    if len(header_bytes) > 256 * 1024:
        return []
    try:
        import mailparser

        mp = mailparser.MailParser(
            BytesParser(policy=compat32).parsebytes(header_bytes + b"\n\n", headersonly=True)
        )
        out = []
        for entry in mp.defects or []:
            for key, items in entry.items():
                what = {"date-headers": "the Date header", "received-headers": "a Received header"}.get(key)
                if what:
                    out += [f"{what} is malformed ({str(i).rsplit(': ', 1)[-1]})" for i in items[:3]]
        return out
    except Exception:  # noqa: BLE001 - mail-parser is a helper here, never a reason to fail
        return []
