"""Read one e-mail message (raw RFC 822 bytes) into a ParsedMessage, the way Chinese mail is sent.

Public functions
----------------
``parse_message(raw, limits) -> ParsedMessage``
    Never raises on bad mail: whatever cannot be read is noted in ``ParsedMessage.defects`` in
    plain words. Attachments become ``ExtractedPart``s (``origin='attachment'``); attachments of
    forwarded messages (``message/rfc822`` parts, or an ``.eml`` sent as a plain attachment) become
    parts with ``origin='forwarded'`` whose ``parent`` is the index of the forwarded message's own
    part, and the forwarded message's headers are appended to ``ParsedMessage.forwarded``.
``parse_headers(raw_header_bytes) -> Headers``
    Decode a header block (no body needed).
``decode_filename(entity) -> str | None``
    The display name of a MIME entity (``email.message.Message``), from
    ``Content-Disposition: filename`` or ``Content-Type: name``, decoded and sanitized.
``part_from_entity(mime_header_bytes, ...) -> ExtractedPart``, ``entity_info(mime_header_bytes)``,
``finish_body(parsed, plain, html)``
    For the IMAP streaming path: build a part from one MIME entity fetched on its own, read an
    entity's MIME header, and fill body text / HTML / links exactly as ``parse_message`` does.
    (``decode_text``, ``bounded_utf8``, ``html_to_text``, ``HTML_MAX``, ``BODY_TEXT_MAX`` are used
    there too: keep them stable.)

Decoding rules (what Chinese clients actually send)
---------------------------------------------------
* Charset labels gb2312 / gbk / gb_2312-80 / cp936 / euc-cn are decoded as GB18030 (a superset:
  Foxmail and old Outlook label GBK text as gb2312).
* RFC 2047 encoded words are decoded tolerantly: adjacent words of the same charset are joined
  *before* decoding (a character split across two words survives), bad base64 is repaired as far
  as possible, an unterminated word at the end is still decoded.
* Raw 8-bit header bytes are tried as UTF-8 (strict), then GB18030 (strict), then Latin-1.
* RFC 2231 file names (``filename*=``, continuations ``filename*0*=``) in any charset.
* File names given only as ``Content-Type: name=``, or as encoded words inside quotes (Outlook).
* File names are for display only: path parts, control characters and Windows device names are
  neutralised by ``sanitize_filename``. Nobody may use them to write files.

Parsing is stdlib ``email`` (compat32 policy, which keeps raw bytes reachable) made safe by
bounding the input first: the header section is cut to ``limits.max_header_bytes`` (the fields
needed to read the message are kept), the number of MIME parts to ``limits.max_parts`` (the raw
message is cut at the boundary line after the last allowed part, before the stdlib parser sees
it). mail-parser (``mailparser``) splits address lists with recovery for broken ones and reports
address/date/Received defects of the top-level header.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import logging
import quopri
import re
import unicodedata
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.feedparser import BytesFeedParser
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path
from typing import Any, Iterable

from ingest.model import ExtractedPart, Headers, ParsedMessage

log = logging.getLogger(__name__)

BODY_TEXT_MAX = 64 * 1024          # bytes of UTF-8 kept in ParsedMessage.body_text
HTML_MAX = 1024 * 1024             # bytes of HTML kept (links live at the end of NetEase mail)
HEADER_VALUE_MAX = 64 * 1024       # a single header value is cut to this before decoding
DECODED_HEADER_MAX = 4096          # characters kept of a decoded header value
MAX_DEFECTS = 100                  # defects listed per message, then "... and N more"
MAX_TREE_DEPTH = 64                # multipart nesting read
FILENAME_MAX = 255                 # characters of a display file name

# ---------------------------------------------------------------------------------------------
# Charsets and text
# ---------------------------------------------------------------------------------------------

_GB_LABELS = {
    "gb2312", "gb_2312", "gb_2312-80", "gb2312-80", "gb-2312", "csgb2312", "x-gb2312", "euc-cn",
    "x-euc-cn", "euccn", "gbk", "x-gbk", "cp936", "ms936", "windows-936", "x-cp936", "936",
    "chinese", "iso-ir-58", "csiso58gb231280", "gb18030", "gb-18030", "hz-gb-2312",
}
_LABEL_FIXES = {"utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "x-unknown": "", "unknown-8bit": "",
                "us-ascii": "ascii", "ansi_x3.4-1968": "ascii", "big5": "big5hkscs",
                "x-mac-chinesesimp": "gb18030"}


def normalize_charset(label: str | None) -> str | None:
    """A Python codec name for a MIME charset label, or None when unknown/absent.

    GB2312/GBK-family labels map to gb18030 (superset, decodes what senders really used)."""
    if not label:
        return None
    cs = str(label).strip().strip("\"'").lower()
    cs = cs.split("*", 1)[0]  # RFC 2231 language suffix: gb2312*zh-cn
    if cs in _GB_LABELS or cs.startswith("gb2312") or cs.startswith("gbk"):
        return "gb18030"
    cs = _LABEL_FIXES.get(cs, cs)
    if not cs:
        return None
    try:
        return codecs.lookup(cs).name
    except LookupError:
        return None


def decode_text(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """Decode bytes as text: the declared charset if it fits, else UTF-8, GB18030, Latin-1.

    Returns (text, codec used). Never raises."""
    tried = []
    for cs in (normalize_charset(charset), "utf-8", "gb18030"):
        if cs and cs not in tried:
            tried.append(cs)
            try:
                return data.decode(cs), cs
            except (UnicodeDecodeError, LookupError):
                continue
    # a multi-byte character cut off at the end (truncated header or body)
    for cs in tried:
        for k in (1, 2, 3):
            try:
                return data[:-k].decode(cs) + "\ufffd", cs
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("latin-1"), "latin-1"


def _has_surrogates(s: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in s)


def _raw8(s: str) -> tuple[str, str | None]:
    """Undo the stdlib's surrogateescape of raw 8-bit header bytes and decode them properly.

    Returns (text, codec) where codec is None when the value was plain ASCII/Unicode."""
    if not _has_surrogates(s):
        return s, None
    data = s.encode("utf-8", "surrogateescape")
    text, cs = decode_text(data)
    return text, cs


_B64_CLEAN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n\t "


def _b64_well_formed(data: bytes) -> bool:
    """True when ``data`` is plain base64 (alphabet and line breaks, '=' only as the final
    padding, whole quanta). Checked without copying the data: a 50 MB attachment must not cost
    several 70 MB copies (the regular expressions below make four)."""
    if data.translate(None, _B64_CLEAN):          # any other byte: junk
        return False
    pad = data.find(b"=")
    if pad >= 0 and data[pad:].strip(b"=\r\n\t "):  # '=' in the middle
        return False
    spaces = sum(data.count(c) for c in (b"\r", b"\n", b"\t", b" "))
    return (len(data) - spaces) % 4 == 0 and data.count(b"=") <= 2


def _tolerant_b64(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 that may be truncated or contain junk. Returns (bytes, was_damaged)."""
    if _b64_well_formed(data):  # the usual case, in one pass (a2b_base64 skips line breaks)
        return binascii.a2b_base64(data), False
    stripped = re.sub(rb"\s+", b"", data)
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", stripped.split(b"=", 1)[0])
    damaged = len(re.sub(rb"[^A-Za-z0-9+/=]", b"", stripped)) != len(stripped)
    rem = len(clean) % 4
    if rem == 1:
        clean, damaged = clean[:-1], True
    elif rem:
        if len(stripped) % 4:
            damaged = True  # padding missing: the data was cut short
        clean += b"=" * (4 - rem)
    try:
        return base64.b64decode(clean), damaged
    except (binascii.Error, ValueError):  # pragma: no cover - clean input cannot fail
        return b"", True


