"""Hostile attachments, end to end through the real CLI (issue #6's reliability promises).

Each attack is delivered as a real message into a throw-away campaign's Maildir and ingested
by ``mailroll ingest --once --json`` in its own subprocess, whose wall time and peak memory
(``os.wait4``'s rusage: the child and the tools it ran, e.g. ffprobe) are measured. For every
attack:

* the command exits 0 and the message is accounted for in ``messages --json`` (attributed to
  the sender's roster unit: nothing a message carries may turn it into ``failed``);
* the bad attachment has a recorded reason a person understands (``parts.error``, or the
  message's parser defects when the damage is to the message itself);
* it takes < 30 s and < 300 MB;
* nothing is written outside ``storage.files`` (content-addressed files only, ``.tmp``
  emptied) and the database: the campaign directory, the Maildir, the parent directory,
  ``/tmp`` and the child's private TMPDIR/HOME/working directory are compared before and after.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.campaign import Campaign
from fixtures.files import make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail, gbk_zip, many_parts_mail, raw_mail, raw_part, std_headers

MAX_SECONDS = 30
MAX_RSS_MB = 300
MARK = "h7evil"            # in every name an attack would like to see written somewhere


# ---------------------------------------------------------------------------------------------
# Running one ingest as a measured subprocess, and checking what it left behind
# ---------------------------------------------------------------------------------------------

@dataclass
class Measured:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


def run_measured(campaign: Campaign, *args: str, sandbox: Path, timeout: float = 90) -> Measured:
    """``python -m reconcile --config ... ARGS`` (as Campaign.run_process runs it), reaped with
    ``os.wait4`` so the child's own peak RSS (max over it and its waited-for children) is known.
    TMPDIR, HOME and the working directory are private directories under ``sandbox``."""
    env = {**os.environ, "TMPDIR": str(sandbox / "tmp"), "HOME": str(sandbox / "home")}
    argv = [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args]
    out_path, err_path = sandbox / "stdout", sandbox / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                cwd=sandbox / "cwd", start_new_session=True)
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if not killed and time.monotonic() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.01)
        seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here: Popen must not wait again
    assert not killed, f"mailroll {' '.join(args)} still running after {timeout} s: killed"
    return Measured(proc.returncode, out_path.read_text(), err_path.read_text(), seconds,
                    usage.ru_maxrss / 1024)


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
SHA_PATH = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}$")


@dataclass
class Outcome:
    """One attack's ingest: the run, its JSON summary, the message row and its parts."""
    run: Measured
    summary: dict
    message: dict                 # messages --json row
    row: sqlite3.Row              # messages table row
    parts: list[sqlite3.Row]

    def part(self, filename: str) -> sqlite3.Row:
        found = [p for p in self.parts if p["filename"] == filename]
        assert found, f"no part named {filename!r}: {[p['location'] for p in self.parts]}"
        return found[0]


