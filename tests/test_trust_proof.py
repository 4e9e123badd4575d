"""Trust from proof: a roster From counts as `registered` (or its domain as `domain`) only with a
pass aligned with the From domain from the receiving server (docs/RECONCILE.md "Sender trust").

Each attack is the message as a forger sends it, with the Authentication-Results the receiving
server would write on top, delivered to a real Maildir and ingested (`ingest --once`); the effect
is checked where staff meet it: the unit's counted report in `status --json` keeps the real
submission, the forged message is `named` in `messages --json` with a reason saying what was
missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fixtures.files import make_report_docx
from fixtures.mail import build_mail

DAY1 = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
TY = "tykjj@taiyuan.gov.cn"
MX_PASS = (
    "mx.126.com; dkim=pass header.i=@taiyuan.gov.cn; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn; "
    "dmarc=pass header.from=taiyuan.gov.cn"
)
PLACEHOLDER = b"From: placeholder@mailroll.invalid"
# the receiving server's own receipt line, under the results it wrote
TOP = ["authentication-results", "received:mx.126.com"]  # auth_order: the header above the own line
OWN_RECEIVED = (
    b"Received: from relay.example (relay.example [192.0.2.1]) by mx.126.com with ESMTP; 21 Jun 2022\n"
)


@pytest.fixture
def proving(campaign, tmp_path):
    """A campaign on a mailbox whose server writes Authentication-Results (the default), with the
    unit's real, good report already counted; returns (campaign, blank report bytes)."""
    campaign.configure(attribution={"authentication": "required"})
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    blank = make_report_docx(tmp_path / "blank.docx", chars=20).read_bytes()
    deliver(campaign, f"太原市科学技术局 <{TY}>", good, MX_PASS, when=DAY1, subject="太原市科技局材料")
    return campaign, blank


def deliver(
    campaign, from_line, report: bytes, *auth: str, when=DAY2, subject="太原市科技局材料（更正）", **headers
):
    """One message with ``auth`` on top as Authentication-Results; ``from_line`` is the raw From
    header value (None: no From header at all), put in as written."""
    extra = {k.replace("_", "-").title(): v for k, v in headers.items()}
    msg = build_mail(
        "placeholder@mailroll.invalid",
        subject=subject,
        attachments=[("总结报告.docx", report)],
        headers=extra,
    )
    raw = msg.as_bytes()
    if from_line is None:
        raw = raw.replace(PLACEHOLDER + b"\n", b"")
    else:
        raw = raw.replace(PLACEHOLDER, b"From: " + from_line.encode())
    raw = b"".join(f"Authentication-Results: {v}\n".encode() for v in auth) + OWN_RECEIVED + raw
    campaign.deliver(raw, when=when)


def forged(campaign) -> dict:
    """The forged message's `messages --json` row; the real submission's report still counts."""
    campaign.ingest()
    report = campaign.unit("taiyuan-kjj")["items"]["report"]
    assert (report["state"], report["trust"]) == ("ok", "registered"), "the real submission keeps counting"
    (msg,) = [m for m in campaign.run("messages", "--json").json if "更正" in (m["subject"] or "")]
    return msg


def test_a_sender_header_with_a_roster_address_never_stands_in_for_a_missing_from(proving):
    campaign, blank = proving
    ar = "mx.126.com; spf=pass smtp.mailfrom=attacker.example; dmarc=none"
    deliver(campaign, "undisclosed-recipients:;", blank, ar, sender=TY)
    deliver(campaign, None, blank, ar, when=DAY2 + timedelta(hours=1), sender=TY)
    campaign.ingest()
    report = campaign.unit("taiyuan-kjj")["items"]["report"]
    assert (report["state"], report["trust"]) == ("ok", "registered")
    rows = [m for m in campaign.run("messages", "--json").json if "更正" in (m["subject"] or "")]
    assert len(rows) == 2
    for m in rows:
        assert m["from"] is None and m["trust"] in ("named", None)
        assert "is registered" not in (m["reason"] or "")


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param((), id="no-authentication-results"),
        pytest.param(
            ("mx.126.com; spf=none smtp.mailfrom=taiyuan.gov.cn; dkim=none; dmarc=none",), id="dmarc-none"
        ),
        pytest.param(
            ("mx.126.com; spf=neutral smtp.mailfrom=tykjj@taiyuan.gov.cn; dmarc=none",), id="neutral"
        ),
        pytest.param(
            ("mx.126.com; spf=pass smtp.mailfrom=attacker.example; dmarc=none",), id="pass-for-another-domain"
        ),
        pytest.param(
            (
                "mx.taiyuan.gov.cn; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn; dmarc=pass header.from=taiyuan.gov.cn",
            ),
            id="pass-below-the-servers-header",
        ),
    ],
)
def test_a_forged_roster_from_without_proof_is_only_named(proving, auth):
    campaign, blank = proving
    if auth and auth[0].startswith("mx.taiyuan"):  # the forger's own header below the server's
        auth = ("mx.126.com; none", *auth)
    deliver(campaign, f"太原市科学技术局 <{TY}>", blank, *auth)
    msg = forged(campaign)
    assert msg["trust"] == "named"
    assert "not believed without proof" in msg["reason"]
    assert ("no Authentication-Results" in msg["reason"]) == (not auth)
    assert [r["id"] for r in campaign.run("review", "--json").json] == [msg["id"]]


