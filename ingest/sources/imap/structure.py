"""BODYSTRUCTURE: which leaf parts a message has, with their IMAP section numbers and sizes.

The streamer fetches a big message part by part from this map, without downloading it first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Leaf:
    section: str  # IMAP part number, '1', '2.1', ...
    ctype: str  # 'application/pdf'
    encoding: str | None  # Content-Transfer-Encoding
    size: int  # encoded size in octets
    inner: Any = None  # message/rfc822: the encapsulated message's BODYSTRUCTURE
    boundary: bytes | None = None  # the boundary of the multipart it is in (None: not in one)


def as_text(v: Any) -> str:
    """An IMAP atom (bytes, str or NIL) as text."""
    if isinstance(v, bytes):
        return v.decode("ascii", "replace")
    return "" if v is None else str(v)


def leaves(body: Any, prefix: str = "", top: bool = True, boundary: bytes | None = None) -> Iterator[Leaf]:
    """The leaf parts of a BODYSTRUCTURE (imapclient ``BodyData``), with their section numbers."""
    from imapclient.response_types import BodyData

    if not isinstance(body, BodyData):
        body = BodyData.create(body)
    if body.is_multipart:
        own = _boundary(body)
        for i, child in enumerate(body[0], start=1):
            yield from leaves(child, f"{prefix}{i}.", top=False, boundary=own)
        return
    section = (prefix + "1") if top else prefix[:-1]
    ctype = f"{as_text(body[0]).lower()}/{as_text(body[1]).lower()}"
    try:
        size = int(body[6] or 0)
    except (TypeError, ValueError, IndexError):
        size = 0
    inner = body[8] if ctype in ("message/rfc822", "message/global") and len(body) > 8 else None
    yield Leaf(section, ctype, as_text(body[5]).lower() or None, size, inner, boundary)


def _boundary(multipart: Any) -> bytes | None:
    """The boundary parameter of a multipart (in BODYSTRUCTURE's extension data), if given."""
    params = multipart[2] if len(multipart) > 2 else None
    if not isinstance(params, (tuple, list)):
        return None
    for name, value in zip(params[::2], params[1::2], strict=False):
        if as_text(name).lower() == "boundary" and isinstance(value, (bytes, str)) and value:
            return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return None
