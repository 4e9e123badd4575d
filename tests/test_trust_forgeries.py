"""Forgeries of sender trust found in review (issue 20, findings F1-F5): each message is written
entirely by the attacker, with whatever the receiving server would add on top of it (its
Authentication-Results or Received-SPF above its own ``Received:`` line), delivered to the
Maildir and ingested; the forged message must come out `named` in `messages --json` with a
reason saying why, while the unit's real, proven report keeps counting in `status --json`.
A server's header below its Received line was in the message when it arrived: the sender's.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from fixtures.files import make_report_docx
from fixtures.mail import build_mail
from test_trust_proof import DAY1, DAY2, MX_PASS, TY, forged, proving

__all__ = ["proving"]  # the fixture, used by name

RECEIVED = (
    b"Received: from evil.example (evil.example [6.6.6.6]) by mx.126.com with ESMTP; 21 Jun 2022 02:30:00\n"
)
PLACEHOLDER = b"From: placeholder@mailroll.invalid"


def send(
    campaign,
    report: bytes,
    top: bytes,
    *,
    frm=TY,
    subject="太原市科技局材料（更正）",
    when=DAY2,
    **attribution,
):
    """The attacker's message with ``top`` (header lines) above it, as the mailbox holds it."""
    if attribution:
        campaign.configure(attribution=attribution)
    msg = build_mail("placeholder@mailroll.invalid", subject=subject, attachments=[("总结报告.docx", report)])
    campaign.deliver(top + msg.as_bytes().replace(PLACEHOLDER, b"From: " + frm.encode()), when=when)


def ar(value: str) -> bytes:
    return f"Authentication-Results: {value}\n".encode()


SPF_PASS = (
    b"Received-SPF: pass (mx.126.com: domain of tykjj@taiyuan.gov.cn designates 192.0.2.1 as permitted sender) "
    b"client-ip=192.0.2.1; envelope-from=tykjj@taiyuan.gov.cn; helo=mail.taiyuan.gov.cn;\n"
)


@pytest.fixture(params=["required", "received-spf"])
def server(request, campaign, tmp_path):
    """``proving`` for a server that writes Authentication-Results ("required") and for one that
    writes only Received-SPF ("received-spf"): the unit's real report counts, proven either way."""
    campaign.configure(attribution={"authentication": request.param})
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    blank = make_report_docx(tmp_path / "blank.docx", chars=20).read_bytes()
    top = SPF_PASS + RECEIVED if request.param == "received-spf" else ar(MX_PASS) + RECEIVED
    send(
        campaign,
        good,
        top.replace(b"evil.example", b"mail.taiyuan.gov.cn"),
        subject="太原市科技局材料",
        when=DAY1,
    )
    return campaign, blank, request.param


def not_believed(campaign, *why: str) -> dict:
    msg = forged(campaign)
    assert msg["trust"] == "named", msg["reason"]
    assert "not believed" in msg["reason"]
    for words in why:
        assert words in msg["reason"], msg["reason"]
    return msg


# ------------------------------------------------------------------ F1, F2: which headers the server wrote


SPF_FAIL = (
    b"Received-SPF: fail (mx.example: domain of taiyuan.gov.cn does not designate 6.6.6.6) "
    b"client-ip=6.6.6.6; envelope-from=tykjj@taiyuan.gov.cn; helo=evil.example;\n"
)
FORGED_DMARC = ar("mx.126.com; dmarc=pass header.from=taiyuan.gov.cn")


def test_a_header_below_the_servers_received_line_is_the_senders_and_its_spf_fail_counts(server):
    # F1 (A2): the server writes only Received-SPF, here a fail; the forger's Authentication-Results
    # sits below the server's Received line
    campaign, blank, _mode = server
    send(campaign, blank, SPF_FAIL + RECEIVED + FORGED_DMARC)
    not_believed(campaign, "recorded spf=fail")


