"""`mailroll notify`: the campaign's notice to every roster unit, once, and replies in its thread.

Real SMTP (aiosmtpd) for what is sent, a real Dovecot mailbox for the reply that comes back.
"""

from __future__ import annotations

import io
from datetime import datetime

import openpyxl
import pytest
from fixtures.files import make_report_docx, make_sheet_xlsx
from fixtures.mail import build_mail
from fixtures.two_campaigns import KJZ_TOML, use_two_campaigns


@pytest.fixture
def noticed(imap_campaign, smtp_server):
    c = imap_campaign
    (c.root / "notice.txt").write_text(
        "各有关单位：\n为做好2022年科技活动周总结工作，现将有关事项通知如下。\n", "utf-8"
    )
    c.configure(smtp=smtp_server.config())
    use_two_campaigns(c, kjz=KJZ_TOML.replace('opens = "2022', 'notice = "notice.txt"\nopens = "2022'))
    c.smtp = smtp_server
    return c


def test_notice_goes_once_per_unit_with_the_blank_form(noticed):
    c, server = noticed, noticed.smtp
    preview = c.run("--campaign", "kjz2022", "notify", "--dry-run", "--json").json
    assert len(preview) == 12 and server.messages == []
    # the server is busy for the first unit (太原, both tries): its notice is deferred, the others go
    server.fail_next(2, code=451)
    res = c.run_process("--campaign", "kjz2022", "notify", "--json", expect=1)
    assert len(server.messages) == 11 and "will be retried" in res.stderr
    assert [n["unit"] for n in res.json if n["status"] == "deferred"] == ["taiyuan-kjj"]
    first = {m.rcpt_tos[0]: m for m in server.messages}
    assert "tykjj@taiyuan.gov.cn" not in first
    ty = first["dtkjj2022@163.com"]
    assert ty["Subject"] == "关于报送2022年山西省科技活动周材料的通知（大同市科学技术局）"
    assert "为做好2022年科技活动周总结工作" in ty.text and "2022年6月25日 23:59" in ty.text
    assert "1. 统计表" in ty.text and "3. 影像资料（视频，时长不超过3分钟）" in ty.text
    assert ty["Auto-Submitted"] is None, "replies to the notice are wanted"
    (form,) = [p for p in ty.message.iter_attachments()]
    assert form.get_filename() == "2022年山西省科技活动周开展情况统计表.xlsx"
    ws = openpyxl.load_workbook(io.BytesIO(form.get_content())).active
    assert ws["A1"].value == "2022年山西省科技活动周开展情况统计表"
    assert len({m["Message-ID"] for m in server.messages}) == 11

    # a new process: only the deferred one goes; nobody gets the notice twice
    res = c.run_process("--campaign", "kjz2022", "notify", "--json")
    assert [(n["unit"], n["status"]) for n in res.json] == [("taiyuan-kjj", "sent")]
    assert len(server.messages) == 12
    assert server.messages[-1].rcpt_tos == ["tykjj@taiyuan.gov.cn", "kjjbgs@taiyuan.gov.cn"]
    assert len({m.rcpt_tos[0] for m in server.messages}) == 12
    assert c.run_process("--campaign", "kjz2022", "notify", "--json").json == []
    assert "Every unit has had the notice." in c.run("--campaign", "kjz2022", "notify").output
    assert len(server.messages) == 12
    # the other campaign's notice is its own (no sheet, so no form), to its own roster
    c.run("--campaign", "kpr2022", "notify")
    kpr = server.messages[12:]
    assert len(kpr) == 5 and all("全国科普日" in m["Subject"] for m in kpr)
    assert all(not list(m.message.iter_attachments()) for m in kpr)
    assert "2. 活动照片（照片，至少3张）" in kpr[0].text


def test_a_reply_to_the_notice_from_a_personal_mailbox_counts(noticed, tmp_path, media):
    c, server = noticed, noticed.smtp
    c.run("--campaign", "kjz2022", "notify")
    to_datong = next(m for m in server.messages if m.rcpt_tos == ["dtkjj2022@163.com"])
    reply = build_mail(
        "小李 <87654321@qq.com>",
        subject="回复：通知",
        attachments=[
            ("统计表.xlsx", make_sheet_xlsx(tmp_path / "s.xlsx", unit="大同市科学技术局").read_bytes()),
            ("总结.docx", make_report_docx(tmp_path / "r.docx").read_bytes()),
            ("视频.mp4", media.video(60).read_bytes()),
        ],
        headers={"In-Reply-To": to_datong["Message-ID"], "References": to_datong["Message-ID"]},
    )
    c.dovecot.append(
        c.imap_user, reply.as_bytes(), internaldate=datetime.fromisoformat("2022-06-20T10:00:00+08:00")
    )
    c.run("ingest", "--once")
    (m,) = c.run("messages", "--json").json
    assert (m["unit"], m["campaign"], m["method"]) == ("datong-kjj", "kjz2022", "thread")
    assert "notice" in m["scope"]
    rows = {r["id"]: r for r in c.run("--campaign", "kjz2022", "status", "--json").json}
    assert rows["datong-kjj"]["state"] == "complete"
    assert {r["id"]: r for r in c.run("--campaign", "kpr2022", "status", "--json").json}["datong-kjj"][
        "state"
    ] == "missing"
