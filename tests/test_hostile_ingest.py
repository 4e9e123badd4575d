"""Hostile attachments, end to end through the real CLI (issue #6's reliability promises).

Each attack is delivered as a real message into a throw-away campaign's Maildir and ingested
by ``mailroll ingest --once --json`` in its own subprocess, whose peak memory
(``/usr/bin/time -f %M``: the largest of the child and the tools it ran, e.g. ffprobe) is
measured. For every attack:

* the command exits 0 and the message is accounted for in ``messages --json`` (attributed to
  the sender's roster unit: nothing a message carries may turn it into ``failed``);
* the bad attachment has a recorded reason a person understands (``parts.error``, or the
  message's parser defects when the damage is to the message itself);
* it stays under 300 MB, and what could take long is cut short by a limit the code enforces
  (``limits.probe_timeout_s``, archive and image limits...), seen as the recorded reason; how
  long an ingest takes is bench/'s business;
* nothing is written outside ``storage.files`` (content-addressed files only, ``.tmp``
  emptied) and the database: the campaign directory, the Maildir, the parent directory,
  ``/tmp`` and the child's private TMPDIR/HOME/working directory are compared before and after.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.campaign import Campaign
from fixtures.files import make_encrypted_zip, make_sheet_xlsx
from fixtures.mail import build_mail, gbk_zip, many_parts_mail, raw_mail, raw_part, std_headers

from ingest.checks.video import NOT_A_VIDEO

MAX_RSS_MB = 300
MARK = "h7evil"  # in every name an attack would like to see written somewhere


# ---------------------------------------------------------------------------------------------
# Running one ingest as a measured subprocess, and checking what it left behind
# ---------------------------------------------------------------------------------------------


@dataclass
class Measured:
    exit_code: int
    stdout: str
    stderr: str
    peak_mb: float


def run_measured(campaign: Campaign, *args: str, sandbox: Path, timeout: float = 90) -> Measured:
    """``python -m reconcile --config ... ARGS`` (as Campaign.run_process runs it) under
    ``/usr/bin/time -f %M``, which reports the child's peak RSS in KiB (its own and that of the
    tools it waited for). Not ``os.wait4`` from here: Linux carries the forking process's RSS
    high-water mark over into the child, so a child of a big pytest would look big.
    TMPDIR, HOME and the working directory are private directories under ``sandbox``."""
    if not os.access("/usr/bin/time", os.X_OK):
        pytest.fail("/usr/bin/time is needed to measure peak memory: apt-get install time")
    env = {**os.environ, "TMPDIR": str(sandbox / "tmp"), "HOME": str(sandbox / "home")}
    rss = sandbox / "maxrss"
    argv = [
        "/usr/bin/time",
        "-f",
        "%M",
        "-o",
        str(rss),
        sys.executable,
        "-m",
        "reconcile",
        "--config",
        str(campaign.config_path),
        *args,
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=sandbox / "cwd",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"mailroll {' '.join(args)} hung: killed after {timeout} s")
    peak_kib = int(rss.read_text().split()[-1])
    rss.unlink()
    return Measured(proc.returncode, out.decode(), err.decode(), peak_kib / 1024)


def _tree(root: Path, skip=()) -> dict[str, tuple[int, int]]:
    snap = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        st = p.lstat()
        snap[rel] = (st.st_size, st.st_mtime_ns) if p.is_file() or p.is_symlink() else (-1, 0)
    return snap


DB_FILES = ("mailroll.db", "mailroll.db-wal", "mailroll.db-shm", "mailroll.db-journal", "mailroll.db.lock")
# files, and the raw copies of messages (ingest/raw.py)
SHA_PATH = re.compile(
    r"^([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}|raw/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.(eml|skel)\.zst)$"
)


@dataclass
class Outcome:
    """One attack's ingest: the run, its JSON summary, the message row and its parts."""

    run: Measured
    summary: dict
    message: dict  # messages --json row
    row: sqlite3.Row  # messages table row
    parts: list[sqlite3.Row]

    def part(self, filename: str) -> sqlite3.Row:
        found = [p for p in self.parts if p["filename"] == filename]
        assert found, f"no part named {filename!r}: {[p['location'] for p in self.parts]}"
        return found[0]