# RFC 2047 encoded word; an unterminated word (no '?=') ends at white space or the end.
_EW = re.compile(r"=\?(?P<cs>[^?\s]+)\?(?P<enc>[bBqQ])\?(?P<text>[^?]*?)(?:\?=|(?=\s|$))")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in ``value`` (already free of raw 8-bit bytes).

    Adjacent encoded words (only white space between them) are joined; consecutive words in the
    same charset have their bytes joined before decoding, so a GBK character split across two
    words is rebuilt. Malformed words are decoded as far as possible; never raises."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_cs: str | None = None
    pos = 0
    last_was_word = False

    def flush() -> None:
        nonlocal pending, pending_cs
        if pending:
            out.append(decode_text(bytes(pending), pending_cs)[0])
        pending, pending_cs = bytearray(), None

    for m in _EW.finditer(value):
        between = value[pos:m.start()]
        if between and not (last_was_word and between.strip() == ""):
            flush()
            out.append(between)
        text = m.group("text").encode("ascii", "replace")
        if m.group("enc") in "bB":
            data, _ = _tolerant_b64(text)
        else:
            data = binascii.a2b_qp(text, header=True)
        cs = m.group("cs").split("*", 1)[0].lower()
        if pending and cs != pending_cs:
            flush()
        pending_cs = cs
        pending += data
        pos = m.end()
        last_was_word = True
    flush()
    out.append(value[pos:])
    return "".join(out)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", " ")


def header_text(value: Any) -> str:
    """A decoded, unfolded, bounded header value (str from compat32, maybe with raw 8-bit)."""
    if value is None:
        return ""
    s = str(value)[:HEADER_VALUE_MAX]
    s, _ = _raw8(s)
    s = decode_words(_unfold(s))
    return _clean_text(s).strip()[:DECODED_HEADER_MAX]


def _clean_text(s: str) -> str:
    """Drop characters that are never meant to be shown (NULs, other C0 controls but tab)."""
    return "".join(ch for ch in s if ch == "\t" or unicodedata.category(ch) not in ("Cc", "Cs"))


def bounded_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


# ---------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------

_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}


