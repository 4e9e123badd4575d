"""Hostile and broken mail: bounded in time and memory, never an exception, defects in words.

Also runs parse_message over the whole shared corpus of real-world (often broken) mail."""

from __future__ import annotations

import mailbox
import tracemalloc
from pathlib import Path

import pytest
from fixtures.mail import b_word, many_parts_mail, raw_mail, raw_part, std_headers

from ingest.config import Limits
from ingest.mime import parse_message, sanitize_filename

LIMITS = Limits()


def test_50000_part_message_is_bounded_in_parts_and_memory():
    raw = many_parts_mail(50_000)
    tracemalloc.start()
    p = parse_message(raw, LIMITS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 1024 * 1024
    assert len(p.parts) <= LIMITS.max_parts
    assert len(p.parts) >= LIMITS.max_parts - 2  # what fits in the limit is still read
    assert any("more than 1,000 MIME parts" in d for d in p.defects)
    assert p.headers.subject == "many"


def test_10_mb_header_is_cut_but_the_message_is_still_read():
    junk = b"".join(b"X-Junk-%06d: %s\r\n" % (i, b"x" * 90) for i in range(100_000))  # ~10 MB
    assert len(junk) > 10_000_000
    headers = std_headers("阳曲县 <yq@sx.cn>", b_word("科技周材料"))
    raw = raw_mail(
        [("Received", "from x by y")] + [("X-Pad", "1")],
        [raw_part(b"%PDF-1.4", "application/pdf", "总结.pdf")],
    )
    # put the huge block *before* Subject/From/Content-Type, which must survive the cut
    head, body = raw.split(b"\r\n\r\n", 1)
    essential = b"".join(
        k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n" for k, v in headers
    )
    raw = head + b"\r\n" + junk + essential.rstrip(b"\r\n") + b"\r\n\r\n" + body
    p = parse_message(raw, LIMITS)
    assert p.headers.subject == "科技周材料" and p.headers.from_addr == "yq@sx.cn"
    assert [x.filename for x in p.parts] == ["总结.pdf"]
    assert any("header section is" in d and "over the limit" in d for d in p.defects)


def test_single_10_mb_header_line():
    raw = b"Subject: " + b"A" * 10_000_000 + b"\r\nFrom: a@b.cn\r\n\r\nhello"
    p = parse_message(raw, LIMITS)
    assert p.headers.from_addr == "a@b.cn"
    assert len(p.headers.subject) <= 4096
    assert p.body_text.strip() == "hello"


def test_truncated_base64_attachment_keeps_what_can_be_decoded():
    content = bytes(range(256)) * 40
    full = raw_mail(
        std_headers("a@b.cn", "s"),
        [raw_part(content, "application/octet-stream", "统计表.xlsx")],
        close=False,
    )
    cut = full[: full.index(b"Content-Disposition: attachment") + 2000 + 1]  # mid-line, mid-quantum
    p = parse_message(cut, LIMITS)
    (part,) = p.parts
    assert part.filename == "统计表.xlsx"
    assert 0 < part.size < len(content) and content.startswith(part.data)
    assert any("base64 data is incomplete" in d for d in p.defects)


@pytest.mark.parametrize(
    "name,shown",
    [
        ("CON", "_CON"),
        ("con.xlsx", "_con.xlsx"),
        ("LPT1.docx", "_LPT1.docx"),
        ("统计\x00表\x07.xlsx", "统计表.xlsx"),
        ("..\\..\\windows\\system32\\统计表.xlsx", "统计表.xlsx"),
        ("/etc/passwd", "passwd"),
        ("report\u202excod.exe", "reportxcod.exe"),
        ("...", None),
    ],
)
def test_dangerous_file_names_are_sanitized_for_display(name, shown):
    assert sanitize_filename(name) == shown


def test_part_named_con_with_control_characters_keeps_its_content():
    part = raw_part(b"data of CON", "application/octet-stream", "CON", "raw-utf8")
    part2 = raw_part(b"second", "application/octet-stream", "a\x01b\x7f.xlsx", "raw-utf8")
    p = parse_message(raw_mail(std_headers("a@b.cn", "s"), [part, part2]), LIMITS)
    assert [(x.filename, x.data) for x in p.parts] == [("_CON", b"data of CON"), ("ab.xlsx", b"second")]


def test_oversized_part_is_recorded_with_a_reason_not_kept():
    p = parse_message(
        raw_mail(std_headers("a@b.cn", "s"), [raw_part(b"x" * 5000, name="big.mp4")]),
        Limits(max_part_bytes=1000),
    )
    (part,) = p.parts
    assert part.data is None and "over the limit" in part.error


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "the message is empty (0 bytes)"),
        (b"x", "the message is empty (1 bytes)"),
        (b"\r\n\r\n", "the message is empty (4 bytes)"),
        (b"\xff\xfe\x00garbage", "the message does not start with a header"),
        (b"Subject: only a header", None),
        (
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n--b--',
            "it ends without its closing MIME boundary",
        ),
        (b"Content-Type: multipart/mixed\r\n\r\nno boundary", "it is multipart but declares no boundary"),
        (b"Content-Type: message/rfc822\r\n\r\nnot a message at all", "a header line is malformed"),
        (b"From: \xff\xfe <\xff@\xff>\r\nSubject: =?gbk?B?????\r\n\r\n", None),
        (
            b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
            + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 3000,
            "the message has more than 1,000 MIME parts; the rest were not read",
        ),
    ],
)
def test_garbage_never_raises(raw, reason):
    """Nothing raises, not even inside (the last line of defence, which records "could not be
    read completely", is not needed); the bad input gets its reason; the content is still
    identified by its own hash (what dedup and the evidence rely on)."""
    import hashlib

    p = parse_message(raw, LIMITS)
    assert p.content_sha256 == hashlib.sha256(raw).hexdigest()
    assert not any("could not be read completely" in d for d in p.defects), p.defects
    if reason is None:
        assert p.defects == []
    else:
        assert any(reason in d for d in p.defects), p.defects
    assert len(p.parts) <= LIMITS.max_parts


