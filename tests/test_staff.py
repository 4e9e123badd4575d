"""Staff decisions: accept, reject, exempt, extend, revoke; audit log; helpful mistakes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fixtures.files import make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
AFTER = datetime(2022, 6, 27, 1, 0, tzinfo=UTC)


def _send_and_ingest(campaign, files, when=BEFORE):
    campaign.deliver(build_mail(from_=TY, attachments=[(p.name, p.read_bytes()) for p in files]), when=when)
    campaign.run("ingest", "--once")


def test_accept_and_reject_then_revoke(campaign, tmp_path, media, monkeypatch):
    monkeypatch.setenv("MAILROLL_ACTOR", "zhang")
    _send_and_ingest(campaign, [media.video(200)])
    assert campaign.unit("taiyuan-kjj")["items"]["video"]["state"] == "invalid"

    acc = campaign.run("accept", "taiyuan-kjj", "video", "--note", "3:20 agreed by phone", "--json").json
    video = campaign.unit("taiyuan-kjj")["items"]["video"]
    assert video["state"] == "ok" and video["reason"] is None
    assert video["override"]["note"] == "3:20 agreed by phone" and video["override"]["actor"] == "zhang"
    assert video["checked"]["reason"] == "video lasts 3:20, over the 3:00 limit"

    rej = campaign.run("reject", "太原市科技局", "video", "--note", "画面与活动无关", "--json").json
    video = campaign.unit("taiyuan-kjj")["items"]["video"]
    assert (video["state"], video["reason"]) == ("invalid", "rejected by staff: 画面与活动无关")
    # the later decision is undone: the earlier one (accept) is in force again
    campaign.run("revoke", str(rej["override"]))
    assert campaign.unit("taiyuan-kjj")["items"]["video"]["state"] == "ok"
    campaign.run("revoke", str(acc["override"]), "--note", "mistake")
    assert campaign.unit("taiyuan-kjj")["items"]["video"]["state"] == "invalid"

    shown = campaign.run("show", "taiyuan-kjj", "--json").json
    assert [a["action"] for a in shown["audit"]] == ["accept", "reject", "revoke", "revoke"]
    assert all(a["actor"] == "zhang" for a in shown["audit"])
    assert [o["revoked_by"] for o in shown["overrides"]] == ["zhang", "zhang"]
    assert campaign.run("overrides", "--json").json == []
    assert len(campaign.run("overrides", "--all", "--json").json) == 2
    res = campaign.run("revoke", str(acc["override"]), expect=2)
    assert "already revoked" in res.stderr


def test_accept_a_missing_item(campaign):
    campaign.run("accept", "sxu", "video", "--note", "delivered on a USB stick")
    sxu = campaign.unit("sxu")
    assert sxu["items"]["video"]["state"] == "ok" and sxu["state"] == "incomplete"


def test_exempt_is_a_state_of_its_own_and_keeps_the_flag(campaign):
    campaign.run("exempt", "sxas", "--note", "not taking part this year")
    row = campaign.unit("sxas")
    assert row["state"] == "exempt" and row["exempt"] is True
    assert row["exempt_note"] == "not taking part this year"
    assert [r["id"] for r in campaign.status("--state", "exempt")] == ["sxas"]
    assert "sxas" not in [r["id"] for r in campaign.status("--state", "missing")]
    assert "(exempt)" in campaign.run("status").output


def test_extend_deadline_makes_late_material_on_time(campaign, tmp_path):
    _send_and_ingest(
        campaign,
        [make_sheet_xlsx(tmp_path / "统计表.xlsx"), make_report_docx(tmp_path / "总结报告.docx")],
        when=AFTER,
    )
    assert campaign.unit("taiyuan-kjj")["late"] is True
    res = campaign.run("extend", "taiyuan-kjj", "--until", "2022-06-30 18:00", "--json").json
    assert res["until"] == "2022-06-30T18:00:00+08:00"
    row = campaign.unit("taiyuan-kjj")
    assert (
        row["late"] is False and row["deadline"] == "2022-06-30T18:00:00+08:00" and row["deadline_extended"]
    )
    campaign.run("revoke", str(res["override"]))
    assert campaign.unit("taiyuan-kjj")["late"] is True


def test_mistakes_are_usage_errors(campaign):
    assert "unknown unit 火星" in campaign.run("accept", "火星", "video", expect=2).stderr
    assert "video" in campaign.run("accept", "sxu", "movie", expect=2).stderr  # lists the choices
    assert "--note" in campaign.run("reject", "sxu", "video", expect=2).stderr  # reject needs a reason
    assert "not a time" in campaign.run("extend", "sxu", "--until", "next week", expect=2).stderr
    assert "no override 99" in campaign.run("revoke", "99", expect=2).stderr


def test_ambiguous_unit_name_asks_for_the_id(campaign):
    roster = campaign.root / "roster.csv"
    roster.write_text(roster.read_text("utf-8") + "sxu-2,山西大学,,other@sxu2.edu.cn\n", "utf-8")
    err = campaign.run("exempt", "山西大学", "--note", "x", expect=2).stderr
    assert "山西大学 names 2 units (sxu 山西大学, sxu-2 山西大学): give the id" in err
    campaign.run("exempt", "sxu-2", "--note", "x")


def test_units_items_and_times_as_a_clerk_types_them(campaign, monkeypatch):
    monkeypatch.setenv("MAILROLL_FAKE_NOW", "2022-06-24T10:00:00+08:00")  # a Friday
    campaign.run("exempt", "科学院", "--note", "part of a name only one unit has")
    assert campaign.unit("sxas")["exempt"] is True
    err = campaign.run("show", "太原", expect=2).stderr  # 太原市科学技术局, 中共太原市委宣传部, ...
    assert "names 4 units" in err and "taiyuan-kjj 太原市科学技术局" in err and "tyut 太原理工大学" in err
    campaign.run("accept", "长治高新区", "视频", "--note", "U盘送达")  # an alias; the video item's other name
    assert campaign.unit("changzhi-gxq")["items"]["video"]["override"]["action"] == "accept"
    without_video = [r["id"] for r in campaign.status("--missing", "video")]
    assert "changzhi-gxq" not in without_video and len(without_video) == 11
    assert [r["id"] for r in campaign.status("--missing", "影像资料")] == without_video
    assert [r["id"] for r in campaign.status("--missing", "ＶＩＤＥＯ")] == without_video
    err = campaign.run("status", "--missing", "照片", expect=2).stderr
    assert "the items are statistics (统计表), report (总结报告), video (视频)" in err

    until = {
        "下周一": "2022-06-27T23:59:59+08:00",
        "6月30日": "2022-06-30T23:59:59+08:00",
        "2022年6月30日 18:00": "2022-06-30T18:00:00+08:00",
        "7月1日下午6点": "2022-07-01T18:00:00+08:00",
        "后天晚上12点": "2022-06-26T23:59:59+08:00",  # the day's end, not its noon
    }
    for typed, value in until.items():
        done = campaign.run("extend", "sxu", "--until", typed, "--json").json
        assert done["until"] == value, typed
    assert "is not a time" in campaign.run("extend", "sxu", "--until", "2月29日", expect=2).stderr
    err = campaign.run("extend", "sxu", "--until", "明天晚些时候", expect=2).stderr
    assert "2022-06-26, 2022-06-26 18:00, 6月26日, 2022年6月26日 18:00, 明天, 下周一" in err


def test_extend_to_before_the_deadline_is_refused(campaign):
    err = campaign.run("extend", "sxu", "--until", "2022-06-20", expect=2).stderr
    assert "is not later than the campaign deadline 2022-06-25T23:59:59+08:00" in err
    assert "earlier is not supported" in err
    campaign.run("extend", "sxu", "--until", "2022-06-25T23:59:59+08:00", expect=2)
    assert campaign.run("overrides", "--json").json == []


def test_decisions_for_a_unit_gone_from_the_roster(campaign):
    campaign.run("accept", "sxas", "video", "--note", "U盘送达")
    campaign.run("exempt", "sxas", "--note", "x")
    roster = campaign.root / "roster.csv"
    roster.write_text(
        "\n".join(line for line in roster.read_text("utf-8").splitlines() if not line.startswith("sxas,"))
        + "\n",
        "utf-8",
    )
    assert len(campaign.status()) == 11  # no crash
    campaign.run("status")
    campaign.run("show", "sxu")
    out = campaign.run("overrides").output
    assert out.count("(unit sxas is not in the roster)") == 2
    res = campaign.run("roster", "check", "--json", expect=1)
    stale = [f for f in res.json["findings"] if f["kind"] == "decision-for-unknown-unit"]
    assert len(stale) == 2 and "names unit sxas, which is not in the roster" in stale[0]["message"]


def test_times_in_the_campaign_zone_and_tidy_lines(campaign, monkeypatch):
    monkeypatch.setenv("MAILROLL_ACTOR", "zhang")
    oid = campaign.run("exempt", "sxu", "--json", "--note", "不参加").json["override"]
    overrides = campaign.run("overrides", "--json").json
    created = datetime.fromisoformat(overrides[0]["created_at"])
    local = created.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert f"by zhang at {local}" in campaign.run("overrides").output
    out = campaign.run("revoke", str(oid)).output
    assert out == f"override {oid} (exempt sxu) revoked\n"
    audit = [
        line for line in campaign.run("show", "sxu").output.splitlines() if line.startswith(f"  {local}")
    ]
    assert audit == [
        f"  {local} zhang exempt (override {oid}) 不参加",
        f"  {local} zhang revoke (override {oid})",
    ]
