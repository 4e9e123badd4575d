"""`status`, `stats`, `show` on a database filled by real ingestion of real files.

Every test delivers messages into the campaign's Maildir (real xlsx/docx/pdf/mp4 made by
tests/fixtures/files.py), runs `mailroll ingest --once`, then asks the CLI.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.files import DEFAULT_FIGURES, make_report_docx, make_report_pdf, make_sheet_xlsx
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
SXU = "山西大学科技处 <kjc@sxu.edu.cn>"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
AFTER = datetime(2022, 6, 27, 1, 0, tzinfo=UTC)  # deadline: 2022-06-25 15:59:59Z


def attach(*paths: Path, names: list[str] | None = None) -> list[tuple[str, bytes]]:
    names = names or [p.name for p in paths]
    return [(n, Path(p).read_bytes()) for n, p in zip(names, paths, strict=False)]


def send(campaign, from_=TY, subject="2022年科技活动周材料", files=(), when=BEFORE, **kw):
    return campaign.deliver(build_mail(from_=from_, subject=subject, attachments=files, **kw), when=when)


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


@pytest.fixture
def full_set(tmp_path, media):
    """A unit's three good files: sheet (.xlsx), report (.docx), 60 s video (.mp4)."""
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx")
    report = make_report_docx(tmp_path / "总结报告.docx", chars=800)
    return attach(sheet, report, media.video(60), names=["统计表.xlsx", "总结报告.docx", "科技周视频.mp4"])


def test_complete_unit_and_contract_shape(campaign, full_set):
    send(campaign, files=full_set)
    assert campaign.ingest()["attributed"] == 1
    rows = campaign.status()
    roster_order = [
        line.split(",")[0] for line in (campaign.root / "roster.csv").read_text("utf-8").splitlines()[1:]
    ]
    assert [r["id"] for r in rows] == roster_order
    ty = rows[0]
    assert {k: ty[k] for k in ("id", "name", "state", "late")} == {
        "id": "taiyuan-kjj",
        "name": "太原市科学技术局",
        "state": "complete",
        "late": False,
    }
    for item in ("statistics", "report", "video"):
        assert {k: ty["items"][item][k] for k in ("state", "late", "reason", "trust")} == {
            "state": "ok",
            "late": False,
            "reason": None,
            "trust": "registered",
        }
    assert ty["items"]["video"]["filename"] == "科技周视频.mp4"
    assert ty["items"]["video"]["details"].startswith("1:00")
    others = rows[1:]
    assert all(r["state"] == "missing" and not r["late"] for r in others)
    assert all(
        r["items"]["video"]
        == {
            "state": "missing",
            "late": False,
            "trust": None,
            "reason": None,
            "reason_zh": None,
            "submissions": 0,
        }
        for r in others
    )
    # the table for people says the same, with a summary line
    out = campaign.run("status").output
    assert (
        "太原市科学技术局" in out
        and "12 units: 1 complete, 0 incomplete, 11 missing, 0 exempt; 0 late" in out
    )


def test_invalid_items_say_why(campaign, tmp_path, media):
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx", omit=["线上活动", "参与人数"])
    report = make_report_docx(tmp_path / "总结报告.docx", chars=50)
    send(campaign, files=attach(sheet, report, media.video(200)))
    campaign.ingest()
    items = campaign.status()[0]["items"]
    assert items["video"]["state"] == "invalid"
    assert items["video"]["reason"] == "video lasts 3:20, over the 3:00 limit"
    assert items["statistics"]["state"] == "invalid"
    assert items["statistics"]["reason"].startswith("the sheet lacks 线上活动, 参与人数")
    assert items["report"]["state"] == "invalid" and "50 characters" in items["report"]["reason"]
    row = campaign.status()[0]
    assert row["state"] == "incomplete"
    # a changed limit changes the judgement at once, nothing ingested again
    campaign.configure(campaign__video={"max_duration_s": 240})
    assert campaign.status()[0]["items"]["video"]["state"] == "ok"


def test_negative_figure_is_invalid(campaign, tmp_path):
    figures = {
        "活动总数": 12,
        "线上活动": 5,
        "线下活动": 7,
        "参与人数": -3,
        "线上参与": 1,
        "线下参与": 1,
        "参与科技人员": 1,
        "开放实验室及科普基地": 1,
        "科普讲座": 1,
        "科普展览": 1,
        "发放科普资料": 1,
        "媒体报道": 1,
        "投入经费": 1,
    }
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "统计表.xlsx", figures=figures)))
    campaign.ingest()
    st = campaign.status()[0]["items"]["statistics"]
    assert st["state"] == "invalid" and "参与人数 is negative" in st["reason"]


