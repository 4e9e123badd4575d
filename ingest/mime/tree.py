"""Walking the MIME tree of a parsed message into body text, attachments and forwarded messages.

``walk_tree`` visits the entities iteratively, at most ``limits.max_parts`` of them and
``MAX_TREE_DEPTH`` levels of multipart nesting. Each leaf (``_leaf``) becomes one of:

* body text (text/plain or text/html not sent as an attachment), kept in ``WalkContext.plain`` /
  ``WalkContext.html`` for ``body.finish_body``;
* a forwarded message (``message/rfc822``, or an ``.eml`` sent as a plain attachment:
  ``_forward``): a part of its own, its headers appended to ``ParsedMessage.forwarded``, then its
  contents walked with ``origin='forwarded'`` and ``parent`` the index of its part, at most
  ``limits.max_forward_depth`` levels deep;
* inside a bounce (``multipart/report``): the returned message's headers and the delivery-status
  text, kept for bounce analysis, not as files;
* an attachment (``ExtractedPart``, ``origin='attachment'``), not kept over
  ``limits.max_part_bytes``; Outlook's winmail.dat (TNEF) is opened and its files become parts of
  their own (``_tnef``).

Whatever cannot be read is noted in ``ParsedMessage.defects`` in plain words (``WalkContext.defect``, at
most ``MAX_DEFECTS`` of them).
"""

# long: the walk over the MIME tree and its leaf cases belong together

from __future__ import annotations

import quopri
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

from ingest.mime.body import BODY_TEXT_MAX, HTML_MAX, payload_bytes
from ingest.mime.bounds import parse_bounded
from ingest.mime.filenames import decode_filename, sanitize_filename
from ingest.mime.headers import headers_from
from ingest.mime.text import decode_text, header_text, normalize_charset, tolerant_b64
from ingest.model import ExtractedPart, ParsedMessage
from ingest.sizes import human_size

MAX_DEFECTS = 100  # defects listed per message, then "... and N more"
MAX_TREE_DEPTH = 64  # multipart nesting read

_FORWARD_TYPES = ("message/rfc822", "message/global")
_REPORT_SKIP = (
    "message/delivery-status",
    "message/disposition-notification",
    "message/global-delivery-status",
    "text/rfc822-headers",
    "message/global-headers",
)


@dataclass
class WalkContext:
    limits: Any
    parsed: ParsedMessage
    entities: int = 0
    stopped: bool = False
    forwards: int = 0
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    extra_text: list[str] = field(default_factory=list)
    defect_overflow: int = 0
    spill: Any = None  # spill.Spill: big runs set aside before parsing
    spool_dir: Path | None = None  # where big attachments are decoded to

    def defect(self, text: str) -> None:
        if len(self.parsed.defects) < MAX_DEFECTS:
            if text not in self.parsed.defects:
                self.parsed.defects.append(text)
        else:
            self.defect_overflow += 1


def ctype_of(entity: Message) -> str:
    try:
        return entity.get_content_type()
    except Exception:  # noqa: BLE001 - hostile Content-Type: treated as opaque bytes
        return "application/octet-stream"


def disposition_of(entity: Message) -> str | None:
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


def _entity_defects(entity: Message, ctx: WalkContext, where: str) -> None:
    for d in getattr(entity, "defects", []) or []:
        name = type(d).__name__
        ctx.defect(f"{where}: {_DEFECT_WORDS.get(name, name)}")


def walk_tree(
    root: Message,
    ctx: WalkContext,
    *,
    depth: int,
    prefix: str,
    origin: str,
    parent: int | None,
    in_report: bool = False,
) -> None:
    """Visit a message's entity tree iteratively, appending parts / body text to ctx."""
    stack: list[tuple[Message, int, bool]] = [(root, 0, in_report)]
    while stack:
        entity, level, report = stack.pop()
        if ctx.stopped:
            return
        ctx.entities += 1
        if ctx.entities > ctx.limits.max_parts:
            ctx.stopped = True
            ctx.defect(
                f"the message has more than {ctx.limits.max_parts:,} MIME parts; the rest were not read"
            )
            return
        ctype = ctype_of(entity)
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
        _leaf(entity, ctype, ctx, depth=depth, prefix=prefix, origin=origin, parent=parent, in_report=report)


