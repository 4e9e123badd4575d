"""Big attachments decoded into spool files (ingest/mime/spill.py) give the same results.

``parse_message(raw, limits, spool_dir=...)`` sets long base64 runs aside before the stdlib
parser sees a big message and decodes big attachments straight into spool files. Everything a
user sees must be the same as parsing in memory: parts (names, types, sizes, contents, errors,
order, parents), headers, body text, forwarded headers, links and defects, for clean mail and
for the damaged kinds that must still be decoded the tolerant way. The memory it saves is
measured end to end in tests/test_hostile_ingest.py (the 40 MB Maildir attachment).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import pytest
from fixtures.mail import build_forward, build_mail, gbk_zip, raw_mail, raw_part, std_headers

from ingest import mime
from ingest.config import Limits

LIMITS = replace(Limits(), stream_threshold_bytes=64 * 1024)  # big means > 64 KB here
BIG = random.Random(14).randbytes(2 * 1024 * 1024 + 5)  # odd length: '=' padding
TEXT = (b"abcdefghij" * 7 + b"\n") * 20000  # 1.4 MB of 7bit text lines


def _with_pad_in_the_middle() -> bytes:
    p = raw_part(BIG, "video/mp4", "v.mp4")
    cut = p.index(b"\n", len(p) // 2) + 1
    return p[:cut] + b"QQ==\r\n" + p[cut:]


def _std() -> bytes:
    return build_mail(attachments=[("科技周视频.mp4", BIG, "video/mp4"), ("说明.txt", b"hi")]).as_bytes()


CASES = {
    "clean base64 video": _std,
    "raw base64 (CRLF)": lambda: raw_mail(
        std_headers("a@b.cn", "s"), [raw_part(BIG, "video/mp4", "视频.mp4")]
    ),
    "cut off base64": lambda: raw_mail(
        std_headers("a@b.cn", "s"), [raw_part(BIG, "video/mp4", "v.mp4")[:-1001]], close=False
    ),
    "junk after the base64": lambda: raw_mail(
        std_headers("a@b.cn", "s"), [raw_part(BIG, "video/mp4", "v.mp4") + b"!!junk\r\n"]
    ),
    "padding in the middle": lambda: raw_mail(std_headers("a@b.cn", "s"), [_with_pad_in_the_middle()]),
    "7bit text attachment": lambda: raw_mail(
        std_headers("a@b.cn", "s"), [raw_part(TEXT, "text/plain", "a.txt", encode="7bit")]
    ),
    "quoted-printable attachment": lambda: raw_mail(
        std_headers("a@b.cn", "s"), [raw_part(TEXT, "text/plain", "a.txt", encode="quoted-printable")]
    ),
    "uuencode label on base64": lambda: raw_mail(
        std_headers("a@b.cn", "s"),
        [
            raw_part(BIG, "video/mp4", "v.mp4").replace(
                b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: x-uuencode"
            )
        ],
    ),
    "big 7bit body text": lambda: b"From: a@b.cn\nSubject: x\n\n" + TEXT,
    "mbox From line": lambda: b"From a@b.cn Mon Jan  3 00:00:00 2022\n" + _std(),
    ".eml sent as an attachment": lambda: build_mail(
        attachments=[("转发.eml", _std(), "application/octet-stream")]
    ).as_bytes(),
    "forwarded message/rfc822": lambda: bytes(build_forward(_std())),
    "zip": lambda: build_mail(
        attachments=[("材料.zip", gbk_zip({"统计表.xlsx": BIG}), "application/zip")]
    ).as_bytes(),
}


def _view(parsed, spooled: list[int]) -> tuple:
    parts = []
    for i, p in enumerate(parsed.parts):
        data = p.data
        if p.spool is not None:
            data = p.spool.read_bytes()
            p.spool.unlink()
            spooled.append(i)
        parts.append(
            (
                p.location,
                p.filename,
                p.declared_type,
                p.origin,
                p.parent,
                p.error,
                p.size,
                p.inline,
                hashlib.sha256(data).hexdigest() if data is not None else None,
            )
        )
    return (
        repr(parsed.headers),
        parsed.body_text,
        parsed.html,
        repr(parsed.forwarded),
        repr(parsed.links),
        parsed.defects,
        parsed.content_sha256,
        parts,
    )


@pytest.mark.parametrize("name", list(CASES))
def test_spooled_parse_gives_the_same_message(name, tmp_path):
    raw = CASES[name]()
    raw = raw if isinstance(raw, bytes) else raw.as_bytes()
    assert len(raw) > LIMITS.stream_threshold_bytes
    in_memory = _view(mime.parse_message(raw, LIMITS), [])
    spooled: list[int] = []
    on_disk = _view(mime.parse_message(raw, LIMITS, spool_dir=tmp_path), spooled)
    assert on_disk == in_memory
    assert not list(tmp_path.iterdir()), "spool files left behind"
    if name in ("clean base64 video", "raw base64 (CRLF)", "7bit text attachment", "zip"):
        assert spooled, "the big attachment was not decoded to a spool file"
    if name in ("junk after the base64", "padding in the middle", "quoted-printable attachment"):
        assert not spooled, "damaged or QP content must be decoded the tolerant way, in memory"


def test_big_attachment_over_the_part_limit_is_refused_without_a_spool_file(tmp_path):
    raw = _std()
    limits = replace(LIMITS, max_part_bytes=1024 * 1024)
    parsed = mime.parse_message(raw, limits, spool_dir=tmp_path)
    video = next(p for p in parsed.parts if p.filename == "科技周视频.mp4")
    assert video.spool is None and video.data is None and "over the limit" in video.error
    assert not list(tmp_path.iterdir())


def test_a_forged_token_in_the_message_is_just_text(tmp_path):
    fake = b"~mailroll-spill-0000000000000000-0~\n"
    raw = raw_mail(std_headers("a@b.cn", "s"), [raw_part(fake + TEXT, "text/plain", "a.txt", encode="7bit")])
    (in_memory,) = mime.parse_message(raw, LIMITS).parts
    assert in_memory.data.startswith(fake)
    (part,) = mime.parse_message(raw, LIMITS, spool_dir=tmp_path).parts
    assert part.spool.read_bytes() == in_memory.data
    part.spool.unlink()