def test_a_listed_servers_header_below_its_received_line_proves_nothing(proving):
    # F2 (A3): the real header of the listed server says none; a look-alike below its Received
    # line says pass
    campaign, blank = proving
    real = ar(
        "mx.126.com; spf=pass smtp.mailfrom=x@attacker.example; dkim=none; dmarc=none header.from=taiyuan.gov.cn"
    )
    send(campaign, blank, real + RECEIVED + FORGED_DMARC, authserv_ids=["mx.126.com"])
    msg = not_believed(campaign, "recorded no pass for taiyuan.gov.cn")
    assert "dmarc=pass" not in msg["reason"]


def test_without_a_received_line_only_the_topmost_header_counts(proving):
    # F2: the same two headers where no server stamped the message: nothing shows which is whose
    campaign, blank = proving
    real = ar("mx.126.com; spf=none smtp.mailfrom=x@attacker.example; dmarc=none header.from=taiyuan.gov.cn")
    send(campaign, blank, real + FORGED_DMARC, authserv_ids=["mx.126.com"])
    not_believed(campaign, "recorded no pass for taiyuan.gov.cn")


def test_messages_recorded_before_positions_were_kept_prove_nothing_until_reprocessed(proving):
    # N8: on a database of an earlier mailroll (no auth_order) the server wrote only a Received-SPF
    # softfail; the sender's Authentication-Results below its line was the topmost one, believed
    campaign, blank = proving
    softfail = (
        b"Received-SPF: softfail (mx: transitioning) client-ip=6.6.6.6; envelope-from=x@attacker.example;\n"
    )
    send(campaign, blank, softfail + RECEIVED + FORGED_DMARC)
    campaign.ingest()
    with sqlite3.connect(campaign.root / "mailroll.db") as db:
        for mid, headers in db.execute("SELECT id, headers FROM messages").fetchall():
            h = json.loads(headers)
            assert h.pop("auth_order")
            db.execute("UPDATE messages SET headers = ? WHERE id = ?", [json.dumps(h), mid])
    campaign.configure(attribution={"named_senders": "review"})  # trust worked out again
    (msg,) = [m for m in campaign.run("messages", "--json").json if "更正" in (m["subject"] or "")]
    assert msg["trust"] == "named" and "mailroll reprocess" in msg["reason"], msg["reason"]
    warnings = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert any(w.startswith("2 message(s) were recorded before") and "reprocess" in w for w in warnings)
    # read again from the raw copies, the positions are back: the real report proves again
    campaign.run("reprocess", "--all")
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    not_believed(campaign, "no Authentication-Results from the receiving server")
    warnings = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert not any("recorded before" in w for w in warnings)


def test_the_servers_own_header_above_its_received_line_still_proves(proving):
    campaign, blank = proving
    good = ar(
        "mx.126.com; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn; dmarc=pass header.from=taiyuan.gov.cn"
    )
    forged_fail = ar("mx.126.com; dmarc=fail header.from=taiyuan.gov.cn")
    send(
        campaign,
        blank,
        good + RECEIVED + forged_fail,
        subject="太原市科技局材料（补充）",
        authserv_ids=["mx.126.com"],
    )
    campaign.ingest()
    (msg,) = [m for m in campaign.run("messages", "--json").json if "补充" in (m["subject"] or "")]
    assert msg["trust"] == "registered", msg["reason"]


def test_a_server_writing_below_its_received_line_proves_nothing_and_the_check_says_why(campaign, tmp_path):
    # such results cannot be told from a sender's: the unit is named, and serve --check says why
    # instead of suggesting "not-available"
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    send(campaign, good, RECEIVED + ar(MX_PASS), subject="太原市科技局材料", authentication="required")
    campaign.ingest()
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "named"
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert "received_by" in warning and '"mx.126.com"' in warning and "not-available" not in warning
    assert "received_hops" not in warning


