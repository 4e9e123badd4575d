"""Config times read as a person means them, found unguarded by generated mutants
(scripts/mutation.py): a deadline with an offset (``+08:00``, ``+00:00``, ``Z``) is that instant
whatever the campaign's time zone; one without an offset is read in the campaign's
``timezone``. Checked where it matters: which unit's sheet is late, by one second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    "deadline, timezone, instant",
    [
        ("2022-06-25T23:59:59", "Asia/Shanghai", datetime(2022, 6, 25, 15, 59, 59, tzinfo=UTC)),
        ("2022-06-25T23:59:59", "America/New_York", datetime(2022, 6, 26, 3, 59, 59, tzinfo=UTC)),
        ("2022-06-25T23:59:59+08:00", "America/New_York", datetime(2022, 6, 25, 15, 59, 59, tzinfo=UTC)),
        ("2022-06-25T23:59:59+00:00", "Asia/Shanghai", datetime(2022, 6, 25, 23, 59, 59, tzinfo=UTC)),
        ("2022-06-25T23:59:59Z", "Asia/Shanghai", datetime(2022, 6, 25, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_deadline_is_the_instant_its_offset_or_the_campaigns_time_zone_says(
    campaign, media, deadline, timezone, instant
):
    campaign.configure(campaign={"deadline": deadline, "timezone": timezone})
    sheet = [("统计表.xlsx", media.sheet_xlsx.read_bytes())]
    campaign.deliver(build_mail(TY, attachments=sheet), when=instant)
    campaign.deliver(build_mail(DT, attachments=sheet), when=instant + SECOND)
    campaign.run("ingest", "--once")
    rows = {r["id"]: r for r in campaign.run("status", "--json").json}
    late = {uid: rows[uid]["items"]["statistics"]["late"] for uid in ("taiyuan-kjj", "datong-kjj")}
    assert late == {"taiyuan-kjj": False, "datong-kjj": True}


def test_without_a_time_zone_the_campaign_is_in_china_time(campaign, media):
    del campaign.sections["campaign"]["timezone"]
    campaign.configure(campaign={"deadline": "2022-06-25T23:59:59"})
    sheet = [("统计表.xlsx", media.sheet_xlsx.read_bytes())]
    on_time = datetime(2022, 6, 25, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Beijing
    campaign.deliver(build_mail(TY, attachments=sheet), when=on_time)
    campaign.deliver(build_mail(DT, attachments=sheet), when=on_time + SECOND)
    campaign.run("ingest", "--once")
    rows = {r["id"]: r for r in campaign.run("status", "--json").json}
    assert [rows[u]["items"]["statistics"]["late"] for u in ("taiyuan-kjj", "datong-kjj")] == [False, True]


def said(res) -> str:
    return " ".join((res.output + (res.stderr or "")).split())


@pytest.mark.parametrize(
    "section, values, says",
    [
        (
            "campaign",
            {"timezone": "Asia/Shanghia"},
            "campaign.timezone 'Asia/Shanghia' is not a known time zone",
        ),
        (
            "campaign",
            {"deadline": "2022-13-45T23:59:59"},
            "campaign.deadline '2022-13-45T23:59:59' is not an RFC 3339 time like 2022-06-25T23:59:59+08:00",
        ),
        (
            "reminders",
            {"quiet_hours": "25:00-08:00"},
            "reminders.quiet_hours: '25:00' is not a time of day like '21:00'",
        ),
    ],
)
def test_a_time_the_config_cannot_read_is_named_with_its_key(campaign, section, values, says):
    campaign.configure(**{section: values})
    assert says in said(campaign.run("status", expect=2))


def test_a_campaign_without_a_deadline_is_refused_naming_it(campaign):
    del campaign.sections["campaign"]["deadline"]
    campaign.configure()
    assert "campaign.deadline" in said(campaign.run("status", expect=2))


def test_a_campaign_may_leave_out_when_it_opens_and_closes(campaign):
    """[[campaigns]] `opens` and `closes` are optional: without them a campaign is open from
    the start, and closes 30 days after its deadline."""
    from fixtures.two_campaigns import KPR_TOML, use_two_campaigns

    use_two_campaigns(campaign, kpr=KPR_TOML.replace('opens = "2022-06-15T00:00:00+08:00"\n', ""))
    assert "opens" not in campaign.config_path.read_text(encoding="utf-8").split("kpr2022")[1]
    for cid in ("kjz2022", "kpr2022"):
        assert campaign.run("--campaign", cid, "status", "--json").json