def test_later_submission_replaces_earlier_both_ways(campaign, tmp_path, media):
    send(campaign, files=attach(media.video(200)), when=BEFORE)
    send(campaign, files=attach(media.video(60)), when=BEFORE + timedelta(hours=1))
    send(campaign, from_=SXU, files=attach(media.video(60)), when=BEFORE)
    send(campaign, from_=SXU, files=attach(media.video(200)), when=BEFORE + timedelta(hours=1))
    campaign.ingest()
    rows = by_id(campaign.status())
    assert rows["taiyuan-kjj"]["items"]["video"]["state"] == "ok"
    assert rows["taiyuan-kjj"]["items"]["video"]["submissions"] == 2
    assert rows["sxu"]["items"]["video"]["state"] == "invalid"


def test_same_file_resent_after_deadline_is_not_late(campaign, tmp_path):
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx")
    report = make_report_docx(tmp_path / "总结报告.docx")
    send(campaign, files=attach(sheet, report), when=BEFORE)
    send(campaign, files=attach(sheet), subject="再次发送", when=AFTER)  # same sheet again
    send(
        campaign, files=attach(make_report_docx(tmp_path / "新报告.docx", chars=900)), when=AFTER
    )  # new report
    campaign.ingest()
    row = campaign.status()[0]
    assert row["items"]["statistics"]["late"] is False
    assert row["items"]["statistics"]["arrived_at"] == "2022-06-20T10:30:00+08:00"
    assert row["items"]["statistics"]["submissions"] == 2
    assert row["items"]["report"]["late"] is True and row["items"]["report"]["filename"] == "新报告.docx"
    assert row["late"] is True
    assert [r["id"] for r in campaign.status("--late")] == ["taiyuan-kjj"]


def test_mail_arriving_in_the_deadlines_last_second_is_on_time(campaign, tmp_path):
    """The deadline is 2022-06-25T23:59:59+08:00: arriving then is on time, a second later late."""
    deadline = datetime.fromisoformat("2022-06-25T23:59:59+08:00")
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "统计表.xlsx")), when=deadline)
    send(campaign, from_=SXU, files=attach(make_sheet_xlsx(tmp_path / "统计表.xlsx")), when=deadline)
    send(
        campaign,
        from_=SXU,
        files=attach(make_report_docx(tmp_path / "总结报告.docx", chars=800)),
        when=deadline + timedelta(seconds=1),
    )
    campaign.ingest()
    ty, sxu = campaign.unit("taiyuan-kjj"), campaign.unit("sxu")
    assert ty["items"]["statistics"]["late"] is False and ty["late"] is False
    assert sxu["items"]["statistics"]["late"] is False
    assert sxu["items"]["report"]["late"] is True and sxu["late"] is True


def test_filters(campaign, full_set, tmp_path):
    send(campaign, files=full_set)
    send(campaign, from_=SXU, files=attach(make_sheet_xlsx(tmp_path / "s.xlsx", unit="山西大学")), when=AFTER)
    campaign.ingest()
    assert [r["id"] for r in campaign.status("--state", "complete")] == ["taiyuan-kjj"]
    assert [r["id"] for r in campaign.status("--state", "incomplete")] == ["sxu"]
    assert len(campaign.status("--state", "missing")) == 10
    missing_video = [r["id"] for r in campaign.status("--missing", "video")]
    assert "sxu" in missing_video and "taiyuan-kjj" not in missing_video
    assert [r["id"] for r in campaign.status("--category", "高等院校", "--late")] == ["sxu"]
    assert "sxu" in campaign.run("status", "--category", "高等院校").output


