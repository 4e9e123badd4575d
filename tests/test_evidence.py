"""The evidence kept of every message: raw copies written back byte-identically (`show --raw`),
facts derived again from them without the mailbox (`reprocess`), also after a SIGKILL.

The messages are served by a real Dovecot; what `show --raw` writes is compared with what
Dovecot serves for ``BODY[]`` (imapclient), also for a message above the streaming threshold,
whose raw copy must not store its big attachment a second time.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import pytest
from fixtures.files import make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
SXU = "山西大学科技处 <kjc@sxu.edu.cn>"
JUNE_20 = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
THRESHOLD = 256 * 1024  # limits.stream_threshold_bytes in these tests: bigger messages are streamed


def mailroll(campaign, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real console command, bytes out (show --raw writes binary)."""
    return subprocess.run(
        [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args],
        capture_output=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def served(dovecot, user: str) -> dict[str, bytes]:
    """Message-ID -> BODY[] as Dovecot serves it."""
    c = dovecot.client(user)
    try:
        c.select_folder("INBOX", readonly=True)
        data = c.fetch(c.search(["ALL"]), ["BODY.PEEK[]"])
    finally:
        c.logout()
    out = {}
    for d in data.values():
        raw = bytes(d[b"BODY[]"])
        mid = next(
            line.split(b":", 1)[1].strip().strip(b"<>").decode()
            for line in raw.split(b"\r\n")
            if line.lower().startswith(b"message-id:")
        )
        out[mid] = raw
    return out


def big_mail(video: bytes) -> EmailMessage:
    """Above the threshold: a base64 video (76-character lines), a quoted-printable text file,
    a preamble and an epilogue around the parts."""
    msg = build_mail(
        SXU,
        attachments=[
            ("科技周视频.mp4", video, "video/mp4"),
            ("说明.txt", ("说明文字" * 20000).encode(), "text/plain"),
        ],
    )
    msg.preamble = "This is a multi-part message in MIME format."
    msg.epilogue = "-- end of the message --\r\n"
    return msg


@pytest.fixture
def served_campaign(imap_campaign, tmp_path):
    """Four units' messages in Dovecot, ingested; returns the campaign and what Dovecot serves."""
    c = imap_campaign
    c.configure(limits={"stream_threshold_bytes": THRESHOLD})
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx").read_bytes()
    report = make_report_docx(tmp_path / "总结报告.docx", chars=800).read_bytes()
    # over 1 MiB, so it is streamed in chunks (parts up to 1 MiB are fetched whole)
    video = b"\x00\x00\x00\x18ftypmp42" + random.Random(15).randbytes(3 * 1024 * 1024)
    messages = [
        build_mail(TY, attachments=[("统计表.xlsx", sheet), ("总结报告.docx", report)]),
        build_mail(DT, subject="=?gbk?B?uqO3qA==?= 报送", attachments=[("统计表.xlsx", sheet)]),
        big_mail(video),
        build_mail(
            TY, body="视频见附件", attachments=[("视频.mp4", video, "video/mp4")]
        ),  # big, one base64 part
    ]
    c.dovecot.append_many(c.imap_user, [m.as_bytes() for m in messages], internaldate=JUNE_20)
    res = c.run("ingest", "--once", "--json").json
    assert res["new"] == 4 and res["failed"] == 0
    return c, served(c.dovecot, c.imap_user), video


def test_show_raw_is_what_the_server_served(served_campaign):
    c, by_id, video = served_campaign
    conn = sqlite3.connect(c.db_path)
    rows = conn.execute("SELECT id, message_id, size, raw_sha256 FROM messages ORDER BY id").fetchall()
    assert len(rows) == 4
    for mid, message_id, size, sha in rows:
        expected = by_id[message_id]
        by_number = mailroll(c, "show", "--raw", str(mid))
        assert by_number.returncode == 0, by_number.stderr
        assert by_number.stdout == expected, (mid, size)
        assert sha == hashlib.sha256(expected).hexdigest()
        by_message_id = mailroll(c, "show", "--raw", f"<{message_id}>")
        assert by_message_id.stdout == expected
    # the headers are kept in the database too
    for mid, headers in conn.execute("SELECT message_id, raw_headers FROM messages"):
        assert by_id[mid].startswith(headers) and headers.endswith(b"\r\n\r\n")


def test_big_attachments_are_not_stored_twice(served_campaign):
    c, by_id, video = served_campaign
    raw_dir = c.files_dir / "raw"
    copies = sorted(p.name.split(".", 1)[1] for p in raw_dir.rglob("*.zst"))
    assert copies == ["eml.zst", "eml.zst", "skel.zst", "skel.zst"]  # the two big ones refer to the video
    skeletons = list(raw_dir.rglob("*.skel.zst"))
    assert all(p.stat().st_size < len(video) // 10 for p in skeletons), [p.stat().st_size for p in skeletons]


def test_unknown_message_is_a_usage_error(served_campaign):
    c, _, _ = served_campaign
    res = mailroll(c, "show", "--raw", "<nobody@example.org>")
    assert res.returncode == 2 and b"no message with Message-ID" in res.stderr


def test_over_the_limit_only_the_header_is_kept(imap_campaign):
    c = imap_campaign
    c.configure(limits={"stream_threshold_bytes": 64 * 1024, "max_message_bytes": 128 * 1024})
    data = random.Random(3).randbytes(200 * 1024)
    msg = build_mail(SXU, attachments=[("大文件.mp4", data, "video/mp4")])
    c.dovecot.append(c.imap_user, msg.as_bytes())
    assert c.run("ingest", "--once", "--json").json["failed"] == 1
    server = served(c.dovecot, c.imap_user)
    header = next(iter(server.values())).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    res = mailroll(c, "show", "--raw", "1")
    # all that is kept, written as a message without a body; the note on stderr says so
    assert res.returncode == 0 and b"only its header was kept" in res.stderr
    assert res.stdout == header
    (row,) = c.messages()
    assert row["disposition"] == "failed" and row["retried_by_poll"] is True  # read again by each poll


def test_maildir_message_written_back_as_delivered(campaign, tmp_path):
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx").read_bytes()
    path = campaign.deliver(build_mail(TY, attachments=[("统计表.xlsx", sheet)]), when=JUNE_20)
    campaign.run("ingest", "--once")
    assert mailroll(campaign, "show", "--raw", "1").stdout == path.read_bytes()


def test_keep_raw_false_keeps_only_headers(campaign, tmp_path):
    campaign.configure(storage={"keep_raw": False})
    path = campaign.deliver(build_mail(TY), when=JUNE_20)
    campaign.run("ingest", "--once")
    assert not (campaign.files_dir / "raw").exists()
    res = mailroll(campaign, "show", "--raw", "1")
    assert res.returncode == 0 and b"the body is not" in res.stderr
    assert path.read_bytes().startswith(res.stdout) and res.stdout.endswith(b"\n\n")


def _snapshot(c) -> tuple:
    status = c.run("status", "--json").json
    messages = c.run("messages", "--json").json
    return status, messages


def test_reprocess_all_on_a_copy_yields_the_same_conclusions(served_campaign, tmp_path):
    c, _, _ = served_campaign
    before = _snapshot(c)
    # a copy of the database and files, and no mailbox at all
    with sqlite3.connect(c.db_path) as src, sqlite3.connect(tmp_path / "copy.db") as dst:
        src.backup(dst)  # (WAL: a file copy could miss the latest commits)
    c.dovecot = None
    c.configure(mailbox={"host": "127.0.0.1", "port": 1}, storage={"db": str(tmp_path / "copy.db")})
    res = c.run("reprocess", "--all", "--json").json
    assert res["reprocessed"] == 4 and res["skipped"] == [] and res["failed"] == 0
    assert not list((c.files_dir / ".tmp").glob("spool-*"))  # the messages written back are gone
    assert _snapshot(c) == before
    conn = sqlite3.connect(tmp_path / "copy.db")
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 4
    assert (
        conn.execute("SELECT COUNT(*) FROM parts").fetchone()[0]
        == sqlite3.connect(c.root / "mailroll.db").execute("SELECT COUNT(*) FROM parts").fetchone()[0]
    )


def test_reprocess_derives_facts_again(served_campaign):
    """A fact changed in the database (as an old parser would have left it) is derived anew."""
    c, _, _ = served_campaign
    before = _snapshot(c)
    conn = sqlite3.connect(c.db_path)
    conn.execute("UPDATE parts SET facts = '{}' WHERE kind = 'statistics'")
    conn.execute("UPDATE messages SET subject = 'garbled' WHERE id = 2")
    conn.commit()
    assert _snapshot(c) != before
    res = c.run("reprocess", "2", "1", "--json").json
    assert res["reprocessed"] == 2
    assert _snapshot(c) == before


def test_sigkill_during_reprocess_loses_nothing(served_campaign):
    c, _, _ = served_campaign
    before = _snapshot(c)
    for point in ("before-commit:2", "after-commit:3", "before-commit:4"):
        res = mailroll(c, "reprocess", "--all", env={"MAILROLL_CRASH_AT": point})
        assert res.returncode == -signal.SIGKILL, (point, res.stderr)
        assert _snapshot(c) == before, point
    assert mailroll(c, "reprocess", "--all").returncode == 0
    assert _snapshot(c) == before
    conn = sqlite3.connect(c.db_path)
    referenced = {r[0] for r in conn.execute("SELECT sha256 FROM parts WHERE sha256 IS NOT NULL")}
    on_disk = {p.name for p in Path(c.files_dir).rglob("*") if p.is_file() and len(p.name) == 64}
    assert on_disk == referenced  # no file left behind by the killed runs
    assert not [p for p in (c.files_dir / ".tmp").iterdir() if p.name.startswith("pending-")]


def test_streamed_message_that_cannot_be_a_skeleton_is_kept_whole(imap_campaign):
    """A big quoted-printable part cannot be encoded again byte for byte from its decoded file:
    the raw copy is then the whole message (fetched again in pieces), still byte-identical."""
    c = imap_campaign
    c.configure(limits={"stream_threshold_bytes": THRESHOLD})
    msg = build_mail(SXU)
    text = "".join(f"第{i}行：科技活动周总结报告的附件文字。\n" for i in range(40000))
    msg.add_attachment(text, subtype="plain", charset="utf-8", cte="quoted-printable", filename="附件.txt")
    c.dovecot.append(c.imap_user, msg.as_bytes())
    assert c.run("ingest", "--once", "--json").json["new"] == 1
    expected = next(iter(served(c.dovecot, c.imap_user).values()))
    assert len(expected) > 2 * 1024 * 1024  # streamed, and the part is fetched in chunks
    assert mailroll(c, "show", "--raw", "1").stdout == expected
    assert [p.name.split(".", 1)[1] for p in (c.files_dir / "raw").rglob("*.zst")] == ["eml.zst"]


def test_irregular_base64_after_a_regular_part_is_kept_whole(imap_campaign):
    """A big part whose base64 lines are of uneven length cannot be encoded again byte for byte
    from its decoded file; noticed after an earlier part was already followed: the whole message
    is kept (fetched again), still byte-identical to what Dovecot serves."""
    c = imap_campaign
    c.configure(limits={"stream_threshold_bytes": THRESHOLD})
    rnd = random.Random(3)
    msg = build_mail(
        SXU,
        attachments=[
            ("视频一.mp4", b"\x00\x00\x00\x18ftypmp42" + rnd.randbytes(1536 * 1024), "video/mp4"),
            ("视频二.mp4", b"\x00\x00\x00\x18ftypmp42" + rnd.randbytes(1536 * 1024), "video/mp4"),
        ],
    )
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    video2 = raw.index(b"video/mp4", raw.index(b"video/mp4") + 1)
    second = raw.index(b"\r\n\r\n", video2) + 4  # the second video's base64
    line_end = raw.index(b"\r\n", second + 5000)
    raw = (
        raw[:line_end] + raw[line_end + 2 : line_end + 10] + b"\r\n" + raw[line_end + 10 :]
    )  # one longer line
    c.dovecot.append(c.imap_user, raw)
    assert c.run("ingest", "--once", "--json").json["new"] == 1
    expected = next(iter(served(c.dovecot, c.imap_user).values()))
    assert mailroll(c, "show", "--raw", "1").stdout == expected
    assert [p.name.split(".", 1)[1] for p in (c.files_dir / "raw").rglob("*.zst")] == ["eml.zst"]
    # the videos' decoded files are the same as a parser makes of the whole message
    conn = sqlite3.connect(c.db_path)
    stored = {r[0] for r in conn.execute("SELECT sha256 FROM parts WHERE filename LIKE '视频%'")}
    parsed = message_from_bytes(expected)
    wanted = {
        hashlib.sha256(p.get_payload(decode=True)).hexdigest() for p in parsed.walk() if p.get_filename()
    }
    assert stored == wanted


def test_a_decoy_of_a_big_part_does_not_misplace_it(imap_campaign):
    """A sender puts a copy of the video part (its MIME header and body, one byte changed in
    the middle, same length and ends) in the preamble, where no parser sees a part: the raw copy
    must still be what the server served (kept whole rather than rebuilt around the decoy)."""
    c = imap_campaign
    c.configure(limits={"stream_threshold_bytes": THRESHOLD})
    msg = build_mail(
        SXU,
        attachments=[
            ("视频.mp4", b"\x00\x00\x00\x18ftypmp42" + random.Random(5).randbytes(1536 * 1024), "video/mp4")
        ],
    )
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    ctype = raw.index(b"Content-Type: video/mp4")
    body = raw.index(b"\r\n\r\n", ctype) + 4
    end = raw.index(b"\r\n--", body)
    part = raw[ctype:end]  # the MIME header and the base64 body
    middle = ctype + (end - ctype) // 2
    decoy = bytearray(raw[ctype:end])
    decoy[middle - ctype] = ord("A") if decoy[middle - ctype] != ord("A") else ord("B")
    first_delimiter = raw.index(b"\r\n--", raw.index(b"\r\n\r\n") + 4)
    raw = raw[:first_delimiter] + b"\r\n" + bytes(decoy) + raw[first_delimiter:]  # in the preamble
    assert raw.count(part[:200]) == 2
    c.dovecot.append(c.imap_user, raw)
    assert c.run("ingest", "--once", "--json").json["new"] == 1
    expected = next(iter(served(c.dovecot, c.imap_user).values()))
    assert mailroll(c, "show", "--raw", "1").stdout == expected
    sha = sqlite3.connect(c.db_path).execute("SELECT raw_sha256 FROM messages").fetchone()[0]
    assert sha == hashlib.sha256(expected).hexdigest()
