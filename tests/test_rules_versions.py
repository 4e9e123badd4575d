"""Version labels in `mailroll show --json` (and the text), found unguarded by generated mutants
(scripts/mutation.py): which version counts and why each other one does not (replaced by a later
one, the same file sent again, another file of the same message), and the changed figures, on a
Maildir campaign."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fixtures.files import DEFAULT_FIGURES, make_sheet_xlsx
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
DAY1 = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)


def sheets(campaign, unit: str) -> list[tuple[str, bool, str]]:
    d = campaign.run("show", unit, "--json").json
    return [(v["filename"], v["counts"], v["why"]) for v in d["versions"]["statistics"]]


def test_each_earlier_version_says_why_it_does_not_count(campaign, tmp_path):
    v1 = make_sheet_xlsx(tmp_path / "v1.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 20}).read_bytes()
    v2 = make_sheet_xlsx(tmp_path / "v2.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 23}).read_bytes()
    dt = make_sheet_xlsx(tmp_path / "dt.xlsx", unit="大同市科学技术局").read_bytes()
    dt2 = make_sheet_xlsx(
        tmp_path / "dt2.xlsx", unit="大同市科学技术局", figures={**DEFAULT_FIGURES, "线上活动": 9}
    )
    campaign.deliver(build_mail(TY, attachments=[("统计表.xlsx", v1)]), when=DAY1)
    campaign.deliver(build_mail(TY, attachments=[("统计表（更正版）.xlsx", v2)]), when=DAY2)
    campaign.deliver(build_mail(TY, attachments=[("统计表（再发）.xlsx", v2)]), when=DAY3)
    campaign.deliver(
        build_mail(DT, attachments=[("统计表.xlsx", dt), ("统计表2.xlsx", dt2.read_bytes())]), when=DAY1
    )
    campaign.run("ingest", "--once")
    assert sheets(campaign, "taiyuan-kjj") == [
        ("统计表.xlsx", False, "replaced by a later version"),
        ("统计表（更正版）.xlsx", False, "the same file as the counted version"),
        ("统计表（再发）.xlsx", True, "counts: the latest version"),
    ]
    datong = sheets(campaign, "datong-kjj")
    assert sorted(c for _, c, _ in datong) == [False, True]
    assert [why for _, c, why in datong if not c] == ["another file in the same message counts"]


def test_changed_figures_are_listed_with_their_values_before_and_after(campaign, tmp_path):
    v1 = make_sheet_xlsx(tmp_path / "v1.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 20, "线上活动": 8})
    v2 = make_sheet_xlsx(tmp_path / "v2.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 23, "线上活动": 8})
    campaign.deliver(build_mail(TY, attachments=[("统计表.xlsx", v1.read_bytes())]), when=DAY1)
    campaign.deliver(build_mail(TY, attachments=[("统计表（更正版）.xlsx", v2.read_bytes())]), when=DAY2)
    campaign.run("ingest", "--once")
    versions = campaign.run("show", "taiyuan-kjj", "--json").json["versions"]["statistics"]
    assert "changes" not in versions[0]
    assert versions[1]["changes"] == [{"field": "活动总数", "from": 20, "to": 23, "text": "活动总数 20 → 23"}]
    text = campaign.run("show", "taiyuan-kjj").output
    assert "活动总数 20 → 23" in text and "线上活动 8 →" not in text