def test_show_unit_lists_messages_parts_and_reasons(campaign, tmp_path, media):
    send(campaign, files=attach(media.video(200)), subject="太原市科技局视频")
    campaign.ingest()
    out = campaign.run("show", "太原市科技局").output  # an alias works
    assert "video lasts 3:20, over the 3:00 limit" in out and "太原市科技局视频" in out
    data = campaign.run("show", "taiyuan-kjj", "--json").json
    assert data["status"]["items"]["video"]["state"] == "invalid"
    (msg,) = data["messages"]
    assert msg["method"] == "address" and msg["parts"][0]["counted"] is True
    with sqlite3.connect(campaign.db_path) as conn:  # a reminder the service sent
        conn.execute(
            "INSERT INTO outbox (kind, unit, stage, to_addrs, subject, body, smtp_message_id, status, "
            "attempts, created_at, sent_at) VALUES ('reminder', 'taiyuan-kjj', 'before-1d', "
            "'[\"tykjj@taiyuan.gov.cn\"]', '提醒', '...', '<r1@mailroll>', 'sent', 1, '2022-06-24T02:00:00+00:00', "
            "'2022-06-24T02:00:05+00:00')"
        )
    shown = campaign.run("show", "taiyuan-kjj", "--json").json
    assert [(o["kind"], o["stage"], o["status"]) for o in shown["outbox"]] == [
        ("reminder", "before-1d", "sent")
    ]
    assert "reminder before-1d to tykjj@taiyuan.gov.cn: sent" in campaign.run("show", "taiyuan-kjj").output
    res = campaign.run("show", "nobody", expect=2)
    assert "unknown unit nobody" in res.stderr and "roster list" in res.stderr


def test_stats_add_up_valid_sheets_only(campaign, tmp_path):
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "a.xlsx")))  # 活动总数 12
    send(
        campaign,
        from_=SXU,
        files=attach(
            make_sheet_xlsx(
                tmp_path / "b.xlsx",
                unit="山西大学",
                figures={**DEFAULT_FIGURES, "活动总数": 3, "线上活动": 1, "线下活动": 2},
            )
        ),
    )
    send(
        campaign,
        from_="晋中 <jzkjj@sina.com>",
        files=attach(make_sheet_xlsx(tmp_path / "c.xlsx", unit="晋中市科学技术局", omit=["线上活动"])),
    )  # invalid
    campaign.ingest()
    data = campaign.run("stats", "--json").json
    assert data["units"] == 2
    assert list(data["fields"]) == [label for label in DEFAULT_FIGURES]  # template order
    assert data["fields"]["活动总数"] == 15 and data["fields"]["线上活动"] == 6
    assert data["fields"]["投入经费"] == pytest.approx(2 * 45.8)
    left = {u["id"]: u for u in data["left_out"]}
    assert (
        "线上活动" in left["jinzhong-kjj"]["reason"] and left["datong-kjj"]["reason"] == "no sheet received"
    )
    assert "活动总数" in campaign.run("stats").output


def test_status_follows_new_mail_and_roster_changes(campaign, full_set):
    campaign.ingest()
    assert campaign.status()[0]["state"] == "missing"
    report_and_video = full_set[1:]  # the sheet would name the unit (填报单位)
    send(campaign, from_="王丽 <wangli_ty@163.com>", subject="科技活动周材料", files=report_and_video)
    counts = campaign.ingest()
    assert counts["unmatched"] == 1
    assert campaign.status()[0]["state"] == "missing"  # personal address: no unit yet
    # the office adds the address to the roster: status re-attributes by itself
    roster = campaign.root / "roster.csv"
    roster.write_text(
        roster.read_text("utf-8").replace(
            "tykjj@taiyuan.gov.cn;kjjbgs@taiyuan.gov.cn",
            "tykjj@taiyuan.gov.cn;kjjbgs@taiyuan.gov.cn;wangli_ty@163.com",
        ),
        "utf-8",
    )
    row = campaign.status()[0]
    assert row["state"] == "incomplete" and row["items"]["video"]["state"] == "ok"
    assert campaign.run("unmatched", "--json").json == []


def test_cached_status_is_what_the_full_command_prints(campaign, full_set):
    send(campaign, files=full_set)
    campaign.ingest()
    fresh = campaign.run_process("status", "--json").output  # computes and stores the cache
    cached = campaign.run_process("status", "--json").output  # quick road (reconcile.status_cache)
    from reconcile.status_cache import cached_status_json

    assert cached_status_json(["--config", str(campaign.config_path), "status", "--json"]) == cached
    assert json.loads(fresh) == json.loads(cached)
    # a staff decision makes the cache stale: the quick road steps aside
    campaign.run("accept", "datong-kjj", "video", "--note", "sent on a USB stick")
    assert cached_status_json(["--config", str(campaign.config_path), "status", "--json"]) is None
    rows = by_id(json.loads(campaign.run_process("status", "--json").output))
    assert rows["datong-kjj"]["items"]["video"]["state"] == "ok"


