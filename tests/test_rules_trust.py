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
