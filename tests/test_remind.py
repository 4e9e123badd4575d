"""Reminders: the right units, at the right times, never twice, never at night."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

from fixtures.mail import build_mail

from ingest.db import open_connection
from reconcile.outgoing.reminders import due_stage, in_quiet_hours

BJ = timezone(timedelta(hours=8))
# Mail in these tests arrives before the first --now used (reminders judge the state as of --now)
EARLY = datetime(2022, 6, 20, 10, 0, tzinfo=BJ)

ALL_UNITS = [
    "taiyuan-kjj",
    "datong-kjj",
    "changzhi-kjj",
    "jinzhong-kjj",
    "yuncheng-kjj",
    "taiyuan-xcb",
    "taiyuan-kx",
    "changzhi-gxq",
    "zhuanxing",
    "sxu",
    "tyut",
    "sxas",
]


def remind(campaign, when: str, *extra: str, expect: int | None = 0) -> list[dict]:
    return campaign.run("remind", "--now", when, "--json", *extra, expect=expect).json


def outbox(campaign) -> list[tuple]:
    conn = open_connection(campaign.db_path)
    try:
        return conn.execute(
            "SELECT unit, stage, status FROM outbox WHERE kind = 'reminder' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def submit_complete(campaign, media, sender="王丽 <tykjj@taiyuan.gov.cn>", video_s=10, when=EARLY):
    campaign.deliver(
        build_mail(
            sender,
            attachments=[
                ("2022年科技活动周统计表.xlsx", media.sheet_xlsx.read_bytes()),
                ("科技活动周总结报告.docx", media.report_docx.read_bytes()),
                ("科技活动周视频.mp4", media.video(video_s).read_bytes()),
            ],
        ),
        when=when,
    )
    campaign.run("ingest", "--once")


# ------------------------------------------------------------------------------ time rules


def test_stages_follow_the_deadline(campaign):
    config = campaign.config()
    d = config.campaign.deadline  # 2022-06-25T23:59:59+08:00

    def at(delta):
        return d + delta

    assert due_stage(config, d, at(-timedelta(days=4))) is None
    assert due_stage(config, d, at(-timedelta(days=3))) == "before-3d"
    assert due_stage(config, d, at(-timedelta(days=1, seconds=1))) == "before-3d"
    assert due_stage(config, d, at(-timedelta(days=1))) == "before-1d"
    assert due_stage(config, d, at(timedelta(minutes=30))) is None, "grace after the deadline"
    assert due_stage(config, d, at(timedelta(hours=1))) == "after-1"
    assert due_stage(config, d, at(timedelta(days=2, hours=1))) == "after-2"
    assert due_stage(config, d, at(timedelta(days=30))) == "after-3", "after_max = 3"


def test_quiet_hours_span_midnight(campaign):
    config = campaign.config()
    tz = config.campaign.timezone
    assert in_quiet_hours(config, datetime(2022, 6, 24, 21, 0, tzinfo=tz))
    assert in_quiet_hours(config, datetime(2022, 6, 25, 7, 59, tzinfo=tz))
    assert not in_quiet_hours(config, datetime(2022, 6, 25, 8, 0, tzinfo=tz))
    assert not in_quiet_hours(config, datetime(2022, 6, 24, 20, 59, tzinfo=tz))
    # 22:00 in Shanghai is 14:00 UTC: the campaign's zone decides
    assert in_quiet_hours(config, datetime(2022, 6, 24, 14, 0, tzinfo=UTC))


# ------------------------------------------------------------------------------ the sequence


def test_each_stage_goes_once_to_every_incomplete_unit(mailing, media):
    campaign, server = mailing
    submit_complete(campaign, media)

    first = remind(campaign, "2022-06-23T10:00:00+08:00")
    assert [r["unit"] for r in first] == ALL_UNITS[1:], "the complete unit gets none"
    assert {r["stage"] for r in first} == {"before-3d"}
    datong = next(r for r in first if r["unit"] == "datong-kjj")
    assert datong == {
        "unit": "datong-kjj",
        "to": ["dtkjj2022@163.com"],
        "stage": "before-3d",
        "missing": ["statistics", "report", "video"],
        "invalid": [],
    }
    assert len(server.wait_for(11)) == 11
    assert server.to("tykjj@taiyuan.gov.cn") == []

    # again the same day, and a new process later: nothing more
    assert remind(campaign, "2022-06-23T10:05:00+08:00") == []
    assert remind(campaign, "2022-06-24T15:00:00+08:00") == []
    assert len(server.messages) == 11

    assert {r["stage"] for r in remind(campaign, "2022-06-25T09:00:00+08:00")} == {"before-1d"}
    assert remind(campaign, "2022-06-26T00:30:00+08:00") == [], "quiet hours"
    assert {r["stage"] for r in remind(campaign, "2022-06-26T08:00:00+08:00")} == {"after-1"}
    assert {r["stage"] for r in remind(campaign, "2022-06-28T10:00:00+08:00")} == {"after-2"}
    assert {r["stage"] for r in remind(campaign, "2022-06-30T10:00:00+08:00")} == {"after-3"}
    assert remind(campaign, "2022-07-05T10:00:00+08:00") == [], "after_max reached"

    assert len(server.messages) == 11 * 5
    for unit_mail in ("dtkjj2022@163.com", "office@sxas.ac.cn"):
        assert len(server.to(unit_mail)) == 5
    stages = [(u, s) for u, s, _ in outbox(campaign)]
    assert len(stages) == len(set(stages)) == 55


def test_only_the_latest_stage_is_sent_after_a_long_stop(mailing):
    campaign, server = mailing
    got = remind(campaign, "2022-06-28T10:00:00+08:00")
    assert {r["stage"] for r in got} == {"after-2"}
    assert len(server.wait_for(12)) == 12
    assert {s for _, s, _ in outbox(campaign)} == {"after-2"}
    assert remind(campaign, "2022-06-28T11:00:00+08:00") == []


def test_reminder_text_says_what_is_missing_and_how_to_fix(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail(
            "山西大学科技处 <kjc@sxu.edu.cn>",
            subject="山西大学科技活动周材料",
            attachments=[("山西大学视频.mp4", media.video(200).read_bytes())],
        ),
        when=EARLY,
    )
    campaign.deliver(
        build_mail(
            "kjc@tyut.edu.cn",
            subject="太原理工大学视频",
            body="视频太大，请从网盘下载：https://pan.baidu.com/s/1AbCdEfGhIjK 提取码: 8k3x",
        ),
        when=EARLY,
    )
    campaign.run("ingest", "--once")
    got = remind(campaign, "2022-06-26T09:00:00+08:00")
    sxu = next(r for r in got if r["unit"] == "sxu")
    assert sxu["missing"] == ["statistics", "report"] and sxu["invalid"] == ["video"]
    mail = server.to("kjc@sxu.edu.cn")[0]
    text = mail.text
    assert "山西大学" in mail["Subject"] and "催报" in mail["Subject"]
    assert "开展情况统计表" in text and "总结报告" in text
    assert "3:20" in text and "3:00" in text, "the video's reason, with the measured length"
    assert "视频时长3:20，超过3:00的限制" in text, "the reason is in Chinese, like the rest of the mail"
    assert "limit" not in text and "lasts" not in text
    assert "回复本邮件" in text and "3分钟" in text
    assert mail["Auto-Submitted"] == "auto-generated"
    # a video sent as a link that was not fetched: the reason is Chinese too
    tyut = next(r for r in got if r["unit"] == "tyut")
    assert tyut["invalid"] == ["video"], tyut
    link_text = server.to("kjc@tyut.edu.cn")[0].text
    assert "以下载链接形式发送" in link_text and "尚未下载" in link_text
    assert "download link" not in link_text and "not fetched" not in link_text


def test_exempt_and_complete_units_get_nothing_and_extend_moves_the_dates(mailing):
    campaign, server = mailing
    campaign.run("exempt", "sxas", "--note", "不参加本次活动")
    campaign.run("extend", "sxu", "--until", "2022-07-05T23:59:59+08:00", "--note", "假期")
    got = {r["unit"]: r["stage"] for r in remind(campaign, "2022-06-26T10:00:00+08:00")}
    assert "sxas" not in got
    assert "sxu" not in got, "sxu's own deadline is 7-5: 6-26 is before its before-3d"
    assert got["tyut"] == "after-1"
    got = {r["unit"]: r["stage"] for r in remind(campaign, "2022-07-03T10:00:00+08:00")}
    assert got["sxu"] == "before-3d" and got["tyut"] == "after-3" and "sxas" not in got
    assert server.to("office@sxas.ac.cn") == []


def test_quiet_hours_hold(mailing):
    campaign, server = mailing
    assert remind(campaign, "2022-06-22T22:30:00+08:00") == []
    out = campaign.run("remind", "--now", "2022-06-22T22:30:00+08:00").output
    assert "Quiet hours" in out
    assert server.messages == [] and outbox(campaign) == []


def test_dry_run_sends_and_records_nothing(mailing):
    campaign, server = mailing
    dry = remind(campaign, "2022-06-23T10:00:00+08:00", "--dry-run")
    assert len(dry) == 12
    assert server.messages == [] and outbox(campaign) == []
    assert remind(campaign, "2022-06-23T10:00:00+08:00") == dry


def test_smtp_outage_is_retried_next_run_without_duplicates(mailing):
    campaign, server = mailing
    server.stop()
    got = remind(campaign, "2022-06-23T10:00:00+08:00", expect=1)
    assert len(got) == 12
    assert {st for _, _, st in outbox(campaign)} == {"deferred"}
    server.start()
    got = remind(campaign, "2022-06-23T11:00:00+08:00")
    assert len(got) == 12
    assert len(server.wait_for(12)) == 12
    assert remind(campaign, "2022-06-23T12:00:00+08:00") == []
    assert len(server.messages) == 12
    assert {st for _, _, st in outbox(campaign)} == {"sent"}


def test_deferred_reminder_overtaken_by_the_next_stage_is_skipped(mailing):
    campaign, server = mailing
    server.stop()
    remind(campaign, "2022-06-23T10:00:00+08:00", expect=1)
    server.start()
    got = remind(campaign, "2022-06-25T10:00:00+08:00")
    assert {r["stage"] for r in got} == {"before-1d"}
    rows = outbox(campaign)
    assert {(s, st) for _, s, st in rows} == {("before-3d", "skipped"), ("before-1d", "sent")}
    assert len(server.wait_for(12)) == 12


def test_a_permanent_refusal_is_not_retried(mailing):
    campaign, server = mailing
    server.reject_recipient("kjc@sxu.edu.cn")
    got = remind(campaign, "2022-06-23T10:00:00+08:00", expect=1)
    assert len(got) == 12
    conn = open_connection(campaign.db_path)
    status, error = conn.execute("SELECT status, error FROM outbox WHERE unit = 'sxu'").fetchone()
    conn.close()
    assert status == "failed" and "550" in error and "kjc@sxu.edu.cn" in error
    assert remind(campaign, "2022-06-23T11:00:00+08:00") == []


def test_killed_between_smtp_and_recording_sends_nothing_again(mailing):
    """A `remind` process dies right after the server took a mail: that mail is never re-sent."""
    campaign, server = mailing
    server.hold()  # the server keeps the first mail and delays its "250 OK"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconcile",
            "--config",
            str(campaign.config_path),
            "remind",
            "--now",
            "2022-06-23T10:00:00+08:00",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = server.wait_for(1, timeout=60)[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    server.release()
    victim = first.rcpt_tos
    assert outbox(campaign)[0][2] == "sending"

    got = remind(campaign, "2022-06-23T10:01:00+08:00")
    units = [r["unit"] for r in got]
    assert len(units) == 11 and outbox(campaign)[0][2] == "unknown"
    assert len(server.to(victim[0])) == 1, "the mail the server already had is not sent again"
    assert len(server.messages) == 12
    assert remind(campaign, "2022-06-23T10:02:00+08:00") == []


# ------------------------------------------------------------------------------ --now and previews


def test_now_judges_the_state_at_that_time_not_todays(mailing, media):
    """A unit whose complete set arrived on 6-24 was still missing everything on 6-23."""
    campaign, server = mailing
    submit_complete(campaign, media, when=datetime(2022, 6, 24, 15, 0, tzinfo=BJ))
    preview = remind(campaign, "2022-06-23T10:00:00+08:00", "--dry-run")
    assert "taiyuan-kjj" in [r["unit"] for r in preview], "on 6-23 its mail had not arrived yet"
    tykjj = next(r for r in preview if r["unit"] == "taiyuan-kjj")
    assert tykjj["missing"] == ["statistics", "report", "video"]
    later = remind(campaign, "2022-06-25T09:00:00+08:00", "--dry-run")
    assert "taiyuan-kjj" not in [r["unit"] for r in later], "complete by then"
    # sending at 6-23 reminds it; the status command (today) still says complete
    remind(campaign, "2022-06-23T10:00:00+08:00")
    assert len(server.to("tykjj@taiyuan.gov.cn")) == 1
    status = {u["id"]: u for u in campaign.status()}
    assert status["taiyuan-kjj"]["state"] == "complete"


def test_now_takes_times_as_a_clerk_types_them(mailing, monkeypatch):
    campaign, server = mailing
    monkeypatch.setenv("MAILROLL_FAKE_NOW", "2022-06-20T10:00:00+08:00")  # a date without a year: this one's
    noon = campaign.run("remind", "--now", "2022-06-24T12:00:00+08:00", "--dry-run", "--json").json
    assert noon, "reminders are due that day"
    # a day alone is its noon (midnight would be in the quiet hours: nothing would show)
    for typed in ("2022-06-24", "6月24日", "2022年6月24日 12:00", "2022/6/24 12:00", "6月24日中午12点"):
        assert campaign.run("remind", "--now", typed, "--dry-run", "--json").json == noon, typed
    res = campaign.run("remind", "--now", "6月31日", "--dry-run", expect=2)
    assert "is not a time; write e.g." in res.stderr and "下周一" in res.stderr
    assert server.messages == [] and outbox(campaign) == []


def test_json_in_quiet_hours_says_why_nothing_is_due_on_stderr(mailing):
    campaign, server = mailing
    res = campaign.run("remind", "--now", "2022-06-24T00:00:00+08:00", "--json")
    assert res.json == []
    assert "quiet hours (21:00-08:00 Asia/Shanghai)" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = campaign.run("remind", "--now", "2022-06-24T09:00:00+08:00", "--json", "--dry-run")
    assert res.json and res.stderr.strip() == "", "no note when not quiet"


def test_dry_run_show_prints_each_mail_as_the_unit_gets_it(mailing, media):
    campaign, server = mailing
    campaign.deliver(
        build_mail(
            "山西大学科技处 <kjc@sxu.edu.cn>",
            attachments=[("山西大学视频.mp4", media.video(200).read_bytes())],
        ),
        when=EARLY,
    )
    campaign.run("ingest", "--once")
    out = campaign.run("remind", "--now", "2022-06-26T09:00:00+08:00", "--dry-run", "--show").output
    assert "To: kjc@sxu.edu.cn" in out
    assert "Subject: 【催报】" in out and "（山西大学）" in out
    assert "视频时长3:20，超过3:00的限制" in out, "the body, unwrapped"
    assert out.count("Subject: ") == 12
    assert server.messages == [] and outbox(campaign) == []
    shown = campaign.run("remind", "--now", "2022-06-26T09:00:00+08:00", "--dry-run", "--show", "--json").json
    sxu = next(r for r in shown if r["unit"] == "sxu")
    assert sxu["subject"].startswith("【催报】") and "超过3:00的限制" in sxu["body"]


def test_sending_without_smtp_says_what_to_set(campaign):
    res = campaign.run("remind", "--now", "2022-06-23T10:00:00+08:00", expect=2)
    text = res.output + res.stderr
    assert "smtp.host and smtp.from are not set" in text and "[smtp]" in text and "--dry-run" in text
    assert len(campaign.run("remind", "--now", "2022-06-23T10:00:00+08:00", "--dry-run", "--json").json) == 12
