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


def test_a_time_zone_that_does_not_exist_is_named_in_the_error(campaign):
    campaign.configure(campaign={"timezone": "Asia/Shanghia"})
    res = campaign.run("status", expect=2)
    assert "'Asia/Shanghia' is not a known time zone" in res.output + (res.stderr or "")