def test_with_two_own_hops_the_results_between_their_received_lines_prove(campaign, tmp_path):
    # Postfix with OpenDMARC writes its results above its Received line, then Dovecot's LMTP puts
    # its own Received line on top: [attribution] received_hops = 2 says so
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    blank = make_report_docx(tmp_path / "blank.docx", chars=20).read_bytes()
    lmtp = b"Received: from mx.126.com by imap.126.com with LMTP id x; 21 Jun 2022 02:30:01\n"
    send(
        campaign,
        good,
        lmtp + ar(MX_PASS) + RECEIVED,
        subject="太原市科技局材料",
        when=DAY1,
        authentication="required",
    )
    campaign.ingest()
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "named", "one hop: below its line"
    campaign.configure(attribution={"received_hops": 2})
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert "counts Received: lines" in warning and "received_by" in warning  # loud: prefer the names
    campaign.configure(attribution={"received_hops": 1, "received_by": ["imap.126.com", "mx.126.com"]})
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "registered"
    assert campaign.run("serve", "--check", "--json", expect=1).json["warnings"] == []
    # the forger's header below the receiving server's line still proves nothing
    none = ar("mx.126.com; spf=none smtp.mailfrom=x@attacker.example; dmarc=none header.from=taiyuan.gov.cn")
    send(campaign, blank, lmtp + none + RECEIVED + FORGED_DMARC)
    not_believed(campaign, "recorded no pass for taiyuan.gov.cn")


# ------------------------------------------------------------------ F3: Received-SPF read strictly


@pytest.mark.parametrize(
    ("spf", "why"),
    [
        pytest.param(
            # A4: the HELO name the attacker chose carries a second envelope-from after the server's
            b"Received-SPF: pass (mx.example: domain of x@attacker.example designates 6.6.6.6 as permitted "
            b'sender) receiver=mx.example; client-ip=6.6.6.6; envelope-from="x@attacker.example"; '
            b"helo=h;envelope-from=tykjj@taiyuan.gov.cn;\n",
            "envelope-from twice",
            id="repeated-envelope-from",
        ),
        pytest.param(
            # A4b: the HELO name was checked, not the envelope sender
            b"Received-SPF: Pass (mailfrom) identity=helo; client-ip=6.6.6.6; helo=mail.taiyuan.gov.cn; "
            b"envelope-from=tykjj@taiyuan.gov.cn; receiver=mx\n",
            "identity=helo",
            id="identity-helo",
        ),
    ],
)
def test_a_received_spf_the_sender_could_shape_proves_nothing(server, spf, why):
    campaign, blank, mode = server
    send(campaign, blank, spf + RECEIVED)
    not_believed(campaign, why if mode == "received-spf" else "without proof")


# ------------------------------------------------------------------ F4: results injected into the server's header


LOCAL = '"a)x=1;dmarc=pass(c)header.from=taiyuan.gov.cn;x=y(b"@attacker.example'


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param(
            # A5: a HELO name has no spaces; a comment stands in for them
            "mx.126.com; spf=pass smtp.mailfrom=x@attacker.example smtp.helo=h;dmarc=pass(x)header.from="
            "taiyuan.gov.cn; dkim=none; dmarc=none header.from=taiyuan.gov.cn",
            "glued",
            id="helo-with-comment-glued",
        ),
        pytest.param(
            # A7: the server copied the quoted local part into its comment
            f"mx.126.com; spf=pass (mx.126.com: domain of {LOCAL} designates 6.6.6.6 as permitted sender) "
            f"smtp.mailfrom={LOCAL}; dmarc=none header.from=taiyuan.gov.cn",
            "recorded no pass for taiyuan.gov.cn (spf=pass for attacker.example, dmarc=none",
            id="quoted-local-part-in-comment",
        ),
        pytest.param(
            "mx.126.com; spf=pass smtp.mailfrom=x@attacker.example smtp.helo=h;dmarc=pass (x) header.from="
            "taiyuan.gov.cn; dmarc=none header.from=taiyuan.gov.cn",
            "results disagree: dmarc=pass and dmarc=none",
            id="two-dmarc-results",
        ),
        pytest.param(
            "mx.126.com; dmarc=pass header.from=attacker.example header.from=taiyuan.gov.cn",
            "header.from twice",
            id="repeated-property",
        ),
    ],
)
def test_results_injected_into_the_servers_header_prove_nothing(proving, value, why):
    campaign, blank = proving
    send(campaign, blank, ar(value) + RECEIVED)
    not_believed(campaign, why)


