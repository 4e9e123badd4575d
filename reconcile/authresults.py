"""What the receiving server proved about a message's sender (RFC 8601 ``Authentication-Results``).

ingest keeps every Authentication-Results header as received, topmost first
(``messages.headers`` → ``authentication_results``), and the Received-SPF headers
(``received_spf``). Anyone can write such a header into a message before sending it; only the
receiving server's own ones mean something:

* with ``[attribution] authserv_ids`` empty (the default): the topmost header only — the
  receiving server adds its header on top of whatever the message carried;
* with ids listed (e.g. ``["mx.126.com"]``): every header whose authserv-id is listed, wherever
  it stands; the others are ignored.

``verdict(values, from_addr, authserv_ids, received_spf)`` weighs every result of those
headers against the From domain:

* **proof** (``passes``): ``dmarc=pass`` whose ``header.from`` is the From domain (a server
  that read another From than ours names another domain), ``dkim=pass`` whose ``header.d``
  is the From domain or a parent of it, ``spf=pass`` whose ``smtp.mailfrom`` domain aligns with
  it (the same, a parent or a child); where the server wrote no Authentication-Results at all,
  the topmost ``Received-SPF: pass`` whose ``envelope-from`` aligns counts like SPF pass;
* **failure** (``failures``): ``dmarc=fail`` for the From domain, ``spf=fail`` aligned with it
  (or naming no domain), ``dkim=fail`` for it (or naming none) unless an aligned DKIM
  signature passed;
* **nothing proved** (``missing`` says what): no such header, only ``none``/``neutral``/
  ``softfail``/``temperror``, passes for other domains, or a header that cannot be read.

The whole header is read with the RFC 8601 grammar (RFC 5322 comments, quoted strings and
quoted pairs): an unbalanced ``(`` or ``"``, a result that is not ``method=result``, a stray
``)`` or a value longer than ``MAX_VALUE_CHARS`` (cut off on the way in) make the header
unreadable — never "no failure" and never a pass. One linear pass over the characters.

Why not the ``authres`` package: it reads an unclosed comment as running to the end of the
header (the rest of the results, a ``dmarc=fail`` among them, silently gone) and takes about
0.4 s for 2,000 results.
"""

# long: the grammar, the alignment rules and the verdict are one reading of one header

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from ingest.mime.headers import AUTH_RESULT_CHARS

MAX_VALUE_CHARS = AUTH_RESULT_CHARS  # ingest keeps one more character of a longer header
# ingest used to cut each header at 2,000 characters without a sign: a value of exactly that
# length, recorded then, may have lost its end (`mailroll reprocess` reads the message again)
LEGACY_CUT_CHARS = 2000
CHECKED_METHODS = ("spf", "dkim", "dmarc")
_SPACE = " \t\r\n"
_STOP = _SPACE + '()";='


class Unreadable(ValueError):
    """The header does not follow the grammar; the message says where."""


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
    problem: str | None = None  # why it cannot be read; its results are then empty


@dataclass
class Verdict:
    """The receiving server's word on one message."""

    checked_by: list[str]  # authserv-ids of the headers believed
    failures: list[str]  # e.g. ['spf=fail', 'dmarc=fail'], empty when nothing failed
    passes: list[str] = field(default_factory=list)  # aligned passes, e.g. ['dmarc=pass']
    missing: str = ""  # what was missing when nothing was proved

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def proven(self) -> bool:
        return bool(self.passes) and not self.failures


# ------------------------------------------------------------------------------- grammar


def _skip_comment(value: str, i: int) -> int:
    """The index after the (nested) comment opening at ``i``."""
    depth, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise Unreadable("a comment is not closed")


def _quoted(value: str, i: int) -> tuple[str, int]:
    """The quoted string opening at ``i`` (quoted pairs undone) and the index after it."""
    out: list[str] = []
    i, n = i + 1, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise Unreadable("a quoted string is not closed")


def lex(value: str) -> list[tuple[str, str, bool]]:
    """(kind, text, after_space) tokens: 'atom', 'quoted', ';', '='. Comments are space."""
    if len(value) > MAX_VALUE_CHARS or len(value) == LEGACY_CUT_CHARS:
        raise Unreadable("it was cut off (too long)")
    tokens: list[tuple[str, str, bool]] = []
    i, n, spaced = 0, len(value), True
    while i < n:
        ch = value[i]
        if ch in _SPACE:
            i, spaced = i + 1, True
        elif ch == "(":
            i, spaced = _skip_comment(value, i), True
        elif ch == ")":
            raise Unreadable("a ')' closes no comment")
        elif ch == '"':
            text, i = _quoted(value, i)
            tokens.append(("quoted", text, spaced))
            spaced = False
        elif ch in ";=":
            tokens.append((ch, ch, spaced))
            i, spaced = i + 1, False
        else:
            j = i
            while j < n and value[j] not in _STOP:
                j += 1
            tokens.append(("atom", value[i:j], spaced))
            i, spaced = j, False
    return tokens


