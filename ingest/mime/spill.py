"""Big encoded runs of a message set aside before the stdlib parser sees it.

The stdlib parser holds a leaf's content as one string, and building it costs more: a 100 MB
attachment (137 MB of base64) peaked near 6.5x the message size. So, for a message over
``limits.stream_threshold_bytes`` parsed with a spool directory, ``Spill.reduce`` first replaces
each long run of base64-alphabet lines in the body (``[A-Za-z0-9+/=]`` only, as base64 content
is sent, at least ``MIN_RUN`` bytes) by one short token line; the parser then sees a small
message. Every run keeps its last line in place, so the parser ends each payload exactly as it
would have (the line break before a boundary belongs to the boundary).

A token stands for bytes of the raw message, read from it only when needed:

* ``expand`` gives a payload (or a part of the message) back exactly as it was, in memory: body
  text, forwarded messages, whatever is not a big attachment;
* ``spool_payload`` decodes an attachment's payload chunk by chunk straight into a spool file
  (``tree._leaf``), so its content is never held whole. Only what decodes exactly as in memory
  is streamed: well-formed base64 (the check of ``text._b64_well_formed``, made chunk by
  chunk) and 7bit/8bit/binary; anything else (damaged base64, quoted-printable, uuencode)
  returns None and is decoded in memory as before.

The token holds a random nonce, so a message cannot forge one.
"""

from __future__ import annotations

import binascii
import os
import re
import secrets
import tempfile
from pathlib import Path

MIN_RUN = 1024 * 1024  # runs shorter than this stay where they are
CHUNK = 1024 * 1024  # bytes read from the raw message at a time

_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n]+")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_B64_CLEAN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n\t "
_SPACE = b"\r\n\t "
_PASS_THROUGH = ("", "7bit", "8bit", "binary")


class Spill:
    """The runs set aside from one raw message (kept by reference, not copied)."""

    def __init__(self, raw: bytes):
        self.raw = memoryview(raw)
        self.spans: list[tuple[int, int]] = []
        self.nonce = secrets.token_hex(8)
        self.removed = 0  # bytes the reduced message is shorter by
        self._token = re.compile(r"~mailroll-spill-" + self.nonce + r"-(\d+)~\n")

    def _token_bytes(self, i: int) -> bytes:
        return f"~mailroll-spill-{self.nonce}-{i}~\n".encode("ascii")

    def reduce(self, raw: bytes, min_run: int = MIN_RUN) -> bytes:
        """The message with each long run of the body replaced by a token line.

        A run is found as a stretch of base64-alphabet characters and line breaks (one
        character class: the regular expression engine keeps no state per line), then cut to
        whole lines: it starts at a line start, after any blank lines (the blank line that ends
        a header must stay), and keeps its last line in place."""
        head = _HEADER_END.search(raw)
        if head is None:
            return raw
        pieces: list[bytes] = []
        pos = 0
        for m in _RUN.finditer(raw, head.end()):
            start, end = m.start(), m.end()
            if end - start < min_run:
                continue
            if start > 0 and raw[start - 1 : start] != b"\n":  # begin at the next line
                start = raw.find(b"\n", start, end) + 1
            while start < end and raw[start : start + 1] in (b"\r", b"\n"):
                start += 1
            end = raw.rfind(b"\n", start, end) + 1  # end with a whole line
            last = raw.rfind(b"\n", start, end - 1) + 1 if end else 0  # which stays
            if start <= 0 or last - start < min_run:
                continue
            pieces.append(raw[pos:start])
            token = self._token_bytes(len(self.spans))
            pieces.append(token)
            self.spans.append((start, last))
            self.removed += (last - start) - len(token)
            pos = last
        if not self.spans:
            return raw
        pieces.append(raw[pos:])
        return b"".join(pieces)

    # -- reading payloads back ----------------------------------------------------------------

    def has_tokens(self, payload: str | bytes | None) -> bool:
        if not self.spans or payload is None or isinstance(payload, list):
            return False
        needle = "~mailroll-spill-" + self.nonce
        return needle in payload if isinstance(payload, str) else needle.encode() in payload

    def _pieces(self, payload: str | bytes):
        """The payload as bytes pieces: text around tokens (encoded like ``payload_bytes``
        does) and (start, end) spans of the raw message."""
        text = payload if isinstance(payload, str) else payload.decode("ascii", "surrogateescape")
        pos = 0
        for m in self._token.finditer(text):
            if m.start() > pos:
                yield text[pos : m.start()].encode("utf-8", "surrogateescape")
            i = int(m.group(1))
            if i < len(self.spans):
                yield self.spans[i]
            else:  # pragma: no cover - a token of this nonce is always ours
                yield m.group(0).encode("ascii")
            pos = m.end()
        if pos < len(text):
            yield text[pos:].encode("utf-8", "surrogateescape")

    def size(self, payload: str | bytes) -> int:
        """Length of the payload once expanded (as bytes)."""
        return sum(p[1] - p[0] if isinstance(p, tuple) else len(p) for p in self._pieces(payload))

    def expand(self, payload: str | bytes) -> bytes:
        """The payload as the parser would have given it (bytes), in memory."""
        return b"".join(
            self.raw[p[0] : p[1]].tobytes() if isinstance(p, tuple) else p for p in self._pieces(payload)
        )

    def _chunks(self, payload: str | bytes):
        for p in self._pieces(payload):
            if isinstance(p, tuple):
                for a in range(p[0], p[1], CHUNK):
                    yield self.raw[a : min(a + CHUNK, p[1])].tobytes()
            else:
                yield p

    def spool_payload(self, payload: str | bytes, cte: str, spool_dir: Path) -> tuple[Path, int] | None:
        """Decode the payload into a new spool file; (path, size), or None when it must be
        decoded in memory (not plain base64 / 7bit / 8bit / binary, or damaged base64)."""
        if cte not in _PASS_THROUGH and cte != "base64":
            return None
        fd, name = tempfile.mkstemp(prefix="part-", dir=spool_dir)
        path = Path(name)
        ok, size = False, 0
        try:
            with os.fdopen(fd, "wb") as out:
                if cte == "base64":
                    ok, size = _b64_to(self._chunks(payload), out)
                else:
                    for chunk in self._chunks(payload):
                        out.write(chunk)
                        size += len(chunk)
                    ok = True
        finally:
            if not ok:
                path.unlink(missing_ok=True)
        return (path, size) if ok else None


def _b64_to(chunks, out) -> tuple[bool, int]:
    """Decode well-formed base64 pieces into ``out``; (False, 0) as soon as the data is not
    well formed (the conditions of ``text._b64_well_formed``), so it is decoded the tolerant way."""
    carry = b""
    padded = False
    data_chars = pads = size = 0
    for chunk in chunks:
        if chunk.translate(None, _B64_CLEAN):
            return False, 0
        p = -1 if padded else chunk.find(b"=")
        if padded:
            if chunk.translate(None, b"=" + _SPACE):
                return False, 0
        elif p >= 0:
            padded = True
            if chunk[p:].translate(None, b"=" + _SPACE):
                return False, 0
        pads += chunk.count(b"=")
        compact = chunk.translate(None, _SPACE)
        data_chars += len(compact)
        buf = carry + compact
        cut = len(buf) - len(buf) % 4
        carry = buf[cut:]
        if cut:
            try:
                decoded = binascii.a2b_base64(buf[:cut])
            except binascii.Error:
                return False, 0
            out.write(decoded)
            size += len(decoded)
    if carry or data_chars % 4 or pads > 2:
        return False, 0
    return True, size