# ------------------------------------------------------------------ F5: what SPF alone proves


def test_spf_alone_proves_the_from_domain_itself_only(proving):
    # A6: a sibling host under the same organisational domain passes SPF for its own name
    campaign, blank = proving
    send(
        campaign,
        blank,
        ar("mx.126.com; spf=pass smtp.mailfrom=bounce@other.taiyuan.gov.cn; dkim=none; dmarc=none")
        + RECEIVED,
    )
    not_believed(campaign, "recorded no pass for taiyuan.gov.cn (spf=pass for other.taiyuan.gov.cn")


@pytest.mark.parametrize(
    "results",
    [
        "spf=pass smtp.mailfrom=someone.else@163.com; dkim=none; dmarc=none",
        # N6: the attacker's own 163.com account as envelope sender passes SPF, and so DMARC
        "spf=pass smtp.mailfrom=someone.else@163.com; dkim=none; dmarc=pass (p=none) header.from=163.com",
    ],
    ids=["spf", "dmarc-on-spf"],
)
def test_an_address_at_a_public_mail_domain_needs_an_aligned_dkim_pass(campaign, tmp_path, results):
    report = make_report_docx(tmp_path / "r.docx", chars=800).read_bytes()
    spf_only = ar("mx.126.com; " + results)
    send(
        campaign,
        report,
        spf_only + RECEIVED,
        frm="dtkjj2022@163.com",
        subject="大同市科技局材料",
        authentication="required",
    )
    campaign.ingest()
    (msg,) = campaign.run("messages", "--json").json
    assert msg["trust"] == "named" and "public mail domain 163.com" in msg["reason"]
    signed = ar(
        "mx.126.com; spf=pass smtp.mailfrom=dtkjj2022@163.com; dkim=pass header.d=163.com; dmarc=none"
    )
    msg = build_mail(
        "dtkjj2022@163.com", subject="大同市科技局材料（二）", attachments=[("总结报告.docx", report)]
    )
    campaign.deliver(signed + RECEIVED + msg.as_bytes(), when=DAY2)
    campaign.ingest()
    assert campaign.unit("datong-kjj")["items"]["report"]["trust"] == "registered"


# ------------------------------------------------------------------ reading: Received-SPF as servers write it


def test_received_spf_as_servers_write_it_proves_its_envelope_domain_only():
    from reconcile import authresults

    frm = "kjc@sxu.edu.cn"
    order = ["received-spf", "received"]
    for value in (
        # pypolicyd-spf (Postfix), RFC 7208 9.1's example, libspf2
        "Pass (mailfrom) identity=mailfrom; client-ip=202.207.0.1; helo=mail.sxu.edu.cn; "
        "envelope-from=kjc@sxu.edu.cn; receiver=<UNKNOWN>",
        "pass (mybox.example.org: domain of kjc@sxu.edu.cn designates 202.207.0.1 as permitted sender) "
        'receiver=mybox.example.org; client-ip=202.207.0.1; envelope-from="kjc@sxu.edu.cn"; helo=foo.sxu.edu.cn;',
        "pass (mx.example: domain of kjc@sxu.edu.cn designates 202.207.0.1 as permitted sender) "
        "client-ip=202.207.0.1; envelope-from=kjc@sxu.edu.cn; helo=mail.sxu.edu.cn;",
    ):
        v = authresults.verdict([], frm, received_spf=[value], order=order, mode="received-spf")
        assert v.passes == ["spf=pass"], value
        assert not authresults.verdict([], frm, received_spf=[value], order=order).proven, "required: A-R"
        other = authresults.verdict(
            [], "a@taiyuan.gov.cn", received_spf=[value], order=order, mode="received-spf"
        )
        assert not other.proven
    # Gmail's names no envelope sender: it proves nothing; the server's own fail always counts
    gmail = (
        "pass (google.com: domain of kjc@sxu.edu.cn designates 202.207.0.1 as permitted sender) "
        "client-ip=202.207.0.1;"
    )
    assert not authresults.verdict([], frm, received_spf=[gmail], order=order, mode="received-spf").proven
    fail = "fail (mx: domain of sxu.edu.cn does not designate 6.6.6.6) client-ip=6.6.6.6; envelope-from=kjc@sxu.edu.cn;"
    for mode in ("required", "received-spf", "not-available"):
        assert authresults.verdict([], frm, received_spf=[fail], order=order, mode=mode).failures == [
            "spf=fail"
        ]