def sanitize_filename(name: str | None) -> str | None:
    """A file name safe to *show*: no path, no control or bidi-override characters, no Windows
    device name (``CON`` becomes ``_CON``), at most 255 characters. None when nothing is left.

    Never use the result (or any name from a message) to build a path on disk."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        ch for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cs", "Co") and ch not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
    )
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.strip().strip(".").strip()
    if not name:
        return None
    stem = name.split(".", 1)[0].strip().upper()
    if stem in _WINDOWS_DEVICES:
        name = "_" + name
    if len(name) > FILENAME_MAX:
        stem_, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem_[: FILENAME_MAX - len(ext) - 1] + "." + ext
        else:
            name = name[:FILENAME_MAX]
    return name


def _param_text(value: Any) -> str | None:
    """Decode one parameter value as returned by compat32 get_params (str or RFC 2231 tuple)."""
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded latin-1 text)
        charset, _lang, text = value
        data = str(text).encode("latin-1", "surrogateescape") if text else b""
        return decode_text(data, charset)[0]
    s = str(value)
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1]
    s, _ = _raw8(s)
    return decode_words(_unfold(s))


def raw_header(msg: Message, name: str) -> str | None:
    """The first value of a header exactly as parsed (compat32 keeps raw 8-bit bytes as
    surrogates here; ``msg.get`` would turn them into U+FFFD)."""
    lname = name.lower()
    for k, v in getattr(msg, "_headers", []):
        if k.lower() == lname:
            return v if isinstance(v, str) else str(v)
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    lname = name.lower()
    return [v if isinstance(v, str) else str(v) for k, v in getattr(msg, "_headers", [])
            if k.lower() == lname]


def _find_param(entity: Message, names: Iterable[str], header: str) -> str | None:
    value = raw_header(entity, header)
    if value is None:
        return None
    # raw 8-bit bytes (GBK or UTF-8 file names in quotes) are decoded before the parameters
    # are split, so the stdlib never sees (and mangles) them
    text, _ = _raw8(value[:HEADER_VALUE_MAX])
    probe = Message()
    probe[header] = _unfold(text)
    try:
        params = probe.get_params(header=header, unquote=True) or []
    except Exception:  # noqa: BLE001 - broken parameter syntax
        return None
    best: str | None = None
    for key, value in params[1:]:
        if key.lower().rstrip("*") in names:
            text = _param_text(value)
            if text and (best is None or isinstance(value, tuple)):
                best = text  # an RFC 2231 value wins over a plain one
    return best


def decode_filename(entity: Message) -> str | None:
    """The decoded display name of a MIME entity, or None.

    Looks at ``Content-Disposition: filename`` (plain, RFC 2231, continuations) then
    ``Content-Type: name``; decodes encoded words inside quotes and raw 8-bit bytes; returns the
    name sanitized for display (``sanitize_filename``)."""
    try:
        raw = (_find_param(entity, ("filename",), "content-disposition")
               or _find_param(entity, ("name",), "content-type"))
    except Exception:  # noqa: BLE001
        raw = None
    return sanitize_filename(raw[:4 * FILENAME_MAX] if raw else raw)


# ---------------------------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------------------------

_EXTRA_HEADERS = ("x-mailer", "user-agent", "x-autoreply", "x-autorespond", "x-auto-response-suppress",
                  "x-failed-recipients", "x-loop", "x-mailroll", "x-original-to", "delivered-to", "x-ms-exchange-generated-message-source")
_ID = re.compile(r"<([^<>\s]+)>")
_ADDR = re.compile(r"[A-Za-z0-9._%+\-=']+@[A-Za-z0-9.\-]+")


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
    s, _ = _raw8(str(value)[:HEADER_VALUE_MAX])
    s = _unfold(s)
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
        name = _clean_text(decode_words(name)).strip().strip('"').strip()[:200]
        out.append((name, addr.strip().strip("<>").lower()[:320]))
    return out


def _headers_from(msg: Message, defects: list[str] | None = None) -> Headers:
    """Headers of a parsed (compat32) message."""
    h = Headers()

    def first(name: str) -> Any:
        return raw_header(msg, name)

    frm = _addresses(first("From"), defects, "From") or _addresses(first("Sender"), defects, "Sender")
    if frm:
        h.from_name = frm[0][0] or None
        h.from_addr = frm[0][1] or None
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
    for attr, name in (("auto_submitted", "Auto-Submitted"), ("precedence", "Precedence"),
                       ("list_id", "List-Id")):
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
    except Exception:  # noqa: BLE001
        h.content_type = None
    for name in _EXTRA_HEADERS:
        v = first(name)
        if v is not None:
            h.extra[name.replace("-", "_")] = header_text(v)[:500]
    return h


def parse_headers(raw_header_bytes: bytes, limits: Any = None) -> Headers:
    """Decode a header block (bytes up to, or including, the blank line). Never raises."""
    max_bytes = getattr(limits, "max_header_bytes", 1024 * 1024)
    data, _ = _bound_header(raw_header_bytes.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0], max_bytes)
    try:
        msg = BytesParser(policy=compat32).parsebytes(data + b"\n\n", headersonly=True)
        return _headers_from(msg)
    except Exception:  # noqa: BLE001
        log.exception("header block unreadable")
        return Headers()


def _mailparser_defects(header_bytes: bytes) -> list[str]:
    """Date / Received / address defects mail-parser finds in a top-level header block."""
    if len(header_bytes) > 256 * 1024:
        return []
    try:
        import mailparser
        mp = mailparser.MailParser(BytesParser(policy=compat32).parsebytes(header_bytes + b"\n\n",
                                                                           headersonly=True))
        out = []
        for entry in mp.defects or []:
            for key, items in entry.items():
                what = {"date-headers": "the Date header", "received-headers": "a Received header"}.get(key)
                if what:
                    out += [f"{what} is malformed ({str(i).rsplit(': ', 1)[-1]})" for i in items[:3]]
        return out
    except Exception:  # noqa: BLE001 - mail-parser is a helper here, never a reason to fail
        return []


# ---------------------------------------------------------------------------------------------
# Bounding the raw message before the stdlib parser sees it
# ---------------------------------------------------------------------------------------------

_ESSENTIAL = {b"from", b"sender", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id",
              b"in-reply-to", b"references", b"mime-version", b"content-type",
              b"content-transfer-encoding", b"content-disposition", b"return-path",
              b"auto-submitted", b"precedence", b"list-id"}
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"^(?=[^ \t\r\n])", re.M)


def _split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header, separator, body); a message without a blank line is all header."""
    if raw.startswith((b"\r\n", b"\n")):
        sep = b"\r\n" if raw.startswith(b"\r\n") else b"\n"
        return b"", sep, raw[len(sep):]
    m = _HEADER_END.search(raw)
    if not m:
        return raw, b"", b""
    return raw[:m.start()], m.group(0), raw[m.end():]