def _corpus_messages(corpus: Path):
    for path in sorted(corpus.rglob("*")):
        if not path.is_file() or "_licenses" in path.parts or path.name in ("README.md", "_index.tsv"):
            continue
        if "_mbox" in path.parts:
            for i, msg in enumerate(mailbox.mbox(str(path), create=False)):
                yield f"{path}#{i}", msg.as_bytes()
        else:
            yield str(path), path.read_bytes()


def test_every_corpus_message_parses(corpus_dir):
    seen = 0
    for where, raw in _corpus_messages(corpus_dir):
        seen += 1
        p = parse_message(raw, LIMITS)
        assert p.content_sha256, where
        assert len(p.body_text.encode()) <= 64 * 1024, where
        for part in p.parts:
            assert part.location, where
            assert part.error or part.data is not None, where
            assert part.filename is None or ("/" not in part.filename and "\x00" not in part.filename), where
        if p.headers.from_addr:
            assert p.headers.from_addr == p.headers.from_addr.lower(), where
        if p.headers.message_id:
            assert not p.headers.message_id.startswith("<"), where
    assert seen > 800


def test_corpus_specials(corpus_dir):
    one_byte = [p for p in corpus_dir.rglob("*") if p.is_file() and p.stat().st_size == 1]
    for path in one_byte:
        p = parse_message(path.read_bytes(), LIMITS)
        assert p.defects and "empty" in p.defects[0]
    assert one_byte, "the corpus has one-byte files"
    outlook = corpus_dir / "SpamScope-mail-parser" / "mail_outlook_1"
    p = parse_message(outlook.read_bytes(), LIMITS)
    assert any("Outlook .msg" in d for d in p.defects)
    gb = corpus_dir / "SpamScope-mail-parser" / "mail_test_12"
    p = parse_message(gb.read_bytes(), LIMITS)
    assert p.headers.subject and "\ufffd" not in p.headers.subject


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@b.cn\r\nSubject: deep\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 50_000 + b"hi",
        b"From: a@b.cn\r\nSubject: deep\r\n"
        + b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(5000)
        ),
    ],
)
def test_deep_nesting_is_refused_in_words_and_headers_kept(raw):
    p = parse_message(raw, LIMITS)
    assert p.headers.subject == "deep" and p.headers.from_addr == "a@b.cn"
    assert any("nested too deeply" in d for d in p.defects)