def _segments(tokens: list[tuple[str, str, bool]]) -> list[list[tuple[str, str, bool]]]:
    out: list[list[tuple[str, str, bool]]] = [[]]
    for t in tokens:
        if t[0] == ";":
            out.append([])
        else:
            out[-1].append(t)
    return out


def _pairs(seg: list[tuple[str, str, bool]], start: int, where: str) -> dict[str, str]:
    """``key=value`` pairs from ``seg[start:]``; a quoted local part joins its ``@domain``."""
    props: dict[str, str] = {}
    i = start
    while i < len(seg):
        if i + 2 >= len(seg):
            raise Unreadable(f"{where} has a property without a value")
        key, eq, val = seg[i], seg[i + 1], seg[i + 2]
        if key[0] != "atom" or eq[0] != "=" or val[0] not in ("atom", "quoted"):
            raise Unreadable(f"{where} has something that is not key=value")
        text, i = val[1], i + 3
        while i < len(seg) and not seg[i][2] and seg[i][0] in ("atom", "quoted", "="):
            text += seg[i][1]  # "local part"@domain, base64 "ab+/=": adjacent, no space between
            i += 1
        props[key[1].lower()] = text
    return props


def _result(seg: list[tuple[str, str, bool]], number: int) -> Result | None:
    where = f"result {number}"
    if len(seg) == 1 and seg[0][0] == "atom" and seg[0][1].lower() == "none":
        return None
    if len(seg) < 3 or seg[0][0] != "atom" or seg[1][0] != "=" or seg[2][0] != "atom":
        raise Unreadable(f"{where} is not method=result")
    method = seg[0][1].split("/", 1)[0].lower()
    return Result(method, seg[2][1].lower(), _pairs(seg, 3, where))


def _loose_id(value: str) -> str:
    head = value.split(";", 1)[0].split("(", 1)[0].split()
    return head[0].lower() if head else ""


def parse(value: str | None) -> AuthHeader:
    """One header value; ``problem`` says why it cannot be read (its results are then empty)."""
    text = value or ""
    try:
        segments = _segments(lex(text))
        head = segments[0]
        if not head or head[0][0] != "atom":
            raise Unreadable("it names no server (authserv-id)")
        if len(head) > 2 or (len(head) == 2 and not (head[1][0] == "atom" and head[1][1].isdigit())):
            raise Unreadable("its server name (authserv-id) is followed by something else")
        results = [r for n, seg in enumerate(segments[1:], 1) if seg for r in [_result(seg, n)] if r]
        return AuthHeader(head[0][1].lower(), results)
    except Unreadable as e:
        return AuthHeader(_loose_id(text), [], str(e))


def trusted_headers(values: Iterable[str], authserv_ids: Iterable[str] = ()) -> list[AuthHeader]:
    """The headers the receiving server wrote (see the module doc)."""
    ids = {i.lower() for i in authserv_ids}
    values = list(values)
    if not ids:
        return [parse(values[0])] if values else []
    return [h for h in map(parse, values) if h.authserv_id in ids]


# ------------------------------------------------------------------------------- alignment


def _domain(text: str | None) -> str:
    if not text:
        return ""
    return text.rsplit("@", 1)[-1].strip().strip("<>\"'").rstrip(".").lower()


def _same_or_parent(d: str, of: str) -> bool:
    """``d`` is ``of`` or a parent domain of it (never a bare top-level label)."""
    return bool(d) and "." in d and (d == of or of.endswith("." + d))


@cache
def _suffixes():
    from publicsuffixlist import PublicSuffixList  # the list ships in the package, read once

    return PublicSuffixList()


@cache
def _org(domain: str) -> str | None:
    """The organizational domain (``taiyuan.gov.cn`` for ``mail.taiyuan.gov.cn``; None for a
    public suffix such as ``gov.cn``), by the Public Suffix List as DMARC does (RFC 7489 3.2)."""
    return _suffixes().privatesuffix(domain) if domain else None


def _spf_domain(r: Result) -> str:
    return _domain(r.properties.get("smtp.mailfrom"))


def _dkim_domain(r: Result) -> str:
    return _domain(r.properties.get("header.d") or r.properties.get("header.i"))


def _named(r: Result) -> str:
    """The domain a result is about: header.from (DMARC), smtp.mailfrom (SPF), header.d (DKIM)."""
    if r.method == "dmarc":
        return _domain(r.properties.get("header.from"))
    return _spf_domain(r) if r.method == "spf" else _dkim_domain(r)