def _bound_header(header: bytes, max_bytes: int) -> tuple[bytes, int]:
    """Cut a header block to max_bytes, still keeping (bounded) fields needed to read the message.

    Returns (header, number of fields dropped)."""
    if len(header) <= max_bytes:
        return header, 0
    kept: list[bytes] = []
    size = dropped = 0
    names_kept: set[bytes] = set()
    starts = [m.start() for m in _FIELD_START.finditer(header)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(header))
    for a, b in zip(starts, starts[1:], strict=False):
        fld = header[a:b]
        name = fld.split(b":", 1)[0].strip().lower() if b":" in fld[:100] else b""
        if size + len(fld) <= max_bytes:
            kept.append(fld)
            size += len(fld)
            names_kept.add(name)
        elif name in _ESSENTIAL and name not in names_kept and len(fld) <= HEADER_VALUE_MAX:
            # past the limit: still the first of each field needed to read the message
            kept.append(fld)
            size += len(fld)
            names_kept.add(name)
        else:
            dropped += 1
    out = b"".join(kept)
    if not out.endswith(b"\n"):
        out += b"\n"
    return out.rstrip(b"\r\n"), dropped


_BOUNDARY_PARAM = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.I)
_DASH_LINE = re.compile(rb"^--([^\r\n]{1,204})\r?$", re.M)


def _bound_parts(raw: bytes, max_parts: int) -> tuple[bytes, bool]:
    """Cut the raw message at the boundary line that would open part number max_parts+1.

    Linear in the size of the message; the stdlib parser then never builds more parts than the
    limit (an attacker's 50,000-part message costs as much as a 1,000-part one)."""
    boundaries = {(m.group(1) or m.group(2)).rstrip() for m in _BOUNDARY_PARAM.finditer(raw)}
    if not boundaries:
        return raw, False
    count = 0
    for m in _DASH_LINE.finditer(raw):
        line = m.group(1).rstrip(b"\r \t")
        if line in boundaries:
            count += 1
            if count > max_parts:
                return raw[:m.start()], True
    return raw, False


# ---------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------

def _payload_bytes(entity: Message) -> tuple[bytes, str | None]:
    """The decoded content of a leaf entity. Returns (bytes, problem in words or None)."""
    # the stored payload: get_payload(decode=False) would already decode 8-bit text lossily
    raw = getattr(entity, "_payload", None)
    if isinstance(raw, list) or raw is None:
        return b"", None
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    cte = str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower()
    if cte == "base64":
        out, damaged = _tolerant_b64(data)
        return out, ("the base64 data is incomplete or damaged; "
                     f"{len(out):,} bytes could be decoded") if damaged else None
    if cte == "quoted-printable":
        return quopri.decodestring(data), None
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        try:
            return entity.get_payload(decode=True) or b"", None
        except Exception:  # noqa: BLE001
            return data, "the uuencoded data could not be decoded"
    return data, None


def html_to_text(html: str) -> str:
    """Visible text of an HTML body (script/style dropped, block ends become new lines)."""
    try:
        import lxml.html
        doc = lxml.html.document_fromstring(html[:HTML_MAX])
        for bad in doc.xpath("//script|//style|//head"):
            bad.drop_tree()
        for el in doc.iter("br", "p", "div", "tr", "li", "h1", "h2", "h3", "table"):
            el.tail = "\n" + (el.tail or "")
        text = doc.text_content()
    except Exception:  # noqa: BLE001 - empty or unparseable HTML: strip tags crudely
        text = re.sub(r"<[^>]*>", " ", html[:HTML_MAX])
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n", text).strip()


# ---------------------------------------------------------------------------------------------
# Walking the MIME tree
# ---------------------------------------------------------------------------------------------

_FORWARD_TYPES = ("message/rfc822", "message/global")
_REPORT_SKIP = ("message/delivery-status", "message/disposition-notification",
                "message/global-delivery-status", "text/rfc822-headers", "message/global-headers")


@dataclass
class _Ctx:
    limits: Any
    parsed: ParsedMessage
    entities: int = 0
    stopped: bool = False
    forwards: int = 0
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    extra_text: list[str] = field(default_factory=list)
    defect_overflow: int = 0

    def defect(self, text: str) -> None:
        if len(self.parsed.defects) < MAX_DEFECTS:
            if text not in self.parsed.defects:
                self.parsed.defects.append(text)
        else:
            self.defect_overflow += 1


