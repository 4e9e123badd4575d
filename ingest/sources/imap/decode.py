"""Undo a Content-Transfer-Encoding (base64, quoted-printable) piece by piece.

A big part arrives in partial-FETCH chunks whose boundaries fall anywhere, even inside a base64
quantum or a ``=XX`` escape; ``StreamDecoder`` carries the cut-off tail to the next chunk, so a
300 MB video is decoded into its spool file without ever being held whole.
"""

from __future__ import annotations

import binascii

_B64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DROP = bytes(b for b in range(256) if b not in _B64_KEEP)


class StreamDecoder:
    """Undo a Content-Transfer-Encoding chunk by chunk, with bounded carry-over.

    base64: incomplete 4-character quanta are carried to the next chunk; characters outside the
    alphabet (line breaks, junk) are dropped. quoted-printable: the text after the last line
    break is carried (a soft line break or ``=XX`` escape may be cut by the chunk boundary).
    Anything else (7bit, 8bit, binary, unknown) passes through."""

    QP_CARRY_MAX = 64 * 1024

    def __init__(self, encoding: str | None):
        self.encoding = (encoding or "7bit").strip().lower()
        self.carry = b""
        self.damaged = False

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            data = self.carry + data.translate(None, _B64_DROP)
            cut = len(data) - len(data) % 4
            self.carry = data[cut:]
            return self._b64(data[:cut])
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
        if not data:
            return b""
        if self.encoding == "base64":
            data = data.rstrip(b"=")
            if len(data) % 4 == 1:  # a lone character cannot encode anything
                data, self.damaged = data[:-1], True
            return self._b64(data + b"=" * (-len(data) % 4))
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(data)
        return data

    def _b64(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            # padding in the middle (two base64 blobs glued together): decode quantum by quantum
            self.damaged = True
            out = bytearray()
            for i in range(0, len(data), 4):
                try:
                    out += binascii.a2b_base64(data[i : i + 4])
                except binascii.Error:
                    pass
            return bytes(out)


def decode_all(data: bytes, encoding: str | None) -> bytes:
    """A whole encoded part, decoded in one go."""
    d = StreamDecoder(encoding)
    return d.feed(data) + d.finish()
