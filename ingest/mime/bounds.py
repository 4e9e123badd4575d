"""Bounding a raw message before the stdlib parser sees it, then parsing it.

The stdlib ``email`` parser (compat32 policy, which keeps raw bytes reachable) has no limits of
its own, so the raw bytes are cut first: the header section to ``limits.max_header_bytes`` (the
first of each field needed to read the message is still kept: ``bound_header``), the number of
MIME parts to ``limits.max_parts`` (the message is cut at the boundary line after the last
allowed part: ``_bound_parts``). ``parse_bounded`` does both, notes what was cut as a defect,
and feeds the parser 1 MiB at a time (``_parse_chunked``). Never raises.
"""

from __future__ import annotations

import re
from email.feedparser import BytesFeedParser
from email.message import Message
from email.policy import compat32
from itertools import pairwise
from typing import Any, Protocol

from ingest.mime.text import HEADER_VALUE_MAX
from ingest.sizes import human_size


class _Defects(Protocol):
    """What ``parse_bounded`` needs of its caller's context (``tree.WalkContext``): a place for defects."""

    def defect(self, text: str) -> None: ...


_ESSENTIAL = {
    b"from",
    b"sender",
    b"to",
    b"cc",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"content-disposition",
    b"return-path",
    b"auto-submitted",
    b"precedence",
    b"list-id",
}
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"^(?=[^ \t\r\n])", re.M)


def split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header, separator, body); a message without a blank line is all header."""
    if raw.startswith((b"\r\n", b"\n")):
        sep = b"\r\n" if raw.startswith(b"\r\n") else b"\n"
        return b"", sep, raw[len(sep) :]
    m = _HEADER_END.search(raw)
    if not m:
        return raw, b"", b""
    return raw[: m.start()], m.group(0), raw[m.end() :]


def bound_header(header: bytes, max_bytes: int) -> tuple[bytes, int]:
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
    for a, b in pairwise(starts):
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
                return raw[: m.start()], True
    return raw, False


def _parse_chunked(raw: bytes, chunk: int = 1 << 20) -> Message:
    """``BytesParser(policy=compat32).parsebytes(raw)``, fed 1 MiB at a time.

    Same result (bytes are decoded one to one, ASCII with surrogateescape, and the feed parser
    takes text in any pieces), a third of the memory: parsebytes decodes the whole message into
    one str and wraps it in a StringIO, which keeps it as 4 bytes a character, so a 67 MB
    message (a 50 MB video) peaked near 600 MB in the parser alone (tests/test_hostile_ingest.py).
    """
    parser = BytesFeedParser(policy=compat32)
    for start in range(0, len(raw), chunk):
        parser.feed(raw[start : start + chunk])
    return parser.close()


def parse_bounded(raw: bytes, limits: Any, ctx: _Defects) -> tuple[Message | None, str | None]:
    """stdlib-parse raw bytes after bounding header size and part count. Never raises."""
    header, sep, body = split_head(raw)
    header2, dropped = bound_header(header, limits.max_header_bytes)
    if dropped or len(header2) < len(header):
        ctx.defect(
            f"the header section is {human_size(len(header))}, over the limit of "
            f"{human_size(limits.max_header_bytes)}: {dropped:,} header fields were ignored"
        )
    raw = header2 + (sep or b"\n\n") + body if (dropped or len(header2) < len(header)) else raw
    raw, cut = _bound_parts(raw, limits.max_parts)
    if cut:
        ctx.defect(f"the message has more than {limits.max_parts:,} MIME parts; the rest were not read")
    try:
        return _parse_chunked(raw), None
    except RecursionError:
        return None, "its MIME structure is nested too deeply"
    except Exception as e:  # noqa: BLE001 - hostile structure: the reason is recorded
        return None, f"{type(e).__name__}: {e}"