def _human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _ctype(entity: Message) -> str:
    try:
        return entity.get_content_type()
    except Exception:  # noqa: BLE001
        return "application/octet-stream"


def _disposition(entity: Message) -> str | None:
    v = entity.get("Content-Disposition")
    if v is None:
        return None
    return str(v).split(";", 1)[0].strip().lower() or None


def _looks_like_message(data: bytes) -> bool:
    from ingest.classify import sniff
    return sniff(data[:8192], None) == "eml"


_DEFECT_WORDS = {
    "StartBoundaryNotFoundDefect": "the MIME boundary it declares never appears",
    "CloseBoundaryNotFoundDefect": "it ends without its closing MIME boundary (cut off?)",
    "NoBoundaryInMultipartDefect": "it is multipart but declares no boundary",
    "MultipartInvariantViolationDefect": "it is declared multipart but has no parts",
    "MissingHeaderBodySeparatorDefect": "a header line is malformed (no blank line before the body)",
    "FirstHeaderLineIsContinuationDefect": "the header starts with a continuation line",
    "MisplacedEnvelopeHeaderDefect": "a 'From ' envelope line is inside the header",
    "InvalidBase64PaddingDefect": "its base64 data has bad padding",
    "InvalidBase64CharactersDefect": "its base64 data has invalid characters",
    "InvalidBase64LengthDefect": "its base64 data is cut off",
    "InvalidMultipartContentTransferEncodingDefect": "a multipart has a transfer encoding",
    "UndecodableBytesDefect": "it holds bytes that cannot be decoded",
}


def _entity_defects(entity: Message, ctx: _Ctx, where: str) -> None:
    for d in getattr(entity, "defects", []) or []:
        name = type(d).__name__
        ctx.defect(f"{where}: {_DEFECT_WORDS.get(name, name)}")


def _walk(root: Message, ctx: _Ctx, *, depth: int, prefix: str, origin: str,
          parent: int | None, in_report: bool = False) -> None:
    """Visit a message's entity tree iteratively, appending parts / body text to ctx."""
    stack: list[tuple[Message, int, bool]] = [(root, 0, in_report)]
    while stack:
        entity, level, report = stack.pop()
        if ctx.stopped:
            return
        ctx.entities += 1
        if ctx.entities > ctx.limits.max_parts:
            ctx.stopped = True
            ctx.defect(f"the message has more than {ctx.limits.max_parts:,} MIME parts; "
                       "the rest were not read")
            return
        ctype = _ctype(entity)
        where = f"{prefix or ''}part {ctx.entities}" if ctx.entities > 1 else "the message"
        _entity_defects(entity, ctx, where)
        if entity.is_multipart() and ctype not in _FORWARD_TYPES and ctype not in _REPORT_SKIP:
            if level >= MAX_TREE_DEPTH:
                ctx.defect(f"MIME parts nested deeper than {MAX_TREE_DEPTH} levels were not read")
                continue
            children = entity.get_payload()
            if not isinstance(children, list):
                continue
            rep = report or ctype == "multipart/report"
            for child in reversed(children):
                if isinstance(child, Message):
                    stack.append((child, level + 1, rep))
            continue
        _leaf(entity, ctype, ctx, depth=depth, prefix=prefix, origin=origin, parent=parent,
              in_report=report)