def test_anyone_in_a_units_domain_gets_domain_trust_only_with_proof(campaign, tmp_path):
    campaign.configure(attribution={"authentication": "required"})
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    deliver(campaign, "anyone@taiyuan.gov.cn", good, "mx.126.com; spf=none; dmarc=none", subject="材料")
    deliver(
        campaign,
        "张三 <zhangsan@sxu.edu.cn>",
        good,
        "mx.126.com; dkim=pass header.d=sxu.edu.cn; spf=softfail smtp.mailfrom=sxu.edu.cn",
        subject="材料",
    )
    campaign.ingest()
    trust = {m["from"]: m["trust"] for m in campaign.run("messages", "--json").json}
    assert trust == {"anyone@taiyuan.gov.cn": "named", "zhangsan@sxu.edu.cn": "domain"}


@pytest.mark.parametrize(
    "auth",
    [
        # 40 DKIM signatures the sender added, each passing for its own domain, push dmarc=fail far back
        pytest.param(
            "mx.126.com; "
            + "".join(
                f"dkim=pass header.d=s{i}.attacker.example header.s=k{i} header.b=abcdefgh; "
                for i in range(40)
            )
            + "spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn; dmarc=fail (p=none) header.from=taiyuan.gov.cn",
            id="long-header",
        ),
        # a value the sender chose, with an unbalanced '(': the rest is not a comment
        pytest.param(
            "mx.126.com; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn smtp.helo=evil(; "
            "dmarc=fail header.from=taiyuan.gov.cn",
            id="unbalanced-paren",
        ),
        pytest.param(
            'mx.126.com; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn smtp.helo=evil"; '
            "dmarc=fail header.from=taiyuan.gov.cn",
            id="unbalanced-quote",
        ),
        # the unit's signature failed; the attacker's own signature passed beside it
        pytest.param(
            "mx.126.com; dkim=pass header.d=attacker.example; dkim=fail header.d=taiyuan.gov.cn; "
            "spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn",
            id="dkim-fail-beside-anothers-pass",
        ),
    ],
)
def test_a_failure_the_receiving_server_recorded_is_never_lost(proving, auth):
    campaign, blank = proving
    deliver(campaign, f"太原市科学技术局 <{TY}>", blank, auth)
    msg = forged(campaign)
    assert msg["trust"] == "named"
    assert "not believed" in msg["reason"]
    assert ("fail" in msg["reason"]) or ("cannot be read" in msg["reason"])


def test_several_from_addresses_are_never_registered(proving):
    campaign, blank = proving
    ar = "mx.126.com; spf=pass smtp.mailfrom=attacker.example; dmarc=pass header.from=attacker.example"
    # two addresses in one From, and two From headers: the server judged the attacker's
    deliver(campaign, f"{TY}, boss@attacker.example", blank, ar)
    deliver(campaign, f"{TY}\nFrom: boss@attacker.example", blank, ar, when=DAY2 + timedelta(hours=1))
    campaign.ingest()
    report = campaign.unit("taiyuan-kjj")["items"]["report"]
    assert (report["state"], report["trust"]) == ("ok", "registered")
    rows = [m for m in campaign.run("messages", "--json").json if "更正" in (m["subject"] or "")]
    assert [m["trust"] for m in rows] == ["named", "named"]
    assert all("several From addresses" in m["reason"] for m in rows)


def test_received_spf_proves_where_the_server_writes_only_that(campaign, tmp_path):
    campaign.configure(attribution={"authentication": "received-spf"})
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    msg = build_mail(f"太原市科学技术局 <{TY}>", subject="材料", attachments=[("总结报告.docx", good)])
    spf = (
        "Received-SPF: pass (mail.example.net: domain of tykjj@taiyuan.gov.cn designates 192.0.2.1 as "
        'permitted sender) receiver=mail.example.net; client-ip=192.0.2.1; envelope-from="tykjj@taiyuan.gov.cn";\n'
        "Received: from mail.taiyuan.gov.cn (192.0.2.1) by mail.example.net\n"
    )
    campaign.deliver(spf.encode() + msg.as_bytes(), when=DAY1)
    campaign.ingest()
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    assert campaign.run("serve", "--check", "--json", expect=1).json["warnings"] == []
    # "required" means the server's Authentication-Results: none here, and the check says which
    # setting fits this server
    campaign.configure(attribution={"authentication": "required"})
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "named"
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert 'authentication = "received-spf"' in warning
    # with "received-spf", a message without one is said so
    campaign.configure(attribution={"authentication": "received-spf"})
    campaign.deliver(msg.as_bytes().replace(b"Message-ID: <", b"Message-ID: <x"), when=DAY2)
    campaign.ingest()
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert warning.startswith("1 of the last 2 messages carry no Received-SPF")