def ingest_attack(campaign: Campaign, msg, *, unit: str, **config) -> Outcome:
    """Deliver ``msg``, ingest it in a measured subprocess, check the promises common to every
    attack, and return what was recorded."""
    if config:
        campaign.configure(**config)
    campaign.deliver(msg)
    sandbox = campaign.root.parent / (campaign.root.name + "-sandbox")
    for sub in ("tmp", "home", "cwd"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)

    root_before = _tree(campaign.root, skip=DB_FILES + ("files",))
    parent_before = set(os.listdir(campaign.root.parent))
    tmp_before = set(os.listdir("/tmp"))

    run = run_measured(campaign, "ingest", "--once", "--json", sandbox=sandbox)
    assert run.exit_code == 0, f"ingest exited {run.exit_code}:\n{run.stdout}\n{run.stderr}"
    assert run.seconds < MAX_SECONDS, f"ingest took {run.seconds:.1f} s"
    assert run.peak_mb < MAX_RSS_MB, f"ingest peaked at {run.peak_mb:.0f} MB"

    # nothing written anywhere but the database and storage.files
    assert _tree(campaign.root, skip=DB_FILES + ("files",)) == root_before
    assert set(os.listdir(campaign.root.parent)) == parent_before
    new_in_tmp = set(os.listdir("/tmp")) - tmp_before
    assert not [n for n in new_in_tmp if MARK in n.lower() or n.upper().startswith("CON")], new_in_tmp
    for sub in ("tmp", "home", "cwd"):
        assert not list((sandbox / sub).rglob("*")), f"the ingest left files in its {sub}: " \
            f"{list((sandbox / sub).rglob('*'))}"
    stored = [p.relative_to(campaign.files_dir).as_posix() for p in campaign.files_dir.rglob("*") if p.is_file()]
    assert stored and all(SHA_PATH.match(s) for s in stored), stored  # .tmp is empty again
    assert not list((campaign.files_dir / ".tmp").iterdir())

    summary = json.loads(run.stdout)
    assert summary["new"] == 1 and summary["failed"] == 0, summary
    assert summary["attributed"] == 1, summary

    (message,) = campaign.run("messages", "--json").json
    assert message["disposition"] == "attributed" and message["unit"] == unit, message
    conn = sqlite3.connect(campaign.db_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM messages").fetchone()
        parts = conn.execute("SELECT * FROM parts ORDER BY seq").fetchall()
    finally:
        conn.close()
    return Outcome(run, summary, message, row, parts)


def unit_status(campaign: Campaign, unit: str) -> dict:
    return next(r for r in campaign.run("status", "--json").json if r["id"] == unit)


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
    # the reference goes into the first text node (<t>...</t> or <w:t>...</w:t>)
    body = re.sub(rb"(<(?:w:)?t(?: [^>]*)?>)", rb"\1&lol9;", body, count=1)
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
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


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
    assert unit_status(campaign, "taiyuan-kjj")["items"]["statistics"]["state"] == "ok"
    assert sum(p.stat().st_size for p in campaign.files_dir.rglob("*") if p.is_file()) < 5_000_000


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
        f"材料.zip/{MARK}-统计表.xlsx", f"材料.zip/tmp/{MARK}-总结报告.docx", f"材料.zip/{MARK}.bat"}
    assert not Path(f"/tmp/{MARK}-总结报告.docx").exists()
    assert not list(campaign.root.parent.parent.glob(f"{MARK}*"))
    items = unit_status(campaign, "datong-kjj")["items"]
    assert items["statistics"]["state"] == "ok" and items["report"]["state"] == "ok", items


def test_archives_nested_ten_levels_stop_at_the_depth_limit(campaign):
    data = gbk_zip({"统计表.xlsx": b"innermost"})
    for level in range(9, 0, -1):
        data = gbk_zip({f"第{level + 1}层.zip": data})
    msg = build_mail(sender("czkjj@changzhi.gov.cn"), attachments=[("第1层.zip", data)])
    o = ingest_attack(campaign, msg, unit="changzhi-kjj")
    names = [p["filename"] for p in o.parts]
    assert names == ["第1层.zip", "第2层.zip", "第3层.zip", "第4层.zip"], names
    assert o.part("第4层.zip")["error"].startswith("archive nested more than 3 levels deep"), o.part("第4层.zip")["error"]


def test_xml_bomb_in_an_xlsx_is_not_expanded(campaign, media):
    bomb = with_xml_bomb(make_sheet_xlsx(campaign.root.parent / "jz.xlsx", unit="晋中市科学技术局"),
                         ("xl/sharedStrings.xml", "xl/workbook.xml"))
    msg = build_mail(sender("jzkjj@sina.com"), attachments=[("2022年科技活动周开展情况统计表.xlsx", bomb)])
    o = ingest_attack(campaign, msg, unit="jinzhong-kjj")
    part = o.part("2022年科技活动周开展情况统计表.xlsx")
    assert part["kind"] == "statistics"
    assert "XML bomb" in (part["error"] or ""), part["error"]
    item = unit_status(campaign, "jinzhong-kjj")["items"]["statistics"]
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


def test_10_mb_header(campaign, media):
    msg = build_mail(sender("tykx@tykx.org.cn"), "太原市科协科技周总结",
                     attachments=[("总结报告.pdf", media.report_pdf.read_bytes())])
    raw = msg.as_bytes()
    junk = b"".join(b"X-Junk-%06d: %s\r\n" % (i, b"x" * 90) for i in range(100_000))
    raw = junk + raw   # the 10 MB come first: From, Subject and Content-Type must survive the cut
    o = ingest_attack(campaign, raw, unit="taiyuan-kx")
    assert o.message["subject"] == "太原市科协科技周总结"
    assert o.part("总结报告.pdf")["kind"] == "report" and o.part("总结报告.pdf")["error"] is None
    assert any("header section is" in d and "over the limit" in d for d in defects(o)), defects(o)[:3]