def _leaf(entity: Message, ctype: str, ctx: _Ctx, *, depth: int, prefix: str, origin: str,
          parent: int | None, in_report: bool) -> None:
    limits = ctx.limits
    filename = decode_filename(entity)
    disp = _disposition(entity)

    if ctype in _FORWARD_TYPES:
        inner = entity.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            if in_report:  # the returned message of a bounce: its headers only
                ctx.parsed.forwarded.append(_headers_from(inner[0]))
                return
            try:
                raw_inner = inner[0].as_bytes(policy=compat32)
            except Exception:  # noqa: BLE001
                raw_inner = b""
            cte = str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower()
            if cte in ("base64", "quoted-printable"):
                # not allowed by RFC 2046 but sent: the parser took the encoded text for a message
                raw_inner = (_tolerant_b64(raw_inner)[0] if cte == "base64"
                             else quopri.decodestring(raw_inner))
                _forward(raw_inner, None, filename, ctype, ctx, depth=depth, prefix=prefix,
                         origin=origin, parent=parent)
                return
            _forward(raw_inner, inner[0], filename, ctype, ctx, depth=depth, prefix=prefix,
                     origin=origin, parent=parent)
            return
        # a message/rfc822 part whose content was transfer-encoded: decode and parse
        data, _ = _payload_bytes(entity)
        if in_report:
            return
        _forward(data, None, filename, ctype, ctx, depth=depth, prefix=prefix, origin=origin,
                 parent=parent)
        return
    if ctype in _REPORT_SKIP:
        # delivery-status fields: text for bounce analysis, not a file
        payload = getattr(entity, "_payload", None)
        if isinstance(payload, list):
            text = "\n".join(_safe_str(m) for m in payload[:50])
        else:
            text = decode_text(_payload_bytes(entity)[0][:BODY_TEXT_MAX])[0]
        ctx.extra_text.append(text[:BODY_TEXT_MAX])
        return

    if ctype.startswith("multipart/") and not filename:
        # a multipart the parser could not split (no or wrong boundary): keep its text as body
        data, _ = _payload_bytes(entity)
        text = decode_text(data[:BODY_TEXT_MAX])[0]
        if text.strip():
            ctx.plain.append(text)
        return
    is_body = (ctype in ("text/plain", "text/html") and disp != "attachment" and not filename)
    if is_body:
        data, problem = _payload_bytes(entity)
        if problem:
            ctx.defect(f"message text: {problem}")
        text = decode_text(data[:HTML_MAX * 2], entity.get_content_charset())[0]
        (ctx.plain if ctype == "text/plain" else ctx.html).append(text)
        return

    # an attachment
    shown = filename or f"part {ctx.entities} ({ctype})"
    location = prefix + shown
    encoded = getattr(entity, "_payload", None)
    enc_len = len(encoded) if isinstance(encoded, (str, bytes)) else 0
    cte = str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower()
    estimate = enc_len * 3 // 4 if cte == "base64" else enc_len
    inline = (ctype.startswith("image/") and disp != "attachment"
              and entity.get("Content-ID") is not None)
    part = ExtractedPart(location=location, filename=filename, declared_type=ctype, origin=origin,
                         parent=parent, inline=inline)
    if estimate > limits.max_part_bytes:
        part.size = estimate
        part.error = (f"the attachment is about {_human_size(estimate)}, over the limit of "
                      f"{_human_size(limits.max_part_bytes)}: not kept")
        ctx.parsed.parts.append(part)
        return
    data, problem = _payload_bytes(entity)
    if problem:
        ctx.defect(f"{location}: {problem}")
    part.data, part.size = data, len(data)
    if len(data) > limits.max_part_bytes:
        part.data = None
        part.error = (f"the attachment is {_human_size(len(data))}, over the limit of "
                      f"{_human_size(limits.max_part_bytes)}: not kept")
    ctx.parsed.parts.append(part)
    if part.data and (ctype == "application/ms-tnef" or (filename or "").lower() == "winmail.dat"):
        _tnef(part, len(ctx.parsed.parts) - 1, ctx)
        return
    if part.data and ((filename or "").lower().endswith(".eml") or ctype == "application/octet-stream"
                      or ctype.startswith("message/")) and _looks_like_message(part.data):
        ctx.parsed.parts.pop()
        _forward(data, None, filename, ctype, ctx, depth=depth, prefix=prefix, origin=origin,
                 parent=parent)


def _tnef_name(att: Any, codepage: str | None) -> str | None:
    """An attachment name inside TNEF: long file name first, raw bytes decoded GBK-tolerantly."""
    candidates = [a.data for a in getattr(att, "mapi_attrs", [])
                  if getattr(a, "name", None) == 0x3707]  # PR_ATTACH_LONG_FILENAME
    candidates.append(getattr(att, "_name", b""))
    for c in candidates:
        if isinstance(c, list):
            c = c[0] if c else b""
        if isinstance(c, bytes):
            c = decode_text(c.rstrip(b"\0"), codepage)[0]
        if isinstance(c, str) and c.strip("\0").strip():
            return c.strip("\0")
    return None


def _tnef(container: ExtractedPart, index: int, ctx: _Ctx) -> None:
    """Outlook's winmail.dat (TNEF): its attachments become parts (origin 'archive', parent the
    winmail.dat part), so files sent from Outlook/Exchange are not hidden inside it."""
    try:
        from tnefparse import TNEF
        tnef = TNEF(container.data, do_checksum=False)
        attachments = list(tnef.attachments)
    except Exception as e:  # noqa: BLE001 - damaged TNEF
        ctx.defect(f"{container.location}: the Outlook winmail.dat could not be read ({type(e).__name__})")
        return
    codepage = normalize_charset(getattr(tnef, "codepage", None)) if tnef else None
    for n, att in enumerate(attachments, 1):
        if len(ctx.parsed.parts) >= ctx.limits.max_parts:
            ctx.defect(f"{container.location}: more files than the part limit; the rest were not read")
            return
        data = att.data if isinstance(att.data, bytes) else b""
        name = sanitize_filename(_tnef_name(att, codepage))
        part = ExtractedPart(location=f"{container.location}/{name or f'file {n}'}", filename=name,
                             declared_type=None, origin="archive", parent=index, data=data,
                             size=len(data))
        if len(data) > ctx.limits.max_part_bytes:
            part.data, part.error = None, (f"the file is {_human_size(len(data))}, over the limit of "
                                           f"{_human_size(ctx.limits.max_part_bytes)}: not kept")
        ctx.parsed.parts.append(part)


def _safe_str(m: Any) -> str:
    try:
        if isinstance(m, Message):
            return "\n".join(f"{k}: {header_text(v)}" for k, v in getattr(m, "_headers", []))
        return str(m)
    except Exception:  # noqa: BLE001
        return ""


