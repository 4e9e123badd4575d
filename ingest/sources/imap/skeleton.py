"""The raw copy of a message streamed part by part, without storing its big parts twice.

The streamer (``stream.Streamer``) fetches a big part's encoded bytes section by section and
keeps them decoded in a spool file (which becomes the store's file). A ``RawTrail`` follows it
through the message in order: before a big part streams, the bytes from the end of the previous
one up to this part's encoded body (headers, boundaries, small parts) are fetched with partial
``BODY.PEEK[]<offset.length>`` and the part located in them by its MIME header followed by its
first encoded bytes; the part's chunks then go through the message's sha256 as they stream (in
the spool writer's thread), as does every byte between them, so the message's sha256 is that of
``BODY[]`` without fetching or encoding anything twice. Each part's end is checked by its last
bytes when the next bytes are fetched. The skeleton (ingest/raw.py) holds the bytes between the
big parts and a reference per part (its file's sha256 and base64 line layout).

A part is referred to only when encoding its file again gives what was served: base64 in
canonical form (``layout.Layout``, checked while it streams) or sent as is (7bit, 8bit, binary).
A part in any other encoding (quoted-printable) stays among the bytes between. When a part
cannot be located, its layout is irregular or its end does not match, the whole message is
fetched again in pieces and kept compressed: stored twice, but always byte-identical to what the
server served.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest import raw
from ingest.raw import RawCopy
from ingest.sources.imap.layout import Layout

log = logging.getLogger("ingest.sources.imap")

EDGE = 64  # bytes of a part's start and end used to locate and check it
PIECE = 1024 * 1024  # partial FETCH size for the bytes between big parts
MAX_LITERAL = 64 * 1024 * 1024  # more than this between big parts: keep the whole message instead
REFERABLE = ("base64", "7bit", "8bit", "binary")

FetchRange = Callable[[int, int], bytes]  # (offset, length) -> bytes of BODY[] there


@dataclass
class EncodedTrace:
    """One big part as served: where it starts in ``BODY[]``, how long it is, how it ends, and
    whether its layout can be redone (noted in the spool writer's thread as it streams)."""

    section: str
    mime_header: bytes
    encoding: str
    start: int = 0
    spool: Path | None = None
    decoded_sha256: str | None = None
    length: int = 0
    tail: bytes = b""
    layout: Layout | None = field(default=None, repr=False)

    def feed(self, chunk: bytes) -> None:
        self.length += len(chunk)
        self.tail = (self.tail + chunk[-EDGE:])[-EDGE:]
        if self.layout is not None:
            self.layout.feed(chunk)

    def segment(self) -> dict | None:
        """The reference to this part in a skeleton, or None when its layout cannot be redone."""
        if self.spool is None or not self.decoded_sha256 or not self.length:
            return None
        seg: dict = {"ref": self.decoded_sha256, "len": self.length}
        if self.layout is None:
            return {**seg, "enc": "identity"}
        found = self.layout.finish()
        if found is None:
            return None
        line, eol, final_eol = found
        return {**seg, "enc": "base64", "line": line, "eol": eol, "final_eol": final_eol}


class NoSkeleton(Exception):
    pass


class RawTrail:
    """Follows a streamed message in order and builds its skeleton (see module docstring)."""

    def __init__(self, fetch_range: FetchRange, size: int):
        self.fetch_range, self.size = fetch_range, size
        self.sha = hashlib.sha256()
        self.cursor = 0  # bytes of BODY[] accounted for: hashed, and in a literal or a reference
        self.tail = b""  # the last bytes of the part before the cursor, checked when going on
        self.segments: list[dict] = []
        self.literals: list[bytes] = []
        self.broken: str | None = None  # why no skeleton will be made

    def begin(self, section: str, mime_header: bytes, encoding: str, first: bytes) -> EncodedTrace | None:
        """A big part whose first served chunk is ``first`` is about to stream: locate it and
        take the bytes before it. The trace returned is to see every chunk as served, in order
        (``EncodedTrace.feed`` and ``served``); None: the part stays among the bytes between
        (or there will be no skeleton)."""
        if self.broken or encoding not in REFERABLE or not first:
            return None
        try:
            self._literal(self._locate(mime_header + first[:EDGE], len(mime_header)))
        except NoSkeleton as e:
            self.broken = str(e)
            return None
        layout = Layout() if encoding == "base64" else None
        return EncodedTrace(section, mime_header, encoding, start=self.cursor, layout=layout)

    def served(self, chunk: bytes) -> None:
        self.sha.update(chunk)

    def end(self, trace: EncodedTrace) -> None:
        """The part has streamed (its spool file and decoded sha256 set)."""
        seg = trace.segment()
        if seg is None:
            self.broken = f"part {trace.section} cannot be encoded again byte for byte"
            return
        self.segments.append(seg)
        self.cursor = trace.start + trace.length
        self.tail = trace.tail

    def copy(self) -> RawCopy | None:
        """The skeleton, or None (keep the whole message instead)."""
        try:
            if self.broken:
                raise NoSkeleton(self.broken)
            if not self.segments:
                return None
            rest = bytearray()
            for piece in self._after_cursor():
                rest += piece
                if len(rest) > MAX_LITERAL:
                    raise NoSkeleton("too much after the big parts")
            self._literal(bytes(rest))
            if sum(len(x) for x in self.literals) > MAX_LITERAL:
                raise NoSkeleton("too much between the big parts")
        except NoSkeleton as e:
            log.info("raw copy kept whole: %s", e)
            return None
        first = self.literals[0] if "lit" in self.segments[0] else b""
        return RawCopy(
            headers=raw.header_block(first),
            sha256=self.sha.hexdigest(),
            size=self.cursor,
            blob=raw.skeleton_blob(self.segments, self.literals),
            form="skel",
        )

    def _literal(self, data: bytes) -> None:
        if data:
            self.sha.update(data)
            self.segments.append({"lit": len(data)})
            self.literals.append(data)
            self.cursor += len(data)

    def _after_cursor(self) -> Iterator[bytes]:
        """``BODY[]`` from the cursor to its end, piece by piece, once the bytes before the
        cursor proved to be the last ones of the part streamed before."""
        if self.cursor > self.size:
            raise NoSkeleton(f"the parts are longer than the message ({self.size:,} bytes)")
        offset, tail = self.cursor - len(self.tail), self.tail
        self.tail = b""
        while offset < self.size:
            piece = self.fetch_range(offset, min(PIECE, self.size - offset))
            if not piece:
                raise NoSkeleton(f"the server sent nothing at byte {offset:,} of {self.size:,}")
            offset += len(piece)
            if tail:
                if piece[: len(tail)] != tail:
                    raise NoSkeleton("a part does not end where its length says")
                piece, tail = piece[len(tail) :], b""
            yield piece

    def _locate(self, needle: bytes, header_length: int) -> bytes:
        """The bytes from the cursor up to the encoded body that ``needle`` (its MIME header
        and first bytes) begins (``header_length`` bytes before the body)."""
        buf = b""
        for piece in self._after_cursor():
            searched = len(buf)
            buf += piece
            idx = buf.find(needle, max(0, searched - len(needle)))
            if idx >= 0:
                return buf[: idx + header_length]
            if len(buf) > MAX_LITERAL:
                break
        raise NoSkeleton("a big part was not found in the message")


def whole(
    fetch_range: FetchRange, size: int, spool_dir: Path, header_limit: int, header: bytes | None
) -> RawCopy:
    """The whole message fetched again in pieces and kept compressed."""
    try:
        return raw.whole_from_chunks(_pieces(fetch_range, 0, size), spool_dir, header_limit)
    except NoSkeleton as e:  # the server would not serve the message whole: keep what we can
        log.warning("raw copy not kept, only the header: %s", e)
        return RawCopy(headers=header)


def _pieces(fetch_range: FetchRange, start: int, end: int) -> Iterator[bytes]:
    offset = start
    while offset < end:
        chunk = fetch_range(offset, min(PIECE, end - offset))
        if not chunk:
            raise NoSkeleton(f"the server sent nothing at byte {offset:,} of {end:,}")
        offset += len(chunk)
        yield chunk