# ------------------------------------------------------------------ second review: N1, N2b, N4, N5, N6


@pytest.mark.parametrize(
    ("top", "mode", "why"),
    [
        pytest.param(
            # N1: the HELO name ends in a lone CR; Python's parser would start a second header there,
            # the mail server did not: one header of the server's, holding the sender's text
            ar(
                "mx.126.com; spf=pass smtp.mailfrom=x@attacker.example smtp.helo=h\r"
                "Authentication-Results: mx.126.com; dmarc=pass header.from=taiyuan.gov.cn"
            ),
            "required",
            "the header block holds a lone CR",
            id="authentication-results",
        ),
        pytest.param(
            b"Received-SPF: softfail (mx: domain of x@attacker.example) client-ip=6.6.6.6; "
            b"envelope-from=x@attacker.example; helo=h\rReceived-SPF: pass client-ip=6.6.6.6; "
            b"envelope-from=tykjj@taiyuan.gov.cn;\n",
            "received-spf",
            "the header block holds a lone CR",
            id="received-spf",
        ),
    ],
)
def test_a_lone_cr_in_the_servers_header_makes_no_second_header(campaign, tmp_path, top, mode, why):
    blank = make_report_docx(tmp_path / "blank.docx", chars=20).read_bytes()
    send(campaign, blank, top + RECEIVED, subject="太原市科技局材料", authentication=mode)
    campaign.ingest()
    (msg,) = campaign.run("messages", "--json").json
    assert msg["trust"] == "named" and why in msg["reason"], msg["reason"]


LMTP = b"Received: from mx.126.com by imap.126.com (Dovecot) with LMTP id x; 21 Jun 2022 02:30:01\n"


def test_received_by_names_the_own_servers_and_never_counts_a_senders_line(proving):
    # N2b/N4: received_hops = 2 on a server adding one line counts the sender's own Received line,
    # and the sender's results above it prove; named by their "by" hosts, only the own lines count
    campaign, blank = proving
    none = ar("mx.126.com; spf=none smtp.mailfrom=x@attacker.example; dmarc=none")
    senders = b"Received: from localhost by mx.126.com.evil.example\n"
    send(campaign, blank, none + RECEIVED + FORGED_DMARC + senders, received_by=["mx.126.com"])
    not_believed(campaign, "recorded no pass for taiyuan.gov.cn")
    campaign.configure(attribution={"received_by": ["imap.126.com", "mx.126.com"]})
    # the own servers add exactly these two lines: a message without the first is proven by none
    (msg,) = [m for m in campaign.run("messages", "--json").json if "更正" in (m["subject"] or "")]
    assert msg["trust"] == "named", msg["reason"]
    # Postfix with OpenDMARC, then Dovecot LMTP on top: both named, the results between prove
    send(campaign, blank, LMTP + ar(MX_PASS) + RECEIVED, subject="太原市科技局材料（补充）")
    campaign.ingest()
    (msg,) = [m for m in campaign.run("messages", "--json").json if "补充" in (m["subject"] or "")]
    assert msg["trust"] == "registered", msg["reason"]
    # a topmost line by another host: none is the own servers', nothing proves
    campaign.configure(attribution={"received_by": ["mx.126.com"]})
    (msg,) = [m for m in campaign.run("messages", "--json").json if "补充" in (m["subject"] or "")]
    assert msg["trust"] == "named", msg["reason"]


