"""Answering units' questions by mail: `mailroll reply` sends staff's answer from the campaign's
address in the question's thread, once, to the right people; answers can be saved and reused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fixtures.mail import build_mail

T0 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)
ANSWER = "可以。视频请剪辑到3分钟以内；如确有需要，可另附完整版下载链接。"


def _questions(campaign) -> dict[str, dict]:
    mails = [
        ("张强 <dtkjj2022@163.com>", "关于视频时长的咨询", "请问视频超过3分钟可以吗？", "<q1@163.com>"),
        ("王老师 <wang.laoshi@qq.com>", "长治市科学技术局：视频时长", "视频超过3分钟可以吗？", "<q2@qq.com>"),
        ("李明 <liming_88@163.com>", "咨询模板", "请问统计表模板在哪里下载？", "<q3@163.com>"),
        ("赵敏 <jzkjj@sina.com>", "视频时长", "你好，视频能否超过3分钟？", "<q4@sina.com>"),
    ]
    for i, (sender, subject, body, mid) in enumerate(mails):
        msg = build_mail(
            from_=sender, subject=subject, body=body, message_id=mid, headers={"References": "<notice-1@x>"}
        )
        campaign.deliver(msg, when=T0 + timedelta(hours=i))
    campaign.run("ingest", "--once")
    return {q["subject"]: q for q in campaign.run("questions", "--json").json}


def test_a_reply_goes_in_the_thread_once_and_answers_the_question(mailing):
    campaign, server = mailing
    campaign.configure(
        campaign={"contacts": [{"name": "吴玉祥", "org": "山西省科学技术厅", "phone": "0351-4060103"}]}
    )
    asked = _questions(campaign)
    q = asked["关于视频时长的咨询"]
    sent = campaign.run("reply", str(q["id"]), "--text", ANSWER, "--save", "视频时长", "--json").json
    assert [(r["message"], r["to"], r["status"]) for r in sent] == [(q["id"], ["dtkjj2022@163.com"], "sent")]
    (mail,) = server.wait_for(1)
    assert mail.rcpt_tos == ["dtkjj2022@163.com"]
    assert mail["Subject"] == "Re: 关于视频时长的咨询"
    assert mail["In-Reply-To"] == "<q1@163.com>"
    assert mail["References"].split() == ["<notice-1@x>", "<q1@163.com>"]
    assert mail["Auto-Submitted"] is None, "staff's answer is a person's letter, not automatic mail"
    assert ANSWER in mail.text and "吴玉祥（山西省科学技术厅），电话 0351-4060103" in mail.text

    # answered: off the open list, and never sent twice
    assert q["id"] not in [x["id"] for x in campaign.run("questions", "--json").json]
    (done,) = [x for x in campaign.run("questions", "--all", "--json").json if x["id"] == q["id"]]
    assert done["answered_by"] == "reply" and done["answered_at"]
    again = campaign.run("reply", str(q["id"]), "--text", "再说一遍", "--json").json
    assert again[0]["status"] == "already answered" and len(server.messages) == 1


def test_who_gets_the_answer(mailing):
    campaign, server = mailing
    asked = _questions(campaign)
    named, stranger = asked["长治市科学技术局：视频时长"], asked["咨询模板"]
    assert named["unit"] == "changzhi-kjj" and stranger["unit"] is None
    sent = campaign.run("reply", str(named["id"]), str(stranger["id"]), "--text", ANSWER, "--json").json
    assert {r["message"]: r["to"] for r in sent} == {
        named["id"]: ["czkjj@changzhi.gov.cn"],  # a personal mailbox does not speak for the unit
        stranger["id"]: ["liming_88@163.com"],  # no unit: staff chose to answer the sender
    }
    assert sorted(m.rcpt_tos[0] for m in server.wait_for(2)) == ["czkjj@changzhi.gov.cn", "liming_88@163.com"]


def test_saved_answers_are_reused(mailing):
    campaign, server = mailing
    asked = _questions(campaign)
    campaign.run("reply", str(asked["关于视频时长的咨询"]["id"]), "--text", ANSWER, "--save", "视频时长")
    campaign.run("reply", str(asked["视频时长"]["id"]), "--saved", "视频时长")
    assert ANSWER in server.wait_for(2)[1].text
    assert campaign.run("answers", "--json").json == [{"name": "视频时长", "text": ANSWER, "used": 1}]
    err = campaign.run("reply", str(asked["咨询模板"]["id"]), "--saved", "模板", expect=2).stderr
    assert "no saved answer 模板" in err and "视频时长" in err
    err = campaign.run("reply", str(asked["咨询模板"]["id"]), expect=2).stderr
    assert "give the answer once" in err
    assert len(server.messages) == 2