def test_not_available_trusts_roster_addresses_and_the_checks_warn_when_required(campaign, tmp_path):
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    deliver(campaign, f"太原市科学技术局 <{TY}>", good, when=DAY1, subject="材料")
    campaign.ingest()  # the test campaign is a local Maildir: "not-available"
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    assert campaign.run("roster", "check", "--json", expect=None).json["findings"] == []
    assert campaign.run("serve", "--check", "--json", expect=1).json["warnings"] == []

    campaign.configure(attribution={"authentication": "required"})
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "named"
    res = campaign.run("roster", "check", expect=1)
    assert "no-authentication-results" in res.output and 'authentication = "not-available"' in res.output
    warnings = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert len(warnings) == 1 and "Authentication-Results" in warnings[0]
    # a server that does write them, under a name the config does not list: the check names it
    deliver(campaign, f"太原市科学技术局 <{TY}>", good, MX_PASS, when=DAY2, subject="材料")
    campaign.ingest()
    # only some messages carry results: those may be their senders' own (the server adds none)
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert warning.startswith("1 of the last 2 messages") and "authserv_ids" in warning
    campaign.configure(attribution={"authserv_ids": ["mx.example.net"]})
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert "mx.126.com" in warning and "authserv_ids" in warning


# ------------------------------------------------------------------ reading: header values as servers write them


def test_real_servers_headers_prove_their_domain_and_nothing_else():
    from reconcile import authresults

    gmail = (
        "mx.google.com; dkim=pass header.i=@sxu.edu.cn header.s=20210112 header.b=Ab/+9x=; "
        "spf=pass (google.com: domain of kjc@sxu.edu.cn designates 202.207.0.1 as permitted sender) "
        "smtp.mailfrom=kjc@sxu.edu.cn; dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=sxu.edu.cn"
    )
    outlook = (
        "mx.outlook.example; spf=pass (sender IP is 202.207.0.1) smtp.mailfrom=sxu.edu.cn; "
        "dkim=pass (signature was verified) header.d=sxu.edu.cn;dmarc=pass action=none "
        "header.from=sxu.edu.cn;compauth=pass reason=100"
    )
    for value in (gmail, outlook):
        v = authresults.verdict([value], "kjc@sxu.edu.cn", order=TOP)
        assert sorted(v.passes) == ["dkim=pass", "dmarc=pass", "spf=pass"], value
        assert not authresults.verdict([value], "tykjj@taiyuan.gov.cn").proven
    # a quoted local part may hold anything, '(' and ';' included
    v = authresults.verdict(
        ['mx.126.com; spf=pass smtp.mailfrom="a(b;c"@taiyuan.gov.cn'], "tykjj@taiyuan.gov.cn", order=TOP
    )
    assert v.passes == ["spf=pass"]
    # a public suffix (gov.cn) or a sibling proves nothing
    frm = "tykjj@taiyuan.gov.cn"
    for value in (
        "mx.126.com; dkim=pass header.d=gov.cn",
        "mx.126.com; spf=pass smtp.mailfrom=x@gov.cn",
        "mx.126.com; spf=pass smtp.mailfrom=x@attacker.gov.cn",
        "mx.126.com; dmarc=pass header.from=gov.cn",
    ):
        assert not authresults.verdict([value], frm).proven, value
    # SPF alone proves the From domain itself only (strict alignment): not even a child
    assert not authresults.verdict(["mx.126.com; spf=pass smtp.mailfrom=x@bounce.taiyuan.gov.cn"], frm).proven
    assert authresults.verdict(["mx.126.com; spf=pass smtp.mailfrom=x@taiyuan.gov.cn"], frm, order=TOP).proven
    assert authresults.verdict(
        ["mx.126.com; dkim=pass header.d=taiyuan.gov.cn"], "a@mail.taiyuan.gov.cn", order=TOP
    ).proven
    # unreadable: never a proof, whatever passes sit in it; a header longer than the bound is cut
    for value in (
        "mx.126.com; dkim=pass header.d=taiyuan.gov.cn (x",
        "mx.126.com; spf=pass) smtp.mailfrom=x",
    ):
        v = authresults.verdict([value], frm)
        assert not v.proven and "cannot be read" in v.missing
    cut = "mx.126.com; dkim=pass header.d=taiyuan.gov.cn; " + "x=y; " * 10_000
    assert "cut off" in authresults.verdict([cut], frm).missing
    # recorded by an earlier mailroll, which cut every header at 2,000 characters without a sign
    legacy = ("mx.126.com; dkim=pass header.d=taiyuan.gov.cn; " + "x=y; " * 400)[:2000]
    assert "cut off" in authresults.verdict([legacy], frm).missing