def _forward(raw: bytes, msg: Message | None, filename: str | None, ctype: str, ctx: _Ctx, *,
             depth: int, prefix: str, origin: str, parent: int | None) -> None:
    """A forwarded message: its own part (kind 'message'), its headers, then its contents."""
    limits = ctx.limits
    ctx.forwards += 1
    label = filename or f"forwarded message {ctx.forwards}.eml"
    location = prefix + label
    part = ExtractedPart(location=location, filename=filename, declared_type=ctype, origin=origin,
                         parent=parent, data=raw, size=len(raw))
    if len(raw) > limits.max_part_bytes:
        part.data, part.error = None, (f"the forwarded message is {_human_size(len(raw))}, over the "
                                       f"limit of {_human_size(limits.max_part_bytes)}: not kept")
    index = len(ctx.parsed.parts)
    ctx.parsed.parts.append(part)
    if depth + 1 > limits.max_forward_depth:
        ctx.defect(f"{location}: forwarded messages nested deeper than {limits.max_forward_depth} "
                   "levels were not opened")
        return
    if msg is None:
        msg, problem = _parse_bounded(raw, limits, ctx)
        if msg is None:
            ctx.defect(f"{location}: the forwarded message could not be read ({problem})")
            return
    ctx.parsed.forwarded.append(_headers_from(msg))
    body_before = (len(ctx.plain), len(ctx.html))
    _walk(msg, ctx, depth=depth + 1, prefix=location + "/", origin="forwarded", parent=index)
    # the forwarded text follows the main text (links to big attachments are often forwarded)
    for lst, start in ((ctx.plain, body_before[0]), (ctx.html, body_before[1])):
        if len(lst) > start:
            lst[start] = f"\n---------- forwarded message ({label}) ----------\n" + lst[start]


def _parse_chunked(raw: bytes, chunk: int = 1 << 20) -> Message:
    """``BytesParser(policy=compat32).parsebytes(raw)``, fed 1 MiB at a time.

    Same result (bytes are decoded one to one, ASCII with surrogateescape, and the feed parser
    takes text in any pieces), a third of the memory: parsebytes decodes the whole message into
    one str and wraps it in a StringIO, which keeps it as 4 bytes a character, so a 67 MB
    message (a 50 MB video) peaked near 600 MB in the parser alone (tests/test_hostile_ingest.py).
    """
    parser = BytesFeedParser(policy=compat32)
    for start in range(0, len(raw), chunk):
        parser.feed(raw[start:start + chunk])
    return parser.close()


def _parse_bounded(raw: bytes, limits: Any, ctx: _Ctx) -> tuple[Message | None, str | None]:
    """stdlib-parse raw bytes after bounding header size and part count. Never raises."""
    header, sep, body = _split_head(raw)
    header2, dropped = _bound_header(header, limits.max_header_bytes)
    if dropped or len(header2) < len(header):
        ctx.defect(f"the header section is {_human_size(len(header))}, over the limit of "
                   f"{_human_size(limits.max_header_bytes)}: {dropped:,} header fields were ignored")
    raw = header2 + (sep or b"\n\n") + body if (dropped or len(header2) < len(header)) else raw
    raw, cut = _bound_parts(raw, limits.max_parts)
    if cut:
        ctx.defect(f"the message has more than {limits.max_parts:,} MIME parts; the rest were not read")
    try:
        return _parse_chunked(raw), None
    except RecursionError:
        return None, "its MIME structure is nested too deeply"
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _outlook_msg(raw: bytes, parsed: ParsedMessage) -> None:
    """An Outlook .msg file (OLE2), not RFC 822: read subject and sender if olefile can."""
    parsed.defects.append("this is an Outlook .msg file, not an Internet message: only its "
                          "subject and sender were read")
    try:
        import io

        import olefile
        ole = olefile.OleFileIO(io.BytesIO(raw))
        try:
            def prop(code: str) -> str | None:
                for suffix, enc in (("001F", "utf-16-le"), ("001E", "gb18030")):
                    name = f"__substg1.0_{code}{suffix}"
                    if ole.exists(name):
                        return ole.openstream(name).read(8192).decode(enc, "replace").rstrip("\x00")
                return None
            parsed.headers.subject = _clean_text(prop("0037") or "")[:DECODED_HEADER_MAX]
            addr = prop("0C1F") or prop("5D01") or ""
            parsed.headers.from_addr = addr.strip().lower() or None if "@" in addr else None
            parsed.headers.from_name = prop("0C1A")
        finally:
            ole.close()
    except Exception:  # noqa: BLE001
        parsed.defects.append("the Outlook .msg file could not be read")


def parse_message(raw: bytes, limits: Any) -> ParsedMessage:
    """Parse one raw message. Never raises on bad mail; problems go to ``defects``.

    ``limits`` is ``ingest.config.Limits`` (max_parts, max_header_bytes, max_part_bytes,
    max_forward_depth, max_message_bytes are used)."""
    raw = bytes(raw or b"")
    parsed = ParsedMessage(headers=Headers(), content_sha256=hashlib.sha256(raw).hexdigest())
    ctx = _Ctx(limits=limits, parsed=parsed)
    try:
        _parse_into(raw, ctx)
    except Exception as e:  # noqa: BLE001 - last line of defence: record, never crash
        log.exception("parse_message failed")
        ctx.defect(f"the message could not be read completely ({type(e).__name__}: {e})")
    _finish(ctx)
    return parsed