def test_heartbeat_line(campaign):
    campaign.ingest()
    assert "last poll" in campaign.run("status").output  # ingest --once (cron) records it too
    conn = sqlite3.connect(campaign.db_path)
    now = datetime.now(UTC)
    conn.execute(
        "INSERT OR REPLACE INTO service_state (key, value, updated_at) VALUES ('last_poll', ?, ?)",
        [(now - timedelta(minutes=2)).isoformat(), now.isoformat()],
    )
    conn.commit()
    assert "last poll 2 minutes ago" in campaign.run("status").output
    conn.execute(
        "UPDATE service_state SET value = ? WHERE key = 'last_poll'", [(now - timedelta(hours=2)).isoformat()]
    )
    conn.commit()
    out = campaign.run("status").output
    assert "warning" in out and "2 hours ago" in out


def test_video_sent_as_link_is_invalid_until_fetched(campaign):
    body = (
        "您好，视频较大，已用超大附件发送：\n科技周视频.mp4 (350M, 2022年7月5日 10:00 到期)\n"
        "https://mail.163.com/large-attachment-download/index.html?p=X&file=%E7%A7%91%E6%8A%80%E5%91%A8%E8%A7%86%E9%A2%91.mp4\n"
    )
    send(campaign, body=body)
    campaign.ingest()
    with sqlite3.connect(campaign.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM links").fetchone()[0] == 1, "ingest records the link"
    video = campaign.status()[0]["items"]["video"]
    assert video["state"] == "invalid"
    assert video["reason"].startswith("sent as a download link (") and video["reason"].endswith("not fetched")


# ------------------------------------------------------------------ the rules on recorded facts


def _judge(campaign, kind, facts=None, error=None):
    from reconcile.judge import judge_part

    return judge_part(
        {"kind": kind, "facts": json.dumps(facts) if facts is not None else None, "error": error},
        campaign.config(),
    )


@pytest.mark.parametrize(
    ("seconds", "state", "reason", "reason_zh"),
    [
        (180.0, "ok", None, None),  # the limit itself is allowed
        (180.5, "invalid", "video lasts 3:00.5, over the 3:00 limit", "视频时长3:00.5，超过3:00的限制"),
    ],
)
def test_video_at_the_three_minute_limit_end_to_end(campaign, media, seconds, state, reason, reason_zh):
    """Real videos: exactly 3:00 passes; half a second more fails, and the reason does not
    say '3:00, over the 3:00 limit' although 180.5 s rounds to 3:00."""
    send(campaign, files=attach(media.video(seconds), names=["科技周视频.mp4"]))
    campaign.ingest()
    video = campaign.unit("taiyuan-kjj")["items"]["video"]
    assert (video["state"], video["reason"], video["reason_zh"]) == (state, reason, reason_zh)


def test_video_just_over_the_limit_is_never_written_as_the_limit(campaign):
    video = {"duration_s": 180.0, "container": "mp4", "format_name": "mov,mp4,m4a,3gp,3g2,mj2"}
    assert _judge(campaign, "video", video).state == "ok"
    for seconds, shown in [(180.04, "3:00.04"), (180.001, "3:00.001"), (180.7, "3:01"), (200, "3:20")]:
        j = _judge(campaign, "video", {**video, "duration_s": seconds})
        assert (j.state, j.reason) == ("invalid", f"video lasts {shown}, over the 3:00 limit"), seconds


def test_judging_rules_in_plain_words(campaign):
    video = {
        "duration_s": 180.4,
        "container": "mp4",
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "audio_codec": None,
    }
    j = _judge(campaign, "video", video)
    assert (j.state, j.reason) == ("invalid", "video lasts 3:00.4, over the 3:00 limit")
    j = _judge(campaign, "video", {**video, "duration_s": 179.9})
    assert j.state == "ok" and j.warnings == ["the video has no sound track"]
    j = _judge(campaign, "video", {**video, "duration_s": 60, "container": "rm", "format_name": "rm"})
    assert j.state == "invalid" and j.reason.startswith("video format rm is not accepted")
    j = _judge(campaign, "video", error="not a video file (the content is not a known media format)")
    assert j.reason == "not a video file (the content is not a known media format)"

    report = {"format": "pdf", "pages": 2, "text_chars": 0, "encrypted": False, "scanned": True}
    j = _judge(campaign, "report", report)
    assert j.state == "ok" and j.warnings == ["scanned PDF without a text layer"]
    j = _judge(campaign, "report", {**report, "scanned": False, "encrypted": True})
    assert j.state == "invalid" and "password" in j.reason
    need = campaign.config().campaign.report_min_text_chars
    assert _judge(campaign, "report", {**report, "scanned": False, "text_chars": need}).state == "ok"
    j = _judge(campaign, "report", {**report, "scanned": False, "text_chars": need - 1})
    assert j.state == "invalid" and str(need) in j.reason, j.reason

    labels = campaign.config().campaign.sheet.labels
    j = _judge(campaign, "statistics", {"figures": {}, "problems": {label: "not found" for label in labels}})
    assert j.state == "invalid" and j.reason.startswith(
        "none of the form's rows (活动总数, 线上活动…) were found"
    )
    j = _judge(
        campaign,
        "statistics",
        {
            "figures": {"活动总数": 3},
            "problems": {"参与人数": "not a number: 'abc'"},
            "warnings": ["线上活动 + 线下活动 = 10, but 活动总数 is 12"],
        },
    )
    assert j.reason == "参与人数 is not a number: 'abc'" and j.warnings


def test_link_judgement_words():
    from reconcile.judge import judge_link

    link = {
        "provider": "网易超大附件",
        "host": "mail.163.com",
        "filename": "科技周.mp4",
        "status": "recorded",
        "error": None,
    }
    assert judge_link(link).reason == "sent as a download link (网易超大附件: 科技周.mp4), not fetched"
    failed = judge_link({**link, "status": "failed", "error": "the link has expired"})
    assert failed.state == "invalid" and failed.reason.endswith("(download failed: the link has expired)")


def test_status_benchmark_runs_at_small_scale():
    """bench/bench_status.py builds its campaign, alternates status with the baseline and prints
    the medians, every round and the ratio; its exit status is its printed verdict."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            str(repo / "bench" / "bench_status.py"),
            "--units",
            "60",
            "--messages",
            "600",
            "--rounds",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    assert "status --json at 60 units, 600 messages" in out, out + proc.stderr
    medians = [line for line in out.splitlines() if " median " in line]
    assert len(medians) == 2 and all(line.count(",") >= 3 for line in medians), out  # 3 rounds each
    verdict = [
        line for line in out.splitlines() if "x of the medians; per round" in line and "over 3 rounds" in line
    ]
    assert len(verdict) == 1, out
    assert "Traceback" not in proc.stderr, proc.stderr
    # speed is not judged here (bench/ does that): only that the exit status says what was printed
    assert proc.returncode == (0 if verdict[0].endswith(": OK") else 1), out + proc.stderr


def test_quick_road_loads_neither_click_nor_the_config_module(campaign, full_set):
    """The cached `status --json` must cost about Python's start-up plus one query."""
    import subprocess
    import sys

    send(campaign, files=full_set)
    campaign.ingest()
    campaign.status()  # computes and caches
    env = {**os.environ, "MAILROLL_CONFIG": str(campaign.config_path)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconcile", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=campaign.root,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["state"] == "complete"
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "reconcile.status_cache" in imported
    assert not imported & {"click", "ingest.config", "rich", "sqlite_utils", "openpyxl"}


# ------------------------------------------------------------------ which submission counts (review H11)

LINK_BODY = (
    "> 您好，视频较大，已用超大附件发送：\n> 科技周视频.mp4 (350M, 2022年7月5日 10:00 到期)\n"
    "> https://mail.163.com/large-attachment-download/index.html?p=X&file=%E7%A7%91%E6%8A%80%E5%91%A8"
    "%E8%A7%86%E9%A2%91.mp4\n"
)


def _links(campaign) -> int:
    with sqlite3.connect(campaign.db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM links").fetchone()[0]


def test_unfetched_link_never_displaces_a_video_file(campaign, media):
    # taiyuan: ok video first, later a reply carrying photos that quotes the big-attachment link
    send(campaign, files=attach(media.video(60)), when=BEFORE - timedelta(days=14))
    send(
        campaign,
        subject="Re: 补充活动照片",
        body="补充照片。\n" + LINK_BODY,
        files=attach(media.jpeg, names=["活动照片.jpg"]),
        when=BEFORE,
    )
    # sxu: the link first, the video file itself later
    send(campaign, from_=SXU, body=LINK_BODY, when=BEFORE)
    send(campaign, from_=SXU, files=attach(media.video(60)), when=BEFORE + timedelta(hours=2))
    # datong (163.com address registered): only the link
    send(campaign, from_="大同 <dtkjj2022@163.com>", body=LINK_BODY, when=BEFORE)
    campaign.ingest()
    assert _links(campaign) == 3
    rows = by_id(campaign.status())
    ty = rows["taiyuan-kjj"]["items"]["video"]
    assert (ty["state"], ty["submissions"], ty["reason"]) == ("ok", 1, None)
    assert "link" not in ty and ty["details"].startswith("1:00") and ty["filename"].endswith(".mp4")
    assert rows["sxu"]["items"]["video"]["state"] == "ok" and "link" not in rows["sxu"]["items"]["video"]
    dt = rows["datong-kjj"]["items"]["video"]
    assert dt["state"] == "invalid" and dt["reason"].startswith("sent as a download link (")
    assert dt["reason_zh"].startswith("以下载链接形式发送（") and dt["reason_zh"].endswith("尚未下载")


def test_later_unreadable_sheet_keeps_the_earlier_ok_one(campaign, tmp_path):
    scan = make_report_pdf(tmp_path / "scan.pdf", chars=300)
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "统计表.xlsx")), when=BEFORE - timedelta(days=2))
    send(campaign, subject="盖章版", files=attach(scan, names=["统计表（盖章扫描件）.pdf"]), when=BEFORE)
    # sxu: ok sheet, then a corrected sheet read fine but lacking a figure: that one replaces
    send(
        campaign,
        from_=SXU,
        files=attach(make_sheet_xlsx(tmp_path / "s1.xlsx", unit="山西大学")),
        when=BEFORE - timedelta(days=2),
    )
    send(
        campaign,
        from_=SXU,
        files=attach(
            make_sheet_xlsx(tmp_path / "s2.xlsx", unit="山西大学", omit=["线上活动"]),
            names=["统计表（更正）.xlsx"],
        ),
        when=BEFORE,
    )
    # jinzhong: only the unreadable file: it counts, invalid, with why
    send(campaign, from_="晋中 <jzkjj@sina.com>", files=attach(scan, names=["统计表（盖章扫描件）.pdf"]))
    campaign.ingest()
    rows = by_id(campaign.status())
    ty = rows["taiyuan-kjj"]["items"]["statistics"]
    assert (ty["state"], ty["filename"]) == ("ok", "统计表.xlsx")
    (warning,) = ty["warnings"]
    assert warning.startswith("a later file 统计表（盖章扫描件）.pdf (2022-06-20) could not be read: ")
    assert warning.endswith("; the earlier sheet still counts")
    assert ty["warnings_zh"][0].startswith("之后发送的文件统计表（盖章扫描件）.pdf（2022-06-20）未能读取：")
    sxu = rows["sxu"]["items"]["statistics"]
    assert (sxu["state"], sxu["filename"]) == ("invalid", "统计表（更正）.xlsx")
    jz = rows["jinzhong-kjj"]["items"]["statistics"]
    assert jz["state"] == "invalid" and jz["filename"] == "统计表（盖章扫描件）.pdf" and jz["reason"]
    assert campaign.run("stats", "--json").json["fields"]["活动总数"] == 12  # taiyuan's sheet still adds


