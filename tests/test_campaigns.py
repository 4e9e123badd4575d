"""Two overlapping campaigns in one real (Dovecot) mailbox, with real mail sent (aiosmtpd).

科技活动周 (kjz2022: sheet, report, video; the whole roster) and 全国科普日 (kpr2022: 活动总结 and
at least three photos; five units of the same roster). The same units write to the office about
both, reply to each campaign's reminders (once from a personal QQ mailbox), ask questions and
send project paperwork. Each campaign's status is its own; unrelated mail is ``other`` and gets
no receipt; a message that fits both waits in unmatched until staff say which.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from fixtures.files import make_png, make_report_docx, make_report_pdf, make_sheet_xlsx
from fixtures.mail import build_mail
from fixtures.two_campaigns import use_two_campaigns

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
SXU = "山西大学科技处 <kjc@sxu.edu.cn>"
JUNE_20 = datetime.fromisoformat("2022-06-20T10:00:00+08:00")
JUNE_24 = datetime.fromisoformat("2022-06-24T12:00:00+08:00")


def files(*named: tuple[str, Path]) -> list[tuple[str, bytes]]:
    return [(n, Path(p).read_bytes()) for n, p in named]


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


@pytest.fixture
def two(imap_campaign, smtp_server, tmp_path):
    c = imap_campaign
    c.configure(smtp=smtp_server.config())
    use_two_campaigns(c)
    c.smtp = smtp_server
    c.pngs = [make_png(tmp_path / f"p{n}.png", width=400 + n, height=300) for n in range(4)]
    return c


def deliver(c, msg, when=JUNE_20) -> str:
    c.dovecot.append(c.imap_user, msg.as_bytes(), internaldate=when)
    return msg["Message-ID"].strip("<>")


def status(c, campaign: str) -> dict[str, dict]:
    return by_id(c.run("--campaign", campaign, "status", "--json").json)


def test_two_overlapping_campaigns_in_one_mailbox(two, tmp_path, media):
    c = two
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx")
    report = make_report_docx(tmp_path / "总结报告.docx", chars=800)
    summary = make_report_docx(tmp_path / "活动总结.docx", chars=600)
    # 太原: Science Week material (keyword in the subject) ...
    deliver(
        c,
        build_mail(
            TY,
            subject="太原市科技活动周材料",
            attachments=files(
                ("统计表.xlsx", sheet), ("总结报告.docx", report), ("视频.mp4", media.video(60))
            ),
        ),
    )
    # ... and 科普日 material without a keyword: only 科普日 asks for photos and a 活动总结
    deliver(
        c,
        build_mail(
            TY,
            subject="太原市报送材料",
            attachments=files(
                ("活动总结.docx", summary), *((f"{n}.png", p) for n, p in enumerate(c.pngs[:3]))
            ),
        ),
    )
    # unrelated mail from registered units: a question, project paperwork
    question = deliver(c, build_mail(DT, subject="请问下周的培训会在哪里开", body="请问地点在哪里？谢谢"))
    paperwork = deliver(
        c,
        build_mail(
            SXU,
            subject="重点研发项目合同",
            attachments=files(("项目合同.pdf", make_report_pdf(tmp_path / "合同.pdf", text="合同" * 200))),
        ),
    )
    # a report that either campaign could want
    ambiguous = deliver(
        c,
        build_mail(
            DT,
            subject="大同市材料",
            attachments=files(("工作总结.docx", make_report_docx(tmp_path / "w.docx"))),
        ),
    )
    counts = c.run("ingest", "--once", "--json").json
    assert counts == {
        "seen": 5,
        "new": 5,
        "attributed": 2,
        "unmatched": 1,
        "duplicate": 0,
        "failed": 0,
        "other": 2,
    }

    kjz, kpr = status(c, "kjz2022"), status(c, "kpr2022")
    assert kjz["taiyuan-kjj"]["state"] == "complete" and list(kjz["taiyuan-kjj"]["items"]) == [
        "statistics",
        "report",
        "video",
    ]
    assert kpr["taiyuan-kjj"]["state"] == "complete" and list(kpr["taiyuan-kjj"]["items"]) == [
        "report",
        "photos",
    ]
    assert kpr["taiyuan-kjj"]["items"]["report"]["filename"] == "活动总结.docx"
    assert len(kpr) == 5 and len(kjz) == 12, "each campaign its own roster"
    # the question and the paperwork count nowhere: 大同 and 山西大学 are still 'missing'
    assert kjz["datong-kjj"]["state"] == "missing" and kjz["sxu"]["state"] == "missing"
    assert kpr["datong-kjj"]["state"] == "missing"

    messages = {m["message_id"]: m for m in c.run("messages", "--json").json}
    for mid in (question, paperwork):
        assert messages[mid]["disposition"] == "other" and messages[mid]["campaign"] is None
        assert messages[mid]["unit"] is None
    others = c.run("messages", "--disposition", "other", "--json").json
    assert {m["message_id"] for m in others} == {question, paperwork}
    assert messages[ambiguous]["disposition"] == "unmatched" and messages[ambiguous]["campaign"] is None
    assert "fits several campaigns equally" in messages[ambiguous]["reason"]
    assert "kjz2022" in messages[ambiguous]["reason"] and "kpr2022" in messages[ambiguous]["reason"]
    assert [m["message_id"] for m in c.run("unmatched", "--json").json] == [ambiguous]
    assert {m["campaign"] for m in messages.values() if m["disposition"] == "attributed"} == {
        "kjz2022",
        "kpr2022",
    }

    # receipts: each campaign answers its own messages; unrelated mail gets none
    for campaign in ("kjz2022", "kpr2022"):
        c.run("--campaign", campaign, "receipts", "--now", "2022-06-20T10:30:00+08:00")
    receipts = c.smtp.wait_for(2)
    assert sorted(r["Subject"] for r in receipts) == [
        "回执：2022年全国科普日材料",
        "回执：2022年山西省科技活动周材料",
    ]
    kpr_receipt = next(r for r in receipts if r["Subject"] == "回执：2022年全国科普日材料")
    assert "全国科普日" in kpr_receipt.text and "活动照片：已收到，合格" in kpr_receipt.text
    assert "科技活动周" not in kpr_receipt.text
    answered = {r["In-Reply-To"].strip("<>") for r in receipts}
    assert question not in answered and paperwork not in answered and ambiguous not in answered

    # staff settle the ambiguous one
    c.run("assign", ambiguous, "datong-kjj", "--campaign", "kpr2022")  # the option after the command too
    kpr = status(c, "kpr2022")
    assert kpr["datong-kjj"]["items"]["report"]["state"] == "ok"
    assert kpr["datong-kjj"]["items"]["photos"]["state"] == "missing"
    assert status(c, "kjz2022")["datong-kjj"]["state"] == "missing", "not Science Week's"
    assert c.run("unmatched", "--json").json == []

    # reminders: 大同 is in both campaigns and gets two, each about its own campaign
    c.smtp.clear()
    for campaign in ("kjz2022", "kpr2022"):
        c.run("--campaign", campaign, "remind", "--now", "2022-06-24T10:00:00+08:00")
    reminders = c.smtp.messages
    to_datong = [r for r in reminders if r.rcpt_tos == ["dtkjj2022@163.com"]]
    assert len(to_datong) == 2
    kjz_reminder = next(r for r in to_datong if "科技活动周" in r["Subject"])
    kpr_reminder = next(r for r in to_datong if "科普日" in r["Subject"])
    assert "影像资料" in kjz_reminder.text and "活动照片" not in kjz_reminder.text
    assert "活动照片" in kpr_reminder.text and "统计表" not in kpr_reminder.text
    assert len(reminders) == 11 + 4, "12 units less 太原 for kjz; 5 less 太原 for kpr"

    # replies in each thread: photos to 科普日's reminder, a video to Science Week's from a
    # personal QQ mailbox (no unit name anywhere: the thread says who it is)
    deliver(
        c,
        build_mail(
            DT,
            subject="Re: " + kpr_reminder["Subject"],
            attachments=files(*((f"{n}.jpg", p) for n, p in enumerate(c.pngs[1:]))),
            headers={"In-Reply-To": kpr_reminder["Message-ID"], "References": kpr_reminder["Message-ID"]},
        ),
        when=JUNE_24,
    )
    reply = deliver(
        c,
        build_mail(
            "小王 <12345678@qq.com>",
            subject="回复：材料",
            attachments=files(("视频.mp4", media.video(60))),
            headers={"In-Reply-To": kjz_reminder["Message-ID"], "References": kjz_reminder["Message-ID"]},
        ),
        when=JUNE_24,
    )
    c.run("ingest", "--once")
    kjz, kpr = status(c, "kjz2022"), status(c, "kpr2022")
    assert kpr["datong-kjj"]["state"] == "complete"
    assert kjz["datong-kjj"]["items"]["video"]["state"] == "ok"
    assert kjz["datong-kjj"]["items"]["statistics"]["state"] == "missing"
    assert "photos" not in kjz["datong-kjj"]["items"]
    qq = next(m for m in c.run("messages", "--json").json if m["message_id"] == reply)
    assert qq["unit"] == "datong-kjj" and qq["campaign"] == "kjz2022" and qq["method"] == "thread"

    # `status --json` from the status cache (the quick road of the console command) is each
    # campaign's own
    for campaign in ("kjz2022", "kpr2022"):
        computed = c.run("--campaign", campaign, "status", "--json").json
        assert c.run_process("--campaign", campaign, "status", "--json").json == computed
        assert c.run_process("status", "--json", env={"MAILROLL_CAMPAIGN": campaign}).json == computed
    assert c.run_process("status", "--json", expect=2).exit_code == 2

    # the workbook and the stats of a campaign without a statistics sheet
    book = tmp_path / "kpr.xlsx"
    c.run("--campaign", "kpr2022", "report", "--xlsx", str(book))
    import openpyxl

    header = [cell.value for cell in openpyxl.load_workbook(book)["单位情况"][1]]
    assert "活动照片" in header and "活动总结" in header and "统计表" not in header
    assert c.run("--campaign", "kpr2022", "stats", "--json").json["units"] == 0

    # the campaigns at a glance
    listed = c.run("campaigns", "--now", "2022-06-24T12:00:00+08:00", "--json").json
    assert [(x["id"], x["open"]) for x in listed] == [("kjz2022", True), ("kpr2022", True)]
    assert listed[0]["units"] == {"complete": 1, "incomplete": 1, "missing": 10, "exempt": 0}
    assert listed[1]["units"] == {"complete": 2, "incomplete": 0, "missing": 3, "exempt": 0}
    assert listed[0]["deadline"] == "2022-06-25T23:59:59+08:00" and listed[1]["name"] == "2022年全国科普日"
    closed = c.run("campaigns", "--now", "2022-08-01T00:00:00+08:00", "--json").json
    assert [x["open"] for x in closed] == [False, False], "closes defaults to 30 days after the deadline"


def test_with_several_campaigns_commands_that_need_one_say_which(two):
    c = two
    for args in (["status"], ["show", "taiyuan-kjj"], ["stats"], ["remind", "--dry-run"], ["roster", "list"]):
        res = c.run(*args, expect=2)
        assert "--campaign" in res.stderr and "kjz2022, kpr2022" in res.stderr, args
    res = c.run("--campaign", "nosuch", "status", expect=2)
    assert "nosuch" in res.stderr and "kjz2022" in res.stderr
    # the environment variable does what --campaign does
    import os

    os.environ["MAILROLL_CAMPAIGN"] = "kpr2022"
    try:
        rows = c.run("status", "--json").json
    finally:
        del os.environ["MAILROLL_CAMPAIGN"]
    assert len(rows) == 5 and set(rows[0]["items"]) == {"report", "photos"}
    # commands about every campaign need none
    assert c.run("messages", "--json").json == []
    assert [x["id"] for x in c.run("campaigns", "--json").json] == ["kjz2022", "kpr2022"]


def test_serve_polls_once_for_all_and_mails_each_campaign(two, tmp_path, media):
    """One daemon: each campaign's receipts and reminders; a unit on both rosters gets two
    reminders, each about its own campaign; mail for no campaign is not answered."""
    from test_service import log_of, serving, stop

    c = two
    c.configure(service={"poll_every_s": 300, "remind_every_s": 1})
    sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx")
    report = make_report_docx(tmp_path / "总结报告.docx", chars=800)
    at = datetime.fromisoformat("2022-06-24T09:00:00+08:00")
    deliver(
        c,
        build_mail(
            TY,
            subject="太原市科技活动周材料",
            attachments=files(
                ("统计表.xlsx", sheet), ("总结报告.docx", report), ("视频.mp4", media.video(60))
            ),
        ),
        when=at,
    )
    deliver(c, build_mail(DT, subject="请问下周的培训会在哪里开"), when=at)
    with serving(c, fake_now="2022-06-24T10:00:00+08:00") as proc:
        # 1 receipt; kjz: 11 units not complete; kpr: all 5
        mails = c.smtp.wait_for(1 + 11 + 5, timeout=60)
        time.sleep(1.0)  # nothing more comes
        assert len(c.smtp.messages) == 17, log_of(proc)
        assert stop(proc) == 0
    receipts = [m for m in mails if m["Subject"].startswith("回执：")]
    assert [m["Subject"] for m in receipts] == ["回执：2022年山西省科技活动周材料"]
    to_datong = sorted(m["Subject"] for m in mails if m.rcpt_tos == ["dtkjj2022@163.com"])
    assert len(to_datong) == 2 and "科技活动周" in to_datong[0] + to_datong[1]
    assert any("全国科普日" in s for s in to_datong)
    to_taiyuan = [m["Subject"] for m in mails if "tykjj@taiyuan.gov.cn" in m.rcpt_tos]
    assert len(to_taiyuan) == 2 and any("全国科普日" in s for s in to_taiyuan), "receipt + kpr reminder"


def test_a_rejected_message_is_listed_and_revocable_in_every_campaign(two, tmp_path):
    """``reject MESSAGE`` makes a message count for nothing in any campaign: so each campaign's
    ``overrides`` (and the web's unit and review pages, which read the same list) shows it and can
    revoke it, whichever campaign it was rejected under."""
    c = two
    deliver(
        c,
        build_mail(
            TY,
            subject="科技活动周材料",
            attachments=files(("总结报告.pdf", make_report_pdf(tmp_path / "r.pdf"))),
        ),
    )
    c.run("ingest", "--once")
    done = c.run("--campaign", "kjz2022", "reject", "1", "--note", "冒名", "--json").json
    for cid in ("kjz2022", "kpr2022"):
        listed = c.run("--campaign", cid, "show", "taiyuan-kjj", "--json").json["overrides"]
        assert [(o["id"], o["revoked_at"]) for o in listed] == [(done["override"], None)], cid
    c.run("--campaign", "kpr2022", "revoke", str(done["override"]))
    listed = c.run("--campaign", "kjz2022", "show", "taiyuan-kjj", "--json").json["overrides"]
    assert [o["revoked_at"] is not None for o in listed] == [True]
