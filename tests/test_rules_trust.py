"""Reading Authentication-Results where generated mutants (scripts/mutation.py) found it
unguarded: a backslash inside a comment or a quoted string, a comment before the authserv-id, a
result naming no domain, a From in a subdomain of the domain checked. As tests/test_trust.py
does, on header values as receiving servers write them; what it changes for a unit is shown
there end to end."""

from __future__ import annotations

from reconcile import authresults

FROM = "kjc@sxu.edu.cn"
# a comment holding an escaped ")" and a fake result; a quoted reason holding an escaped quote
# and a fake result; then the one real SPF failure
TRICKY = (
    "mx.126.com; dmarc=fail (p=none; \\) spf=fail smtp.mailfrom=evil.example) header.from=sxu.edu.cn; "
    'dkim=pass header.d=sxu.edu.cn reason="good \\"sig\\"; spf=fail"; spf=fail smtp.mailfrom=sxu.edu.cn'
)


def results(value: str) -> list[tuple[str, dict]]:
    header = authresults.parse(value)
    assert header is not None
    return [(str(r), r.properties) for r in header.results]


def test_escaped_characters_in_comments_and_quotes_hide_nothing_and_add_nothing():
    assert results(TRICKY) == [
        ("dmarc=fail", {"header.from": "sxu.edu.cn"}),
        ("dkim=pass", {"header.d": "sxu.edu.cn"}),
        ("spf=fail", {"smtp.mailfrom": "sxu.edu.cn"}),
    ]
    assert authresults.verdict([TRICKY], FROM).failures == ["dmarc=fail", "spf=fail"]
    # the quoted string goes on after the escaped quote: what follows it is still read
    assert results('mx.126.com; dkim=pass reason="a\\"b" header.d=sxu.edu.cn; dmarc=fail') == [
        ("dkim=pass", {"header.d": "sxu.edu.cn"}),
        ("dmarc=fail", {}),
    ]
    # an escaped character inside a comment is part of the comment, even an escaped backslash
    assert results("mx.126.com; spf=fail (a \\\\) smtp.mailfrom=sxu.edu.cn") == [
        ("spf=fail", {"smtp.mailfrom": "sxu.edu.cn"})
    ]


def test_a_comment_before_the_authserv_id_is_not_the_id():
    value = "(received by the office) mx.126.com; spf=fail smtp.mailfrom=sxu.edu.cn"
    v = authresults.verdict([value], FROM, ["mx.126.com"])
    assert v.checked_by == ["mx.126.com"] and v.failures == ["spf=fail"]


def test_a_failure_naming_no_domain_counts_and_so_does_one_for_the_parent_domain():
    assert authresults.verdict(["mx.126.com; spf=fail"], FROM).failures == ["spf=fail"]
    assert authresults.verdict(["mx.126.com; dkim=fail"], None).failures == ["dkim=fail"]
    # mail.sxu.edu.cn sends; the check was for sxu.edu.cn: about the From's domain
    parent = "mx.126.com; spf=fail smtp.mailfrom=sxu.edu.cn"
    assert authresults.verdict([parent], "kjc@mail.sxu.edu.cn").failures == ["spf=fail"]
    # a domain that merely ends with the same letters is another domain
    assert not authresults.verdict(["mx.126.com; spf=fail smtp.mailfrom=xsxu.edu.cn"], FROM).failed
    assert not authresults.verdict(["mx.126.com; spf=fail smtp.mailfrom=edu.cn.example"], FROM).failed


def test_the_domain_is_read_from_an_address_however_it_is_written():
    # in angle brackets, upper case, quoted, with an "@" in a quoted local part
    post = "kjc@post.ax"
    assert authresults.verdict(["mx.126.com; spf=fail smtp.mailfrom=<KJC@POST.AX>"], post).failed
    assert authresults.verdict(['mx.126.com; dkim=fail header.d="sxu.edu.cn"'], FROM).failures == [
        "dkim=fail"
    ]
    assert authresults.verdict(['mx.126.com; spf=fail smtp.mailfrom="a@b"@sxu.edu.cn'], FROM).failed


def test_a_failure_about_another_domain_by_helo_or_identity_does_not_count_nor_stop_the_reading():
    relay = "mx.126.com; spf=fail smtp.helo=relay.esp.example; dkim=fail header.i=@esp.example; dmarc=fail"
    assert authresults.verdict([relay], FROM).failures == ["dmarc=fail"]
    # an unreadable result between two is skipped, the next one still read
    assert authresults.verdict(["mx.126.com; ===; spf=fail smtp.mailfrom=sxu.edu.cn"], FROM).failed


def test_fifty_results_are_read_and_no_more():
    passes = "; ".join(["dkim=pass header.d=other.example"] * 49)
    at_50 = f"mx.126.com; {passes}; dmarc=fail header.from=sxu.edu.cn"
    at_51 = f"mx.126.com; {passes}; dkim=pass; dmarc=fail header.from=sxu.edu.cn"
    assert len(results(at_50)) == authresults.MAX_RESULTS == 50
    assert authresults.verdict([at_50], FROM).failures == ["dmarc=fail"]
    assert not authresults.verdict([at_51], FROM).failed


def test_comments_nest_and_hide_what_they_hold_and_quotes_hold_brackets():
    # an escaped ";" inside a comment splits nothing
    assert results("mx.126.com; spf=pass (why\\; dmarc=fail) smtp.mailfrom=sxu.edu.cn") == [
        ("spf=pass", {"smtp.mailfrom": "sxu.edu.cn"})
    ]
    # a comment inside a comment: all of it is a comment
    assert results("mx.126.com; spf=pass (outer (inner) still; dkim=fail) smtp.mailfrom=sxu.edu.cn") == [
        ("spf=pass", {"smtp.mailfrom": "sxu.edu.cn"})
    ]
    # after a quoted string ends, a comment is a comment again
    assert results(
        'mx.126.com; dkim=pass reason="x"; spf=fail (see; dkim=fail) smtp.mailfrom=sxu.edu.cn'
    ) == [
        ("dkim=pass", {}),
        ("spf=fail", {"smtp.mailfrom": "sxu.edu.cn"}),
    ]
    # a bracket inside a quoted string starts no comment, wherever it stands in the string
    for reason in ('"(not a comment"', '"still (not a comment"'):
        assert results(f"mx.126.com; dkim=pass reason={reason}; dmarc=fail") == [
            ("dkim=pass", {}),
            ("dmarc=fail", {}),
        ], reason


def test_a_quoted_property_keeps_every_letter_and_a_failure_is_named_once():
    idn = "kjc@xn--fiqs8s.cn"
    assert authresults.verdict(['mx.126.com; dkim=fail header.d="XN--FIQS8S.CN"'], idn).failures == [
        "dkim=fail"
    ]
    twice = "mx.126.com; spf=fail smtp.mailfrom=sxu.edu.cn; spf=fail smtp.helo=sxu.edu.cn"
    assert authresults.verdict([twice], FROM).failures == ["spf=fail"]
