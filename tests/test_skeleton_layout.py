"""The raw copy of a streamed message refers to a big part's stored file only when encoding that
file again gives exactly what the server served (``show --raw`` must be byte-identical). The
check runs on the chunks as they stream, cut anywhere; here it is compared with the truth (encode
the decoded bytes again and compare) on canonical and on irregular base64."""

from __future__ import annotations

import base64
import random

import pytest

from ingest.raw import encode_lines
from ingest.sources.imap.layout import Layout


def canonical(data: bytes, line: int = 76, eol: bytes = b"\r\n", final_eol: bool = True) -> bytes:
    return encode_lines(data, line, eol, final_eol)


def judged(served: bytes, rnd: random.Random, max_chunk: int = 5000) -> tuple[int, str, bool] | None:
    layout = Layout()
    pos = 0
    while pos < len(served):
        n = rnd.randint(1, max_chunk)
        layout.feed(served[pos : pos + n])
        pos += n
    return layout.finish()


def truth(served: bytes, found: tuple[int, str, bool] | None) -> bool:
    """Does encoding the decoded bytes again, laid out as found, give the served bytes?"""
    if found is None:
        return False
    line, eol, final_eol = found
    return (
        encode_lines(
            base64.b64decode(served.replace(b"\r", b"").replace(b"\n", b"")), line, eol.encode(), final_eol
        )
        == served
    )


@pytest.mark.parametrize(
    ("size", "line", "eol", "final_eol"),
    [
        (100_000, 76, b"\r\n", True),  # what mail clients send
        (100_001, 76, b"\n", True),
        (100_002, 64, b"\r\n", False),
        (57 * 300, 76, b"\r\n", True),  # the last line full
        (10, 16, b"\r\n", True),  # one short line (any longer line length would do as well)
        (3, 4, b"\n", True),
    ],
)
def test_canonical_base64_is_referred_to_whatever_the_chunks(size, line, eol, final_eol):
    rnd = random.Random(size)
    served = canonical(rnd.randbytes(size), line, eol, final_eol)
    for max_chunk in (1, 7, 80, 5000, len(served)):
        found = judged(served, rnd, max_chunk)
        assert found == (line, eol.decode(), final_eol), max_chunk
        assert truth(served, found)


def _irregular() -> dict[str, bytes]:
    rnd = random.Random(7)
    good = canonical(rnd.randbytes(30_000))
    lines = good.split(b"\r\n")
    stray_bits = canonical(b"\x01")  # 'AQ==' ...
    return {
        "a shorter line in the middle": b"\r\n".join(lines[:10] + [lines[10][:-4]] + lines[11:]),
        "a longer line in the middle": b"\r\n".join(lines[:10] + [lines[10] + b"AAAA"] + lines[11:]),
        "a blank line at the end": good + b"\r\n",
        "a space at a line's end": b"\r\n".join(lines[:5] + [lines[5] + b" "] + lines[6:]),
        "bare LF once among CRLF": b"\r\n".join(lines[:5]) + b"\n" + b"\r\n".join(lines[5:]),
        "padding in the middle": b"\r\n".join(lines[:5] + [lines[5][:-2] + b"=="] + lines[6:]),
        "stray bits in the last quantum": stray_bits.replace(b"AQ==", b"AR=="),
        "lines not a multiple of 4": canonical(rnd.randbytes(3000), line=74),
        "no line breaks at all": canonical(rnd.randbytes(3000), line=10**6, final_eol=False),
        "lines longer than 4096 characters": canonical(rnd.randbytes(30_000), line=8192),
        "a character outside the alphabet": good[:500] + b"*" + good[501:],
    }


@pytest.mark.parametrize("name", list(_irregular()))
def test_irregular_base64_is_kept_as_served(name):
    served = _irregular()[name]
    rnd = random.Random(name)
    for max_chunk in (3, 100, 5000, len(served)):
        assert judged(served, rnd, max_chunk) is None, (name, max_chunk)


def test_a_part_whose_header_has_a_delimiter_like_line_is_not_referred_to():
    """A part header with a line starting with '--' (Dovecot ends a header there, another server
    might not): a decoy could end inside it unseen, so the message is kept whole instead."""
    from ingest.sources.imap.skeleton import RawTrail

    body = canonical(random.Random(1).randbytes(3000))
    header = b"Content-Type: video/mp4\r\nX-Pad: x\r\n--B\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    message = (
        b"Subject: t\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        + header
        + body
        + b"\r\n--B--\r\n"
    )
    trail = RawTrail(lambda offset, length: message[offset : offset + length], len(message))
    assert trail.begin("1", header, "base64", body[:4096], b"B") is None
    assert trail.broken and trail.copy() is None
    # the same part with an ordinary header is referred to
    plain = header.replace(b"--B\r\n", b"")
    message = message.replace(header, plain)
    trail = RawTrail(lambda offset, length: message[offset : offset + length], len(message))
    trace = trail.begin("1", plain, "base64", body[:4096], b"B")
    assert trace is not None and not trail.broken