# long: every way a leaf part is kept (memory, spool, TNEF, forwarded) decided in one place
def _leaf(
    entity: Message,
    ctype: str,
    ctx: WalkContext,
    *,
    depth: int,
    prefix: str,
    origin: str,
    parent: int | None,
    in_report: bool,
) -> None:
    limits = ctx.limits
    filename = decode_filename(entity)
    disp = disposition_of(entity)

    if ctype in _FORWARD_TYPES:
        inner = entity.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            if in_report:  # the returned message of a bounce: its headers only
                ctx.parsed.forwarded.append(headers_from(inner[0]))
                return
            try:
                raw_inner = inner[0].as_bytes(policy=compat32)
            except Exception:  # noqa: BLE001 - hostile inner message: nothing to spill
                raw_inner = b""
            if ctx.spill is not None and ctx.spill.has_tokens(raw_inner):
                raw_inner = ctx.spill.expand(raw_inner)
            cte = str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower()
            if cte in ("base64", "quoted-printable"):
                # not allowed by RFC 2046 but sent: the parser took the encoded text for a message
                raw_inner = tolerant_b64(raw_inner)[0] if cte == "base64" else quopri.decodestring(raw_inner)
                _forward(
                    raw_inner,
                    None,
                    filename,
                    ctype,
                    ctx,
                    depth=depth,
                    prefix=prefix,
                    origin=origin,
                    parent=parent,
                )
                return
            _forward(
                raw_inner,
                inner[0],
                filename,
                ctype,
                ctx,
                depth=depth,
                prefix=prefix,
                origin=origin,
                parent=parent,
            )
            return
        # a message/rfc822 part whose content was transfer-encoded: decode and parse
        data, _ = payload_bytes(entity, ctx.spill)
        if in_report:
            return
        _forward(data, None, filename, ctype, ctx, depth=depth, prefix=prefix, origin=origin, parent=parent)
        return
    if ctype in _REPORT_SKIP:
        # delivery-status fields: text for bounce analysis, not a file
        payload = getattr(entity, "_payload", None)
        if isinstance(payload, list):
            text = "\n".join(_safe_str(m) for m in payload[:50])
        else:
            text = decode_text(payload_bytes(entity, ctx.spill)[0][:BODY_TEXT_MAX])[0]
        ctx.extra_text.append(text[:BODY_TEXT_MAX])
        return

    if ctype.startswith("multipart/") and not filename:
        # a multipart the parser could not split (no or wrong boundary): keep its text as body
        data, _ = payload_bytes(entity, ctx.spill)
        text = decode_text(data[:BODY_TEXT_MAX])[0]
        if text.strip():
            ctx.plain.append(text)
        return
    is_body = ctype in ("text/plain", "text/html") and disp != "attachment" and not filename
    if is_body:
        data, problem = payload_bytes(entity, ctx.spill)
        if problem:
            ctx.defect(f"message text: {problem}")
        text = decode_text(data[: HTML_MAX * 2], entity.get_content_charset())[0]
        (ctx.plain if ctype == "text/plain" else ctx.html).append(text)
        return

    # an attachment
    shown = filename or f"part {ctx.entities} ({ctype})"
    location = prefix + shown
    encoded = getattr(entity, "_payload", None)
    enc_len = len(encoded) if isinstance(encoded, (str, bytes)) else 0
    spilled = ctx.spill is not None and ctx.spill.has_tokens(encoded)
    if spilled:
        enc_len = ctx.spill.size(encoded)
    cte = str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower()
    estimate = enc_len * 3 // 4 if cte == "base64" else enc_len
    inline = ctype.startswith("image/") and disp != "attachment" and entity.get("Content-ID") is not None
    part = ExtractedPart(
        location=location, filename=filename, declared_type=ctype, origin=origin, parent=parent, inline=inline
    )
    if estimate > limits.max_part_bytes:
        part.size = estimate
        part.error = (
            f"the attachment is about {human_size(estimate)}, over the limit of "
            f"{human_size(limits.max_part_bytes)}: not kept"
        )
        ctx.parsed.parts.append(part)
        return
    if spilled and ctx.spool_dir is not None and _spool(entity, encoded, cte, part, ctx):
        if part.spool is None or not _tnef_or_message(part, ctype, filename):
            ctx.parsed.parts.append(part)
            return
        data = _unspool(part)  # opened further in memory, as before
    else:
        data, problem = payload_bytes(entity, ctx.spill)
        if problem:
            ctx.defect(f"{location}: {problem}")
    part.data, part.size = data, len(data)
    if len(data) > limits.max_part_bytes:
        part.data = None
        part.error = (
            f"the attachment is {human_size(len(data))}, over the limit of "
            f"{human_size(limits.max_part_bytes)}: not kept"
        )
    ctx.parsed.parts.append(part)
    if part.data and (ctype == "application/ms-tnef" or (filename or "").lower() == "winmail.dat"):
        _tnef(part, len(ctx.parsed.parts) - 1, ctx)
        return
    if (
        part.data
        and (
            (filename or "").lower().endswith(".eml")
            or ctype == "application/octet-stream"
            or ctype.startswith("message/")
        )
        and _looks_like_message(part.data)
    ):
        ctx.parsed.parts.pop()
        _forward(data, None, filename, ctype, ctx, depth=depth, prefix=prefix, origin=origin, parent=parent)


