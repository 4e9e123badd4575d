"""What the receiving server proved about a message's sender (RFC 8601 ``Authentication-Results``,
RFC 7208 ``Received-SPF``).

ingest keeps every Authentication-Results header as received, topmost first
(``messages.headers`` → ``authentication_results``), the Received-SPF headers
(``received_spf``), and where they stand (``auth_order``: those above the first ``Received:``).
Anyone can write such a header into a message before sending it; only the receiving server's
own ones mean something, and those stand above its own receipt line, the first ``Received:``
(``server_wrote``; ``[attribution] received_hops`` or, named by their ``by`` hosts,
``received_by``). Of them (``trusted_headers``):

* with ``[attribution] authserv_ids`` empty (the default): those naming the topmost one's id;
* with ids listed (e.g. ``["mx.126.com"]``): those whose authserv-id is listed;
* recorded before ingest kept the positions: the topmost (listed) header only, whose failures
  count and which proves nothing.

``verdict(values, from_addr, authserv_ids, received_spf, order=, mode=, public_domains=)``
weighs every result of those headers against the From domain:

* **proof** (``passes``): ``dmarc=pass`` whose ``header.from`` is the From domain (a server
  that read another From than ours names another domain) and the only DMARC result, beside an
  aligned SPF or DKIM pass in the same header (``_proof``),
  ``dkim=pass`` whose ``header.d`` is the From domain or a parent of it, ``spf=pass`` whose
  ``smtp.mailfrom`` domain is the From domain itself (strict: sibling units under one government
  domain prove nothing for each other). With ``mode="received-spf"`` (a server that writes only
  that) the topmost ``Received-SPF: pass`` (identity mailfrom) whose ``envelope-from`` domain is
  the From domain instead. An address at a public mail domain (163.com) needs an aligned DKIM pass;
* **failure** (``failures``): ``dmarc=fail`` for the From domain, ``spf=fail`` aligned with it
  (or naming no domain), ``dkim=fail`` for it (or naming none) unless an aligned DKIM
  signature passed; a ``Received-SPF: fail`` of the server aligned with it, in either mode;
* **nothing proved** (``missing`` says what): no such header, only ``none``/``neutral``/
  ``softfail``/``temperror``, passes for other domains, or a header that cannot be read:
  reconcile/authgrammar.py, or results that disagree (``disagreements``).

Why not the ``authres`` package: it reads an unclosed comment as running to the end of the
header (the rest of the results, a ``dmarc=fail`` among them, silently gone) and takes about
0.4 s for 2,000 results.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from reconcile.authgrammar import Token, Unreadable, lex, pairs, received_spf, segments

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


# ------------------------------------------------------------------------------- reading


def _result(seg: list[Token], number: int) -> Result | None:
    where = f"result {number}"
    if len(seg) == 1 and seg[0][0] == "atom" and seg[0][1].lower() == "none":
        return None
    if len(seg) < 3 or seg[0][0] != "atom" or seg[1][0] != "=" or seg[2][0] != "atom":
        raise Unreadable(f"{where} is not method=result")
    method = seg[0][1].split("/", 1)[0].lower()
    return Result(method, seg[2][1].lower(), pairs(seg, 3, where))


def _loose_id(value: str) -> str:
    head = value.split(";", 1)[0].split("(", 1)[0].split()
    return head[0].lower() if head else ""


def parse(value: str | None) -> AuthHeader:
    """One header value; ``problem`` says why it cannot be read (its results are then empty)."""
    text = value or ""
    try:
        parts = segments(lex(text))
        head = parts[0]
        if not head or head[0][0] != "atom":
            raise Unreadable("it names no server (authserv-id)")
        if len(head) > 2 or (len(head) == 2 and not (head[1][0] == "atom" and head[1][1].isdigit())):
            raise Unreadable("its server name (authserv-id) is followed by something else")
        results = [r for n, seg in enumerate(parts[1:], 1) if seg for r in [_result(seg, n)] if r]
        return AuthHeader(head[0][1].lower(), results)
    except Unreadable as e:
        return AuthHeader(_loose_id(text), [], str(e))


SPLIT_DIFFERENTLY = (
    "the header block holds a lone CR or a control character: the server may have read another From"
)


def _own_lines(received: list[str], hops: int, by: list[str]) -> int:
    """How many of the topmost Received: lines (``received:<by host>`` of ``auth_order``) the
    mailbox's own servers wrote: with ``by`` (``[attribution] received_by``, topmost first) the
    exact stack of them, each host in its place, once (0 when the message's top lines are not
    that stack: a sender's own "by mx.126.com" line below them never counts); else ``hops``."""
    if not by:
        return hops if len(received) >= hops else -1
    top = [r.partition(":")[2] for r in received[: len(by)]]
    return len(by) if top == by else 0


def server_wrote(
    values: list[str], spf: list[str], order: object, hops: int = 1, received_by: Iterable[str] = ()
) -> tuple[list[str], list[str], bool]:
    """(Authentication-Results, Received-SPF) the mailbox's own servers wrote: those above their
    last own ``Received:`` (``_own_lines``; ``order``, recorded by ingest); whether their
    positions are known. Unknown (recorded before ingest kept them, or a message with fewer
    Received: lines than ``hops``, which those servers did not all stamp): every header, of which
    ``trusted_headers`` believes the topmost only, and ``verdict`` counts failures only."""
    by = [h.lower().rstrip(".") for h in received_by]
    if isinstance(order, list) and "header-split" in order:
        return [], [], True  # the header block cut differently by the server: nothing it wrote is read
    kinds = [str(k) for k in order] if isinstance(order, list) else []
    kinds = [k for k in kinds if k in ("authentication-results", "received-spf") or k.startswith("received")]
    received = [i for i, k in enumerate(kinds) if k.startswith("received") and k != "received-spf"]
    own = _own_lines([kinds[i] for i in received], hops, by) if isinstance(order, list) else -1
    if own < 0:
        return values, spf[:1], False
    if own == 0:
        return [], [], True
    above = kinds[: received[own - 1]]
    return values[: above.count("authentication-results")], spf[: above.count("received-spf")], True


def trusted_headers(
    values: Iterable[str], authserv_ids: Iterable[str] = (), known: bool = False
) -> list[AuthHeader]:
    """The headers of ``values`` (the server's, ``server_wrote``) believed: with ids listed, those
    naming one of them, without, those naming the topmost's id; the topmost of them only when
    their positions are unknown."""
    ids = {i.lower() for i in authserv_ids}
    headers = [h for h in map(parse, values) if not ids or h.authserv_id in ids]
    if not headers or not known:
        return headers[:1]
    return headers if ids else [h for h in headers if h.authserv_id == headers[0].authserv_id]


def disagreements(results: list[Result]) -> list[str]:
    """Results that contradict each other: one method with several results for one domain (for
    DKIM one signature), or several DMARC results one of which passes. A server evaluates each
    once: more is text a sender got into the header."""
    seen: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.method in CHECKED_METHODS:
            about = "" if r.method == "dmarc" else _named(r) or r.properties.get("smtp.helo", "")
            if r.method == "dkim" and r.properties.get("header.s"):
                about += f" s={r.properties['header.s']}"
            seen.setdefault((r.method, about.strip()), []).append(r.result)
    out = []
    for (method, about), said in seen.items():
        if len(set(said)) > 1 or (method == "dmarc" and len(said) > 1 and "pass" in said):
            what = " and ".join(f"{method}={x}" for x in dict.fromkeys(said))
            head = "results disagree" if len(set(said)) > 1 else f"{len(said)} {method} results"
            out.append(f"{head}: {what}" + (f" for {about}" if about else ""))
    return out


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
    SPF the From domain itself (strict alignment). For a failure, more
    widely: DKIM the From domain or any parent, SPF any parent or child domain."""
    if method == "dmarc":
        return named == from_domain
    if not proof:
        child = method == "spf" and _same_or_parent(from_domain, named)
        return _same_or_parent(named, from_domain) or child
    if method == "dkim":
        return named == from_domain or (_same_or_parent(named, from_domain) and _org(named) is not None)
    return (
        named == from_domain
    )  # SPF strictly: a sibling unit's host under one government domain proves nothing


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


def _spf_headers(values: list[str], from_domain: str) -> tuple[list[str], list[str], str, str]:
    """(passes, failures, why unreadable, what it said) of the server's Received-SPF headers
    (RFC 7208 9.1): the topmost proves; an aligned fail in any of them counts."""
    passes: list[str] = []
    failures: list[str] = []
    unreadable = said = ""
    for n, value in enumerate(values):
        try:
            result, props = received_spf(value)
        except Unreadable as e:
            unreadable = unreadable or f"its Received-SPF cannot be read ({e})"
            continue
        identity = props.get("identity", "mailfrom").lower()
        envelope = _domain(props.get("envelope-from"))
        if identity != "mailfrom":
            said = said or f"its Received-SPF is about identity={identity}, not the envelope sender"
        elif result == "fail" and (not envelope or _aligned("spf", envelope, from_domain, False)):
            failures = ["spf=fail"]
        elif n == 0 and result == "pass" and envelope and _aligned("spf", envelope, from_domain, True):
            passes = ["spf=pass"]
        elif n == 0:
            said = f"Received-SPF: {result} for {envelope or 'no envelope sender'}"
    return passes, failures, unreadable, said


def verdict(
    values: Iterable[str],
    from_addr: str | None,
    authserv_ids: Iterable[str] = (),
    received_spf: Iterable[str] = (),
    *,
    order: object = None,
    mode: str = "required",
    public_domains: Iterable[str] = (),
    hops: int = 1,
    received_by: Iterable[str] = (),
) -> Verdict:
    """What the receiving server proved or failed for ``from_addr`` (see the module doc).
    ``order``: where the headers stood (``Headers.auth_order``); ``mode``: which header proves
    (``[attribution] authentication``: "required" Authentication-Results, "received-spf");
    ``hops``, ``received_by``: the own servers' Received: lines (``[attribution] received_hops``,
    ``received_by``)."""
    ids = list(authserv_ids)
    ar_values, spf_values, known = server_wrote(list(values), list(received_spf), order, hops, received_by)
    headers = trusted_headers(ar_values, ids, known)
    from_domain = _domain(from_addr)
    checked = [h.authserv_id for h in headers if h.authserv_id]
    results = [r for h in headers for r in h.results]
    passes, failures = _weigh(results, from_domain) if from_domain else ([], [])
    problems = [
        f"{h.authserv_id or 'the topmost'} Authentication-Results cannot be read: {h.problem}"
        for h in headers
        if h.problem
    ] + [
        f"{' and '.join(checked)} Authentication-Results cannot be read: {d}" for d in disagreements(results)
    ]
    spf_passes, spf_failures, unreadable, said = (
        _spf_headers(spf_values, from_domain) if from_domain else ([], [], "", "")
    )
    failures += [f for f in spf_failures if f not in failures]  # the server's own SPF fail always counts
    if mode == "received-spf":
        passes, problems = spf_passes, [unreadable] if unreadable else []
    elif unreadable:
        problems.append(unreadable)
    if problems:
        passes = []  # an unreadable header may hide a failure: nothing it sits beside is proof
    if passes:
        passes, problems = _proof(passes, headers, from_domain, {d.lower() for d in public_domains}, known)
    missing = ""
    if isinstance(order, list) and "header-split" in order:
        passes, missing = [], SPLIT_DIFFERENTLY
    elif any(r.method == "dmarc" and r.result in ("permerror", "temperror") for r in results):
        passes, missing = (
            [],
            "the receiving server could not check DMARC for this From (permerror or temperror)",
        )
    elif not passes:
        missing = _missing(headers, problems, results, ids, from_domain)
        if mode == "received-spf" and not problems:
            missing = said or "no Received-SPF from the receiving server"
    return Verdict(checked, failures, passes, missing)


def _proof(
    passes: list[str], headers: list[AuthHeader], domain: str, public: set[str], known: bool
) -> tuple[list[str], list[str]]:
    """(passes, problems) once the passes are weighed as proof: none when the headers' positions
    are unknown; ``dmarc=pass`` only beside a strictly aligned SPF or an aligned DKIM pass in the
    same header (relaxed DMARC alignment lets a sibling host under the parent domain pass); at a
    public mail domain only with an aligned DKIM pass."""
    if not known:
        return [], [
            "where the authentication headers stood was not recorded (mailroll reprocess reads "
            "them again from the raw copy)"
        ]
    if "dmarc=pass" in passes and not any(
        "dmarc=pass" in own and ("spf=pass" in own or "dkim=pass" in own)
        for own in (_weigh(h.results, domain)[0] for h in headers)
    ):
        passes = [p for p in passes if p != "dmarc=pass"]
        if not passes:
            return [], [
                f"a DMARC pass for {domain} without an aligned SPF or DKIM pass of its own proves "
                "nothing (relaxed alignment lets a sibling host pass)"
            ]
    if domain in public and "dkim=pass" not in passes:
        return [], [f"only an aligned DKIM pass proves an address at the public mail domain {domain}"]
    return passes, []


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
