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
canonical form (``layout.Layout``, checked while it streams); a part in any other encoding stays
among the bytes between. It is placed by the structure the server parsed (``RawTrail``): after
its parent's delimiter line and before the next, and its header and first bytes found nowhere
else between the parts (a decoy copy in the preamble must not be taken for it). When a part
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

FetchRange = Callable[[int, int], bytes]  # (offset, length) -> bytes of BODY[] there


@dataclass
class EncodedTrace:
    """One big part as served: where it starts in ``BODY[]``, how long it is, how it ends, and
    whether its layout can be redone (noted in the spool writer's thread as it streams)."""

    section: str
    needle: bytes  # its MIME header and first bytes: how it is found, and must not be found twice
    boundary: bytes | None  # of the multipart it is in: its delimiter line comes before and after
    start: int = 0
    spool: Path | None = None
    decoded_sha256: str | None = None
    length: int = 0
    tail: bytes = b""
    layout: Layout = field(default_factory=Layout, repr=False)

    def feed(self, chunk: bytes) -> None:
        self.length += len(chunk)
        self.tail = (self.tail + chunk[-EDGE:])[-EDGE:]
        self.layout.feed(chunk)

    def segment(self) -> dict | None:
        """The reference to this part in a skeleton, or None when its layout cannot be redone."""
        if self.spool is None or not self.decoded_sha256 or not self.length:
            return None
        found = self.layout.finish()
        if found is None:
            return None
        line, eol, final_eol = found
        seg = {"ref": self.decoded_sha256, "len": self.length, "enc": "base64"}
        return {**seg, "line": line, "eol": eol, "final_eol": final_eol}


class NoSkeleton(Exception):
    pass