def test_empty_and_unreadable_figures_are_told_apart(campaign, tmp_path):
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "blank.xlsx", figures={})))
    send(
        campaign,
        from_=SXU,
        files=attach(
            make_sheet_xlsx(
                tmp_path / "s.xlsx",
                unit="山西大学",
                figures={**DEFAULT_FIGURES, "科普展览": "无", "媒体报道": "很多"},
                omit=["线上活动"],
            )
        ),
    )
    campaign.ingest()
    rows = by_id(campaign.status())
    blank = rows["taiyuan-kjj"]["items"]["statistics"]
    assert blank["reason"].startswith("the sheet has no figures for 活动总数, 线上活动, 线下活动")
    assert blank["reason"].endswith("投入经费 (empty cells)") and "were found" not in blank["reason"]
    assert blank["reason_zh"].startswith("统计表未填写：活动总数、线上活动、线下活动")
    sxu = rows["sxu"]["items"]["statistics"]["reason"]
    assert sxu == (
        "the sheet lacks 线上活动; the sheet has no figures for 科普展览 ('无') (empty cells); "
        "媒体报道 is not a number: '很多'"
    )
    assert rows["sxu"]["items"]["statistics"]["reason_zh"] == (
        "统计表缺少：线上活动；统计表未填写：科普展览 ('无')（空白）；媒体报道不是数字：'很多'"
    )


