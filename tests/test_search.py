"""What units wrote, and finding it again: `show` gives each message's own text (the quoted mail
and the mail program's signature folded away) and whether it asks staff something; `search`
finds messages by the words in their text, subject, sender and attachment names."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fixtures.files import make_report_docx
from fixtures.mail import build_mail

DATONG = "张强 <dtkjj2022@163.com>"
CHANGZHI = "李明 <czkjj@changzhi.gov.cn>"
TAIYUAN = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
T0 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)

QQ_QUOTE = """请问视频超过3分钟可以吗？我们的活动视频有4分钟，剪短会丢内容。

谢谢！
张强
大同市科学技术局

------------------ 原始邮件 ------------------
发件人: "科技厅" <sxskjtrcc@126.com>;
发送时间: 2022年6月20日(星期一) 上午9:00
主题: 关于报送2022年科技活动周材料的通知

各单位：请于6月25日前报送，经费另行通知。
"""

NETEASE_REPLY = """材料已按要求整理，附件是总结报告，请查收。

发自我的iPhone

在 2022-06-20 09:00:00，"科技厅" <sxskjtrcc@126.com> 写道：
> 请问贵单位何时报送？
"""


def _deliver_day(campaign, tmp_path: Path) -> None:
    report = make_report_docx(tmp_path / "长治市科技活动周总结报告.docx")
    campaign.deliver(build_mail(from_=DATONG, subject="关于视频时长的咨询", body=QQ_QUOTE), when=T0)
    campaign.deliver(
        build_mail(
            from_=CHANGZHI,
            subject="长治市科技活动周材料",
            body=NETEASE_REPLY,
            attachments=[(report.name, report.read_bytes())],
        ),
        when=T0 + timedelta(hours=1),
    )
    campaign.deliver(
        build_mail(from_=CHANGZHI, subject="补充说明", body="活动经费由市财政列支，共计12万元。"),
        when=T0 + timedelta(hours=2),
    )
    campaign.deliver(
        build_mail(
            from_=TAIYUAN,
            subject="自动回复: 关于报送材料的通知",
            body="您好，我已休假，6月27日返回。有急事请问办公室？",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        when=T0 + timedelta(hours=3),
    )
    campaign.run("ingest", "--once")


def _message(campaign, unit: str, subject: str) -> dict:
    (m,) = [m for m in campaign.run("show", unit, "--json").json["messages"] if m["subject"] == subject]
    return m


def test_show_gives_what_the_unit_wrote_without_the_quoted_mail(campaign, tmp_path):
    _deliver_day(campaign, tmp_path)
    asked = _message(campaign, "datong-kjj", "关于视频时长的咨询")
    assert asked["text"].startswith("请问视频超过3分钟可以吗？")
    assert "大同市科学技术局" in asked["text"], "the sender's own signature block stays"
    assert "原始邮件" not in asked["text"] and "经费另行通知" not in asked["text"]
    assert asked["question"] is True

    sent = _message(campaign, "changzhi-kjj", "长治市科技活动周材料")
    assert sent["text"] == "材料已按要求整理，附件是总结报告，请查收。"
    assert sent["question"] is False, "the question is in the quoted mail, not in the unit's words"

    auto = _message(campaign, "taiyuan-kjj", "自动回复: 关于报送材料的通知")
    assert auto["question"] is False, "an auto-reply asks nobody anything"

    shown = campaign.run("show", "datong-kjj").output
    assert "请问视频超过3分钟可以吗？" in shown and "经费另行通知" not in shown


def test_own_text_is_bounded(campaign):
    campaign.deliver(build_mail(from_=DATONG, subject="长文", body="说明。" * 3000), when=T0)
    campaign.run("ingest", "--once")
    text = _message(campaign, "datong-kjj", "长文")["text"]
    assert len(text) == 2000 and text.endswith("…")


def test_search_finds_short_chinese_words_in_text_sender_and_file_names(campaign, tmp_path):
    _deliver_day(campaign, tmp_path)

    found = campaign.run("search", "经费", "--json").json
    assert [r["subject"] for r in found] == ["补充说明"], (
        "the notice quoted below a reply is not the unit's text"
    )
    assert [r["subject"] for r in campaign.run("search", "活动", "--json").json] == [
        "补充说明",
        "长治市科技活动周材料",
        "关于视频时长的咨询",
    ], "newest first"
    assert found[0]["unit"] == "changzhi-kjj" and found[0]["from"] == "czkjj@changzhi.gov.cn"
    assert "«经费»" in found[0]["snippet"]
    assert set(found[0]) == {"id", "message_id", "unit", "from", "subject", "received_at", "snippet"}
    assert found[0]["received_at"] == "2022-06-20T12:00:00+08:00"

    by_sender = {r["subject"] for r in campaign.run("search", "李明", "--json").json}
    assert by_sender == {"长治市科技活动周材料", "补充说明"}
    both = campaign.run("search", "李明", "经费", "--json").json
    assert [r["subject"] for r in both] == ["补充说明"], "every word must be there"
    one_char = {r["subject"] for r in campaign.run("search", "频", "--json").json}
    assert one_char == {"关于视频时长的咨询"}

    by_file = campaign.run("search", "总结报告.docx", "--json").json
    assert [r["subject"] for r in by_file] == ["长治市科技活动周材料"]
    assert [r["subject"] for r in campaign.run("search", "changzhi", "--json").json] == [
        "补充说明",
        "长治市科技活动周材料",
    ], "part of an address"
    assert campaign.run("search", "经费", "总结报告", "--json").json == []

    table = campaign.run("search", "经费").output
    assert "补充说明" in table and "1 message(s) found" in table


def test_search_takes_any_text_as_words(campaign, tmp_path):
    _deliver_day(campaign, tmp_path)
    for hostile in (
        '"',
        "经费 OR *",
        "NEAR(a b)",
        "subject:经费",
        "-经费",
        "(((",
        "'; DROP TABLE messages; --",
    ):
        res = campaign.run("search", "--json", "--", hostile)
        assert isinstance(res.json, list)
    assert campaign.run("search", "--json", "--", "subject:经费").json == [], (
        "a colon is text, not FTS5's column filter: no message holds 'subject' next to 经费"
    )
    assert campaign.run("search", "--json", "--", "经费", "OR", "总结报告").json == [], (
        "OR is a word to find, not an operator"
    )
    assert [r["subject"] for r in campaign.run("search", "--json", "--", "经费", "*").json] == ["补充说明"]
    assert campaign.run("search", "--json", "--", "!!!").json == []


def test_messages_recorded_before_the_index_are_found(campaign, smtp_server, monkeypatch):
    from ingest import search_index

    monkeypatch.setattr(search_index, "BACKFILL_BATCH", 2)  # several transactions, as on a big mailbox
    old = Path(__file__).resolve().parent / "fixtures" / "data" / "old-db"
    shutil.copy(old / "mailroll.db", campaign.db_path)
    conn = sqlite3.connect(campaign.db_path)
    subjects = [s for (s,) in conn.execute("SELECT subject FROM messages WHERE status = 'recorded'")]
    conn.close()
    assert len(subjects) >= 3
    for subject in subjects:
        assert subject in {r["subject"] for r in campaign.run("search", subject[:2], "--json").json}
    conn = sqlite3.connect(campaign.db_path)
    assert conn.execute("SELECT count(*) FROM message_search").fetchone()[0] == len(subjects)
    assert (
        conn.execute(
            "SELECT value FROM reconcile_state WHERE key = ?", (search_index.BACKFILL_KEY,)
        ).fetchall()
        == []
    )
    conn.close()
