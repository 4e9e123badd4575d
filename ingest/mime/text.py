"""Charsets and text: bytes and header values decoded the way Chinese mail is sent.

* ``normalize_charset`` maps a MIME charset label to a Python codec; the gb2312 / gbk /
  gb_2312-80 / cp936 / euc-cn family becomes GB18030 (a superset: Foxmail and old Outlook label
  GBK text as gb2312).
* ``decode_text`` decodes bytes with the declared charset if it fits, else UTF-8, GB18030,
  Latin-1 (a multi-byte character cut off at the end is tolerated). Never raises.
* ``decode_words`` decodes RFC 2047 encoded words tolerantly: adjacent words of the same charset
  are joined *before* decoding (a character split across two words survives), bad base64 is
  repaired as far as possible, an unterminated word at the end is still decoded.
* ``header_text`` is a header value decoded, unfolded, cleaned of control characters and
  bounded; raw 8-bit header bytes are tried as UTF-8 (strict), then GB18030 (strict), then
  Latin-1 (``raw8``).
* ``tolerant_b64`` decodes base64 that may be cut short or hold junk, and says so;
  ``bounded_utf8`` cuts text to a number of UTF-8 bytes without breaking a character.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from typing import Any

HEADER_VALUE_MAX = 64 * 1024  # a single header value is cut to this before decoding
DECODED_HEADER_MAX = 4096  # characters kept of a decoded header value

_GB_LABELS = {
    "gb2312",
    "gb_2312",
    "gb_2312-80",
    "gb2312-80",
    "gb-2312",
    "csgb2312",
    "x-gb2312",
    "euc-cn",
    "x-euc-cn",
    "euccn",
    "gbk",
    "x-gbk",
    "cp936",
    "ms936",
    "windows-936",
    "x-cp936",
    "936",
    "chinese",
    "iso-ir-58",
    "csiso58gb231280",
    "gb18030",
    "gb-18030",
    "hz-gb-2312",
}
_LABEL_FIXES = {
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unknown": "",
    "unknown-8bit": "",
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "big5": "big5hkscs",
    "x-mac-chinesesimp": "gb18030",
}


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


def raw8(s: str) -> tuple[str, str | None]:
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
    if data.translate(None, _B64_CLEAN):  # any other byte: junk
        return False
    pad = data.find(b"=")
    if pad >= 0 and data[pad:].strip(b"=\r\n\t "):  # '=' in the middle
        return False
    spaces = sum(data.count(c) for c in (b"\r", b"\n", b"\t", b" "))
    return (len(data) - spaces) % 4 == 0 and data.count(b"=") <= 2


def tolerant_b64(data: bytes) -> tuple[bytes, bool]:
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
        between = value[pos : m.start()]
        if between and not (last_was_word and between.strip() == ""):
            flush()
            out.append(between)
        text = m.group("text").encode("ascii", "replace")
        if m.group("enc") in "bB":
            data, _ = tolerant_b64(text)
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


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", " ")


def header_text(value: Any) -> str:
    """A decoded, unfolded, bounded header value (str from compat32, maybe with raw 8-bit)."""
    if value is None:
        return ""
    s = str(value)[:HEADER_VALUE_MAX]
    s, _ = raw8(s)
    s = decode_words(unfold(s))
    return clean_text(s).strip()[:DECODED_HEADER_MAX]


def clean_text(s: str) -> str:
    """Drop characters that are never meant to be shown (NULs, other C0 controls but tab)."""
    return "".join(ch for ch in s if ch == "\t" or unicodedata.category(ch) not in ("Cc", "Cs"))


def bounded_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")