def test_reasons_in_chinese(campaign, tmp_path, media):
    send(
        campaign,
        files=attach(
            make_sheet_xlsx(tmp_path / "统计表.xlsx", omit=["线上活动", "参与人数"]),
            make_report_docx(tmp_path / "总结报告.docx", chars=50),
            media.video(200),
        ),
    )
    campaign.ingest()
    items = campaign.status()[0]["items"]
    assert items["video"]["reason"] == "video lasts 3:20, over the 3:00 limit"  # English stays
    assert items["video"]["reason_zh"] == "视频时长3:20，超过3:00的限制"
    assert items["statistics"]["reason_zh"] == "统计表缺少：线上活动、参与人数"
    assert items["report"]["reason_zh"] == "总结报告（docx）只有50个字，至少需要200个字"
    campaign.run("reject", "taiyuan-kjj", "video", "--note", "画面与活动无关")
    video = campaign.status()[0]["items"]["video"]
    assert video["reason_zh"] == "工作人员认定不合格：画面与活动无关"
    assert video["checked"]["reason_zh"] == "视频时长3:20，超过3:00的限制"


def test_status_as_of_a_past_time(campaign, tmp_path, media):
    from reconcile.roster import load_roster
    from reconcile.status import unit_statuses
    from reconcile.status_cache import ensure_attributed

    send(campaign, files=attach(media.video(200)), when=BEFORE)
    send(campaign, files=attach(media.video(60)), when=AFTER)
    campaign.ingest()
    config = campaign.config()
    conn = sqlite3.connect(campaign.db_path, isolation_level=None)
    roster = load_roster(config.roster.path)
    ensure_attributed(conn, roster, config)
    now = by_id(unit_statuses(conn, roster, config))["taiyuan-kjj"]
    assert now["items"]["video"]["state"] == "ok" and now["late"]
    then = by_id(unit_statuses(conn, roster, config, as_of=BEFORE + timedelta(days=1)))["taiyuan-kjj"]
    assert then["items"]["video"]["state"] == "invalid" and not then["late"] and then["messages"] == 1
    before_all = by_id(unit_statuses(conn, roster, config, as_of=BEFORE - timedelta(seconds=1)))[
        "taiyuan-kjj"
    ]
    assert before_all["state"] == "missing" and before_all["last_arrival"] is None
    # the cache still holds the present
    assert by_id(campaign.status())["taiyuan-kjj"]["items"]["video"]["state"] == "ok"