def ingest_attack(campaign: Campaign, msg, *, unit: str, **config) -> Outcome:
    """Deliver ``msg``, ingest it in a measured subprocess, check the promises common to every
    attack, and return what was recorded."""
    run, summary, (message,) = ingest_mailbox(campaign, [msg], [unit], **config)
    conn = sqlite3.connect(campaign.db_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM messages").fetchone()
        parts = conn.execute("SELECT * FROM parts ORDER BY seq").fetchall()
    finally:
        conn.close()
    return Outcome(run, summary, message, row, parts)


def ingest_mailbox(
    campaign: Campaign, msgs: list, units: list[str], **config
) -> tuple[Measured, dict, list[dict]]:
    """Deliver ``msgs`` (one minute apart), ingest them all in one measured subprocess, check
    the common promises; each message must be attributed to the unit at its position."""
    if config:
        campaign.configure(**config)
    start = time.time() - 3600
    for i, msg in enumerate(msgs):
        campaign.deliver(msg, when=datetime.fromtimestamp(start + 60 * i, UTC))
    sandbox = campaign.root.parent / (campaign.root.name + "-sandbox")
    for sub in ("tmp", "home", "cwd"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)

    root_before = _tree(campaign.root, skip=DB_FILES + ("files",))
    parent_before = set(os.listdir(campaign.root.parent))
    tmp_before = set(os.listdir("/tmp"))

    run = run_measured(campaign, "ingest", "--once", "--json", sandbox=sandbox)
    assert run.exit_code == 0, f"ingest exited {run.exit_code}:\n{run.stdout}\n{run.stderr}"
    assert run.peak_mb < MAX_RSS_MB, f"ingest peaked at {run.peak_mb:.0f} MB"

    # nothing written anywhere but the database and storage.files
    assert _tree(campaign.root, skip=DB_FILES + ("files",)) == root_before
    assert set(os.listdir(campaign.root.parent)) == parent_before
    new_in_tmp = set(os.listdir("/tmp")) - tmp_before
    assert not [n for n in new_in_tmp if MARK in n.lower() or n.upper() in ("CON", "_CON")], new_in_tmp
    for sub in ("tmp", "home", "cwd"):
        assert not list((sandbox / sub).rglob("*")), (
            f"the ingest left files in its {sub}: {list((sandbox / sub).rglob('*'))}"
        )
    stored = [
        p.relative_to(campaign.files_dir).as_posix() for p in campaign.files_dir.rglob("*") if p.is_file()
    ]
    assert all(SHA_PATH.match(s) for s in stored), stored  # content-addressed only; .tmp is empty again
    assert not list((campaign.files_dir / ".tmp").iterdir())

    summary = json.loads(run.stdout)
    assert summary["new"] == len(msgs) and summary["failed"] == 0, summary
    assert summary["attributed"] == len(msgs), summary

    messages = campaign.messages()
    assert [(m["disposition"], m["unit"]) for m in messages] == [("attributed", u) for u in units], messages
    return run, summary, messages


def defects(outcome: Outcome) -> list[str]:
    return json.loads(outcome.row["defects"] or "[]")


# ---------------------------------------------------------------------------------------------
# Hostile files (made once per session where they take time)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def zip_bomb(tmp_path_factory) -> bytes:
    """1 GiB of zeros deflated to ~1 MB, next to a real statistics sheet."""
    sheet = make_sheet_xlsx(tmp_path_factory.mktemp("bomb") / "s.xlsx")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(sheet, "统计表.xlsx")
        with zf.open("清单.bin", "w", force_zip64=True) as f:
            chunk = b"\0" * (16 << 20)
            for _ in range(64):
                f.write(chunk)
    data = buf.getvalue()
    assert len(data) < 2_000_000
    return data


def billion_laughs(root_xml: bytes) -> bytes:
    """Prefix an XML document with the classic entity bomb and reference it in the root."""
    dtd = b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
    prev = b"lol"
    for i in range(1, 10):
        dtd += b'<!ENTITY lol%d "%s">' % (i, (b"&" + prev + b";") * 10)
        prev = b"lol%d" % i
    dtd += b"]>"
    body = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", root_xml)
    # the reference goes right after the root element's start tag: the parser meets it first
    body = re.sub(rb"^(<[^>]*[^/]>)", rb"\1&lol9;", body, count=1)
    assert b"&lol9;" in body
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + dtd + body


def with_xml_bomb(src: Path, member_names: tuple[str, ...]) -> bytes:
    """A copy of an OOXML file with the first of ``member_names`` it has turned into a bomb."""
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        target = next(n for n in member_names if n in zin.namelist())
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, billion_laughs(data) if info.filename == target else data)
    return out.getvalue()


