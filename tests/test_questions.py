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

    again = campaign.run("answered", str(first["id"]), expect=2).stderr
    assert f"is answered already (decision {done['override']})" in again, "a second click adds nothing"
    campaign.run("revoke", str(done["override"]))
    assert first["id"] in [r["id"] for r in campaign.run("questions", "--json").json]
    assert campaign.run("answered", "99999", expect=2).exit_code == 2
    (material,) = [m for m in campaign.run("messages", "--json").json if m["subject"] == "运城市材料"]
    assert "asks nothing" in campaign.run("answered", str(material["id"]), expect=2).stderr


ASKING = {  # what units write (own words) -> is it a question to staff?
    "下载地址：https://pan.baidu.com/s/1abc?pwd=x7k2 请查收": False,  # the ? of a link asks nothing
    "材料已发送，请查收。\n咨询电话：0352-1234567": False,
    "附件为《如何开展科普活动》总结报告": False,
    "参与人数多少不一，详见统计表。": False,
    "有没有问题请联系我": False,
    "是否合格请告知": True,
    "麻烦确认一下是否收到": True,
    "视频超过3分钟可以吗": True,
    "请问统计表模板在哪里下载": True,
    "能否延期两天报送": True,
    "什么时候截止": True,
    "收到，谢谢。\n\n---------- forwarded message (通知.eml) ----------\n请问各单位何时报送？": False,
    "好的\n\n科技厅 <sxskjtrcc@126.com> 于2022年6月20日周一 09:00写道：\n请问各单位何时报送？": False,
}


def test_what_counts_as_a_question(campaign):
    for i, body in enumerate(ASKING):
        msg = build_mail(from_="张强 <dtkjj2022@163.com>", subject=f"大同市材料{i}", body=body)
        campaign.deliver(msg, when=T0 + timedelta(minutes=i))
    campaign.run("ingest", "--once")
    shown = {
        m["subject"]: m["question"] for m in campaign.run("show", "datong-kjj", "--json").json["messages"]
    }
    assert {body: shown[f"大同市材料{i}"] for i, body in enumerate(ASKING)} == ASKING


def test_a_dismissed_message_asks_nothing(campaign):
    campaign.deliver(
        build_mail(
            from_="某培训机构 <edu@training.example.com>",
            subject="您想提升孩子成绩吗？",
            body="请问您需要辅导吗？",
        ),
        when=T0,
    )
    campaign.run("ingest", "--once")
    (ad,) = campaign.run("questions", "--json").json
    done = campaign.run("dismiss", str(ad["id"]), "--note", "广告", "--json").json
    assert campaign.run("questions", "--json").json == []
    campaign.run("revoke", str(done["override"]))
    assert [q["id"] for q in campaign.run("questions", "--json").json] == [ad["id"]]
