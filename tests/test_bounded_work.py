"""Bounded work per message: linear scans, archive directories counted before they are read,
the per-message byte budget, links refused one by one, spool files and permissions.

(The worker processes, time and memory limits and the poison guard: tests/test_workers.py and
tests/test_hostile_set.py.)
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from datetime import UTC, datetime

from fixtures.files import check_config
from fixtures.hostile import lying_zip, million_entry_zip, quadratic_docx
from fixtures.mail import build_mail

from ingest import archives
from ingest.classify import sniff, table_text_docx
from ingest.config import Limits
from ingest.links import MAX_URLS, find_links
from ingest.model import ExtractedPart, Link, ParsedMessage

JUNE_20 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)


def test_docx_table_text_is_found_and_unclosed_tables_cost_one_pass():
    xml = (
        "<w:body><w:p><w:r><w:t>活动总数</w:t></w:r></w:p><w:tbl><w:tr><w:tc><w:p><w:r>"
        '<w:t xml:space="preserve">活动总数</w:t></w:r></w:p></w:tc><w:tc><w:tbl><w:t>参与人数</w:t></w:tbl>'
        "</w:tc></w:tr></w:tbl><w:tbl/><w:t>科普讲座</w:t></w:body>"
    )
    assert table_text_docx(xml) == ["活动总数参与人数"]
    crafted = quadratic_docx(150_000)
    with zipfile.ZipFile(io.BytesIO(crafted)) as z:
        tables = table_text_docx(z.read("word/document.xml").decode())
    assert tables == []  # no table is ever closed: nothing found, and nothing rescanned


def test_a_long_body_line_full_of_urls_is_capped_and_names_still_found():
    line = " ".join(f"https://pan.baidu.com/s/{i}x" for i in range(3000))  # ~90 KB, one line
    found = find_links(line, None)
    assert len(found) == MAX_URLS
    body = ("x" * 50_000) + " 科技周视频.mp4 https://pan.baidu.com/s/1abc " + ("y" * 50_000)
    (link,) = find_links(body, None)
    assert link.filename == "科技周视频.mp4"


def test_crafted_html_is_read_by_lxml_and_anchor_names_found():
    html = "<div>" * 20_000 + "<!--" + "<a href=x>" * 20_000
    assert find_links(None, html) == []
    html = '<p>材料：<a href="https://fs.mail.qq.com/ftn/abc">科技周视频.mp4</a></p>' + "<b>" * 50_000
    (link,) = find_links(None, html)
    assert link.filename == "科技周视频.mp4" and link.provider == "QQ邮箱超大附件"


def _parsed(name: str, data: bytes) -> ParsedMessage:
    from ingest.model import Headers

    return ParsedMessage(
        headers=Headers(), parts=[ExtractedPart(location=name, filename=name, declared_type=None, data=data)]
    )


def test_a_zip_listing_a_million_entries_is_not_listed(tmp_path):
    data = million_entry_zip()
    assert sniff(data, None) == "zip"
    parsed = _parsed("材料.zip", data)
    archives.expand(parsed, Limits(), tmp_path)
    assert parsed.parts[0].error == "the archive lists 1,000,000 files, more than 65,535: not opened"
    assert len(parsed.parts) == 1


def test_a_zip_whose_sizes_lie_gives_no_more_than_it_declared(tmp_path):
    parsed = _parsed("材料.zip", lying_zip(real_bytes=20 * 1024 * 1024, declared=1000))
    archives.expand(parsed, Limits(), tmp_path)
    (member,) = parsed.parts[1:]
    assert member.error and "damaged" in member.error
    assert list(tmp_path.iterdir()) == []


def test_archive_bytes_are_charged_as_written_against_the_message_budget(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in range(4):
            z.writestr(f"视频{i}.bin", os.urandom(1024 * 1024))
    parsed = _parsed("材料.zip", buf.getvalue())
    archives.expand(parsed, Limits(max_extracted_bytes=2_500_000), tmp_path)
    kept = [p for p in parsed.parts[1:] if p.error is None]
    assert len(kept) == 2
    assert "limits.max_extracted_bytes" in parsed.parts[0].error


def test_bad_urls_are_refused_one_by_one(tmp_path):
    from ingest.links import download

    cfg = check_config(links={"download": True, "allowed_hosts": ["fs.mail.qq.com"]})
    for url, why in (
        ("https://fs.mail.qq.com:99999/ftn/a", "Port out of range"),
        ("https://" + "a" * 70 + ".fs.mail.qq.com/ftn/a", "label empty or too long"),  # IDNA
    ):
        part = download(Link(url=url, host="fs.mail.qq.com", provider="QQ邮箱超大附件"), cfg, tmp_path)
        assert part.error.startswith("the link is not a valid address") and why in part.error
        assert part.error.endswith("not fetched")


def test_spool_files_of_any_name_are_removed_on_start(campaign):
    tmp = campaign.files_dir / ".tmp"
    tmp.mkdir(parents=True)
    for name in ("member-abc", "link-def", "imap-part-1", "part-2", "spool-3", "tmpx"):
        (tmp / name).write_bytes(b"left by a crash")
    (tmp / "somedir").mkdir()
    (tmp / "somedir" / "x").write_bytes(b"x")
    campaign.run("ingest", "--once")
    assert list(tmp.iterdir()) == []


def test_files_and_database_are_private_whatever_the_umask(campaign):
    campaign.deliver(build_mail(attachments=[("总结报告.txt", b"hello")]), when=JUNE_20)
    old = os.umask(0o022)
    try:
        campaign.run_process("ingest", "--once")
    finally:
        os.umask(old)
    assert stat.S_IMODE(campaign.db_path.stat().st_mode) == 0o600
    stored = [p for p in campaign.files_dir.rglob("*") if p.is_file()]
    assert stored and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in stored)
    assert "StateDirectoryMode=0700" in (campaign_root() / "deploy" / "mailroll.service").read_text()


def campaign_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def _links(campaign) -> list[tuple[str, str, str | None]]:
    import sqlite3

    conn = sqlite3.connect(campaign.db_path)
    return conn.execute("SELECT url, status, error FROM links ORDER BY id").fetchall()


def _dispositions(campaign) -> list[str]:
    return [m["disposition"] for m in campaign.run("messages", "--json").json]


def test_a_bad_link_is_recorded_as_not_fetched_and_the_message_still_records(campaign):
    campaign.configure(links={"download": True, "allowed_hosts": ["fs.mail.qq.com"]})
    body = "视频：科技周视频.mp4\nhttps://fs.mail.qq.com:99999/ftn/abc\n"
    campaign.deliver(build_mail(subject="太原市科技局 科技活动周视频", body=body), when=JUNE_20)
    campaign.run("ingest", "--once")
    assert _dispositions(campaign) == ["attributed"]
    ((url, status, error),) = _links(campaign)
    assert status == "failed" and error.startswith("the link is not a valid address (Port out of range")


def test_links_beyond_max_per_message_are_recorded_not_fetched(campaign):
    campaign.configure(links={"download": True, "allowed_hosts": ["example.org"], "max_per_message": 2})
    body = "\n".join(f"视频{i}.mp4 https://fs.mail.qq.com/ftn/{i}" for i in range(6))
    campaign.deliver(build_mail(subject="太原市科技局 视频", body=body), when=JUNE_20)
    campaign.run("ingest", "--once")
    errors = [error for _, _, error in _links(campaign)]
    assert len(errors) == 6
    assert all("not in links.allowed_hosts" in e for e in errors[:2])
    assert errors[2:] == ["more than 2 links in one message (links.max_per_message): not fetched"] * 4


def test_links_are_found_in_streamed_imap_messages(imap_campaign):
    campaign = imap_campaign
    campaign.configure(limits={"stream_threshold_bytes": 20_000})
    body = "视频较大，以超大附件发送：\n科技周视频.mp4\nhttps://fs.mail.qq.com/ftn/abc123\n"
    msg = build_mail(
        subject="太原市科技局 材料", body=body, attachments=[("总结报告.bin", os.urandom(60_000))]
    )
    campaign.dovecot.append_many(campaign.imap_user, [msg.as_bytes()])
    campaign.run("ingest", "--once")
    assert [(u, s) for u, s, _ in _links(campaign)] == [("https://fs.mail.qq.com/ftn/abc123", "recorded")]


def test_below_the_free_space_floor_the_poll_pauses_and_resumes_with_nothing_lost(campaign):
    campaign.run("ingest", "--once")  # an earlier good poll (the service's heartbeat)
    for i in range(2):
        campaign.deliver(build_mail(subject=f"太原市科技局 材料 {i}"), when=JUNE_20)
    campaign.configure(limits={"min_free_bytes": 2**62})  # more than any disk has
    paused = campaign.run("ingest", "--once", expect=1)
    assert "below limits.min_free_bytes" in paused.stderr and "polling is paused" in paused.stderr
    assert campaign.run("messages", "--json").json == []
    status = campaign.run("status")
    assert "below limits.min_free_bytes" in status.output.replace("\n", " ")
    check = campaign.run("serve", "--check", expect=None)
    assert "below limits.min_free_bytes" in check.output.replace("\n", " ")
    campaign.configure(limits={"min_free_bytes": 1024 * 1024})  # space is back
    campaign.run("ingest", "--once")
    assert [m["disposition"] for m in campaign.run("messages", "--json").json] == ["attributed"] * 2


def test_a_7z_listing_more_files_than_a_zip_may_is_not_opened(tmp_path):
    from fixtures.hostile import million_entry_7z

    parsed = _parsed("材料.7z", million_entry_7z(70_000))
    archives.expand(parsed, Limits(), tmp_path)
    assert parsed.parts[0].error == "the archive lists 70,000 files, more than 65,535: not opened"
    assert len(parsed.parts) == 1
