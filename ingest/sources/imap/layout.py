"""Whether a big part, as the server served it, is exactly its decoded file encoded again.

A skeleton (ingest/raw.py) keeps a streamed part as a reference to its stored (decoded) file and
its line layout; ``show --raw`` encodes the file again with that layout. That is only byte-exact
when the part was served in *canonical* form: base64 lines of one length (a multiple of 4) with
one kind of line end, nothing but base64 characters, the padding only at the very end and no
stray bits in the last quantum. ``Layout`` checks that chunk by chunk as the chunks stream past
(in the spool writer's thread), at C speed (slices, counts, ``bytes.translate``), with a carry
of under two lines, instead of encoding the whole part again afterwards: every full line before
the last ones decodes and encodes back to itself (whole quanta, no padding), so only the last
lines are encoded again to compare (``finish``).
"""

from __future__ import annotations

import binascii

from ingest.raw import encode_lines

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
FIRST_LINE_MAX = 4096  # a base64 line longer than this is not a layout we redo


class Layout:
    """Fed the served bytes of one base64 part in order; ``finish`` gives its layout as
    (line length, line end, line end after the last line), or None when encoding the decoded
    bytes again could not give the same bytes."""

    def __init__(self) -> None:
        self.line = 0  # characters per line; 0: not known yet
        self.eol = b""
        self.carry = b""  # the last whole line and what follows it, not yet checked
        self.ok = True

    def feed(self, chunk: bytes) -> None:
        if not self.ok:
            return
        if not self.line:
            data = self.carry + chunk
            if not self._learn(data):
                return
            chunk, self.carry = data, b""
        first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
        if first == last:  # a small chunk (at most one line end): as one piece with the carry
            self._lines(self.carry + chunk)
            return
        # the carry completed by the chunk's first line, the lines in between (checked where they
        # lie, without copying), the chunk's last whole line and what follows carried
        begin, cut = first + 1, chunk.rfind(b"\n", 0, last) + 1
        self.ok = self._full_lines(self.carry + chunk[:begin]) and self._middle(chunk, begin, cut)
        self._carry(chunk[cut:])

    def _lines(self, data: bytes) -> None:
        last = data.rfind(b"\n")
        cut = data.rfind(b"\n", 0, last) + 1 if last >= 0 else 0  # keep the last whole line back
        if cut:
            self.ok = self._full_lines(data[:cut])
        self._carry(data[cut:])

    def _carry(self, rest: bytes) -> None:
        self.carry = rest
        if len(rest) > 2 * (self.line + len(self.eol)):  # a line longer than the others
            self.ok = False

    def _middle(self, chunk: bytes, begin: int, cut: int) -> bool:
        """``chunk[begin:cut]`` is whole lines of ``line`` base64 characters: the line ends where
        they belong, and no other character outside the alphabet in the whole chunk than those
        and the ones of its first and last lines (one ``translate`` over the chunk)."""
        step = self.line + len(self.eol)
        if (cut - begin) % step:
            return False
        k = (cut - begin) // step
        if chunk[begin + step - 1 : cut : step].count(b"\n") != k:
            return False
        if len(self.eol) == 2 and chunk[begin + self.line : cut : step].count(b"\r") != k:
            return False
        outside = (
            chunk[:begin].translate(None, _ALPHABET) + self.eol * k + chunk[cut:].translate(None, _ALPHABET)
        )
        return chunk.translate(None, _ALPHABET) == outside

    def _learn(self, data: bytes) -> bool:
        """The line length and end from the first line; False while it is not complete."""
        nl = data.find(b"\n")
        if nl < 0:
            self.carry = data
            self.ok = len(data) <= FIRST_LINE_MAX
            return False
        self.eol = b"\r\n" if nl and data[nl - 1 : nl] == b"\r" else b"\n"
        self.line = nl + 1 - len(self.eol)
        if self.line <= 0 or self.line % 4 or self.line > FIRST_LINE_MAX:
            self.ok = False
            return False
        return True

    def _full_lines(self, region: bytes) -> bool:
        """``region``: whole lines none of which is the last: each exactly ``line`` base64
        characters (no padding) and the line end."""
        step = self.line + len(self.eol)
        if len(region) % step:
            return False
        k = len(region) // step
        if region.count(b"\n") != k or region[step - 1 :: step].count(b"\n") != k:
            return False
        if self.eol == b"\r\n" and (region.count(b"\r") != k or region[self.line :: step].count(b"\r") != k):
            return False
        if self.eol == b"\n" and b"\r" in region:
            return False
        return not region.translate(None, _ALPHABET + b"\r\n")

    def finish(self) -> tuple[int, str, bool] | None:
        """(line, eol, final_eol), or None (see the class docstring)."""
        if not self.ok:
            return None
        tail = self.carry
        if not self.line:  # no line end at all: one line (not laid out again: it could be huge)
            return None
        final_eol = tail.endswith(self.eol)
        text = tail.replace(self.eol, b"")
        try:
            decoded = binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error:
            return None
        if not text or encode_lines(decoded, self.line, self.eol, final_eol) != tail:
            return None
        return self.line, self.eol.decode(), final_eol
