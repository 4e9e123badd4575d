"""The spine on a Maildir: every message ends attributed, unmatched, duplicate or failed."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from fixtures.mail import build_mail

JUNE_20 = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_ingest_once_counts_and_messages(campaign):
    campaign.deliver(build_mail(attachments=[("统计表.xlsx", b"not really a sheet")]), when=JUNE_20)
    campaign.deliver(build_mail(from_="someone <who@example.org>", subject="hello"), when=JUNE_20)
    counts = campaign.ingest()
    assert counts == {"seen": 2, "new": 2, "attributed": 1, "unmatched": 1, "duplicate": 0, "failed": 0}

    again = campaign.ingest()
    assert again["new"] == 0 and again["seen"] == 2

    rows = campaign.messages()
    assert sorted(r["disposition"] for r in rows) == ["attributed", "unmatched"]
    by_from = {r["from"]: r for r in rows}
    assert by_from["tykjj@taiyuan.gov.cn"]["unit"] == "taiyuan-kjj"
    assert by_from["who@example.org"]["unit"] is None and by_from["who@example.org"]["reason"]
    assert by_from["tykjj@taiyuan.gov.cn"]["received_at"] == "2022-06-20T02:30:00+00:00"

    unmatched = campaign.run("unmatched", "--json").json
    assert [u["from"] for u in unmatched] == ["who@example.org"]
    assert unmatched[0]["subject"] == "hello" and unmatched[0]["reason"]


def test_arrival_time_is_the_delivery_time_not_the_date_header(campaign):
    lying = build_mail(date=datetime(2022, 6, 1, tzinfo=UTC))  # claims to be early
    campaign.deliver(lying, when=datetime(2022, 6, 27, 8, 0, tzinfo=UTC))
    campaign.run("ingest", "--once")
    (row,) = campaign.messages()
    assert row["received_at"] == "2022-06-27T08:00:00+00:00"


def test_same_message_delivered_twice_is_recorded_once_then_duplicate(campaign):
    msg = build_mail(attachments=[("总结报告.txt", "总结".encode() * 50)])
    campaign.deliver(msg, when=JUNE_20)
    campaign.deliver(msg, when=datetime(2022, 6, 20, 3, 0, tzinfo=UTC))
    counts = campaign.ingest()
    assert counts["new"] == 2 and counts["duplicate"] == 1 and counts["attributed"] == 1
    rows = campaign.messages()
    assert [r["disposition"] for r in rows] == ["attributed", "duplicate"]
    assert rows[1]["message_id"] == rows[0]["message_id"]


def test_failed_message_is_kept_with_reason_and_retried(campaign):
    campaign.configure(limits={"max_message_bytes": 2000})
    campaign.deliver(build_mail(attachments=[("统计表.xlsx", os.urandom(5000))]), when=JUNE_20)
    counts = campaign.ingest()
    assert counts["failed"] == 1 and counts["new"] == 1
    (row,) = campaign.messages()
    assert row["disposition"] == "failed" and "max_message_bytes" in row["reason"]
    # whose message is stuck is still shown (its header block is read)
    assert row["from"] == "tykjj@taiyuan.gov.cn" and row["subject"] == "2022年科技活动周材料"

    campaign.configure(limits={"max_message_bytes": 10_000_000})
    counts = campaign.ingest()
    assert counts["failed"] == 0 and counts["attributed"] == 1
    (row,) = campaign.messages()
    assert row["disposition"] == "attributed"


def test_maildir_is_read_only(campaign):
    path = campaign.deliver(build_mail(), when=JUNE_20)
    before = {p: p.stat().st_mtime for p in _files_under(campaign.root / "maildir")}
    campaign.run("ingest", "--once")
    after = {p: p.stat().st_mtime for p in _files_under(campaign.root / "maildir")}
    assert before == after and path.exists()


def test_attachments_are_kept_by_content_under_storage_files_only(campaign):
    evil = build_mail(attachments=[("../../../../tmp/evil.txt", b"x" * 100), ("/etc/passwd", b"y" * 100)])
    campaign.deliver(evil, when=JUNE_20)
    outside_before = _files_under(campaign.root) - _files_under(campaign.files_dir)
    campaign.run("ingest", "--once")
    outside_after = _files_under(campaign.root) - _files_under(campaign.files_dir)
    new_outside = {p for p in outside_after - outside_before if not p.name.startswith("mailroll.db")}
    assert new_outside == set()
    stored = [p for p in _files_under(campaign.files_dir) if ".tmp" not in p.parts and "raw" not in p.parts]
    assert len(stored) == 2 and all(len(p.name) == 64 for p in stored)
    raw = [p for p in _files_under(campaign.files_dir / "raw")]
    assert [p.name for p in raw] == [f"{hashlib.sha256(evil.as_bytes()).hexdigest()}.eml.zst"]
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"x" * 100


def test_ingest_without_once_explains(campaign):
    res = campaign.run_process("ingest", expect=2)
    assert "--once" in res.stderr


def test_a_check_that_failed_for_this_servers_reasons_is_done_again(campaign, media):
    """A probe timeout (the server was busy) is not copied to the same file sent again."""
    video = media.video(30).read_bytes()
    campaign.configure(limits={"probe_timeout_s": 0.001})
    campaign.deliver(build_mail(attachments=[("视频.mp4", video)]), when=JUNE_20)
    campaign.run("ingest", "--once")
    unit = campaign.unit("taiyuan-kjj")
    assert (
        unit["items"]["video"]["state"] == "invalid"
        and "could not be probed" in unit["items"]["video"]["reason"]
    )

    campaign.configure(limits={"probe_timeout_s": 30.0})
    campaign.deliver(
        build_mail(subject="重发视频", attachments=[("视频.mp4", video)]),
        when=datetime(2022, 6, 21, tzinfo=UTC),
    )
    campaign.run("ingest", "--once")
    unit = campaign.unit("taiyuan-kjj")
    assert unit["items"]["video"]["state"] == "ok"