def _aligned(method: str, named: str, from_domain: str, proof: bool) -> bool:
    """Whether a result naming ``named`` is about the From domain. For a proof (``proof``):
    DMARC the From domain itself, DKIM the From domain or a parent that is no public suffix,
    SPF the same organizational domain (relaxed alignment, RFC 7489). For a failure, more
    widely: DKIM the From domain or any parent, SPF any parent or child domain."""
    if method == "dmarc":
        return named == from_domain
    if not proof:
        child = method == "spf" and _same_or_parent(from_domain, named)
        return _same_or_parent(named, from_domain) or child
    if method == "dkim":
        return named == from_domain or (_same_or_parent(named, from_domain) and _org(named) is not None)
    org = _org(named)
    return org is not None and org == _org(from_domain)


def _weigh(results: list[Result], from_domain: str) -> tuple[list[str], list[str]]:
    """(aligned passes, failures) over every result."""
    passes: list[str] = []
    failures: list[str] = []

    def about(r: Result, proof: bool) -> bool | None:  # None: the result names no domain
        named = _named(r)
        return _aligned(r.method, named, from_domain, proof) if named else None

    dkim_passed = any(r.method == "dkim" and r.result == "pass" and about(r, True) for r in results)
    for r in results:
        if r.method not in CHECKED_METHODS:
            continue
        if r.result == "pass" and about(r, True):  # a pass naming no domain proves nothing
            if str(r) not in passes:
                passes.append(str(r))
        elif r.result == "fail" and about(r, False) is not False and not (r.method == "dkim" and dkim_passed):
            if str(r) not in failures:
                failures.append(str(r))
    return passes, failures


def _received_spf(value: str, from_domain: str) -> tuple[list[str], list[str], str]:
    """(passes, failures, problem) of the topmost Received-SPF (RFC 7208 9.1)."""
    try:
        tokens = lex(value)
    except Unreadable as e:
        return [], [], f"its Received-SPF cannot be read ({e})"
    if not tokens or tokens[0][0] != "atom":
        return [], [], "its Received-SPF cannot be read (no result)"
    result = tokens[0][1].lower()
    envelope = ""
    for i in range(1, len(tokens) - 2):
        if tokens[i][0] == "atom" and tokens[i][1].lower() == "envelope-from" and tokens[i + 1][0] == "=":
            envelope = _domain(tokens[i + 2][1])
    if result == "pass" and envelope and _aligned("spf", envelope, from_domain, True):
        return ["spf=pass"], [], ""
    if result == "fail" and (not envelope or _aligned("spf", envelope, from_domain, False)):
        return [], ["spf=fail"], ""
    return [], [], f"Received-SPF: {result} for {envelope or 'no envelope sender'}"


def verdict(
    values: Iterable[str],
    from_addr: str | None,
    authserv_ids: Iterable[str] = (),
    received_spf: Iterable[str] = (),
) -> Verdict:
    """What the receiving server proved or failed for ``from_addr`` (see the module doc)."""
    ids = list(authserv_ids)
    headers = trusted_headers(values, ids)
    from_domain = _domain(from_addr)
    checked = [h.authserv_id for h in headers if h.authserv_id]
    results = [r for h in headers for r in h.results]
    passes, failures = _weigh(results, from_domain) if from_domain else ([], [])
    problems = [
        f"{h.authserv_id or 'the topmost'} Authentication-Results cannot be read: {h.problem}"
        for h in headers
        if h.problem
    ]
    if problems:
        passes = []  # an unreadable header may hide a failure: nothing it sits beside is proof
    spf_headers = list(received_spf)
    if not headers and spf_headers and from_domain:
        passes, failures, problem = _received_spf(spf_headers[0], from_domain)
        problems = [problem] if problem else []
    missing = ""
    if not passes:
        missing = _missing(headers, problems, results, ids, from_domain)
    return Verdict(checked, failures, passes, missing)


def _missing(
    headers: list[AuthHeader], problems: list[str], results: list[Result], ids: list[str], domain: str
) -> str:
    """What was missing for a proof, in a few words for the attribution's reason."""
    if problems:
        return "; ".join(problems)
    if not domain:
        return "no From address to check"
    if not headers:
        by = " or ".join(ids) if ids else "the receiving server"
        return f"no Authentication-Results from {by}"
    found = dict.fromkeys(
        str(r) + (f" for {_named(r)}" if _named(r) else "") for r in results if r.method in CHECKED_METHODS
    )
    said = ", ".join(list(found)[:6]) + (", ..." if len(found) > 6 else "")
    by = " and ".join(h.authserv_id for h in headers)
    return f"{by} recorded no pass for {domain}" + (f" ({said})" if said else "")
