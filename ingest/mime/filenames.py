"""File names of MIME entities, decoded, and made safe to show.

``decode_filename(entity)`` reads ``Content-Disposition: filename`` (plain, RFC 2231
``filename*=`` in any charset, continuations ``filename*0*=``), then ``Content-Type: name`` (all
that some clients send). Encoded words inside quotes (Outlook) and raw 8-bit bytes (GBK or UTF-8
file names) are decoded before the stdlib splits the parameters, so it never mangles them.

``sanitize_filename`` neutralises path parts, control and bidi-override characters and Windows
device names: a name from a message is for display only, nobody may use it to write files.

``raw_header`` / ``raw_headers`` read header values exactly as parsed (compat32 keeps raw 8-bit
bytes reachable as surrogates); ``headers`` reads the message headers through them too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from email.message import Message
from typing import Any

from ingest.mime.text import HEADER_VALUE_MAX, decode_text, decode_words, raw8, unfold

FILENAME_MAX = 255  # characters of a display file name

_WINDOWS_DEVICES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def sanitize_filename(name: str | None) -> str | None:
    """A file name safe to *show*: no path, no control or bidi-override characters, no Windows
    device name (``CON`` becomes ``_CON``), at most 255 characters. None when nothing is left.

    Never use the result (or any name from a message) to build a path on disk."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cs", "Co")
        and ch not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
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
    s, _ = raw8(s)
    return decode_words(unfold(s))


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
    return [
        v if isinstance(v, str) else str(v) for k, v in getattr(msg, "_headers", []) if k.lower() == lname
    ]


def _find_param(entity: Message, names: Iterable[str], header: str) -> str | None:
    value = raw_header(entity, header)
    if value is None:
        return None
    # raw 8-bit bytes (GBK or UTF-8 file names in quotes) are decoded before the parameters
    # are split, so the stdlib never sees (and mangles) them
    text, _ = raw8(value[:HEADER_VALUE_MAX])
    probe = Message()
    probe[header] = unfold(text)
    try:
        params = probe.get_params(header=header, unquote=True) or []
    except Exception:  # noqa: BLE001 - broken parameter syntax
        return None
    best: str | None = None
    for key, value in params[1:]:
        if key.lower().rstrip("*") in names:
            found = _param_text(value)
            if found and (best is None or isinstance(value, tuple)):
                best = found  # an RFC 2231 value wins over a plain one
    return best


def decode_filename(entity: Message) -> str | None:
    """The decoded display name of a MIME entity, or None.

    Looks at ``Content-Disposition: filename`` (plain, RFC 2231, continuations) then
    ``Content-Type: name``; decodes encoded words inside quotes and raw 8-bit bytes; returns the
    name sanitized for display (``sanitize_filename``)."""
    try:
        raw = _find_param(entity, ("filename",), "content-disposition") or _find_param(
            entity, ("name",), "content-type"
        )
    except Exception:  # noqa: BLE001 - hostile header: treated as no filename
        raw = None
    return sanitize_filename(raw[: 4 * FILENAME_MAX] if raw else raw)
