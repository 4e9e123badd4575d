"""Sender trust: who may speak for a unit (docs/RECONCILE.md "Sender trust").

End to end on a real Dovecot: messages are APPENDed with the Authentication-Results headers a
receiving server (and a forger) would write, ingested over IMAP, then `status`, `messages`,
`review`, `show`, `assign` and `reject` are asked. The RFC 8601 reading itself is checked on
header values as 126.com, QQ Mail and Gmail write them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fixtures.files import make_report_docx
from fixtures.mail import build_mail
from test_receipts import awake_now

from reconcile import authresults

DAY1 = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
STRANGER = "热心人 <prankster@qq.com>"
MX_FAIL = (
    "mx.126.com; spf=fail (126.com: domain of taiyuan.gov.cn does not designate 203.0.113.9 as "
    "permitted sender) smtp.mailfrom=tykjj@taiyuan.gov.cn; dkim=none; dmarc=fail (p=none dis=none) "
    "header.from=taiyuan.gov.cn"
)
MX_PASS = (
    "mx.126.com; dkim=pass header.i=@taiyuan.gov.cn; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn; "
    "dmarc=pass header.from=taiyuan.gov.cn"
)
SENDER_WRITTEN_PASS = "mx.taiyuan.gov.cn; spf=pass smtp.mailfrom=taiyuan.gov.cn; dkim=pass; dmarc=pass"
SENDER_WRITTEN_FAIL = "mx.taiyuan.gov.cn; spf=fail smtp.mailfrom=taiyuan.gov.cn; dmarc=fail"


# ------------------------------------------------------------------ reading Authentication-Results


def test_only_the_topmost_header_is_the_receiving_servers_word():
    # the receiving server prepends its header; anything below was written before it got the mail
    v = authresults.verdict([MX_FAIL, SENDER_WRITTEN_PASS], "tykjj@taiyuan.gov.cn")
    assert v.failures == ["spf=fail", "dmarc=fail"] and v.checked_by == ["mx.126.com"]
    v = authresults.verdict([MX_PASS, SENDER_WRITTEN_FAIL], "tykjj@taiyuan.gov.cn")
    assert not v.failed and v.checked_by == ["mx.126.com"]
    assert not authresults.verdict([], "tykjj@taiyuan.gov.cn").failed


def test_listed_authserv_ids_are_believed_wherever_they_stand():
    relay = "relay.example.net; spf=pass smtp.mailfrom=taiyuan.gov.cn"
    v = authresults.verdict([relay, MX_FAIL], "tykjj@taiyuan.gov.cn", ["mx.126.com"])
    assert v.failures == ["spf=fail", "dmarc=fail"]
    # a forger's header naming another server is not believed even when it is on top
    v = authresults.verdict([SENDER_WRITTEN_FAIL, MX_PASS], "tykjj@taiyuan.gov.cn", ["MX.126.com"])
    assert not v.failed and v.checked_by == ["mx.126.com"]


def test_failures_about_other_domains_or_with_a_passing_signature_do_not_count():
    frm = "kjc@sxu.edu.cn"
    # SPF of a mailing service's envelope domain, DKIM of a third party: not about the From
    assert not authresults.verdict(["mx.126.com; spf=fail smtp.mailfrom=bounce.esp.example"], frm).failed
    assert not authresults.verdict(["mx.126.com; dkim=fail header.d=esp.example"], frm).failed
    # a broken second signature next to a good one is no failure
    v = authresults.verdict(
        ["mx.126.com; dkim=pass header.d=sxu.edu.cn; dkim=fail header.d=sxu.edu.cn"],
        frm,
    )
    assert not v.failed
    assert authresults.verdict(["mx.126.com; dkim=fail header.d=mail.sxu.edu.cn"], frm).failed is False
    assert authresults.verdict(["mx.126.com; dkim=fail header.i=@sxu.edu.cn"], frm).failures == ["dkim=fail"]
    for soft in ("softfail", "neutral", "none", "temperror", "permerror"):
        assert not authresults.verdict([f"mx.126.com; spf={soft} smtp.mailfrom=sxu.edu.cn"], frm).failed


def test_comments_quotes_versions_and_garbage_are_read_without_failing():
    h = authresults.parse(
        'mx.126.com 1 (version 1); dmarc/1=fail (p=reject; "quoted; semicolon") reason="a; b" '
        "header.from=sxu.edu.cn; none"
    )
    assert h is not None and h.authserv_id == "mx.126.com"
    assert [str(r) for r in h.results] == ["dmarc=fail"]
    assert h.results[0].properties["header.from"] == "sxu.edu.cn"
    for garbage in (
        "",
        "   ",
        ";;;",
        "((((((",
        "mx; ====",
        "mx; spf=" + "(" * 100_000,
        "\x00\u2028",
    ):
        parsed = authresults.parse(garbage)
        assert parsed is None or all(str(r) != "spf=fail" for r in parsed.results)
    # a header no one can read is no verdict: neither a pass nor a failure
    assert not authresults.verdict(["((((", MX_FAIL], "tykjj@taiyuan.gov.cn").failed


# ------------------------------------------------------------------ end to end on Dovecot


def with_auth_results(msg, *values: str) -> bytes:
    """The message as the receiving server stores it: its Authentication-Results on top."""
    return b"".join(f"Authentication-Results: {v}\r\n".encode() for v in values) + msg.as_bytes()


@pytest.fixture
def reports(tmp_path):
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    blank = make_report_docx(tmp_path / "blank.docx", chars=20).read_bytes()
    return good, blank


def deliver(campaign, from_, subject, files=(), when=DAY1, auth=(), **headers: str):
    extra = {k.replace("_", "-").title(): v for k, v in headers.items()}
    msg = build_mail(from_, subject=subject, attachments=list(files), headers=extra)
    raw = with_auth_results(msg, *auth) if auth else msg.as_bytes()
    campaign.dovecot.append(campaign.imap_user, raw, internaldate=when)


def ingest(campaign) -> dict:
    return campaign.run("ingest", "--once", "--json").json


def unit_row(campaign, unit: str) -> dict:
    return next(r for r in campaign.run("status", "--json").json if r["id"] == unit)


def test_a_stranger_naming_a_unit_cannot_replace_its_counted_item(imap_campaign, reports):
    campaign = imap_campaign
    good, blank = reports
    deliver(campaign, TY, "太原市科技局科技活动周材料", [("总结报告.docx", good)], DAY1, auth=[MX_PASS])
    deliver(campaign, STRANGER, "太原市科学技术局 总结报告（更正）", [("总结报告.docx", blank)], DAY2)
    assert ingest(campaign)["attributed"] == 2

    report = unit_row(campaign, "taiyuan-kjj")["items"]["report"]
    assert (report["state"], report["trust"]) == ("ok", "registered")
    msgs = {m["from"]: m for m in campaign.run("messages", "--json").json}
    assert msgs["prankster@qq.com"]["unit"] == "taiyuan-kjj"
    assert msgs["prankster@qq.com"]["trust"] == "named"
    assert msgs["tykjj@taiyuan.gov.cn"]["trust"] == "registered"

    review = campaign.run("review", "--json").json
    assert [(r["unit"], r["from"]) for r in review] == [("taiyuan-kjj", "prankster@qq.com")]
    assert set(review[0]) >= {"message_id", "from", "subject", "reason", "unit"}
    human = campaign.run("status").output
    assert "1 message(s) pending review" in human and "prankster@qq.com" in human
    show = campaign.run("show", "taiyuan-kjj").output
    assert "pending review" in show and "sender trust: named" in show

    # staff decide: assigned, the stranger's (later, blank) report counts, as a staff decision
    stranger_id = str(review[0]["id"])
    campaign.run("assign", stranger_id, "taiyuan-kjj", "--note", "王丽 phoned: sent it for us")
    report = unit_row(campaign, "taiyuan-kjj")["items"]["report"]
    assert (report["state"], report["trust"]) == ("invalid", "staff")
    assert campaign.run("review", "--json").json == []


def test_a_rejected_message_counts_for_nothing_and_leaves_review(imap_campaign, reports):
    campaign = imap_campaign
    good, blank = reports
    deliver(campaign, TY, "太原市科技局材料", [("总结报告.docx", good)], DAY1)
    deliver(campaign, STRANGER, "太原市科学技术局材料", [("总结报告.docx", blank)], DAY2)
    ingest(campaign)
    stranger = campaign.run("review", "--json").json[0]
    out = campaign.run("reject", str(stranger["id"]), "--note", "not from the unit", "--json").json
    assert out["unit"] == "taiyuan-kjj" and out["action"] == "reject"
    assert campaign.run("review", "--json").json == []
    assert unit_row(campaign, "taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    listed = {m["from"]: m for m in campaign.run("messages", "--json").json}
    assert listed["prankster@qq.com"]["reason"].startswith("rejected by staff")
    # an unknown message is a usage error that says how to reject an item instead
    res = campaign.run("reject", "no-such-message@x", "--note", "x", expect=2)
    assert "mailroll reject UNIT ITEM" in res.output + res.stderr


def test_a_named_sender_counts_while_no_trusted_one_does_unless_review_is_demanded(imap_campaign, reports):
    campaign = imap_campaign
    good, _ = reports
    deliver(campaign, STRANGER, "山西大学科技活动周总结", [("总结报告.docx", good)], DAY1)
    ingest(campaign)
    sxu = unit_row(campaign, "sxu")
    assert (sxu["items"]["report"]["state"], sxu["items"]["report"]["trust"]) == (
        "ok",
        "named",
    )
    assert sxu["pending_review"] == []

    campaign.configure(attribution={"named_senders": "review"})
    sxu = unit_row(campaign, "sxu")
    assert sxu["items"]["report"]["state"] == "missing" and sxu["items"]["report"]["trust"] is None
    assert [p["from"] for p in sxu["pending_review"]] == ["prankster@qq.com"]
    assert [r["unit"] for r in campaign.run("review", "--json").json] == ["sxu"]


def test_a_forged_registered_from_failed_by_the_receiving_server_is_named(
    imap_campaign, smtp_server, reports
):
    campaign = imap_campaign
    good, blank = reports
    deliver(campaign, TY, "太原市科技局材料", [("总结报告.docx", good)], DAY1, auth=[MX_PASS])
    # the forger adds a header of its own saying all passed; the receiving server's, on top, failed
    deliver(
        campaign,
        TY,
        "太原市科技局材料（更正）",
        [("总结报告.docx", blank)],
        DAY2,
        auth=[MX_FAIL, SENDER_WRITTEN_PASS],
    )
    ingest(campaign)
    report = unit_row(campaign, "taiyuan-kjj")["items"]["report"]
    assert (report["state"], report["trust"]) == ("ok", "registered")
    forged = [m for m in campaign.run("messages", "--json").json if "更正" in m["subject"]][0]
    assert forged["trust"] == "named"
    assert "mx.126.com recorded spf=fail, dmarc=fail" in forged["reason"]
    assert [r["id"] for r in campaign.run("review", "--json").json] == [forged["id"]]
    # the unit's roster addresses hear of it, and not as if the address were a stranger's
    campaign.configure(smtp=smtp_server.config())
    campaign.run("receipts", "--now", "2022-06-21T11:00:00+08:00", "--json")
    (warning,) = [m for m in smtp_server.wait_for(2) if "代为报送" in m.text]
    assert "以下材料由 tykjj@taiyuan.gov.cn 代为报送" in warning.text and "可能是他人冒用" in warning.text


def test_a_failure_written_below_by_the_sender_does_not_demote_a_registered_sender(imap_campaign, reports):
    campaign = imap_campaign
    good, _ = reports
    deliver(
        campaign, TY, "太原市科技局材料", [("总结报告.docx", good)], DAY1, auth=[MX_PASS, SENDER_WRITTEN_FAIL]
    )
    ingest(campaign)
    assert unit_row(campaign, "taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    # the office names its provider's server: a failure recorded by it counts wherever it is
    campaign.configure(attribution={"authserv_ids": ["mx.taiyuan.gov.cn"]})
    assert unit_row(campaign, "taiyuan-kjj")["items"]["report"]["trust"] == "named"


def test_own_domain_and_config_errors(imap_campaign, reports):
    campaign = imap_campaign
    good, _ = reports
    deliver(campaign, "张三 <zhangsan@sxu.edu.cn>", "材料", [("总结报告.docx", good)], DAY1)
    ingest(campaign)
    assert unit_row(campaign, "sxu")["items"]["report"]["trust"] == "domain"
    campaign.configure(attribution={"named_senders": "sometimes"})
    res = campaign.run("status", expect=2)
    assert "attribution.named_senders" in res.output + res.stderr


def test_rich_markup_in_a_subject_shows_literally(imap_campaign, monkeypatch, media):
    campaign = imap_campaign
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell is folded
    subject = "[/][link=https://evil.example]点这里[/link] [bold red]太原市科技局[/]"
    deliver(campaign, STRANGER, subject, [], DAY1)
    deliver(campaign, "x <x@example.org>", "[/] 咨询 [link=https://evil.example]x[/link]", [], DAY1)
    ingest(campaign)
    assert subject in campaign.run("messages").output
    assert "[/] 咨询 [link=https://evil.example]x[/link]" in campaign.run("unmatched").output
    # the named sender's markup in `status` (pending review) and `show` too
    sheet = media.sheet_xlsx.read_bytes()
    deliver(campaign, TY, "太原市科技局材料", [("统计表.xlsx", sheet)], DAY1)
    deliver(campaign, STRANGER, subject, [("统计表.xlsx", sheet)], DAY2)
    ingest(campaign)
    assert subject in campaign.run("status").output
    assert subject in campaign.run("show", "taiyuan-kjj").output


# ------------------------------------------------------------------ receipts (real Dovecot, real SMTP)


@pytest.fixture
def mailing(imap_campaign, smtp_server):
    imap_campaign.configure(smtp=smtp_server.config())
    return imap_campaign, smtp_server


def receipts(campaign, *extra: str) -> list[dict]:
    return campaign.run("receipts", "--now", awake_now(), "--json", *extra).json


def test_a_strangers_material_is_reported_to_the_units_roster_address_not_to_the_stranger(mailing, reports):
    campaign, server = mailing
    good, blank = reports
    now = datetime.now(UTC) - timedelta(minutes=30)
    deliver(campaign, TY, "太原市科技局材料", [("总结报告.docx", good)], now - timedelta(minutes=5))
    deliver(
        campaign,
        "热心人 <prankster@qq.com>",
        "太原市科学技术局 [紧急] 请点击 http://evil.example 领奖",
        [("总结报告\u202egpj.docx", blank)],
        now,
        reply_to="victim@example.org",
    )
    ingest(campaign)
    sent = receipts(campaign)
    assert [(r["unit"], r["to"], r["cc"]) for r in sent] == [
        ("taiyuan-kjj", ["tykjj@taiyuan.gov.cn"], []),
        ("taiyuan-kjj", ["tykjj@taiyuan.gov.cn", "kjjbgs@taiyuan.gov.cn"], []),
    ]
    mails = server.wait_for(2)
    everyone = {a for m in mails for a in m.rcpt_tos}
    assert everyone == {"tykjj@taiyuan.gov.cn", "kjjbgs@taiyuan.gov.cn"}, (
        "never the stranger, nor its Reply-To"
    )
    named = mails[1]
    assert named["Subject"] == "回执：2022年山西省科技活动周材料"
    assert "以下材料由 [qq.com] 的一个邮箱 代为报送" in named.text and "prankster" not in named.text
    assert "需经工作人员核实后才计入" in named.text, "it waits for review: the unit's own report counts"
    assert "evil.example" not in named.text and "领奖" not in named.text, "no text the stranger chose"
    assert "\u202e" not in named.text and "gpj" not in named.text, "a stranger's file name is not shown"
    assert "一个 .docx 文件，" in named.text, "but its kind and size"
    assert "总结报告：已收到（总结报告.docx），合格" in named.text, "the unit's own file counts"
    assert mails[0]["Subject"] == "回执：2022年山西省科技活动周材料"
    assert "代为报送" not in mails[0].text


def test_a_reply_to_our_receipt_from_another_address_is_thread_trusted(mailing, reports):
    campaign, server = mailing
    good, _ = reports
    now = datetime.now(UTC) - timedelta(minutes=30)
    deliver(campaign, "山西大学科技处 <kjc@sxu.edu.cn>", "材料", [("总结报告.docx", good)], now)
    ingest(campaign)
    receipts(campaign)
    ours = server.wait_for(1)[0]
    reply = build_mail(
        "李老师 <12345678@qq.com>",
        subject=f"Re: {ours['Subject']}",
        headers={"In-Reply-To": ours["Message-ID"], "References": ours["Message-ID"]},
        attachments=[("总结报告（修改稿）.docx", good)],
    )
    campaign.dovecot.append(campaign.imap_user, reply.as_bytes(), internaldate=now + timedelta(minutes=5))
    ingest(campaign)
    (msg,) = [m for m in campaign.run("messages", "--json").json if m["from"] == "12345678@qq.com"]
    assert (msg["unit"], msg["trust"]) == ("sxu", "thread")
    # its receipt goes to the roster address, naming the replying address
    sent = receipts(campaign)
    assert [(r["to"], r["cc"]) for r in sent] == [(["kjc@sxu.edu.cn"], [])]
    assert "以下材料由 [qq.com] 的一个邮箱 代为报送" in server.wait_for(2)[1].text


def test_receipts_for_strangers_mail_stop_at_the_hourly_limit_counting_every_recipient(mailing, reports):
    campaign, server = mailing
    good, _ = reports
    roster = campaign.root / "roster.csv"
    extra = "".join(f"u{i:02d},第{i:02d}试点单位,,office@u{i:02d}.gov.cn,试点,,\n" for i in range(1, 21))
    roster.write_text(roster.read_text("utf-8") + extra, "utf-8")
    campaign.configure(reminders={"receipts_per_hour": 12})
    bj = timezone(timedelta(hours=8))
    start = (datetime.now(bj) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    campaign.dovecot.append_many(
        campaign.imap_user,
        [
            build_mail(
                f"helper{i:02d}@qq.com",
                subject=f"第{i:02d}试点单位材料",
                attachments=[("总结报告.docx", good)],
            ).as_bytes()
            for i in range(1, 21)
        ],
        internaldate=start - timedelta(minutes=10),
    )
    assert ingest(campaign)["attributed"] == 20

    def run(at: datetime) -> list[dict]:
        return campaign.run("receipts", "--now", at.isoformat(), "--json").json

    assert len(run(start)) == 12, "20 receipts to 20 addresses: the hourly limit stops them at 12"
    assert run(start + timedelta(minutes=30)) == [], "still the same hour"
    assert len(run(start + timedelta(minutes=61))) == 8, "the rest go once the hour has passed"
    assert len({a for m in server.wait_for(20) for a in m.rcpt_tos}) == 20


def test_copies_count_for_the_per_address_guard(mailing, reports):
    campaign, server = mailing
    good, _ = reports
    campaign.configure(reminders={"receipts_per_day": 2})
    at = datetime.now(UTC) - timedelta(minutes=20)
    for person in ("zhang", "wang", "li"):  # three people of 山西大学's own domain
        deliver(campaign, f"{person}@sxu.edu.cn", "材料", [("总结报告.docx", good)], at)
    ingest(campaign)
    sent = receipts(campaign)
    assert [(r["to"], r["cc"]) for r in sent] == [
        (["zhang@sxu.edu.cn"], ["kjc@sxu.edu.cn"]),
        (["wang@sxu.edu.cn"], ["kjc@sxu.edu.cn"]),
    ], "kjc@sxu.edu.cn had its 2 receipts a day as a copy"


def test_a_from_with_a_line_separator_does_not_stop_the_batch(mailing, reports):
    campaign, server = mailing
    good, _ = reports
    at = datetime.now(UTC) - timedelta(minutes=20)
    bad = build_mail("x@sxu.edu.cn", subject="材料", attachments=[("总结报告.docx", good)]).as_bytes()
    bad = bad.replace(b"From: x@sxu.edu.cn", "From: 张三 <zhang\u2028san@sxu.edu.cn>".encode())
    campaign.dovecot.append(campaign.imap_user, bad, internaldate=at)
    deliver(campaign, "kjc@tyut.edu.cn", "太原理工材料", [("总结报告.docx", good)], at + timedelta(minutes=1))
    ingest(campaign)
    sent = receipts(campaign)
    assert ("tyut", ["kjc@tyut.edu.cn"], "sent") in [(r["unit"], r["to"], r["status"]) for r in sent]
    for r in sent:
        assert all("\u2028" not in a for a in r["to"] + r["cc"])
    assert any(m.rcpt_tos == ["kjc@tyut.edu.cn"] for m in server.wait_for(len(sent)))


def test_a_unit_without_roster_addresses_is_never_reminded_at_a_strangers_address(mailing, reports):
    campaign, server = mailing
    good, _ = reports
    roster = campaign.root / "roster.csv"
    roster.write_text(
        roster.read_text("utf-8") + "xinzhou-kjj,忻州市科学技术局,忻州市科技局,,市科技局,,\n", "utf-8"
    )
    deliver(campaign, STRANGER, "忻州市科技局总结", [("总结报告.docx", good)], DAY1)
    ingest(campaign)
    due = campaign.run("remind", "--dry-run", "--json", "--now", "2022-06-23T10:00:00+08:00").json
    assert "xinzhou-kjj" not in [r["unit"] for r in due], "its only sender is a stranger naming it"
    # once staff assign the message, its sender may be reminded
    (msg,) = [m for m in campaign.run("messages", "--json").json if m["unit"] == "xinzhou-kjj"]
    campaign.run("assign", str(msg["id"]), "xinzhou-kjj")
    due = campaign.run("remind", "--dry-run", "--json", "--now", "2022-06-23T10:00:00+08:00").json
    assert [r["to"] for r in due if r["unit"] == "xinzhou-kjj"] == [["prankster@qq.com"]]