def test_the_check_names_received_by_with_the_by_host_not_a_count_of_lines(campaign, tmp_path):
    # N4: Gmail writes its results below its line; counting three lines would believe a sender
    good = make_report_docx(tmp_path / "good.docx", chars=800).read_bytes()
    gmail = (
        b"Received: by 2002:a05:6a10:1234 with SMTP id abc; Tue, 21 Jun 2022 02:30:01 -0700\n"
        b"Received: from mail.taiyuan.gov.cn (mail.taiyuan.gov.cn. [1.2.3.4]) by mx.google.com "
        b"with ESMTPS id x; Tue, 21 Jun 2022 02:30:01 -0700\n"
        b"Authentication-Results: mx.google.com; dkim=pass header.d=taiyuan.gov.cn header.s=s1; "
        b"spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn; dmarc=pass header.from=taiyuan.gov.cn\n"
    )
    send(campaign, good, gmail, subject="太原市科技局材料", authentication="required")
    campaign.ingest()
    assert campaign.unit("taiyuan-kjj")["items"]["report"]["trust"] == "named"
    (warning,) = campaign.run("serve", "--check", "--json", expect=1).json["warnings"]
    assert "received_by" in warning and '"2002:a05:6a10:1234"' in warning, warning
    assert "received_hops" not in warning


def test_a_dmarc_pass_needs_an_aligned_spf_or_dkim_pass_beside_it(proving):
    # N5: relaxed DMARC alignment: a sibling host under the parent domain passes SPF for itself
    campaign, blank = proving
    sibling = ar(
        "mx.126.com; spf=pass smtp.mailfrom=bounce@other.taiyuan.gov.cn; dkim=none; "
        "dmarc=pass (p=none) header.from=taiyuan.gov.cn"
    )
    send(campaign, blank, sibling + RECEIVED)
    not_believed(campaign, "a DMARC pass for taiyuan.gov.cn without an aligned SPF or DKIM pass")


def test_a_senders_received_line_naming_the_own_host_is_still_the_senders(proving):
    # third review S1: the sender writes his own "Received: ... by mx.126.com" with a forged result
    # above it; it sits right under the server's line, but the own servers add exactly `stack`
    campaign, blank = proving
    server_said = ar(
        "mx.126.com; spf=pass smtp.mailfrom=x@attacker.example; dkim=none; dmarc=none header.from=taiyuan.gov.cn"
    )
    senders = ar("mx.126.com; spf=pass smtp.mailfrom=tykjj@taiyuan.gov.cn") + (
        b"Received: from localhost by mx.126.com with ESMTP; 21 Jun 2022 02:29:00\n"
    )
    send(
        campaign,
        blank,
        server_said + RECEIVED + senders,
        received_by=["mx.126.com"],
        authserv_ids=["mx.126.com"],
    )
    not_believed(campaign)


def test_a_lone_cr_that_hides_a_from_from_the_server_proves_nothing(campaign, tmp_path):
    # third review S2: "X-A: 1\rFrom: <roster address>\r\r\n": the server sees one X-A header and
    # the attacker's From below (and signs and checks that), Python's parser the roster From
    blank = make_report_docx(tmp_path / "b.docx", chars=20).read_bytes()
    server_said = (
        b"Authentication-Results: mx.126.com; dkim=pass header.d=163.com header.s=s110; "
        b"spf=pass smtp.mailfrom=attacker@163.com; dmarc=pass header.from=163.com\r\n"
        b"Received: from m1.163.com (m1.163.com [1.1.1.1]) by mx.126.com with ESMTP; 21 Jun 2022 02:30:00\r\n"
    )
    msg = build_mail(
        "placeholder@mailroll.invalid",
        subject="大同市科技局材料（更正）",
        attachments=[("总结报告.docx", blank)],
    )
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, sep, body = raw.partition(b"\r\n\r\n")
    head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(PLACEHOLDER))
    raw = server_said + head + b"\r\nX-A: 1\rFrom: dtkjj2022@163.com\r\r\nFrom: attacker@163.com" + sep + body
    campaign.configure(attribution={"authentication": "required"})
    campaign.deliver(raw, when=DAY2)
    campaign.ingest()
    (msg,) = campaign.run("messages", "--json").json
    assert msg["trust"] != "registered" and "lone CR" in (msg["reason"] or ""), msg


