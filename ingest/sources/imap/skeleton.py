"""The raw copy of a message streamed part by part, without storing its big parts twice.

The streamer (``stream.Streamer``) fetched the big parts' encoded bytes section by section and
kept them decoded in spool files (which become the store's files). While doing so an
``EncodedTrace`` noted, per big part, the sha256 and length of the encoded bytes as served, its
first and last bytes, and its line layout (base64 line length and line end). Here the rest of
the message is fetched with partial ``BODY.PEEK[]<offset.length>``: the bytes between the big
parts (headers, boundaries, small parts, preamble, epilogue), each big part located by its MIME
header followed by its first encoded bytes (and checked by its last ones). The skeleton
(ingest/raw.py) holds those bytes and a reference per big part.

It is kept only when verified: the reassembly (every big part encoded again from its spool
file) must give, per part, the encoded sha256 that was served, and in total exactly
``RFC822.SIZE`` bytes. Otherwise (quoted-printable, irregular line lengths, a layout not found)
the whole message is fetched again in pieces and kept compressed: stored twice, but always
byte-identical to what the server served.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest import raw
from ingest.raw import RawCopy

log = logging.getLogger("ingest.sources.imap")

EDGE = 64  # bytes of a part's start and end used to locate and check it
PIECE = 1024 * 1024  # partial FETCH size for the bytes between big parts
MAX_LITERAL = 64 * 1024 * 1024  # more than this between big parts: keep the whole message instead


@dataclass
class EncodedTrace:
    """What was served of one big part, noted while it streamed (see module docstring)."""

    section: str
    mime_header: bytes
    encoding: str
    spool: Path | None = None
    decoded_sha256: str | None = None
    length: int = 0
    head: bytes = b""
    tail: bytes = b""
    first_line: bytes | None = None  # up to and including the first line end
    _sha: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)
    _pending_line: bytes = b""

    def feed(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.length += len(chunk)
        if len(self.head) < EDGE:
            self.head += chunk[: EDGE - len(self.head)]
        self.tail = (self.tail + chunk)[-EDGE:]
        if self.first_line is None and len(self._pending_line) < 4096:
            self._pending_line += chunk[:4096]
            nl = self._pending_line.find(b"\n")
            if nl >= 0:
                self.first_line = self._pending_line[: nl + 1]

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def segment(self) -> dict | None:
        """The reference to this part in a skeleton, or None when its layout cannot be redone."""
        if self.spool is None or not self.decoded_sha256 or not self.length:
            return None
        seg: dict = {"ref": self.decoded_sha256, "len": self.length, "sha": self.sha256}
        if self.encoding in ("7bit", "8bit", "binary"):
            return {**seg, "enc": "identity"}
        if self.encoding != "base64":
            return None
        if self.first_line is None:  # one line, no line end
            line, eol = self.length, ""
        else:
            eol = "\r\n" if self.first_line.endswith(b"\r\n") else "\n"
            line = len(self.first_line) - len(eol)
        if line <= 0 or line % 4:
            return None
        final_eol = bool(eol) and self.tail.endswith(eol.encode())
        return {**seg, "enc": "base64", "line": line, "eol": eol, "final_eol": final_eol}


FetchRange = Callable[[int, int], bytes]  # (offset, length) -> bytes of BODY[] there


def build(
    fetch_range: FetchRange,
    size: int,
    traces: list[EncodedTrace],
    spool_dir: Path,
    header_limit: int,
    header: bytes | None = None,
) -> RawCopy:
    """The raw copy of a streamed message: a verified skeleton, else the whole message."""
    try:
        made = _skeleton(fetch_range, size, traces)
    except _NoSkeleton as e:
        log.info("raw copy kept whole: %s", e)
        made = None
    if made is not None:
        return made
    try:
        return raw.whole_from_chunks(_pieces(fetch_range, 0, size), spool_dir, header_limit)
    except _NoSkeleton as e:  # the server would not serve the message whole: keep what we can
        log.warning("raw copy not kept, only the header: %s", e)
        return RawCopy(headers=header)


class _NoSkeleton(Exception):
    pass


def _pieces(fetch_range: FetchRange, start: int, end: int) -> Iterator[bytes]:
    offset = start
    while offset < end:
        chunk = fetch_range(offset, min(PIECE, end - offset))
        if not chunk:
            raise _NoSkeleton(f"the server sent nothing at byte {offset:,} of {end:,}")
        offset += len(chunk)
        yield chunk


def _skeleton(fetch_range: FetchRange, size: int, traces: list[EncodedTrace]) -> RawCopy | None:
    refs: list[tuple[EncodedTrace, dict]] = []
    for t in traces:
        seg = t.segment()
        if seg is not None:
            refs.append((t, seg))
    if not refs:
        return None
    segments: list[dict] = []
    literals: list[bytes] = []
    cursor = 0
    for trace, seg in refs:
        gap, start = _locate(fetch_range, cursor, size, trace)
        if gap:
            segments.append({"lit": len(gap)})
            literals.append(gap)
        segments.append(seg)
        cursor = start + trace.length
    if cursor < size:
        rest = b"".join(_pieces(fetch_range, cursor, size))
        segments.append({"lit": len(rest)})
        literals.append(rest)
    if sum(len(x) for x in literals) > MAX_LITERAL:
        raise _NoSkeleton("too much between the big parts")
    return _verified(segments, literals, {t.decoded_sha256: t.spool for t, _ in refs}, size)


def _locate(fetch_range: FetchRange, cursor: int, size: int, trace: EncodedTrace) -> tuple[bytes, int]:
    """The bytes from ``cursor`` up to the part's encoded body, and the body's offset."""
    needle = trace.mime_header + trace.head
    buf = b""
    searched = 0
    while True:
        idx = buf.find(needle, max(0, searched - len(needle)))
        while idx >= 0:
            start = cursor + idx + len(trace.mime_header)
            end = start + trace.length
            if end <= size and fetch_range(end - len(trace.tail), len(trace.tail)) == trace.tail:
                return buf[: idx + len(trace.mime_header)], start
            idx = buf.find(needle, idx + 1)
        searched = len(buf)
        if cursor + len(buf) >= size or len(buf) > MAX_LITERAL:
            raise _NoSkeleton(f"part {trace.section} not found in the message")
        more = fetch_range(cursor + len(buf), min(PIECE, size - cursor - len(buf)))
        if not more:
            raise _NoSkeleton(f"the server sent nothing at byte {cursor + len(buf):,}")
        buf += more


def _verified(segments: list[dict], literals: list[bytes], spools: dict, size: int) -> RawCopy:
    """Reassemble from the spool files; keep the skeleton only if every part and the total match."""
    whole_sha, total = hashlib.sha256(), 0
    lit = iter(literals)
    for seg in segments:
        if "lit" in seg:
            chunk = next(lit)
            whole_sha.update(chunk)
            total += len(chunk)
            continue
        part_sha, n = hashlib.sha256(), 0
        for chunk in raw.encode_again(spools[seg["ref"]], seg):
            part_sha.update(chunk)
            whole_sha.update(chunk)
            n += len(chunk)
        if part_sha.hexdigest() != seg["sha"] or n != seg["len"]:
            raise _NoSkeleton(f"a part encoded again differs from what was served ({seg['enc']})")
        total += n
    if total != size:
        raise _NoSkeleton(f"reassembled {total:,} bytes, the server says {size:,}")
    head = literals[0] if literals and "lit" in segments[0] else b""
    return RawCopy(
        headers=raw.header_block(head),
        sha256=whole_sha.hexdigest(),
        size=total,
        blob=raw.skeleton_blob(segments, literals),
        form="skel",
    )
