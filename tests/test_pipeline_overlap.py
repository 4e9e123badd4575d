"""The pipeline overlaps messages (files stored and videos probed in worker threads while the next
messages are prepared); the outcome must be the one of one-message-at-a-time processing: commits
in arrival order, duplicates found even while the original is still in flight, ``stop`` honoured
between messages, a failure confined to its message, and a store with exactly the referenced files.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

from fixtures.mail import build_mail

from ingest import pipeline
from ingest.db import open_connection
from ingest.store import FileStore

START = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)
TAIYUAN = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"


def _deliver_all(campaign, msgs) -> None:
    for i, msg in enumerate(msgs):
        campaign.deliver(msg, when=START + timedelta(minutes=i))


def _poll(campaign, **kw) -> pipeline.PollResult:
    conn = open_connection(campaign.db_path)
    try:
        return pipeline.poll_once(campaign.config(), conn, **kw)
    finally:
        conn.close()


def _store_matches_database(campaign) -> None:
    conn = sqlite3.connect(campaign.db_path)
    referenced = {s for (s,) in conn.execute("SELECT DISTINCT sha256 FROM parts WHERE sha256 IS NOT NULL")}
    files = [p for p in campaign.files_dir.rglob("*") if p.is_file() and ".tmp" not in p.parts]
    on_disk = {p.name for p in files if "raw" not in p.parts}
    assert on_disk == referenced, f"orphans: {on_disk - referenced}, missing: {referenced - on_disk}"
    raw = {s for (s,) in conn.execute("SELECT raw_sha256 FROM messages")}  # one raw copy per message
    assert {p.name.split(".", 1)[0] for p in files if "raw" in p.parts} == raw and None not in raw
    assert list((campaign.files_dir / ".tmp").glob("pending-*.json")) == []


def test_commits_follow_arrival_and_a_duplicate_in_flight_with_its_original_is_found(campaign, media):
    video = media.video(12).read_bytes()
    sheet = media.sheet_xlsx.read_bytes()
    with_video = build_mail(
        TAIYUAN, "材料（视频）", [("宣传视频.mp4", video, "video/mp4"), ("统计表.xlsx", sheet)]
    )
    other = build_mail(TAIYUAN, "材料（总结）", [("总结报告.docx", media.report_docx.read_bytes())])
    small = build_mail(TAIYUAN, "材料（统计表）", [("统计表.xlsx", sheet)])
    # the copies arrive right behind their originals: both are in flight at once
    _deliver_all(campaign, [with_video, with_video, other, small, small, other])

    result = _poll(campaign)

    assert (result.new, result.duplicate, result.failed) == (6, 3, 0)
    conn = sqlite3.connect(campaign.db_path)
    rows = conn.execute("SELECT id, subject, status, duplicate_of FROM messages ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [
        "材料（视频）",
        "材料（视频）",
        "材料（总结）",
        "材料（统计表）",
        "材料（统计表）",
        "材料（总结）",
    ]
    assert [r[2] for r in rows] == ["recorded", "duplicate", "recorded", "recorded", "duplicate", "duplicate"]
    ids = [r[0] for r in rows]
    assert [r[3] for r in rows] == [None, ids[0], None, None, ids[3], ids[2]]
    (facts,) = conn.execute("SELECT facts FROM parts WHERE kind = 'video'").fetchone()
    assert '"duration_s": 12' in facts  # probed in a worker, recorded with its message
    checked = conn.execute(
        "SELECT kind, COUNT(*) FROM parts WHERE facts IS NOT NULL GROUP BY kind"
    ).fetchall()
    assert dict(checked) == {"video": 1, "statistics": 2, "report": 1}  # checked before the commit
    _store_matches_database(campaign)


def test_stop_lets_the_messages_in_flight_finish_and_starts_no_new_one(campaign):
    _deliver_all(
        campaign,
        [build_mail(TAIYUAN, f"材料 {i}", [(f"附件{i}.bin", bytes([i]) * 50_000)]) for i in range(10)],
    )
    stop = threading.Event()

    def progress(event, _total):
        if event == "advance":
            stop.set()

    first = _poll(campaign, progress=progress, stop=stop)

    assert first.interrupted and first.failed == 0
    assert 1 <= first.new <= 1 + pipeline.IN_FLIGHT
    conn = sqlite3.connect(campaign.db_path)
    assert conn.execute("SELECT COUNT(*) FROM messages WHERE status = 'recorded'").fetchone()[0] == first.new
    _store_matches_database(campaign)

    second = _poll(campaign)
    assert first.new + second.new == 10 and not second.interrupted
    keys = [k for (k,) in conn.execute("SELECT source_key FROM messages WHERE status = 'recorded'")]
    assert len(keys) == len(set(keys)) == 10
    _store_matches_database(campaign)


def test_a_file_that_cannot_be_stored_fails_only_its_message(campaign, monkeypatch):
    _deliver_all(
        campaign,
        [build_mail(TAIYUAN, f"材料 {i}", [(f"附件{i}.bin", bytes([65 + i]) * 40_000)]) for i in range(5)],
    )
    put_bytes = FileStore.put_bytes

    def disk_full_for_message_2(self, data, sha=None):
        if data[:1] == b"C":
            raise OSError(28, "No space left on device")
        return put_bytes(self, data, sha)

    monkeypatch.setattr(FileStore, "put_bytes", disk_full_for_message_2)
    first = _poll(campaign)

    assert (first.new, first.failed) == (5, 1)
    conn = sqlite3.connect(campaign.db_path)
    rows = conn.execute("SELECT subject, status, error FROM messages ORDER BY id").fetchall()
    assert [r[1] for r in rows] == ["recorded", "recorded", "failed", "recorded", "recorded"]
    assert "No space left on device" in rows[2][2]

    monkeypatch.setattr(FileStore, "put_bytes", put_bytes)
    second = _poll(campaign)  # retried: the failed one only
    assert (second.new, second.failed) == (1, 0)
    assert {s for (s,) in conn.execute("SELECT status FROM messages")} == {"recorded"}
    _store_matches_database(campaign)
