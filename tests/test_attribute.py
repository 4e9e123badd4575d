"""Attribution: which unit sent a message, and why not when it cannot tell.

The rules are exercised on the sample roster (samples/roster.csv) directly, then end to end on
real messages (ingest --once, messages/unmatched/assign)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fixtures.campaign import SAMPLE_ROSTER
from fixtures.files import make_sheet_xlsx
from fixtures.mail import build_forward, build_mail

from ingest.config import PUBLIC_MAIL_DOMAINS
from reconcile.attribute import Attributor, MessageEvidence, NameIndex
from reconcile.roster import load_roster

JUNE_20 = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def attributor() -> Attributor:
    return Attributor(load_roster(SAMPLE_ROSTER), PUBLIC_MAIL_DOMAINS)


def ev(from_addr=None, subject="", filenames=(), unit_cells=(), forwarded=(), sender=None) -> MessageEvidence:
    return MessageEvidence(1, from_addr, sender, subject, list(filenames), list(unit_cells), list(forwarded))


def test_registered_address_wins(attributor):
    a = attributor.decide(ev("tykjj@taiyuan.gov.cn", subject="山西大学材料"))
    assert (a.unit, a.method) == ("taiyuan-kjj", "address")
    assert "tykjj@taiyuan.gov.cn" in a.reason


def test_a_sender_header_never_stands_in_for_from(attributor):
    a = attributor.decide(ev("secretary@example.org", sender="kjc@sxu.edu.cn"))
    assert (a.unit, a.method) == (None, None)
    assert attributor.decide(ev(None, sender="kjc@sxu.edu.cn")).unit is None


def test_domain_of_registered_address(attributor):
    a = attributor.decide(ev("zhangsan@sxu.edu.cn"))
    assert (a.unit, a.method) == ("sxu", "domain")


def test_public_domain_is_never_a_unit(attributor):
    # dtkjj2022@163.com is 大同's address, but 163.com is everybody's
    a = attributor.decide(ev("someone@163.com"))
    assert a.unit is None
    assert a.reason == "unknown sender someone@163.com; no unit name in subject or attachments"


def test_name_in_subject_attachment_or_sheet(attributor):
    assert attributor.decide(ev("x@qq.com", subject="太原理工大学科技活动周材料")).unit == "tyut"
    a = attributor.decide(ev("x@qq.com", filenames=["省科学院-统计表.xlsx"]))
    assert (a.unit, a.method) == ("sxas", "name") and "attachment 省科学院-统计表.xlsx" in a.reason
    a = attributor.decide(ev("x@qq.com", unit_cells=["晋中市科学技术局"]))
    assert a.unit == "jinzhong-kjj" and "填报单位" in a.reason


def test_most_specific_name_wins(attributor):
    a = attributor.decide(ev("x@qq.com", subject="长治高新区管委会科技活动周总结"))
    assert a.unit == "changzhi-gxq"
    assert "长治高新技术产业开发区管理委员会" in a.reason
    # '长治' alone is no unit's name
    assert attributor.decide(ev("x@qq.com", subject="长治科技活动周")).unit is None
    # 中共太原市委宣传部 contains the alias 太原市委宣传部 of the same unit, nothing else
    assert attributor.decide(ev("x@qq.com", subject="中共太原市委宣传部报送")).unit == "taiyuan-xcb"


def test_whitespace_and_full_width_are_ignored(attributor):
    assert attributor.decide(ev("x@qq.com", subject="山西 大学 材料")).unit == "sxu"
    assert attributor.decide(ev("x@qq.com", subject="ＴＹＵＴ太原理工 材料")).unit == "tyut"


def test_two_units_named_is_unmatched_with_both_names(attributor):
    a = attributor.decide(ev("x@qq.com", subject="太原市科学技术局、太原市科学技术协会联合报送"))
    assert a.unit is None
    assert a.reason == "subject names both 太原市科学技术局 and 太原市科学技术协会"
    a = attributor.decide(ev("x@qq.com", subject="山西大学材料", unit_cells=["太原理工大学"]))
    assert a.unit is None and "山西大学" in a.reason and "太原理工大学" in a.reason


@pytest.mark.parametrize(
    "subject", ["太原市科技局、大同市科技局联合报送", "太原市科技局大同市科技局联合报送"]
)
def test_two_units_named_side_by_side_is_unmatched_naming_both(attributor, subject):
    """Names next to each other (with or without a separator) are two names, not an overlap."""
    a = attributor.decide(ev("x@qq.com", subject=subject))
    assert (a.unit, a.method) == (None, None)
    assert (
        a.reason == "subject names both 太原市科技局 (太原市科学技术局) and 大同市科技局 (大同市科学技术局)"
    )


CHANGZHI_ROSTER = {
    "city": "changzhi,长治市人民政府,长治市,zf@changzhi.gov.cn,市政府,,",
    "zone": "changzhi-gxq,长治高新技术产业开发区管理委员会,长治市高新区管委会;长治高新区,kjj@czgxq.gov.cn,开发区,,",
}


@pytest.mark.parametrize("order", [("city", "zone"), ("zone", "city")])
def test_longest_name_wins_across_units_whatever_the_roster_order(tmp_path, order):
    """长治市 (one unit) lies inside 长治市高新区管委会 (another unit): the longer name decides."""
    path = tmp_path / "roster.csv"
    path.write_text(
        "id,name,aliases,emails,category,contact,phone\n"
        + "\n".join(CHANGZHI_ROSTER[k] for k in order)
        + "\n",
        encoding="utf-8",
    )
    attributor = Attributor(load_roster(path), PUBLIC_MAIL_DOMAINS)
    a = attributor.decide(ev("x@qq.com", subject="长治市高新区管委会科技活动周总结"))
    assert (a.unit, a.method) == ("changzhi-gxq", "name")
    assert a.reason == "subject names 长治市高新区管委会 (长治高新技术产业开发区管理委员会)"
    a = attributor.decide(ev("x@qq.com", filenames=["长治市高新区管委会-统计表.xlsx"]))
    assert a.unit == "changzhi-gxq"
    # the shorter name alone still names its own unit
    a = attributor.decide(ev("x@qq.com", subject="长治市科技活动周材料"))
    assert (a.unit, a.reason) == ("changzhi", "subject names 长治市 (长治市人民政府)")


def test_forwarded_sender(attributor):
    a = attributor.decide(ev("staff.home@qq.com", subject="Fwd: 材料", forwarded=["yckjj@yuncheng.gov.cn"]))
    assert (a.unit, a.method) == ("yuncheng-kjj", "forwarded")


def test_forwarding_mail_of_two_units_is_unmatched_naming_both(attributor):
    forwarded = ["yckjj@yuncheng.gov.cn", "kjc@sxu.edu.cn"]
    a = attributor.decide(ev("staff.home@qq.com", subject="Fwd: 材料", forwarded=forwarded))
    assert (a.unit, a.reason) == (None, "forwards messages from several units: 运城市科学技术局 and 山西大学")


def test_name_index_prefers_longest_overlap():
    index = NameIndex(load_roster(SAMPLE_ROSTER))
    found = [m.text for m in index.find("关于长治高新区管委会与太原市科协的函")]
    assert found == ["长治高新区管委会", "太原市科协"]


# ------------------------------------------------------------------ end to end


def _ingest(campaign):
    return campaign.ingest()


def test_messages_attributed_end_to_end(campaign, tmp_path):
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx", unit="运城市科学技术局")
    campaign.deliver(
        build_mail(
            from_="小王 <wang@qq.com>",
            subject="科技周材料",
            attachments=[("统计表.xlsx", sheet.read_bytes())],
        ),
        when=JUNE_20,
    )
    campaign.deliver(
        build_mail(from_="x <x@example.org>", subject="山西大学、太原理工大学联合活动"), when=JUNE_20
    )
    inner = build_mail(from_="山西省科学院 <office@sxas.ac.cn>", subject="材料").as_bytes()
    campaign.deliver(build_forward(inner, from_="李四 <lisi@126.com>", subject="转发：材料"), when=JUNE_20)
    counts = _ingest(campaign)
    assert counts["attributed"] == 2 and counts["unmatched"] == 1
    rows = {r["from"]: r for r in campaign.messages()}
    assert rows["wang@qq.com"]["unit"] == "yuncheng-kjj"
    assert rows["lisi@126.com"]["unit"] == "sxas"
    (un,) = campaign.run("unmatched", "--json").json
    assert un["from"] == "x@example.org"
    assert un["reason"] == "subject names both 山西大学 and 太原理工大学"


def test_assign_and_revoke(campaign):
    campaign.deliver(
        build_mail(from_="x <x@example.org>", subject="材料", message_id="<m1@example.org>"), when=JUNE_20
    )
    _ingest(campaign)
    res = campaign.run("assign", "m1@example.org", "山大", "--note", "phone call", "--json").json
    assert res["unit"] == "sxu"
    (row,) = campaign.messages()
    assert row["unit"] == "sxu" and row["disposition"] == "attributed" and "phone call" in row["reason"]
    assert campaign.run("unmatched", "--json").json == []
    campaign.run("revoke", str(res["override"]))
    (row,) = campaign.messages()
    assert row["unit"] is None and row["disposition"] == "unmatched"
    # mistakes are usage errors (exit 2) that say what to do
    bad = campaign.run("assign", "nope@example.org", "sxu", expect=2)
    assert "unknown message nope@example.org" in bad.stderr
    bad = campaign.run("assign", "1", "no-such-unit", expect=2)
    assert "unknown unit no-such-unit" in bad.stderr


def test_reassigning_warns_and_replaces_the_earlier_assign(campaign):
    campaign.deliver(
        build_mail(
            from_="太原市科学技术局 <tykjj@taiyuan.gov.cn>", subject="材料", message_id="<m2@example.org>"
        ),
        when=JUNE_20,
    )
    _ingest(campaign)
    first = campaign.run("assign", "m2@example.org", "sxu", "--json")
    assert "was attributed automatically (address) to 太原市科学技术局 (taiyuan-kjj)" in first.stderr
    second = campaign.run("assign", "m2@example.org", "tyut", "--json")
    assert "was attributed by hand to 山西大学 (sxu)" in second.stderr
    assert (second.json["previous_unit"], second.json["replaces"]) == ("sxu", [first.json["override"]])
    # only the latest assign is in force; the first was revoked automatically, with a trace
    in_force = campaign.run("overrides", "--json").json
    assert [(o["action"], o["unit"]) for o in in_force] == [("assign", "tyut")]
    (revoked,) = [o for o in campaign.run("overrides", "--all", "--json").json if o["revoked_at"]]
    assert revoked["id"] == first.json["override"]
    # undoing the latest returns to the automatic attribution, not to the first assign
    campaign.run("revoke", str(second.json["override"]))
    (row,) = campaign.messages()
    assert row["unit"] == "taiyuan-kjj" and "registered" in row["reason"]
    shown = campaign.run("show", "taiyuan-kjj", "--json").json
    assert (
        any(
            a["note"] == f"replaced by override {second.json['override']}"
            for a in campaign.run("show", "sxu", "--json").json["audit"]
        )
        and shown["id"] == "taiyuan-kjj"
    )


def test_messages_by_unit_name_alias_or_id(campaign):
    campaign.deliver(
        build_mail(from_="太原市科学技术局 <tykjj@taiyuan.gov.cn>", subject="材料"), when=JUNE_20
    )
    campaign.deliver(build_mail(from_="山西大学 <kjc@sxu.edu.cn>", subject="材料"), when=JUNE_20)
    _ingest(campaign)
    for name in ("taiyuan-kjj", "太原市科技局", "太原市科学技术局"):
        (row,) = campaign.run("messages", "--unit", name, "--json").json
        assert row["unit"] == "taiyuan-kjj"
    assert "unknown unit 火星" in campaign.run("messages", "--unit", "火星", expect=2).stderr
    # tables show times in the campaign's time zone (JSON stays RFC 3339 as stored)
    out = campaign.run("messages").output
    assert "2022-06-20 10:30" in out and "Asia/Shanghai" in out
