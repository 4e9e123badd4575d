"""Questions units write to the campaign's mailbox: `mailroll questions` lists the open ones,
oldest first, grouping those that look alike; `answered` closes one answered by phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fixtures.mail import build_mail

T0 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)
QUOTED_NOTICE = (
    "\n\n------------------ 原始邮件 ------------------\n"
    "发件人: 科技厅\n发送时间: 2022年6月15日\n请问各单位何时报送？"
)
ASKED = "请问视频超过3分钟可以吗？我们的视频有4分钟。"


def _mailbox(campaign) -> None:
    mails = [
        ("张强 <dtkjj2022@163.com>", "关于视频时长的咨询", ASKED + QUOTED_NOTICE),
        ("赵敏 <jzkjj@sina.com>", "视频时长", "你好，视频超过3分钟可以吗？有两个视频都是4分钟左右。"),
        ("刘洋 <yckjj@yuncheng.gov.cn>", "运城市材料", "材料见附件，请查收。" + QUOTED_NOTICE),
        ("王老师 <wang.laoshi@qq.com>", "模板", "请问统计表模板在哪里下载"),
        (
            "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
            "自动回复: 关于报送材料",
            "我已休假，有事请问办公室？",
        ),
    ]
    for i, (sender, subject, body) in enumerate(mails):
        headers = {"Auto-Submitted": "auto-replied"} if subject.startswith("自动回复") else None
        msg = build_mail(from_=sender, subject=subject, body=body, headers=headers)
        campaign.deliver(msg, when=T0 + timedelta(hours=i))
    campaign.run("ingest", "--once")


def test_open_questions_oldest_first_alike_ones_grouped(campaign):
    _mailbox(campaign)
    rows = campaign.run("questions", "--json").json
    assert [r["subject"] for r in rows] == ["关于视频时长的咨询", "视频时长", "模板"]
    assert [r["unit"] for r in rows] == ["datong-kjj", "jinzhong-kjj", None]
    assert rows[0]["text"] == ASKED
    assert rows[0]["received_at"] == "2022-06-20T10:00:00+08:00"
    assert all(r["answered_at"] is None and r["answered_by"] is None for r in rows)
    assert rows[1]["group"] == rows[0]["group"] == rows[0]["id"], "the same question twice: one group"
    assert rows[2]["group"] == rows[2]["id"]
    shown = campaign.run("questions").output
    assert f"like #{rows[0]['id']}" in shown and "3 question(s)" in shown


def test_answered_by_phone_closes_a_question_and_revoke_opens_it(campaign, monkeypatch):
    monkeypatch.setenv("MAILROLL_ACTOR", "wangfang")
    _mailbox(campaign)
    first = campaign.run("questions", "--json").json[0]
    done = campaign.run("answered", first["message_id"], "--note", "电话答复：可以", "--json").json
    assert done["message"] == first["id"]
    assert [r["id"] for r in campaign.run("questions", "--json").json] != []
    assert first["id"] not in [r["id"] for r in campaign.run("questions", "--json").json]
    (closed,) = [r for r in campaign.run("questions", "--all", "--json").json if r["id"] == first["id"]]
    assert closed["answered_by"] == "wangfang" and closed["answered_at"].startswith("20")
    audit = campaign.run("show", "datong-kjj", "--json").json["audit"]
    assert [(a["action"], a["note"]) for a in audit] == [("answered", "电话答复：可以")]

    campaign.run("revoke", str(done["override"]))
    assert first["id"] in [r["id"] for r in campaign.run("questions", "--json").json]
    assert campaign.run("answered", "99999", expect=2).exit_code == 2