def huge_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A 1-bit single colour PNG of width x height (900 million pixels) in ~100 KB."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def sender(addr: str, name: str = "") -> str:
    return f"{name} <{addr}>" if name else addr


# ---------------------------------------------------------------------------------------------
# The attacks
# ---------------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_and_the_real_sheet_next_to_it_still_counts(campaign, zip_bomb):
    msg = build_mail(sender("tykjj@taiyuan.gov.cn"), attachments=[("太原市材料.zip", zip_bomb)])
    o = ingest_attack(campaign, msg, unit="taiyuan-kjj")
    archive = o.part("太原市材料.zip")
    assert archive["error"].startswith("archive looks like a zip bomb (清单.bin"), archive["error"]
    assert "清单.bin" not in [p["filename"] for p in o.parts]
    assert o.part("统计表.xlsx")["kind"] == "statistics"
    assert campaign.unit("taiyuan-kjj")["items"]["statistics"]["state"] == "ok"
    assert sum(p.stat().st_size for p in campaign.files_dir.rglob("*") if p.is_file()) < 5_000_000


def lying_zip_bomb(real: int = 200 * 1024 * 1024, claimed: int = 1000) -> bytes:
    """A zip whose one member inflates to ``real`` zeros while its headers claim ``claimed``
    bytes (so a ratio check on the headers alone passes it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("统计表.xlsx", "w") as f:
            for _ in range(real // (8 << 20)):
                f.write(b"\0" * (8 << 20))
    data = bytearray(buf.getvalue())
    assert data[:4] == b"PK\x03\x04" and struct.unpack_from("<I", data, 22)[0] == real
    struct.pack_into("<I", data, 22, claimed)  # local header
    cd = data.rindex(b"PK\x01\x02")
    assert struct.unpack_from("<I", data, cd + 24)[0] == real
    struct.pack_into("<I", data, cd + 24, claimed)  # central directory
    return bytes(data)


def test_zip_bomb_lying_about_its_size_is_cut_off(campaign):
    bomb = lying_zip_bomb()
    assert len(bomb) < 500_000
    msg = build_mail(sender("tykjj@taiyuan.gov.cn"), attachments=[("材料.zip", bomb)])
    o = ingest_attack(campaign, msg, unit="taiyuan-kjj")
    member = o.part("统计表.xlsx")
    # zipfile stops at the claimed size, so the CRC no longer matches (or our own cap trips)
    assert member["error"] in (
        "the file inside the archive is damaged (checksum mismatch)",
        "the file inside the archive is larger than it claims: not extracted (possible zip bomb)",
    ), member["error"]
    assert member["sha256"] is None
    assert sum(p.stat().st_size for p in campaign.files_dir.rglob("*") if p.is_file()) < 2_000_000


def test_zip_member_paths_with_dotdot_and_absolute_names_stay_inside_the_store(campaign, media, tmp_path):
    sheet = make_sheet_xlsx(tmp_path.parent / "dt.xlsx", unit="大同市科学技术局")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(f"../../{MARK}-统计表.xlsx"), sheet.read_bytes())
        zf.writestr(zipfile.ZipInfo(f"/tmp/{MARK}-总结报告.docx"), media.report_docx.read_bytes())
        zf.writestr(zipfile.ZipInfo(f"..\\..\\{MARK}.bat"), b"del /q C:\\*")
    msg = build_mail(sender("dtkjj2022@163.com"), attachments=[("材料.zip", buf.getvalue())])
    o = ingest_attack(campaign, msg, unit="datong-kjj")
    assert {p["location"] for p in o.parts if p["origin"] == "archive"} == {
        f"材料.zip/{MARK}-统计表.xlsx",
        f"材料.zip/tmp/{MARK}-总结报告.docx",
        f"材料.zip/{MARK}.bat",
    }
    assert not Path(f"/tmp/{MARK}-总结报告.docx").exists()
    assert not list(campaign.root.parent.parent.glob(f"{MARK}*"))
    items = campaign.unit("datong-kjj")["items"]
    assert items["statistics"]["state"] == "ok" and items["report"]["state"] == "ok", items


def test_archives_nested_ten_levels_stop_at_the_depth_limit(campaign):
    data = gbk_zip({"统计表.xlsx": b"innermost"})
    for level in range(9, 0, -1):
        data = gbk_zip({f"第{level + 1}层.zip": data})
    msg = build_mail(sender("czkjj@changzhi.gov.cn"), attachments=[("第1层.zip", data)])
    o = ingest_attack(campaign, msg, unit="changzhi-kjj")
    names = [p["filename"] for p in o.parts]
    assert names == ["第1层.zip", "第2层.zip", "第3层.zip", "第4层.zip"], names
    assert o.part("第4层.zip")["error"].startswith("archive nested more than 3 levels deep"), o.part(
        "第4层.zip"
    )["error"]


def test_xml_bomb_in_an_xlsx_is_not_expanded(campaign, media):
    bomb = with_xml_bomb(
        make_sheet_xlsx(campaign.root.parent / "jz.xlsx", unit="晋中市科学技术局"), ("xl/workbook.xml",)
    )
    msg = build_mail(sender("jzkjj@sina.com"), attachments=[("2022年科技活动周开展情况统计表.xlsx", bomb)])
    o = ingest_attack(campaign, msg, unit="jinzhong-kjj")
    part = o.part("2022年科技活动周开展情况统计表.xlsx")
    assert part["kind"] == "statistics"
    assert "XML bomb" in (part["error"] or ""), part["error"]
    item = campaign.unit("jinzhong-kjj")["items"]["statistics"]
    assert item["state"] == "invalid" and "XML bomb" in item["reason"], item


def test_xml_bomb_in_a_docx_is_not_expanded(campaign, media):
    bomb = with_xml_bomb(media.report_docx, ("word/document.xml",))
    msg = build_mail(sender("yckjj@yuncheng.gov.cn"), attachments=[("运城市科技活动周总结报告.docx", bomb)])
    o = ingest_attack(campaign, msg, unit="yuncheng-kjj")
    part = o.part("运城市科技活动周总结报告.docx")
    assert part["kind"] == "report"
    assert "XML bomb" in (part["error"] or ""), part["error"]


def test_50000_part_message(campaign):
    raw = many_parts_mail(50_000).replace(b"From: a@b.cn", b"From: tyswxcb@qq.com", 1)
    o = ingest_attack(campaign, raw, unit="taiyuan-xcb")
    assert 900 <= len(o.parts) <= 1000
    assert any("more than 1,000 MIME parts" in d for d in defects(o)), defects(o)[:3]


def test_mime_nested_20000_levels_deep(campaign):
    levels = 20_000
    raw = (
        b"From: kjc@tyut.edu.cn\r\nSubject: =?utf-8?B?5aSq5Y6f55CG5bel5aSn5a2m?=\r\nMIME-Version: 1.0\r\n"
        + b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(levels)
        )
        + b"Content-Type: text/plain\r\n\r\nhello\r\n"
        + b"".join(b"--b%d--\r\n" % i for i in reversed(range(levels)))
    )
    o = ingest_attack(campaign, raw, unit="tyut")
    assert o.message["subject"] == "太原理工大学"
    assert any("nested too deeply" in d or "nested deeper than" in d for d in defects(o)), defects(o)[:3]


def test_10_mb_header(campaign, media):
    msg = build_mail(
        sender("tykx@tykx.org.cn"),
        "太原市科协科技周总结",
        attachments=[("总结报告.pdf", media.report_pdf.read_bytes())],
    )
    raw = msg.as_bytes()
    junk = b"".join(b"X-Junk-%06d: %s\r\n" % (i, b"x" * 90) for i in range(100_000))
    raw = junk + raw  # the 10 MB come first: From, Subject and Content-Type must survive the cut
    o = ingest_attack(campaign, raw, unit="taiyuan-kx")
    assert o.message["subject"] == "太原市科协科技周总结"
    assert o.part("总结报告.pdf")["kind"] == "report" and o.part("总结报告.pdf")["error"] is None
    assert any("header section is" in d and "over the limit" in d for d in defects(o)), defects(o)[:3]


def test_truncated_base64_body(campaign, media):
    sheet = media.sheet_xlsx.read_bytes()
    full = raw_mail(
        std_headers("长治高新区 <kjj@czgxq.gov.cn>", "科技周统计表", message_id="<trunc@czgxq>"),
        [raw_part(sheet, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "统计表.xlsx")],
        close=False,
    )
    body = full.index(b"\r\n\r\n", full.index(b"Content-Disposition: attachment")) + 4
    lines = len(sheet) * 4 // 3 // 76 // 2  # half the file's base64 lines (76 + CR LF)
    cut = full[: body + 78 * lines + 2]  # ... and 2 characters: mid-quantum
    o = ingest_attack(campaign, cut, unit="changzhi-gxq")
    part = o.part("统计表.xlsx")
    assert part["size"] < len(sheet)
    assert part["error"] and part["error"].startswith("the sheet cannot be opened"), part["error"]
    assert any("base64 data is incomplete" in d for d in defects(o)), defects(o)
    item = campaign.unit("changzhi-gxq")["items"]["statistics"]
    assert item["state"] == "invalid" and item["reason"], item


def test_file_names_con_and_control_characters(campaign, media):
    # RFC 2231 names carry the control characters (CR LF TAB, ESC, DEL) percent-encoded
    raw = raw_mail(
        std_headers("转型综改示范区 <zgsfq_kj@126.com>", "科技周材料", message_id="<con@126>"),
        [
            raw_part(media.report_pdf.read_bytes(), "application/pdf", "CON", "raw"),
            raw_part(
                media.sheet_xlsx.read_bytes(),
                "application/octet-stream",
                "统计\x01表\x1b\x7f.xlsx",
                "rfc2231-utf8",
            ),
            raw_part(
                media.report_docx.read_bytes(),
                "application/octet-stream",
                f"{MARK}\r\n\t.docx",
                "rfc2231-utf8",
            ),
        ],
    )
    o = ingest_attack(campaign, raw, unit="zhuanxing")
    names = [p["filename"] for p in o.parts]
    assert names == ["_CON", "统计表.xlsx", f"{MARK}.docx"], names
    assert all(not re.search(r"[\x00-\x1f\x7f]", p["location"]) for p in o.parts)
    assert [p["kind"] for p in o.parts] == ["report", "statistics", "report"]
    assert all(p["error"] is None for p in o.parts), [p["error"] for p in o.parts]


# A live HLS playlist (no #EXT-X-ENDLIST) whose segment never appears: ffprobe 5.1 sniffed it
# from the content, whatever the file was called, and waited for the stream for ever (until
# limits.probe_timeout_s). The demuxers that probe videos now (FFmpeg 7+, through PyAV, given the
# file itself and not a name) do not take it for media at all.
LIVE_PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10,\nsegment-0.ts\n"


def test_a_live_playlist_sent_as_the_video_is_not_a_video(campaign, media):
    """It used to hang the probe; it is refused at once, and the next video is still probed."""
    msg = build_mail(
        sender("kjc@sxu.edu.cn"),
        attachments=[
            ("山西大学科技周.mp4", LIVE_PLAYLIST, "video/mp4"),
            ("活动视频.mp4", media.video(5).read_bytes()),  # the next video is still probed
        ],
    )
    started = time.monotonic()
    o = ingest_attack(campaign, msg, unit="sxu", limits={"probe_timeout_s": 20})
    assert time.monotonic() - started < 20  # (not given up after the limit: refused)
    part = o.part("山西大学科技周.mp4")
    assert part["kind"] == "video"
    assert part["error"] == NOT_A_VIDEO, part["error"]
    good = o.part("活动视频.mp4")
    assert good["error"] is None and json.loads(good["facts"])["duration_s"] == pytest.approx(5, abs=0.5)


def test_video_probe_timeout_path_with_a_real_video(campaign, media):
    """A probe that runs out of time (limits.probe_timeout_s) is given up, its worker process
    stopped: here with a limit below the round trip to a worker (about a millisecond)."""
    msg = build_mail(
        sender("kjc@sxu.edu.cn"), attachments=[("山西大学科技周.mp4", media.video(5).read_bytes())]
    )
    o = ingest_attack(campaign, msg, unit="sxu", limits={"probe_timeout_s": 0.001})
    part = o.part("山西大学科技周.mp4")
    assert part["error"] == "the video could not be probed within 0.001 s", part["error"]
    item = campaign.unit("sxu")["items"]["video"]
    assert item["state"] == "invalid" and "could not be probed" in item["reason"], item


def test_decompression_bomb_png(campaign):
    png = huge_png()
    assert len(png) < 500_000
    msg = build_mail(sender("kjc@tyut.edu.cn"), attachments=[("活动照片.png", png)])
    o = ingest_attack(campaign, msg, unit="tyut")
    part = o.part("活动照片.png")
    assert part["kind"] == "image"
    assert part["error"] and part["error"].startswith("the image is too large to check"), part["error"]


def test_a_20_mb_attachment_stays_within_the_memory_budget(campaign):
    """Not an attack, the largest ordinary attachment 126.com takes is 50 MB: the Maildir source
    reads a message whole, so memory grows with its size. 20 MB of incompressible 'video'
    (27 MB of base64) peaked at ~350 MB before the stdlib parser was fed in chunks and clean
    base64 decoded in one pass (ingest/mime/); ~200 MB after; ~70 MB since big attachments are
    decoded into spool files (ingest/mime/spill.py, the 40 MB test below)."""
    import random

    data = random.Random(6).randbytes(20 * 1024 * 1024)
    msg = build_mail(sender("kjc@sxu.edu.cn"), attachments=[("科技周视频.mp4", data, "video/mp4")])
    o = ingest_attack(campaign, msg, unit="sxu")
    part = o.part("科技周视频.mp4")
    assert (
        part["size"] == len(data)
        and part["error"] == "not a video file (the content is not a known media format)"
    )


def test_a_40_mb_attachment_in_a_maildir_is_decoded_to_disk_not_held_in_memory(campaign):
    """The Maildir source reads a message whole (1x); the parser used to hold it several times
    more (~6.5x the message size at peak). A message over limits.stream_threshold_bytes now has
    its long base64 runs set aside before the stdlib parser sees it, and the attachment is
    decoded from the raw bytes straight into a spool file (ingest/mime/spill.py): the peak is
    the message once plus the interpreter. 40 MB of 'video' (55 MB message): ~420 MB before,
    ~130 MB after. The stored file is the one sent, byte for byte."""
    import hashlib
    import random

    data = b"\x00\x00\x00\x18ftypmp42" + random.Random(40).randbytes(40 * 1024 * 1024)
    msg = build_mail(sender("kjc@sxu.edu.cn"), attachments=[("科技周视频.mp4", data, "video/mp4")])
    size = len(msg.as_bytes())
    o = ingest_attack(campaign, msg, unit="sxu")
    part = o.part("科技周视频.mp4")
    assert (
        part["size"] == len(data)
        and part["error"] == "not a video file (the content is not a known media format)"
    )
    digest = hashlib.sha256(data).hexdigest()
    assert part["sha256"] == digest
    stored = campaign.files_dir / digest[:2] / digest[2:4] / digest
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    print(f"maildir ingest of a {size / 2**20:.0f} MB message: {o.run.peak_mb:.0f} MB peak")
    assert o.run.peak_mb * 2**20 < 1.5 * size + 60 * 2**20, (o.run.peak_mb, size)


def test_a_60_mb_attachment_over_imap_is_streamed_in_bounded_memory(imap_campaign, dovecot):
    """The production path: IMAP messages over limits.stream_threshold_bytes are fetched part by
    part into spool files, so memory does not grow with the attachment (the Maildir source above
    reads a message whole, then decodes its big attachments to spool files: ~1.3x its size)."""
    import random

    data = b"\x00\x00\x00\x18ftypmp42" + random.Random(60).randbytes(60 * 1024 * 1024)
    msg = build_mail(sender("kjc@sxu.edu.cn"), attachments=[("科技周视频.mp4", data, "video/mp4")])
    dovecot.append(imap_campaign.imap_user, msg.as_bytes())
    sandbox = imap_campaign.root.parent / "imap-sandbox"
    for sub in ("tmp", "home", "cwd"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)
    run = run_measured(imap_campaign, "ingest", "--once", "--json", sandbox=sandbox)
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["attributed"] == 1
    assert run.peak_mb < MAX_RSS_MB, run.peak_mb
    conn = sqlite3.connect(imap_campaign.db_path)
    try:
        size, error = conn.execute(
            "SELECT size, error FROM parts WHERE filename = '科技周视频.mp4'"
        ).fetchone()
    finally:
        conn.close()
    assert size == len(data) and error == "not a video file (the content is not a known media format)"


def test_password_protected_zip(campaign, tmp_path):
    src = tmp_path.parent / "enc-src"
    src.mkdir()
    make_sheet_xlsx(src / "统计表.xlsx", unit="山西省科学院")
    out = make_encrypted_zip(tmp_path.parent / "enc.zip", src)
    msg = build_mail(sender("office@sxas.ac.cn"), attachments=[("科学院材料.zip", out.read_bytes())])
    o = ingest_attack(campaign, msg, unit="sxas")
    assert o.part("科学院材料.zip")["error"] == "the archive is password-protected"
    assert [p["filename"] for p in o.parts] == ["科学院材料.zip"]


def test_a_video_that_is_really_a_zip(campaign, media):
    data = gbk_zip({"统计表.xlsx": media.sheet_xlsx.read_bytes()})
    msg = build_mail(sender("kjjbgs@taiyuan.gov.cn"), attachments=[("科技周视频.mp4", data, "video/mp4")])
    o = ingest_attack(campaign, msg, unit="taiyuan-kjj")
    fake = o.part("科技周视频.mp4")
    # judged by content, not by name: opened as the zip it is, its sheet counts
    assert (fake["sniffed_type"], fake["kind"], fake["error"]) == ("zip", "archive", None), dict(fake)
    assert o.part("统计表.xlsx")["location"] == "科技周视频.mp4/统计表.xlsx"
    items = campaign.unit("taiyuan-kjj")["items"]
    assert items["statistics"]["state"] == "ok", items
    assert items["video"]["state"] == "missing", items["video"]  # no video was sent


def test_one_poll_through_a_mailbox_of_attacks(campaign, zip_bomb, media):
    """Everything at once, as a poll meets it: no attack stops or spoils the messages after
    it (spool files, the probe cache and the transaction of each message stay separate)."""
    attacks = [
        (
            build_mail(sender("tykjj@taiyuan.gov.cn"), attachments=[("太原市材料.zip", zip_bomb)]),
            "taiyuan-kjj",
        ),
        (
            build_mail(
                sender("kjc@sxu.edu.cn"), attachments=[("山西大学科技周.mp4", LIVE_PLAYLIST, "video/mp4")]
            ),
            "sxu",
        ),
        (many_parts_mail(50_000).replace(b"From: a@b.cn", b"From: tyswxcb@qq.com", 1), "taiyuan-xcb"),
        (build_mail(sender("kjc@tyut.edu.cn"), attachments=[("活动照片.png", huge_png())]), "tyut"),
        (
            build_mail(
                sender("yckjj@yuncheng.gov.cn"),
                attachments=[("总结报告.docx", with_xml_bomb(media.report_docx, ("word/document.xml",)))],
            ),
            "yuncheng-kjj",
        ),
        (build_mail(sender("dtkjj2022@163.com"), attachments=[("材料.zip", lying_zip_bomb())]), "datong-kjj"),
        # and an ordinary, complete submission last
        (
            build_mail(
                sender("czkjj@changzhi.gov.cn"),
                attachments=[
                    (
                        "统计表.xlsx",
                        make_sheet_xlsx(
                            campaign.root.parent / "cz.xlsx", unit="长治市科学技术局"
                        ).read_bytes(),
                    ),
                    ("总结报告.pdf", media.report_pdf.read_bytes()),
                    ("视频.mp4", media.video(5).read_bytes()),
                ],
            ),
            "changzhi-kjj",
        ),
    ]
    run, _, _ = ingest_mailbox(
        campaign, [m for m, _ in attacks], [u for _, u in attacks], limits={"probe_timeout_s": 2}
    )
    status = {r["id"]: r for r in campaign.status()}
    assert status["changzhi-kjj"]["state"] == "complete", status["changzhi-kjj"]["items"]
    assert status["sxu"]["items"]["video"]["reason"] == NOT_A_VIDEO
    assert status["yuncheng-kjj"]["items"]["report"]["state"] == "invalid"