def test_sheet_naming_another_unit_counts_for_that_unit_once(campaign, tmp_path):
    sxas_sheet = make_sheet_xlsx(tmp_path / "sxas.xlsx", unit="山西省科学院")
    send(campaign, files=attach(sxas_sheet, names=["统计表.xlsx"]))  # taiyuan forwards it
    send(campaign, from_="省科学院 <office@sxas.ac.cn>", files=attach(sxas_sheet, names=["统计表.xlsx"]))
    campaign.ingest()
    rows = by_id(campaign.status())
    st = rows["taiyuan-kjj"]["items"]["statistics"]
    assert st["state"] == "invalid" and st["sheet_unit"] == "sxas" and st["unit_cell"] == "山西省科学院"
    assert (
        st["reason"]
        == "the statistics sheet's 填报单位 is 山西省科学院 (sxas), not this unit (太原市科学技术局)"
    )
    assert st["reason_zh"].startswith("统计表的填报单位是山西省科学院，不是本单位")
    assert rows["sxas"]["items"]["statistics"]["state"] == "ok"
    data = campaign.run("stats", "--json").json
    assert data["units"] == 1 and data["fields"]["活动总数"] == 12  # 山西省科学院's figures once
    assert data["excluded"] == [
        {
            "unit": "taiyuan-kjj",
            "item": "statistics",
            "reason": st["reason"],
            "name": "太原市科学技术局",
            "reason_zh": st["reason_zh"],
        }
    ]
    # staff accept it for taiyuan: it counts for taiyuan, but the figures are still added once
    campaign.run("accept", "taiyuan-kjj", "statistics", "--note", "代报")
    st = campaign.unit("taiyuan-kjj")["items"]["statistics"]
    assert st["state"] == "ok" and st["checked"]["reason"].startswith("the statistics sheet's 填报单位")
    data = campaign.run("stats", "--json").json
    assert data["units"] == 1 and data["fields"]["活动总数"] == 12
    assert [(e["unit"], e["reason"]) for e in data["excluded"]] == [
        (
            "taiyuan-kjj",
            "the sheet holds the figures of 山西省科学院, which are counted once, from the sheet of 山西省科学院",
        )
    ]
    assert "the sheet holds the figures of 山西省科学院" in campaign.run("stats").output