def _spool(entity: Message, encoded: Any, cte: str, part: ExtractedPart, ctx: WalkContext) -> bool:
    """A big attachment decoded chunk by chunk into a spool file (``part.spool``). False when it
    must be decoded in memory instead (see ``spill.spool_payload``)."""
    try:
        got = ctx.spill.spool_payload(encoded, cte, ctx.spool_dir)
    except OSError as e:
        ctx.defect(
            f"{part.location}: could not be written to the spool directory ({e.strerror}); read in memory"
        )
        return False
    if got is None:
        return False
    part.spool, part.size = got
    if part.size > ctx.limits.max_part_bytes:
        part.spool.unlink(missing_ok=True)
        part.spool = None
        part.error = (
            f"the attachment is {human_size(part.size)}, over the limit of "
            f"{human_size(ctx.limits.max_part_bytes)}: not kept"
        )
    entity.set_payload("")  # the parser's copy of the (small) text around the run
    return True


def _tnef_or_message(part: ExtractedPart, ctype: str, filename: str | None) -> bool:
    """Whether a spooled attachment is a winmail.dat or a forwarded message: opened in memory."""
    name = (filename or "").lower()
    if ctype == "application/ms-tnef" or name == "winmail.dat":
        return (part.size or 0) > 0
    if part.spool is None:
        return False
    if name.endswith(".eml") or ctype == "application/octet-stream" or ctype.startswith("message/"):
        with open(part.spool, "rb") as f:
            return _looks_like_message(f.read(8192))
    return False


def _unspool(part: ExtractedPart) -> bytes:
    """Read a spooled part back into memory (a winmail.dat or a forwarded message to open)."""
    assert part.spool is not None, "only a spooled part is read back"
    with open(part.spool, "rb") as f:
        data = f.read()
    part.spool.unlink(missing_ok=True)
    part.spool = None
    return data


def _tnef_name(att: Any, codepage: str | None) -> str | None:
    """An attachment name inside TNEF: long file name first, raw bytes decoded GBK-tolerantly."""
    candidates = [
        a.data for a in getattr(att, "mapi_attrs", []) if getattr(a, "name", None) == 0x3707
    ]  # PR_ATTACH_LONG_FILENAME
    candidates.append(getattr(att, "_name", b""))
    for c in candidates:
        if isinstance(c, list):
            c = c[0] if c else b""
        if isinstance(c, bytes):
            c = decode_text(c.rstrip(b"\0"), codepage)[0]
        if isinstance(c, str) and c.strip("\0").strip():
            return c.strip("\0")
    return None


def _tnef(container: ExtractedPart, index: int, ctx: WalkContext) -> None:
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
        part = ExtractedPart(
            location=f"{container.location}/{name or f'file {n}'}",
            filename=name,
            declared_type=None,
            origin="archive",
            parent=index,
            data=data,
            size=len(data),
        )
        if len(data) > ctx.limits.max_part_bytes:
            part.data, part.error = (
                None,
                (
                    f"the file is {human_size(len(data))}, over the limit of "
                    f"{human_size(ctx.limits.max_part_bytes)}: not kept"
                ),
            )
        ctx.parsed.parts.append(part)


def _safe_str(m: Any) -> str:
    try:
        if isinstance(m, Message):
            return "\n".join(f"{k}: {header_text(v)}" for k, v in getattr(m, "_headers", []))
        return str(m)
    except Exception:  # noqa: BLE001 - hostile headers: describe them as empty
        return ""


def _forward(
    raw: bytes,
    msg: Message | None,
    filename: str | None,
    ctype: str,
    ctx: WalkContext,
    *,
    depth: int,
    prefix: str,
    origin: str,
    parent: int | None,
) -> None:
    """A forwarded message: its own part (kind 'message'), its headers, then its contents."""
    limits = ctx.limits
    ctx.forwards += 1
    label = filename or f"forwarded message {ctx.forwards}.eml"
    location = prefix + label
    part = ExtractedPart(
        location=location,
        filename=filename,
        declared_type=ctype,
        origin=origin,
        parent=parent,
        data=raw,
        size=len(raw),
    )
    if len(raw) > limits.max_part_bytes:
        part.data, part.error = (
            None,
            (
                f"the forwarded message is {human_size(len(raw))}, over the "
                f"limit of {human_size(limits.max_part_bytes)}: not kept"
            ),
        )
    index = len(ctx.parsed.parts)
    ctx.parsed.parts.append(part)
    if depth + 1 > limits.max_forward_depth:
        ctx.defect(
            f"{location}: forwarded messages nested deeper than {limits.max_forward_depth} "
            "levels were not opened"
        )
        return
    if msg is None:
        msg, problem = parse_bounded(raw, limits, ctx)
        if msg is None:
            ctx.defect(f"{location}: the forwarded message could not be read ({problem})")
            return
    ctx.parsed.forwarded.append(headers_from(msg))
    body_before = (len(ctx.plain), len(ctx.html))
    walk_tree(msg, ctx, depth=depth + 1, prefix=location + "/", origin="forwarded", parent=index)
    # the forwarded text follows the main text (links to big attachments are often forwarded)
    for lst, start in ((ctx.plain, body_before[0]), (ctx.html, body_before[1])):
        if len(lst) > start:
            lst[start] = f"\n---------- forwarded message ({label}) ----------\n" + lst[start]