def test_truncated_base64_body(campaign, media):
    sheet = media.sheet_xlsx.read_bytes()
    full = raw_mail(std_headers("长治高新区 <kjj@czgxq.gov.cn>", "科技周统计表", message_id="<trunc@czgxq>"),
                    [raw_part(sheet, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                              "统计表.xlsx")], close=False)
    cut = full[: full.index(b"Content-Disposition: attachment") + len(sheet) // 2 + 3]  # mid-quantum
    o = ingest_attack(campaign, cut, unit="changzhi-gxq")
    part = o.part("统计表.xlsx")
    assert part["size"] < len(sheet)
    assert part["error"] and part["error"].startswith("the sheet cannot be opened"), part["error"]
    assert any("base64 data is incomplete" in d for d in defects(o)), defects(o)
    item = unit_status(campaign, "changzhi-gxq")["items"]["statistics"]
    assert item["state"] == "invalid" and item["reason"], item


def test_file_names_con_and_control_characters(campaign, media):
    msg = build_mail(sender("zgsfq_kj@126.com"), attachments=[
        ("CON", media.report_pdf.read_bytes(), "application/pdf"),
        ("统计\x01表\x1b\x7f.xlsx", media.sheet_xlsx.read_bytes()),
        (f"{MARK}\r\n\t.docx", media.report_docx.read_bytes()),
    ])
    o = ingest_attack(campaign, msg, unit="zhuanxing")
    names = [p["filename"] for p in o.parts]
    assert names == ["_CON", "统计表.xlsx", f"{MARK}.docx"], names
    assert all(not re.search(r"[\x00-\x1f\x7f]", p["location"]) for p in o.parts)
    assert [p["kind"] for p in o.parts] == ["report", "statistics", "report"]


def test_a_video_whose_probe_hangs_is_given_up_with_a_reason(campaign, media):
    """ffprobe is killed after limits.probe_timeout_s. Making ffprobe hang for real on a file
    it may only read as ``file:`` with ``-protocol_whitelist file`` was not achieved (playlists
    are refused, a regular file always ends); so the limit is set below ffprobe's start-up time
    (50 ms) and a real video goes through the timeout path end to end."""
    msg = build_mail(sender("kjc@sxu.edu.cn"), attachments=[("山西大学科技周.mp4", media.video(5).read_bytes())])
    o = ingest_attack(campaign, msg, unit="sxu", limits={"probe_timeout_s": 0.001})
    part = o.part("山西大学科技周.mp4")
    assert part["kind"] == "video"
    assert part["error"] == "the video could not be probed within 0.001 s", part["error"]
    item = unit_status(campaign, "sxu")["items"]["video"]
    assert item["state"] == "invalid" and "could not be probed" in item["reason"], item


def test_decompression_bomb_png(campaign):
    png = huge_png()
    assert len(png) < 500_000
    msg = build_mail(sender("kjc@tyut.edu.cn"), attachments=[("活动照片.png", png)])
    o = ingest_attack(campaign, msg, unit="tyut")
    part = o.part("活动照片.png")
    assert part["kind"] == "image"
    assert part["error"] and "900,000,000" in part["error"] or "30000" in (part["error"] or ""), part["error"]


def test_password_protected_zip(campaign, tmp_path):
    if not shutil.which("bsdtar"):
        pytest.fail("bsdtar (libarchive-tools) is needed to make an encrypted zip: run `make test`")
    src = tmp_path.parent / "enc-src"
    src.mkdir()
    make_sheet_xlsx(src / "统计表.xlsx", unit="山西省科学院")
    out = tmp_path.parent / "enc.zip"
    subprocess.run(["bsdtar", "-c", "--format", "zip", "--options", "zip:encryption=zipcrypt",
                    "--passphrase", "123456", "-f", str(out), "-C", str(src), "."], check=True)
    msg = build_mail(sender("office@sxas.ac.cn"), attachments=[("科学院材料.zip", out.read_bytes())])
    o = ingest_attack(campaign, msg, unit="sxas")
    assert o.part("科学院材料.zip")["error"] == "the archive is password-protected"
    assert [p["filename"] for p in o.parts] == ["科学院材料.zip"]


def test_a_video_that_is_really_a_zip(campaign, media):
    data = gbk_zip({"统计表.xlsx": media.sheet_xlsx.read_bytes()})
    msg = build_mail(sender("kjjbgs@taiyuan.gov.cn"), attachments=[("科技周视频.mp4", data, "video/mp4")])
    o = ingest_attack(campaign, msg, unit="taiyuan-kjj")
    fake = o.part("科技周视频.mp4")
    assert fake["sniffed_type"] == "zip", dict(fake)
    item = unit_status(campaign, "taiyuan-kjj")["items"]["video"]
    assert item["state"] in ("missing", "invalid"), item
    if item["state"] == "invalid":
        assert item["reason"], item
