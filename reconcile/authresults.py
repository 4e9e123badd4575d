"""What the receiving server said about a message's sender (RFC 8601 ``Authentication-Results``).

ingest keeps every Authentication-Results header as received, topmost first
(``messages.headers`` → ``authentication_results``). Anyone can write such a header into a
message before sending it; only the receiving server's own ones mean something:

* with ``[attribution] authserv_ids`` empty (the default): the topmost header only — the
  receiving server adds its header on top of whatever the message carried;
* with ids listed (e.g. ``["mx.126.com"]``): every header whose authserv-id is listed, wherever
  it stands; the others are ignored.

``verdict(values, from_addr, authserv_ids)`` says which checks failed for the From address:
``dmarc=fail``; ``spf=fail`` for the From's domain (``smtp.mailfrom``, or no domain given);
``dkim=fail`` for the From's domain (``header.d``/``header.i``, or none given) unless another
DKIM signature in the same header passed. Other results (pass, none, neutral, softfail,
temperror, permerror) are no failure. The parser is small and linear in the header's length
(comments and quoted strings are skipped in one pass); a header it cannot read counts as
absent, never as a failure or a pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_VALUE_CHARS = 4000  # more than any real header; the rest is ignored
MAX_RESULTS = 50  # results read per header
_TOKEN = re.compile(r"\s*([A-Za-z0-9_.\-]+)(?:\s*/\s*\d+)?\s*=\s*([A-Za-z0-9_\-]+)")
_PROPERTY = re.compile(r"([A-Za-z0-9_\-]+)\.([A-Za-z0-9_.\-]+)\s*=\s*(\S+)")
CHECKED_METHODS = ("spf", "dkim", "dmarc")


@dataclass
class Result:
    method: str  # 'spf', 'dkim', 'dmarc', ... (lower case)
    result: str  # 'pass', 'fail', ... (lower case)
    properties: dict[str, str] = field(default_factory=dict)  # 'smtp.mailfrom' -> value

    def __str__(self) -> str:
        return f"{self.method}={self.result}"


@dataclass
class AuthHeader:
    authserv_id: str
    results: list[Result]


@dataclass
class Verdict:
    """The receiving server's word on one message."""

    checked_by: list[str]  # authserv-ids of the headers believed
    failures: list[str]  # e.g. ['spf=fail', 'dmarc=fail'], empty when nothing failed

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _strip_comments(value: str) -> str:
    """The value without (nested) comments; quoted strings kept as they are. One pass."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value[:MAX_VALUE_CHARS]:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            if ch == '"':
                quoted = True
            out.append(ch)
    return "".join(out)


def _split_outside_quotes(value: str, sep: str = ";") -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:  # a quoted-pair (RFC 5322): \" does not end the quoted string
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse(value: str | None) -> AuthHeader | None:
    """One header value, or None when it has no authserv-id."""
    if not value:
        return None
    segments = _split_outside_quotes(_strip_comments(value))
    head = segments[0].split()
    if not head:
        return None
    results: list[Result] = []
    for seg in segments[1 : MAX_RESULTS + 1]:
        m = _TOKEN.match(seg)
        if not m:
            continue  # 'none', or something unreadable
        props = {}
        for p in _PROPERTY.finditer(seg, m.end()):
            props[f"{p.group(1).lower()}.{p.group(2).lower()}"] = p.group(3).strip('"')
        results.append(Result(m.group(1).lower(), m.group(2).lower(), props))
    return AuthHeader(head[0].lower(), results)


def trusted_headers(values: Iterable[str], authserv_ids: Iterable[str] = ()) -> list[AuthHeader]:
    """The headers the receiving server wrote (see the module doc)."""
    ids = {i.lower() for i in authserv_ids}
    parsed = [parse(v) for v in values]
    if not ids:
        return [parsed[0]] if parsed and parsed[0] else []
    return [h for h in parsed if h and h.authserv_id in ids]


def _domain(text: str | None) -> str | None:
    if not text:
        return None
    return text.rsplit("@", 1)[-1].strip().strip(">").lower() or None


def _about(result: Result, keys: tuple[str, ...], from_domain: str | None) -> bool:
    """Whether a result concerns the From's domain (or names no domain at all)."""
    named = [_domain(result.properties[k]) for k in keys if result.properties.get(k)]
    if not named or from_domain is None:
        return True
    return any(d == from_domain or (d and from_domain.endswith("." + d)) for d in named)


def verdict(values: Iterable[str], from_addr: str | None, authserv_ids: Iterable[str] = ()) -> Verdict:
    """Which SPF/DKIM/DMARC checks the receiving server failed for ``from_addr``."""
    headers = trusted_headers(values, authserv_ids)
    from_domain = _domain(from_addr)
    failures: list[str] = []
    for h in headers:
        dkim_passed = any(r.method == "dkim" and r.result == "pass" for r in h.results)
        for r in h.results:
            if r.result != "fail" or r.method not in CHECKED_METHODS:
                continue
            if r.method == "spf" and not _about(r, ("smtp.mailfrom", "smtp.helo"), from_domain):
                continue
            if r.method == "dkim" and (dkim_passed or not _about(r, ("header.d", "header.i"), from_domain)):
                continue
            if str(r) not in failures:
                failures.append(str(r))
    return Verdict([h.authserv_id for h in headers], failures)