class RawTrail:
    """Follows a streamed message in order and builds its skeleton (see module docstring).

    A big part is placed by the structure the server parsed, not by its content alone: in a
    multipart it must follow its parent's delimiter line (``--boundary``) and be followed by the
    next one, which base64 (the only parts referred to) cannot contain; alone, it must start
    right after the message header. And its MIME header and first bytes must occur nowhere
    else between the parts: a copy of them earlier in the message (a decoy) keeps the message
    whole, as it might otherwise be taken for the part."""

    def __init__(self, fetch_range: FetchRange, size: int):
        self.fetch_range, self.size = fetch_range, size
        self.sha = hashlib.sha256()
        self.cursor = 0  # bytes of BODY[] accounted for: hashed, and in a literal or a reference
        self.tail = b""  # the last bytes of the part before the cursor, checked when going on
        self.after = b""  # what must follow the part before the cursor (its parent's delimiter)
        self.segments: list[dict] = []
        self.literals: list[bytes] = []
        self.literal_bytes = 0
        self.traces: list[EncodedTrace] = []
        self.broken: str | None = None  # why no skeleton will be made

    def begin(
        self, section: str, mime_header: bytes, encoding: str, first: bytes, boundary: bytes | None
    ) -> EncodedTrace | None:
        """A big part whose first served chunk is ``first`` is about to stream: locate it and
        take the bytes before it. The trace returned is to see every chunk as served, in order
        (``EncodedTrace.feed`` and ``served``); None: the part stays among the bytes between
        (or there will be no skeleton). Only base64 parts are referred to."""
        if self.broken or encoding != "base64" or not first:
            return None
        if mime_header.startswith(b"--") or b"\n--" in mime_header:
            # a delimiter-like line in its header: a server that keeps one there would let a
            # decoy end inside the header, unseen by the decoy check (``_no_decoys``)
            self._break(f"part {section}'s header has a line starting with '--'")
            return None
        needle = mime_header + first[:EDGE]
        try:
            self._literal(self._locate(needle, len(mime_header), boundary))
        except NoSkeleton as e:
            self._break(str(e))
            return None
        trace = EncodedTrace(section, needle, boundary, start=self.cursor)
        self.traces.append(trace)
        return trace

    def served(self, chunk: bytes) -> None:
        self.sha.update(chunk)

    def end(self, trace: EncodedTrace) -> None:
        """The part has streamed (its spool file and decoded sha256 set)."""
        seg = trace.segment()
        if seg is None:
            self._break(f"part {trace.section} cannot be encoded again byte for byte")
            return
        self.segments.append(seg)
        self.cursor = trace.start + trace.length
        self.tail = trace.tail
        self.after = b"--" + trace.boundary if trace.boundary is not None else b""

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
                if self.literal_bytes + len(rest) > MAX_LITERAL:
                    raise NoSkeleton("too much between the big parts")
            if self.traces[-1].boundary is None and rest:
                raise NoSkeleton("bytes after the body of a single-part message")
            self._literal(bytes(rest))
            self._no_decoys()
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

    def _break(self, why: str) -> None:
        self.broken = why
        self.literals, self.segments, self.traces = [], [], []  # (not kept: the whole message is)

    def _literal(self, data: bytes) -> None:
        if data:
            self.literal_bytes += len(data)
            if self.literal_bytes > MAX_LITERAL:
                raise NoSkeleton("too much between the big parts")
            self.sha.update(data)
            self.segments.append({"lit": len(data)})
            self.literals.append(data)
            self.cursor += len(data)

    def _after_cursor(self) -> Iterator[bytes]:
        """``BODY[]`` from the cursor to its end, piece by piece, once the bytes at the cursor
        proved to be the end of the part streamed before, followed by its parent's delimiter."""
        if self.cursor > self.size:
            raise NoSkeleton(f"the parts are longer than the message ({self.size:,} bytes)")
        offset, tail, after = self.cursor - len(self.tail), self.tail, self.after
        self.tail, self.after = b"", b""
        first = True
        for piece in _pieces(self.fetch_range, offset, self.size):
            if first:
                first = False
                if piece[: len(tail)] != tail:
                    raise NoSkeleton("a part does not end where its length says")
                piece = piece[len(tail) :]
                if after and not (piece.startswith(b"\r\n" + after) or piece.startswith(b"\n" + after)):
                    raise NoSkeleton("a part is not followed by its delimiter line")
            yield piece

    def _locate(self, needle: bytes, header_length: int, boundary: bytes | None) -> bytes:
        """The bytes from the cursor up to the encoded body that ``needle`` (its MIME header
        and first bytes) begins, ``header_length`` bytes before the body: right after its
        parent's delimiter line, or at the cursor when it is in no multipart."""
        buf = bytearray()
        if boundary is None:
            for piece in self._after_cursor():
                buf += piece
                if len(buf) >= len(needle):
                    break
            if not buf.startswith(needle):
                raise NoSkeleton("the body of a single-part message is not where its header ends")
            return bytes(buf[:header_length])
        anchors = [b"--" + boundary + eol + needle for eol in (b"\r\n", b"\n")]
        for piece in self._after_cursor():
            searched = len(buf)
            buf += piece
            found = [(i, a) for a in anchors if (i := _line_start_find(buf, a, searched)) >= 0]
            if found:
                idx, anchor = min(found)
                return bytes(buf[: idx + len(anchor) - len(needle) + header_length])
            if self.literal_bytes + len(buf) > MAX_LITERAL:
                break
        raise NoSkeleton("a big part was not found where the message's structure puts it")

    def _no_decoys(self) -> None:
        """Each part's needle occurs exactly where a part with that needle was placed: at the
        end of the bytes before it, continued by the part's first bytes."""
        ext, literal, ref = [], 0, 0  # each literal, with the first bytes of a part that follows it
        for i, seg in enumerate(self.segments):
            if "lit" not in seg:
                ref += 1
                continue
            follows = i + 1 < len(self.segments) and "ref" in self.segments[i + 1]
            ext.append(self.literals[literal] + (self.traces[ref].needle[-EDGE:] if follows else b""))
            literal += 1
        for needle in {t.needle for t in self.traces}:
            found = sum(_count(e, needle) for e in ext)
            if found != sum(1 for t in self.traces if t.needle == needle):
                raise NoSkeleton("a big part's header and first bytes occur elsewhere in the message")


def _line_start_find(buf: bytearray, anchor: bytes, searched: int) -> int:
    """The first ``anchor`` in ``buf`` at the start of a line, not before ``searched`` minus its
    length (the part of ``buf`` searched before), or -1."""
    idx = buf.find(anchor, max(1, searched - len(anchor)))
    while idx > 0 and buf[idx - 1] != 0x0A:
        idx = buf.find(anchor, idx + 1)
    return idx


def _count(data: bytes, needle: bytes) -> int:
    """Occurrences of ``needle`` in ``data``, overlapping ones too."""
    n, i = 0, data.find(needle)
    while i >= 0:
        n, i = n + 1, data.find(needle, i + 1)
    return n


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