def test_the_same_sheet_naming_no_unit_counted_twice_is_noted(campaign, tmp_path):
    sheet = make_sheet_xlsx(tmp_path / "blank.xlsx", unit=None)
    send(campaign, files=attach(sheet, names=["统计表.xlsx"]))
    send(campaign, from_="省科学院 <office@sxas.ac.cn>", files=attach(sheet, names=["统计表.xlsx"]))
    campaign.ingest()
    data = campaign.run("stats", "--json").json
    assert data["units"] == 2 and data["fields"]["活动总数"] == 24 and data["excluded"] == []
    assert [[u["id"] for u in d["units"]] for d in data["same_sheet"]] == [["taiyuan-kjj", "sxas"]]
    out = campaign.run("stats").output
    assert "the same sheet (one file) is counted for 太原市科学技术局 and 山西省科学院" in out


def test_accepted_sheet_with_missing_figures_is_noted_in_stats(campaign, tmp_path):
    send(campaign, files=attach(make_sheet_xlsx(tmp_path / "统计表.xlsx", omit=["投入经费"])))
    campaign.ingest()
    assert campaign.run("stats", "--json").json["units"] == 0
    campaign.run("accept", "taiyuan-kjj", "statistics", "--note", "经费另报")
    data = campaign.run("stats", "--json").json
    assert data["units"] == 1 and data["fields"]["活动总数"] == 12 and data["fields"]["投入经费"] == 0
    assert data["accepted_with_missing_figures"] == [
        {"id": "taiyuan-kjj", "name": "太原市科学技术局", "missing": ["投入经费"]}
    ]
    assert (
        "accepted by staff with figures missing: 太原市科学技术局 (投入经费)" in campaign.run("stats").output
    )


def test_unit_that_sent_only_a_question_or_photos_is_missing(campaign, media):
    """`missing`: no item received, whatever else the unit wrote (the summary's 未报送 counts it)."""
    send(campaign, subject="请问视频格式有什么要求", body="请问视频可以是mov格式吗？")
    send(campaign, from_=SXU, files=attach(media.jpeg, names=["活动照片.jpg"]))
    campaign.ingest()
    rows = by_id(campaign.status())
    assert rows["taiyuan-kjj"]["state"] == "missing" and rows["sxu"]["state"] == "missing"
    assert rows["taiyuan-kjj"]["messages"] == 1 and rows["sxu"]["messages"] == 1
    assert all(rows["sxu"]["items"][i]["state"] == "missing" for i in ("statistics", "report", "video"))
    missing = [r["id"] for r in campaign.status("--state", "missing")]
    assert len(missing) == 12 and {"taiyuan-kjj", "sxu"} <= set(missing)


def test_unknown_category_is_a_usage_error(campaign):
    campaign.ingest()
    res = campaign.run("status", "--category", "大学", expect=2)
    assert "no unit has the category 大学" in res.stderr and "高等院校" in res.stderr


def test_unreadable_files_get_a_chinese_reason_for_the_unit(campaign, media, tmp_path):
    """A fake video and a sheet sent as PDF: the Chinese reason says what to do, not English."""
    pdf = make_report_pdf(tmp_path / "统计表.pdf", chars=300)
    campaign.deliver(
        build_mail(
            attachments=[
                ("活动视频.mp4", media.fake_mp4.read_bytes()),
                ("科技活动周统计表.pdf", pdf.read_bytes()),
            ]
        ),
        when=datetime(2022, 6, 20, tzinfo=UTC),
    )
    campaign.run("ingest", "--once")
    unit = campaign.unit("taiyuan-kjj")
    video, sheet = unit["items"]["video"], unit["items"]["statistics"]
    assert video["state"] == "invalid" and video["reason_zh"] == "不是视频文件（内容不是已知的视频格式）"
    assert sheet["state"] == "invalid" and sheet["reason_zh"].startswith("统计表以PDF发送")


def test_error_zh_falls_back_to_the_english_detail():
    from reconcile.judge import error_zh

    assert error_zh("the sheet is password-protected") == "文件设有密码，无法打开：请去掉密码后重新发送"
    assert error_zh("something nobody foresaw") == "未能读取：something nobody foresaw"