def _parse_into(raw: bytes, ctx: _Ctx) -> None:
    limits, parsed = ctx.limits, ctx.parsed
    if len(raw.strip()) == 0 or len(raw) < 4:
        ctx.defect(f"the message is empty ({len(raw)} bytes)")
        return
    if raw.startswith(_OLE_MAGIC):
        _outlook_msg(raw, parsed)
        return
    if raw.startswith(b"From ") and b"\n" in raw[:1000]:  # an mbox 'From ' line
        raw = raw.split(b"\n", 1)[1]
    header, _, _ = _split_head(raw)
    if len(raw) > limits.max_message_bytes:
        ctx.defect(f"the message is {_human_size(len(raw))}, over the limit of "
                   f"{_human_size(limits.max_message_bytes)}: only its headers were read")
        parsed.headers = parse_headers(header, limits)
        return
    if b":" not in header[:1000]:
        ctx.defect("the message does not start with a header")
    msg, problem = _parse_bounded(raw, limits, ctx)
    if msg is None:
        ctx.defect(f"the MIME structure could not be read ({problem}); only the headers were used")
        parsed.headers = parse_headers(header, limits)
        return
    parsed.headers = _headers_from(msg, parsed.defects)
    for d in _mailparser_defects(_bound_header(header, limits.max_header_bytes)[0]):
        ctx.defect(d)
    _walk(msg, ctx, depth=0, prefix="", origin="attachment", parent=None)


def _finish(ctx: _Ctx) -> None:
    parsed = ctx.parsed
    problem = finish_body(parsed, ctx.plain, ctx.html, ctx.extra_text)
    if problem:
        ctx.defect(problem)
    if ctx.defect_overflow:
        parsed.defects.append(f"... and {ctx.defect_overflow:,} more defects")


def finish_body(parsed: ParsedMessage, plain: list[str], html: list[str],
                extra_text: list[str] = ()) -> str | None:
    """Set ``parsed.html``, ``parsed.body_text`` and ``parsed.links`` from the text parts found.

    ``plain``/``html`` are the decoded text/plain and text/html bodies in message order (forwarded
    ones after the main one). The body is the plain text, or the text of the HTML when there is
    no plain text, bounded to 64 KiB; links (big attachments, cloud drives) are looked for in both.
    Used by ``parse_message`` and by the IMAP streaming path, so both fill a message alike.
    Returns a defect in words when links could not be read, else None."""
    joined_html = "\n".join(html)
    parsed.html = bounded_utf8(joined_html, HTML_MAX)
    main_plain = "\n".join(plain)
    text = main_plain if main_plain.strip() else (html_to_text(parsed.html) if joined_html else "")
    if extra_text:
        text += "\n" + "\n".join(extra_text)
    parsed.body_text = bounded_utf8(_clean_body(text), BODY_TEXT_MAX)
    try:  # big-attachment / cloud-drive links in the text and HTML (also of forwarded messages)
        from ingest.links import find_links
        parsed.links = find_links(parsed.body_text, parsed.html)
    except Exception as e:  # noqa: BLE001 - links are a bonus, never a reason to fail the message
        log.exception("finding links failed")
        return f"links in the message text could not be read ({type(e).__name__})"
    return None


def _clean_body(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))


def part_from_entity(mime_header_bytes: bytes, location: str | None = None, *,
                     data: bytes | None = None, spool: Path | None = None, size: int | None = None,
                     origin: str = "attachment", parent: int | None = None,
                     encoded: bool = False) -> ExtractedPart:
    """Build an ExtractedPart from one MIME entity fetched on its own (IMAP streaming path).

    ``mime_header_bytes`` is the entity's own MIME header block as IMAP returns it for
    ``BODY.PEEK[<section>.MIME]`` (Content-Type, Content-Disposition, Content-Transfer-Encoding).
    The content is given either as ``data`` (bytes) or as ``spool`` (a file already written by the
    caller). Content must be *decoded* (IMAP ``BINARY[...]``, or decoded by the caller), except
    that ``encoded=True`` with ``data`` makes this function undo the Content-Transfer-Encoding.
    The file name is decoded exactly as in ``parse_message`` (RFC 2047/2231, GBK, raw 8-bit) and
    sanitized for display; ``location`` defaults to that name. Never raises: unreadable headers
    give a part without a name and with declared type ``application/octet-stream``."""
    try:
        entity = message_from_bytes(mime_header_bytes.split(b"\r\n\r\n")[0].split(b"\n\n")[0]
                                    + b"\n\n", policy=compat32)
    except Exception:  # noqa: BLE001
        entity = Message()
    filename = decode_filename(entity)
    ctype = _ctype(entity)
    if encoded and data is not None:
        entity.set_payload(data.decode("ascii", "surrogateescape"))
        data, _problem = _payload_bytes(entity)
    if size is None:
        size = len(data) if data is not None else (spool.stat().st_size if spool else None)
    inline = (ctype.startswith("image/") and _disposition(entity) != "attachment"
              and entity.get("Content-ID") is not None)
    return ExtractedPart(location=location or filename or f"part ({ctype})", filename=filename,
                         declared_type=ctype, origin=origin, data=data, spool=spool, size=size,
                         parent=parent, inline=inline)


def entity_info(mime_header_bytes: bytes) -> dict[str, Any]:
    """Decoded facts of a MIME header block: filename, content_type, disposition, charset,
    transfer_encoding. Helps a streaming fetcher decide which sections are attachments."""
    try:
        entity = message_from_bytes(mime_header_bytes + b"\n\n", policy=compat32)
    except Exception:  # noqa: BLE001
        entity = Message()
    return {"filename": decode_filename(entity), "content_type": _ctype(entity),
            "disposition": _disposition(entity), "charset": normalize_charset(entity.get_content_charset()),
            "transfer_encoding": str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower() or None}
