"""archives.expand on real zip / 7z archives as units send them, and on hostile ones."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import py7zr
from fixtures.files import make_encrypted_zip
from fixtures.mail import gbk_zip, rar4_stored, raw_mail, raw_part, std_headers

from ingest.archives import expand
from ingest.config import Limits
from ingest.mime import parse_message
from ingest.model import ExtractedPart, Headers, ParsedMessage

SHEET_NAME = "2022年科技活动周开展情况统计表.xlsx"
VIDEO = random.Random(7).randbytes(2_200_000)  # incompressible, like a real video


def _parsed(*parts: tuple[str, bytes]) -> ParsedMessage:
    return ParsedMessage(
        headers=Headers(),
        parts=[
            ExtractedPart(
                location=name,
                filename=name,
                declared_type="application/octet-stream",
                data=data,
                size=len(data),
            )
            for name, data in parts
        ],
    )


def _members(parsed: ParsedMessage) -> list[ExtractedPart]:
    return [p for p in parsed.parts if p.origin == "archive"]


def _content(part: ExtractedPart) -> bytes:
    return part.data if part.data is not None else Path(part.spool).read_bytes()


def test_zip_with_gbk_names_from_chinese_windows(tmp_path):
    data = gbk_zip(
        {f"科技周材料/{SHEET_NAME}": b"sheet", "科技周材料/活动总结报告.docx": b"doc", "科技周材料/": b""}
    )
    raw = raw_mail(
        std_headers("a@b.cn", "材料"), [raw_part(data, "application/x-zip-compressed", "太原市材料.zip")]
    )
    parsed = parse_message(raw, Limits())
    expand(parsed, Limits(), tmp_path)
    members = _members(parsed)
    assert [m.location for m in members] == [
        f"太原市材料.zip/科技周材料/{SHEET_NAME}",
        "太原市材料.zip/科技周材料/活动总结报告.docx",
    ]
    assert [m.filename for m in members] == [SHEET_NAME, "活动总结报告.docx"]
    assert [_content(m) for m in members] == [b"sheet", b"doc"]
    assert all(m.parent == 0 for m in members)
    assert parsed.parts[0].error is None and parsed.parts[0].sniffed_type == "zip"


def test_zip_with_utf8_flag_and_mac_junk_is_cleaned(tmp_path):
    data = gbk_zip(
        {
            "总结.docx": b"d",
            "__MACOSX/._总结.docx": b"junk",
            ".DS_Store": b"x",
            "sub/Thumbs.db": b"x",
            "._总结.docx": b"y",
        },
        utf8_flag=True,
    )
    parsed = _parsed(("a.zip", data))
    expand(parsed, Limits(), tmp_path)
    assert [m.location for m in _members(parsed)] == ["a.zip/总结.docx"]


def test_7z_archive(tmp_path):
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(b"figures", f"材料/{SHEET_NAME}")
        z.writestr(VIDEO, "材料/科技周视频.mp4")  # > 1 MiB: goes to a spool file
    parsed = _parsed(("材料.7z", buf.getvalue()))
    expand(parsed, Limits(), tmp_path / "spool")
    members = _members(parsed)
    assert sorted(m.location for m in members) == [
        "材料.7z/材料/" + SHEET_NAME,
        "材料.7z/材料/科技周视频.mp4",
    ]
    video = next(m for m in members if m.filename == "科技周视频.mp4")
    assert video.spool is not None and video.spool.parent == tmp_path / "spool"
    assert _content(video) == VIDEO and video.size == len(VIDEO)
    assert parsed.parts[0].error is None


def test_zip_bomb_is_refused_but_small_members_are_kept(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("统计表.xlsx", b"real sheet")
        z.writestr("bomb.bin", b"\0" * (5 * 1024 * 1024))  # 5 MB packed into ~5 KB
    assert len(buf.getvalue()) < 20_000
    parsed = _parsed(("材料.zip", buf.getvalue()))
    expand(parsed, Limits(), tmp_path)
    assert parsed.parts[0].error.startswith("archive looks like a zip bomb (bomb.bin")
    assert [m.filename for m in _members(parsed)] == ["统计表.xlsx"]
    assert list(tmp_path.iterdir()) == []


def test_total_size_budget(tmp_path):
    data = gbk_zip({f"f{i}.bin": bytes(range(256)) * 4096 for i in range(4)})  # 4 x 1 MiB
    parsed = _parsed(("a.zip", data))
    expand(parsed, Limits(max_archive_total_bytes=2_500_000), tmp_path)
    assert len(_members(parsed)) == 2
    assert "unpacks to more than the limit" in parsed.parts[0].error


def test_traversal_and_absolute_names_never_write_outside_the_spool(tmp_path):
    spool = tmp_path / "spool"
    big = b"x" * (2 * 1024 * 1024 + 7)  # big enough to be written to a spool file
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in ("../../evil.xlsx", "/etc/evil.docx", "..\\..\\win.pdf", "C:/x/驱动.mp4"):
            z.writestr(zipfile.ZipInfo(name), big)
    parsed = _parsed(("a.zip", buf.getvalue()))
    expand(parsed, Limits(), spool)
    members = _members(parsed)
    assert [m.location for m in members] == [
        "a.zip/evil.xlsx",
        "a.zip/etc/evil.docx",
        "a.zip/win.pdf",
        "a.zip/x/驱动.mp4",
    ]
    assert [m.filename for m in members] == ["evil.xlsx", "evil.docx", "win.pdf", "驱动.mp4"]
    assert all(_content(m) == big for m in members)
    # only random-named spool files, all inside the spool directory
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["spool"] + [m.spool.name for m in members])
    assert all(m.spool.parent == spool and m.spool.name.startswith("member-") for m in members)
    assert not (tmp_path.parent / "evil.xlsx").exists()


def test_nested_archives_opened_up_to_the_depth_limit(tmp_path):
    level3 = gbk_zip({"deep.xlsx": b"3"})
    level2 = gbk_zip({"c.zip": level3, "two.docx": b"2"})
    level1 = gbk_zip({"b.zip": level2})
    parsed = _parsed(("a.zip", level1))
    expand(parsed, Limits(max_archive_depth=2), tmp_path)
    locs = {p.location: p for p in parsed.parts}
    assert "a.zip/b.zip/two.docx" in locs
    assert locs["a.zip/b.zip/c.zip"].error.startswith("archive nested more than 2 levels")
    assert "a.zip/b.zip/c.zip/deep.xlsx" not in locs
    assert locs["a.zip/b.zip/two.docx"].parent == parsed.parts.index(locs["a.zip/b.zip"])
    parsed = _parsed(("a.zip", level1))
    expand(parsed, Limits(max_archive_depth=3), tmp_path)
    assert _content(next(p for p in parsed.parts if p.filename == "deep.xlsx")) == b"3"


def test_encrypted_zip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "统计表.xlsx").write_bytes(b"secret sheet")
    out = make_encrypted_zip(tmp_path / "enc.zip", src)
    parsed = _parsed(("材料.zip", out.read_bytes()))
    expand(parsed, Limits(), tmp_path / "spool")
    assert parsed.parts[0].error == "the archive is password-protected"
    assert _members(parsed) == []


def test_encrypted_7z(tmp_path):
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="123456", header_encryption=True) as z:
        z.writestr(b"x", "统计表.xlsx")
    parsed = _parsed(("a.7z", buf.getvalue()))
    expand(parsed, Limits(), tmp_path)
    assert parsed.parts[0].error == "the archive is password-protected"
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="123456") as z:  # names visible, content not
        z.writestr(b"x", "统计表.xlsx")
    parsed = _parsed(("b.7z", buf.getvalue()))
    expand(parsed, Limits(), tmp_path)
    assert parsed.parts[0].error == "the archive is password-protected"


def test_member_count_limit(tmp_path):
    parsed = _parsed(("a.zip", gbk_zip({f"{i}.docx": b"d" for i in range(5)})))
    expand(parsed, Limits(max_archive_members=2), tmp_path)
    assert len(_members(parsed)) == 2
    assert "more than 2 files in archives" in parsed.parts[0].error


def test_damaged_archives_get_a_reason(tmp_path):
    good = gbk_zip({"总结.docx": b"d" * 1000})
    rar = b"Rar!\x1a\x07\x01\x00" + b"\x00" * 50
    parsed = _parsed(
        ("cut.zip", good[:40]), ("bad.7z", b"7z\xbc\xaf\x27\x1c" + b"\x01" * 40), ("bad.rar", rar)
    )
    expand(parsed, Limits(), tmp_path)
    assert "damaged" in parsed.parts[0].error or parsed.parts[0].sniffed_type != "zip"
    assert "7z archive is damaged" in parsed.parts[1].error
    assert parsed.parts[2].error == "the archive contains no files"


def test_rar_with_gbk_names_and_encrypted_rar(tmp_path):
    data = rar4_stored({"材料\\统计表.xlsx".encode("gbk"): b"sheet", b"readme.txt": b"hi"})
    parsed = _parsed(("材料.rar", data), ("locked.rar", rar4_stored({b"a.xlsx": b"x"}, encrypted=True)))
    expand(parsed, Limits(), tmp_path)
    members = _members(parsed)
    assert [(m.location, m.parent) for m in members] == [
        ("材料.rar/材料/统计表.xlsx", 0),
        ("材料.rar/readme.txt", 0),
    ]
    assert _content(members[0]) == b"sheet"
    assert parsed.parts[0].error is None
    assert parsed.parts[1].error == "the archive is password-protected"


def test_zip_member_crc_error_is_recorded_on_the_member(tmp_path):
    data = bytearray(gbk_zip({"统计表.xlsx": b"A" * 100}, compression=zipfile.ZIP_STORED))
    i = data.index(b"A" * 100)
    data[i] = ord("B")
    parsed = _parsed(("a.zip", bytes(data)))
    expand(parsed, Limits(), tmp_path)
    (m,) = _members(parsed)
    assert m.error == "the file inside the archive is damaged (checksum mismatch)"
    assert m.data is None and m.spool is None


def test_archive_given_as_a_spool_file(tmp_path):
    spool = tmp_path / "in"
    spool.mkdir()
    (spool / "a").write_bytes(gbk_zip({"统计表.xlsx": b"s"}))
    (spool / "b").write_bytes(rar4_stored({"总结.docx".encode("gbk"): b"d"}))
    parsed = ParsedMessage(
        headers=Headers(),
        parts=[
            ExtractedPart(location="a.zip", filename="a.zip", declared_type=None, spool=spool / "a"),
            ExtractedPart(location="b.rar", filename="b.rar", declared_type=None, spool=spool / "b"),
        ],
    )
    expand(parsed, Limits(), tmp_path / "out")
    assert [(m.location, _content(m)) for m in _members(parsed)] == [
        ("a.zip/统计表.xlsx", b"s"),
        ("b.rar/总结.docx", b"d"),
    ]
