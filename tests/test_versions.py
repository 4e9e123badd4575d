"""Versions: a resubmitted statistics sheet (更正版) shows its changed figures in `show` and in
`stats --changed-since`. The mail is served by a real Dovecot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fixtures.files import DEFAULT_FIGURES, make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
FIRST = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
SECOND = datetime(2022, 6, 26, 1, 0, tzinfo=UTC)
THIRD = datetime(2022, 6, 27, 3, 0, tzinfo=UTC)


@pytest.fixture
def resubmitted(imap_campaign, tmp_path):
    c = imap_campaign
    v1 = {**DEFAULT_FIGURES, "活动总数": 20, "线上活动": 8, "线下活动": 12}
    v2 = {**DEFAULT_FIGURES, "活动总数": 23, "线上活动": 10, "线下活动": 13}
    sheet1 = make_sheet_xlsx(tmp_path / "v1.xlsx", figures=v1).read_bytes()
    sheet2 = make_sheet_xlsx(tmp_path / "v2.xlsx", figures=v2).read_bytes()
    report = make_report_docx(tmp_path / "r.docx", chars=800).read_bytes()
    dt_sheet = make_sheet_xlsx(tmp_path / "dt.xlsx", unit="大同市科学技术局").read_bytes()

    def send(from_, files, when):
        c.dovecot.append(
            c.imap_user, build_mail(from_=from_, attachments=files).as_bytes(), internaldate=when
        )

    send(TY, [("统计表.xlsx", sheet1), ("总结报告.docx", report)], FIRST)
    send(TY, [("统计表（更正版）.xlsx", sheet2)], SECOND)
    send(DT, [("统计表.xlsx", dt_sheet)], THIRD)
    assert c.run("ingest", "--once", "--json").json["attributed"] == 3
    return c


def test_show_lists_every_version_with_what_changed(resubmitted):
    c = resubmitted
    d = c.run("show", "taiyuan-kjj", "--json").json
    sheets = d["versions"]["statistics"]
    assert [(v["filename"], v["counts"]) for v in sheets] == [
        ("统计表.xlsx", False),
        ("统计表（更正版）.xlsx", True),
    ]
    assert (
        sheets[0]["why"] == "replaced by a later version" and sheets[1]["why"] == "counts: the latest version"
    )
    assert "changes" not in sheets[0]
    assert [(x["field"], x["from"], x["to"]) for x in sheets[1]["changes"]] == [
        ("活动总数", 20, 23),
        ("线上活动", 8, 10),
        ("线下活动", 12, 13),
    ]
    assert sheets[1]["received_at"] == "2022-06-26T09:00:00+08:00"
    assert [v["counts"] for v in d["versions"]["report"]] == [True] and d["versions"]["video"] == []
    text = c.run("show", "taiyuan-kjj").output
    assert "活动总数 20 → 23" in text and "统计表（更正版）.xlsx" in text


def test_stats_changed_since(resubmitted):
    c = resubmitted
    data = c.run("stats", "--json", "--changed-since", "2022-06-24T00:00:00+08:00").json
    changed = {u["id"]: u for u in data["changed"]}
    assert set(changed) == {"taiyuan-kjj", "datong-kjj"}
    assert [x["text"] for x in changed["taiyuan-kjj"]["changes"]] == [
        "活动总数 20 → 23",
        "线上活动 8 → 10",
        "线下活动 12 → 13",
    ]
    assert changed["taiyuan-kjj"]["counted_then"] and changed["taiyuan-kjj"]["counted_now"]
    assert not changed["datong-kjj"]["counted_then"] and changed["datong-kjj"]["counted_now"]
    assert data["fields"]["活动总数"] == 23 + DEFAULT_FIGURES["活动总数"]  # the totals as always
    # after the last change: nothing changed since
    assert c.run("stats", "--json", "--changed-since", "2022-06-28T00:00:00+08:00").json["changed"] == []
    # between the two: only 大同 (a time without zone is the campaign's)
    later = c.run("stats", "--json", "--changed-since", "2022-06-26T12:00:00").json["changed"]
    assert [u["id"] for u in later] == ["datong-kjj"]
    assert "--changed-since" in c.run("stats", "--changed-since", "yesterday", expect=2).stderr
