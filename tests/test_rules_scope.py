"""Campaign scope at its boundaries, found unguarded by generated mutants (scripts/mutation.py):
a campaign's window (``opens`` .. ``closes``, both included) to the second, each of a campaign's
keywords (a list of two: the second alone names it too), in the subject or in a file name, and a
closed campaign's keyword naming nothing. Two campaigns in one Maildir (tests/fixtures/
two_campaigns.py: 科技活动周 opens 2022-06-01, closes by default 30 days after its deadline;
全国科普日 opens 2022-06-15); what `mailroll messages --json` says of each message."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fixtures.files import make_png
from fixtures.mail import build_mail
from fixtures.two_campaigns import use_two_campaigns

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
KPR_OPENS = datetime.fromisoformat("2022-06-15T00:00:00+08:00")
# [[campaigns]] without `closes`: the deadline + 30 days
KJZ_CLOSES = datetime.fromisoformat("2022-06-25T23:59:59+08:00") + timedelta(days=30)
SECOND = timedelta(seconds=1)


@pytest.fixture
def two(campaign, tmp_path):
    use_two_campaigns(campaign)
    campaign.pngs = [
        (f"照片{n}.png", make_png(tmp_path / f"p{n}.png", width=400 + n, height=300).read_bytes())
        for n in range(3)
    ]
    return campaign


def scopes(c) -> dict[str, tuple[str | None, str]]:
    """subject -> (campaign, disposition) of every message."""
    return {m["subject"]: (m["campaign"], m["disposition"]) for m in c.run("messages", "--json").json}


def test_a_window_includes_its_first_and_last_second_and_nothing_beyond(two):
    # photos only fit 科普日 (科技活动周 asks for none); a sheet only fits 科技活动周
    for subject, when in (("科普日照片 早一秒", KPR_OPENS - SECOND), ("科普日照片 开始时", KPR_OPENS)):
        two.deliver(build_mail(TY, subject=subject, attachments=two.pngs), when=when)
    sheet = [("统计表.xlsx", b"PK\x03\x04 not really a sheet")]
    for subject, when in (
        ("科技活动周统计表 截止时", KJZ_CLOSES),
        ("科技活动周统计表 晚一秒", KJZ_CLOSES + SECOND),
    ):
        two.deliver(build_mail(TY, subject=subject, attachments=sheet), when=when)
    two.run("ingest", "--once")
    assert scopes(two) == {
        "科普日照片 早一秒": (None, "other"),
        "科普日照片 开始时": ("kpr2022", "attributed"),
        "科技活动周统计表 截止时": ("kjz2022", "attributed"),
        "科技活动周统计表 晚一秒": (None, "other"),
    }


def test_each_keyword_names_its_campaign_in_the_subject_or_a_file_name(two):
    """科技活动周's keywords are 科技活动周 and 科技周: the second alone names it; so does a
    keyword in a file name. The material (a photo) would not fit 科技活动周 by itself."""
    when = datetime.fromisoformat("2022-06-20T10:00:00+08:00")
    photo = two.pngs[:1]
    two.deliver(build_mail(TY, subject="太原市科技周图片", attachments=photo), when=when)
    two.deliver(
        build_mail(TY, subject="太原市图片", attachments=[("科技活动周现场.png", photo[0][1])]), when=when
    )
    two.deliver(build_mail(TY, subject="太原市图片二", attachments=photo), when=when)
    two.run("ingest", "--once")
    found = {m["subject"]: m for m in two.run("messages", "--json").json}
    assert found["太原市科技周图片"]["campaign"] == "kjz2022"
    assert found["太原市科技周图片"]["scope"] == "names 科技周 (2022年山西省科技活动周)"
    assert found["太原市图片"]["campaign"] == "kjz2022"
    assert found["太原市图片"]["scope"] == "names 科技活动周 (2022年山西省科技活动周)"
    assert found["太原市图片二"]["campaign"] == "kpr2022"  # no keyword: photos fit 科普日 only


def test_a_closed_campaigns_keyword_names_nothing(two):
    """After 科技活动周 closed, its keyword does not pull a message to it: the photos go to the
    campaign still open that asks for them."""
    two.deliver(build_mail(TY, subject="科技周照片补充", attachments=two.pngs), when=KJZ_CLOSES + SECOND)
    two.run("ingest", "--once")
    assert scopes(two) == {"科技周照片补充": ("kpr2022", "attributed")}


KPR_DEADLINE = datetime.fromisoformat("2022-06-26T23:59:59+08:00")


def test_an_images_item_is_late_only_when_its_last_needed_picture_came_after_the_deadline(two, tmp_path):
    """科普日 wants 3 different photos. Late is decided by the photo that made the count: the
    third at the deadline's very second is on time, a second later is late; a fourth photo after
    the deadline, or a photo sent again, changes nothing."""
    pngs = [
        (f"照片{n}.png", make_png(tmp_path / f"q{n}.png", width=500 + n, height=300).read_bytes())
        for n in range(4)
    ]
    early = KPR_DEADLINE - timedelta(days=2)
    senders = {
        "taiyuan-kjj": "太原市科学技术局 <tykjj@taiyuan.gov.cn>",
        "datong-kjj": "大同市科学技术局 <dtkjj2022@163.com>",
        "changzhi-kjj": "长治市科学技术局 <czkjj@changzhi.gov.cn>",
        "jinzhong-kjj": "晋中市科学技术局 <jzkjj@sina.com>",
    }
    plan = {  # unit: [(pictures, arrival)]
        "taiyuan-kjj": [(pngs[:2], early), (pngs[2:3], KPR_DEADLINE)],
        "datong-kjj": [(pngs[:2], early), (pngs[2:3], KPR_DEADLINE + SECOND)],
        "changzhi-kjj": [(pngs[:3], early), (pngs[3:4], KPR_DEADLINE + timedelta(hours=1))],
        "jinzhong-kjj": [(pngs[:3], early), (pngs[:1], KPR_DEADLINE + timedelta(hours=1))],
    }
    for uid, sendings in plan.items():
        for n, (pictures, when) in enumerate(sendings):
            two.deliver(
                build_mail(senders[uid], subject=f"科普日活动照片{n}", attachments=pictures), when=when
            )
    two.run("ingest", "--once")
    rows = {r["id"]: r for r in two.run("--campaign", "kpr2022", "status", "--json").json}
    photos = {
        uid: (rows[uid]["items"]["photos"]["state"], rows[uid]["items"]["photos"]["late"]) for uid in plan
    }
    assert photos == {
        "taiyuan-kjj": ("ok", False),
        "datong-kjj": ("ok", True),
        "changzhi-kjj": ("ok", False),
        "jinzhong-kjj": ("ok", False),
    }
