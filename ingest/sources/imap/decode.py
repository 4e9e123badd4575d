"""Undo a Content-Transfer-Encoding (base64, quoted-printable) piece by piece.

A big part arrives in partial-FETCH chunks whose boundaries fall anywhere, even inside a base64
quantum or a ``=XX`` escape; ``StreamDecoder`` carries the cut-off tail to the next chunk, so a
300 MB video is decoded into its spool file without ever being held whole.

base64 is decoded by pybase64 (SIMD, about 3x binascii, and it lets other threads run) when a
chunk is plain MIME base64: up to its last line break, no padding, a whole number of 4-character
quanta. Anything else (padding, damage, no line breaks) takes the exact binascii path; both give
the same bytes.
"""

from __future__ import annotations

import binascii

import pybase64

_B64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DROP = bytes(b for b in range(256) if b not in _B64_KEEP)


class StreamDecoder:
    """Undo a Content-Transfer-Encoding chunk by chunk, with bounded carry-over.

    base64: incomplete 4-character quanta are carried to the next chunk; characters outside the
    alphabet (line breaks, junk) are dropped; the first padding ``=`` ends the data (what follows
    is ignored, and is damage if it holds base64 characters), so the result does not depend on
    where the chunks were cut, and matches the whole-message parser. quoted-printable: the text
    after the last line break is carried (a soft line break or ``=XX`` escape may be cut by the
    chunk boundary). Anything else (7bit, 8bit, binary, unknown) passes through."""

    QP_CARRY_MAX = 64 * 1024

    def __init__(self, encoding: str | None):
        self.encoding = (encoding or "7bit").strip().lower()
        self.carry = b""
        self.damaged = False
        self.ended = False  # base64: padding seen, the data is over

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            return self._feed_b64(data)
        if self.encoding == "quoted-printable":
            data = self.carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) > self.QP_CARRY_MAX:  # no line breaks at all: broken QP
                cut = len(data) - 2
                while cut > 0 and b"=" in data[cut:]:
                    cut -= 1
            self.carry = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data

    def finish(self) -> bytes:
        data, self.carry = self.carry, b""
        if self.encoding == "base64":
            if self.ended or not data:
                return b""
            return self._b64_end(data.translate(None, _B64_DROP))
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(data) if data else b""
        return data

    def _feed_b64(self, data: bytes) -> bytes:
        if self.ended:
            self._after_end(data)
            return b""
        if self.carry:
            data = self.carry + data
        cut = data.rfind(b"\n") + 1
        if cut and data.find(b"=", 0, cut) < 0:
            try:
                # characters outside the alphabet are skipped, as binascii does; a count of
                # characters that is not a multiple of 4 raises: then the exact path below
                decoded = pybase64.b64decode(memoryview(data)[:cut], validate=False)
            except binascii.Error:
                pass
            else:
                self.carry = data[cut:]
                return decoded
        clean = data.translate(None, _B64_DROP)
        if b"=" in clean:
            self.carry = b""
            return self._b64_end(clean)
        cut = len(clean) - len(clean) % 4
        self.carry = clean[cut:]
        return self._b64(clean[:cut])

    def _b64_end(self, clean: bytes) -> bytes:
        """The last piece of the data (``clean``: base64 characters only), up to its padding."""
        pad = clean.find(b"=")
        if pad >= 0:
            self._after_end(clean[pad:])
            clean = clean[:pad]
        self.ended = True
        if len(clean) % 4 == 1:  # a lone character cannot encode anything
            clean, self.damaged = clean[:-1], True
        return self._b64(clean + b"=" * (-len(clean) % 4))

    def _after_end(self, data: bytes) -> None:
        """What comes after the padding: damage if it holds base64 characters."""
        if data.translate(None, _B64_DROP).replace(b"=", b""):
            self.damaged = True

    def _b64(self, clean: bytes) -> bytes:
        if not clean:
            return b""
        try:
            return binascii.a2b_base64(clean)
        except binascii.Error:  # cannot happen for whole quanta of the alphabet; never crash
            self.damaged = True
            return b""


def decode_all(data: bytes, encoding: str | None) -> bytes:
    """A whole encoded part, decoded in one go."""
    d = StreamDecoder(encoding)
    return d.feed(data) + d.finish()