# fourth review: the stdlib parser and the mail servers read different From headers
SIGNED_163 = (
    b"Authentication-Results: mx.126.com; dkim=pass header.d=163.com header.s=s110; "
    b"spf=pass smtp.mailfrom=attacker@163.com; dmarc=pass header.from=163.com\r\n"
    b"Received: from m1.163.com (m1.163.com [1.1.1.1]) by mx.126.com with ESMTP; 21 Jun 2022 02:30:00\r\n"
)
FROM_LAYOUTS = {
    "genuine": b"From: dtkjj2022@163.com",
    "semicolon": b'From: "x" <attacker@163.com>;dtkjj2022@163.com',
    "semicolon-bare": b"From: attacker@163.com; dtkjj2022@163.com",
    "colonless-line": b"From: dtkjj2022@163.com\nthis line has no colon\nFrom: attacker@163.com",
    "8bit-name": b"From: dtkjj2022@163.com\nX-\xe4\xbd\xa0: 1\nFrom: attacker@163.com",
    "space-in-name": b"From: dtkjj2022@163.com\nX A: 1\nFrom: attacker@163.com",
    "space-before-colon": b"From: dtkjj2022@163.com\nX-A : 1\nFrom: attacker@163.com",
    "mbox-from-line": b"From: dtkjj2022@163.com\nFrom attacker\nFrom: attacker@163.com",
    # fifth review: an "address" only a scan of the decoded value finds (no mail server reads it)
    "encoded-address": b"From: =?utf-8?q?dtkjj2022=40163.com?=",
    "encoded-address-b64": b"From: =?utf-8?b?ZHRramoyMDIyQDE2My5jb20=?=\nSender: attacker@163.com",
    "broken-angle": b"From: <a#dtkjj2022@163.com>>",
    "broken-slash": b"From: a/dtkjj2022@163.com (",
    # sixth review: a GBK lead byte before "@" hides a second address from a decoding parser
    "gbk-hidden-second": b"From: dtkjj2022@163.com, attacker\x81@163.com",
    # a display name showing the same address is one address (a genuine, common layout)
    "name-is-the-address": b'From: "dtkjj2022@163.com" <dtkjj2022@163.com>',
}


def from_163(campaign, tmp_path, from_lines: bytes, server_said: bytes = SIGNED_163) -> dict:
    """A report from a 163.com account with ``from_lines`` as its From header(s), below the
    receiving server's results and Received line, ingested: its `messages --json` row."""
    blank = make_report_docx(tmp_path / "b.docx", chars=20).read_bytes()
    msg = build_mail(
        "placeholder@mailroll.invalid",
        subject="大同市科技局材料（更正）",
        attachments=[("总结报告.docx", blank)],
    )
    head, _, body = msg.as_bytes().replace(b"\r\n", b"\n").partition(b"\n\n")
    head = b"\n".join(line for line in head.split(b"\n") if not line.startswith(PLACEHOLDER))
    raw = server_said + (head + b"\n" + from_lines + b"\n\n" + body).replace(b"\n", b"\r\n")
    campaign.configure(attribution={"authentication": "required", "public_domains": ["163.com"]})
    campaign.deliver(raw, when=DAY2)
    campaign.ingest()
    (row,) = campaign.run("messages", "--json").json
    return row


@pytest.mark.parametrize("layout", list(FROM_LAYOUTS))
def test_a_from_the_servers_read_otherwise_is_never_believed(campaign, tmp_path, layout):
    msg = from_163(campaign, tmp_path, FROM_LAYOUTS[layout])
    genuine = layout in ("genuine", "name-is-the-address")
    assert msg["trust"] == ("registered" if genuine else "named"), (layout, msg["reason"])


def test_a_dmarc_permerror_proves_nothing(campaign, tmp_path):
    # fifth review: the server could not check DMARC for the From; an aligned DKIM pass beside it
    # must not prove the roster address anyway
    top = SIGNED_163.replace(b"dmarc=pass header.from=163.com", b"dmarc=permerror")
    msg = from_163(campaign, tmp_path, b"From: dtkjj2022@163.com", top)
    assert msg["trust"] == "named" and "permerror" in msg["reason"], msg["reason"]
