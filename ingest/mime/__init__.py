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

The path of a message through the package
-----------------------------------------
``parse_message`` (here) sets an Outlook .msg file (OLE2, not RFC 822) aside, reading only its
subject and sender, and drops an mbox ``From `` line. Then:

1. ``bounds`` cuts the raw header section to ``limits.max_header_bytes`` and the MIME parts to
   ``limits.max_parts``, then runs the stdlib parser (compat32) on what is left;
2. ``headers`` reads the top-level ``Headers`` (mail-parser splits address lists and reports
   Date / Received defects);
3. ``tree`` walks the entities: body text, attachments, forwarded messages (each bounded and
   parsed by step 1 in turn), bounce reports, Outlook winmail.dat;
4. ``body`` makes ``body_text``, ``html`` and ``links`` of the text parts found.

Before step 1, a big message parsed with a spool directory has its long base64 runs set aside
(``spill``): the parser sees a small message, and ``tree`` decodes a big attachment from the raw
bytes straight into a spool file.

Underneath, ``text`` decodes bytes and header values (GBK labels read as GB18030, RFC 2047 words,
raw 8-bit headers, tolerant base64) and ``filenames`` decodes (RFC 2231, ``name=``) and sanitizes
attachment names. Each module imports only those before it in: text, filenames, bounds, headers,
body, tree, this package (``spill`` imports none of them). Every name other modules use is
importable from ``ingest.mime``.
"""

from __future__ import annotations

import hashlib
import logging
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

from ingest.mime.body import BODY_TEXT_MAX, HTML_MAX, finish_body, html_to_text, payload_bytes
from ingest.mime.bounds import bound_header, parse_bounded, split_head
from ingest.mime.filenames import FILENAME_MAX, decode_filename, raw_header, raw_headers, sanitize_filename
from ingest.mime.headers import headers_from, mailparser_defects, parse_headers
from ingest.mime.spill import MIN_RUN, Spill
from ingest.mime.text import (
    DECODED_HEADER_MAX,
    HEADER_VALUE_MAX,
    bounded_utf8,
    clean_text,
    decode_text,
    decode_words,
    header_text,
    normalize_charset,
)
from ingest.mime.tree import MAX_DEFECTS, MAX_TREE_DEPTH, WalkContext, ctype_of, disposition_of, walk_tree
from ingest.model import ExtractedPart, Headers, ParsedMessage
from ingest.sizes import human_size

__all__ = [
    "BODY_TEXT_MAX",
    "DECODED_HEADER_MAX",
    "FILENAME_MAX",
    "HEADER_VALUE_MAX",
    "HTML_MAX",
    "MAX_DEFECTS",
    "MAX_TREE_DEPTH",
    "bounded_utf8",
    "decode_filename",
    "decode_text",
    "decode_words",
    "entity_info",
    "finish_body",
    "header_text",
    "html_to_text",
    "normalize_charset",
    "parse_headers",
    "parse_message",
    "part_from_entity",
    "raw_header",
    "raw_headers",
    "sanitize_filename",
]

log = logging.getLogger(__name__)

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _outlook_msg(raw: bytes, parsed: ParsedMessage) -> None:
    """An Outlook .msg file (OLE2), not RFC 822: read subject and sender if olefile can."""
    parsed.defects.append(
        "this is an Outlook .msg file, not an Internet message: only its subject and sender were read"
    )
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

            parsed.headers.subject = clean_text(prop("0037") or "")[:DECODED_HEADER_MAX]
            addr = prop("0C1F") or prop("5D01") or ""
            parsed.headers.from_addr = addr.strip().lower() or None if "@" in addr else None
            parsed.headers.from_name = prop("0C1A")
        finally:
            ole.close()
    except Exception:  # noqa: BLE001 - hostile .msg file: recorded as a defect
        parsed.defects.append("the Outlook .msg file could not be read")


def parse_message(raw: bytes, limits: Any, spool_dir: Path | None = None) -> ParsedMessage:
    """Parse one raw message. Never raises on bad mail; problems go to ``defects``.

    ``limits`` is ``ingest.config.Limits`` (max_parts, max_header_bytes, max_part_bytes,
    max_forward_depth, max_message_bytes, stream_threshold_bytes are used). With ``spool_dir``,
    a message over ``stream_threshold_bytes`` has its big attachments decoded chunk by chunk
    into spool files there (``ExtractedPart.spool``, the caller deletes them) instead of being
    held in memory several times over (``spill``); the results are otherwise the same."""
    raw = bytes(raw or b"")
    parsed = ParsedMessage(headers=Headers(), content_sha256=hashlib.sha256(raw).hexdigest())
    ctx = WalkContext(limits=limits, parsed=parsed, spool_dir=spool_dir)
    try:
        _parse_into(raw, ctx)
    except Exception as e:  # noqa: BLE001 - last line of defence: record, never crash
        log.exception("parse_message failed")
        ctx.defect(f"the message could not be read completely ({type(e).__name__}: {e})")
    _finish(ctx)
    return parsed


def _parse_into(raw: bytes, ctx: WalkContext) -> None:
    limits, parsed = ctx.limits, ctx.parsed
    # (raw[:4096] first: strip() copies, and a big message is not all white space)
    if len(raw) < 4 or (not raw[:4096].strip() and len(raw.strip()) == 0):
        ctx.defect(f"the message is empty ({len(raw)} bytes)")
        return
    if raw.startswith(_OLE_MAGIC):
        _outlook_msg(raw, parsed)
        return
    full = len(raw)
    if ctx.spool_dir is not None and full > getattr(limits, "stream_threshold_bytes", full):
        ctx.spill = Spill(raw)
        raw = ctx.spill.reduce(raw, min(MIN_RUN, limits.stream_threshold_bytes))
        full = len(raw) + ctx.spill.removed
    if raw.startswith(b"From ") and b"\n" in raw[:1000]:  # an mbox 'From ' line
        cut = raw.index(b"\n") + 1
        raw, full = raw[cut:], full - cut
    header, _, _ = split_head(raw)
    if full > limits.max_message_bytes:
        ctx.defect(
            f"the message is {human_size(full)}, over the limit of "
            f"{human_size(limits.max_message_bytes)}: only its headers were read"
        )
        parsed.headers = parse_headers(header, limits)
        return
    if b":" not in header[:1000]:
        ctx.defect("the message does not start with a header")
    msg, problem = parse_bounded(raw, limits, ctx)
    if msg is None:
        ctx.defect(f"the MIME structure could not be read ({problem}); only the headers were used")
        parsed.headers = parse_headers(header, limits)
        return
    parsed.headers = headers_from(msg, parsed.defects, bound_header(header, limits.max_header_bytes)[0])
    for d in mailparser_defects(bound_header(header, limits.max_header_bytes)[0]):
        ctx.defect(d)
    walk_tree(msg, ctx, depth=0, prefix="", origin="attachment", parent=None)


def _finish(ctx: WalkContext) -> None:
    parsed = ctx.parsed
    problem = finish_body(parsed, ctx.plain, ctx.html, ctx.extra_text)
    if problem:
        ctx.defect(problem)
    if ctx.defect_overflow:
        parsed.defects.append(f"... and {ctx.defect_overflow:,} more defects")


def part_from_entity(
    mime_header_bytes: bytes,
    location: str | None = None,
    *,
    data: bytes | None = None,
    spool: Path | None = None,
    size: int | None = None,
    origin: str = "attachment",
    parent: int | None = None,
    encoded: bool = False,
) -> ExtractedPart:
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
        entity = message_from_bytes(
            mime_header_bytes.split(b"\r\n\r\n")[0].split(b"\n\n")[0] + b"\n\n", policy=compat32
        )
    except Exception:  # noqa: BLE001 - hostile header block: read as empty
        entity = Message()
    filename = decode_filename(entity)
    ctype = ctype_of(entity)
    if encoded and data is not None:
        entity.set_payload(data.decode("ascii", "surrogateescape"))
        data, _problem = payload_bytes(entity)
    if size is None:
        size = len(data) if data is not None else (spool.stat().st_size if spool else None)
    inline = (
        ctype.startswith("image/")
        and disposition_of(entity) != "attachment"
        and entity.get("Content-ID") is not None
    )
    return ExtractedPart(
        location=location or filename or f"part ({ctype})",
        filename=filename,
        declared_type=ctype,
        origin=origin,
        data=data,
        spool=spool,
        size=size,
        parent=parent,
        inline=inline,
    )


def entity_info(mime_header_bytes: bytes) -> dict[str, Any]:
    """Decoded facts of a MIME header block: filename, content_type, disposition, charset,
    transfer_encoding. Helps a streaming fetcher decide which sections are attachments."""
    try:
        entity = message_from_bytes(mime_header_bytes + b"\n\n", policy=compat32)
    except Exception:  # noqa: BLE001 - hostile header block: read as empty
        entity = Message()
    return {
        "filename": decode_filename(entity),
        "content_type": ctype_of(entity),
        "disposition": disposition_of(entity),
        "charset": normalize_charset(entity.get_content_charset()),
        "transfer_encoding": str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower() or None,
    }
