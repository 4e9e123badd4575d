"""Which unit sent each message.

Evidence is tried from the most certain to the least; the first level that names exactly one
unit decides (``attributions.method``):

1. ``manual``    a staff ``assign`` override (not revoked) always wins;
2. ``address``   the From address is registered to a unit (Sender never stands in for From);
3. ``domain``    the From domain is the domain of a unit's registered address (never for
                 public mail domains like 163.com, ``config.public_domains``);
4. ``name``      a unit's name or alias appears in the subject, an attachment's file name or a
                 statistics sheet's 填报单位 cell. The most specific match wins: overlapping
                 matches keep the longest, so '长治高新区管委会' is 长治高新区 and never 长治市…;
5. ``forwarded`` the sender of a forwarded message is registered (a staff member forwarding
                 a unit's mail from a personal account).

6. ``thread``    the message replies to (In-Reply-To / References) one of our own mails to a
                 unit: a receipt or reminder (``outbox.smtp_message_id``).

Two different units on the same level make the message unmatched, with a reason naming both;
so does no evidence at all.

Each attribution also says how far its sender is believed (``attributions.trust``, worked out
by ``sender_trust``, docs/RECONCILE.md "Sender trust"): ``registered`` (From is the unit's
roster address and the receiving server proved it), ``domain`` (From is in the unit's own mail
domain, proved the same way), ``thread`` (a reply to our mail to that unit), ``staff`` (an
``assign``) and ``named`` (anything else: a name in the subject, a file name, a sheet cell, a
forwarded sender; a roster From without the receiving server's aligned pass, with several From
addresses, or that the server failed, reconcile/authresults.py).

Messages with status 'duplicate' or 'failed' are not attributed (their disposition is the
message's status). Attributions are conclusions: ``attribute`` can
recompute them at any time (``message_ids=None`` = all), e.g. after a roster fix.
"""

# long: who sent a message and how far the sender is trusted are decided from the same evidence

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from ingest.db import transaction
from reconcile import authresults
from reconcile.roster import Roster, Unit, normalize
from reconcile.vocab import Trust

MIN_NAME_CHARS = 2

# sender trust levels (attributions.trust); every one but NAMED is a trusted sender
REGISTERED, DOMAIN, THREAD, STAFF, NAMED = (
    Trust.REGISTERED,
    Trust.DOMAIN,
    Trust.THREAD,
    Trust.STAFF,
    Trust.NAMED,
)
TRUST_LEVELS = (REGISTERED, DOMAIN, THREAD, STAFF, NAMED)
TRUSTED = frozenset({REGISTERED, DOMAIN, THREAD, STAFF})


@dataclass
class Attribution:
    unit: str | None
    method: str | None
    reason: str
    trust: str | None = None  # one of TRUST_LEVELS when unit is set


@dataclass
class _Match:
    start: int
    end: int
    text: str  # the name as written in the roster
    units: tuple[str, ...]


class NameIndex:
    """Finds roster names and aliases inside free text, most specific match first.

    Indexed by the first two normalised characters, so one text costs about its length in dict
    look-ups, whatever the roster size (2,000 units x 20,000 messages stays fast).
    """

    def __init__(self, roster: Roster):
        self.by_norm: dict[str, tuple[str, list[str]]] = {}
        for u in roster.units:
            for n in u.names:
                key = normalize(n)
                if len(key) < MIN_NAME_CHARS:
                    continue
                shown, ids = self.by_norm.setdefault(key, (n, []))
                if u.id not in ids:
                    ids.append(u.id)
        self.by_prefix: dict[str, list[str]] = {}
        for key in self.by_norm:
            self.by_prefix.setdefault(key[:MIN_NAME_CHARS], []).append(key)

    def find(self, text: str | None) -> list[_Match]:
        """Non-overlapping matches; where matches overlap, the longest is kept."""
        t = normalize(text)
        if not t:
            return []
        found: list[_Match] = []
        for i in range(len(t) - MIN_NAME_CHARS + 1):
            for key in self.by_prefix.get(t[i : i + MIN_NAME_CHARS], ()):
                if t.startswith(key, i):
                    shown, ids = self.by_norm[key]
                    found.append(_Match(i, i + len(key), shown, tuple(ids)))
        found.sort(key=lambda m: (-(m.end - m.start), m.start))
        kept: list[_Match] = []
        for m in found:
            if all(m.end <= k.start or m.start >= k.end for k in kept):
                kept.append(m)
        return sorted(kept, key=lambda m: m.start)


@dataclass
class MessageEvidence:
    id: int
    from_addr: str | None
    sender: str | None
    subject: str | None
    filenames: list[str]
    unit_cells: list[str]
    forwarded_from: list[str]
    auth_results: list[str] = field(default_factory=list)  # Authentication-Results, topmost first
    received_spf: list[str] = field(default_factory=list)  # Received-SPF, topmost first
    auth_order: list[str] | None = None  # where they stand (ingest.model.Headers.auth_order)
    from_addrs: list[str] = field(default_factory=list)  # every From address when there are several
    replies_to: list[str] = field(default_factory=list)  # In-Reply-To and References ids


class Attributor:
    """Applies the levels above to one message's evidence."""

    def __init__(self, roster: Roster, public_domains: Iterable[str]):
        self.roster = roster
        self.names = NameIndex(roster)
        public = {d.lower() for d in public_domains}
        self.by_domain: dict[str, list[Unit]] = {}
        for u in roster.units:
            for d in sorted(u.domains):
                if d not in public:
                    self.by_domain.setdefault(d, []).append(u)

    def _label(self, uid: str) -> str:
        return self.roster.by_id[uid].name

    def _name_evidence(self, ev: MessageEvidence) -> list[tuple[str, _Match]]:
        sources: list[tuple[str, str]] = []
        if ev.subject:
            sources.append(("subject", ev.subject))
        for f in ev.filenames:
            sources.append((f"attachment {f}", f))
        for c in ev.unit_cells:
            sources.append(("the statistics sheet's 填报单位", c))
        return [(where, m) for where, text in sources for m in self.names.find(text)]

    def _by_name(self, ev: MessageEvidence, among: set[str] | None = None) -> tuple[str | None, str]:
        """(unit id, reason) from names; unit None with the reason when none or ambiguous."""
        evidence = self._name_evidence(ev)
        if among is not None:
            evidence = [(w, m) for w, m in evidence if set(m.units) & among]
        units = []
        for _, m in evidence:
            for uid in m.units if among is None else [u for u in m.units if u in among]:
                if uid not in units:
                    units.append(uid)
        if not units:
            return None, ""
        if len(units) == 1:
            where, m = evidence[0]
            return units[0], f"{where} names {self._shown(m)}"
        wheres: dict[str, list[str]] = {}
        for where, m in evidence:
            shown = self._shown(m)
            wheres.setdefault(where, [])
            if shown not in wheres[where]:
                wheres[where].append(shown)
        said = []
        for where, names in wheres.items():
            said.append(f"{where} names {'both ' if len(names) == 2 else ''}{' and '.join(names)}")
        return None, "; ".join(said)

    def _shown(self, m: _Match) -> str:
        """'长治高新区 (长治高新技术产业开发区管理委员会)' for an alias, the name alone otherwise."""
        if len(m.units) != 1:
            return f"{m.text} (the name of {' and '.join(m.units)})"
        full = self._label(m.units[0])
        return m.text if m.text == full else f"{m.text} ({full})"

    def decide(self, ev: MessageEvidence) -> Attribution:
        notes: list[str] = []
        # 1. address (From only: a Sender header never stands in for it)
        addr = ev.from_addr
        units = self.roster.by_email.get(addr.lower(), []) if addr else []
        if len(units) == 1:
            return Attribution(units[0].id, "address", f"From {addr} is registered to {units[0].name}")
        if len(units) > 1:
            uid, why = self._by_name(ev, {u.id for u in units})
            if uid:
                return Attribution(uid, "address", f"From {addr} is shared by several units; {why}")
            notes.append(f"{addr} is registered to {' and '.join(u.name for u in units)}")
        # 2. domain
        if ev.from_addr and "@" in ev.from_addr:
            domain = ev.from_addr.rsplit("@", 1)[1].lower()
            units = self.by_domain.get(domain, [])
            if len(units) == 1:
                return Attribution(
                    units[0].id,
                    "domain",
                    f"From {ev.from_addr}: {domain} is the mail domain of {units[0].name}",
                )
            if len(units) > 1:
                uid, why = self._by_name(ev, {u.id for u in units})
                if uid:
                    return Attribution(
                        uid, "domain", f"From domain {domain} is shared by several units; {why}"
                    )
        # 3. names
        uid, why = self._by_name(ev)
        if uid:
            return Attribution(uid, "name", why)
        if why:
            return Attribution(None, None, why)
        # 4. forwarded
        fwd_units: dict[str, str] = {}
        for addr in ev.forwarded_from:
            for u in self.roster.by_email.get((addr or "").lower(), []):
                fwd_units.setdefault(u.id, addr)
        if len(fwd_units) == 1:
            uid, addr = next(iter(fwd_units.items()))
            return Attribution(
                uid, "forwarded", f"forwards a message from {addr}, registered to {self._label(uid)}"
            )
        if len(fwd_units) > 1:
            return Attribution(
                None,
                None,
                "forwards messages from several units: " + " and ".join(self._label(u) for u in fwd_units),
            )
        who = f"unknown sender {ev.from_addr}" if ev.from_addr else "no sender address"
        if notes:
            who = "; ".join(notes)
        return Attribution(None, None, f"{who}; no unit name in subject or attachments")


def _json_list(text: str | None) -> list:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else [value]


def _strings(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _header_evidence(
    headers: str | None,
) -> tuple[str | None, list[str], list[str], list[str], list[str], object]:
    """(Sender, Authentication-Results, Received-SPF, From addresses when several, replied-to
    ids, where the authentication headers stand) from ``messages.headers``; empty for unreadable
    JSON."""
    try:
        h = json.loads(headers) if headers else {}
    except ValueError:
        h = {}
    if not isinstance(h, dict):
        return None, [], [], [], [], None
    replies = [str(v).strip("<>") for v in [h.get("in_reply_to"), *_strings(h.get("references"))] if v]
    froms = [a.lower() for a in _strings(h.get("from_addresses"))]
    sender = h.get("sender") or h.get("Sender")
    auth, spf = _strings(h.get("authentication_results")), _strings(h.get("received_spf"))
    return sender, auth, spf, froms, replies, h.get("auth_order")


def load_evidence(conn: sqlite3.Connection, message_ids: list[int] | None) -> list[MessageEvidence]:
    """The evidence of the recorded messages (all with None), oldest first."""
    where, params = "", []
    if message_ids is not None:
        where = " AND m.id IN (SELECT value FROM json_each(?))"
        params = [json.dumps(message_ids)]
    rows = conn.execute(
        "SELECT m.id, m.from_addr, m.headers, m.subject, m.forwarded_from FROM messages m "
        f"WHERE m.status = 'recorded'{where} ORDER BY m.id",
        params,
    ).fetchall()
    parts: dict[int, tuple[list[str], list[str]]] = {}
    for mid, filename, _kind, unit_cell in conn.execute(
        "SELECT p.message, p.filename, p.kind, "
        "CASE WHEN p.kind = 'statistics' AND json_valid(p.facts) THEN json_extract(p.facts, '$.unit_cell') END "
        "FROM parts p JOIN messages m ON m.id = p.message "
        f"WHERE m.status = 'recorded'{where} ORDER BY p.message, p.seq",
        params,
    ):
        names, cells = parts.setdefault(mid, ([], []))
        if filename:
            names.append(filename)
        if unit_cell:
            cells.append(str(unit_cell))
    for mid, filename in conn.execute(
        "SELECT l.message, l.filename FROM links l JOIN messages m ON m.id = l.message "
        f"WHERE m.status = 'recorded' AND l.filename IS NOT NULL{where}",
        params,
    ):
        parts.setdefault(mid, ([], []))[0].append(filename)
    out = []
    for mid, from_addr, headers, subject, forwarded in rows:
        sender, auth, spf, froms, replies, order = _header_evidence(headers)
        names, cells = parts.get(mid, ([], []))
        out.append(
            MessageEvidence(
                id=mid,
                from_addr=(from_addr or "").lower() or None,
                sender=(sender or "").lower() or None,
                subject=subject,
                filenames=names,
                unit_cells=cells,
                forwarded_from=[str(a).lower() for a in _json_list(forwarded) if a],
                auth_results=auth,
                received_spf=spf,
                auth_order=order if isinstance(order, list) else None,
                from_addrs=froms,
                replies_to=replies,
            )
        )
    return out


@dataclass
class TrustContext:
    """What ``sender_trust`` needs besides the message: the roster, the believed
    Authentication-Results ids, whether the server writes them (``[attribution]
    authentication``), and our own mails (Message-ID -> the unit it went to)."""

    roster: Roster
    authserv_ids: tuple[str, ...] = ()
    our_mail: dict[str, str] = field(default_factory=dict)
    authentication: str = "required"
    public_domains: tuple[str, ...] = ()  # an SPF pass alone proves no address there
    received_hops: int = 1  # the own servers' Received: lines ([attribution] received_hops)
    received_by: tuple[str, ...] = ()  # or their "by" hosts ([attribution] received_by)

    @classmethod
    def load(cls, conn: sqlite3.Connection, roster: Roster, config) -> TrustContext:
        # receipts and reminders we sent to a unit; replies in their thread come from that unit
        ours = dict(
            conn.execute(
                "SELECT smtp_message_id, unit FROM outbox WHERE unit IS NOT NULL AND status != 'failed'"
            ).fetchall()
        )
        at = getattr(config, "attribution", None)
        ids = tuple(getattr(at, "authserv_ids", ()) or ())
        public = tuple(getattr(config, "public_domains", ()) or ())
        hops = getattr(at, "received_hops", 1)
        by = tuple(getattr(at, "received_by", ()) or ())
        return cls(roster, ids, ours, getattr(at, "authentication", "required"), public, hops, by)

    def thread_unit(self, ev: MessageEvidence) -> str | None:
        """The unit our mail went to, when the message replies in its thread (one unit only)."""
        units = {self.our_mail[r] for r in ev.replies_to if r in self.our_mail}
        return next(iter(units)) if len(units) == 1 else None


def _unproven(ev: MessageEvidence, verdict: authresults.Verdict, ctx: TrustContext) -> str:
    """Why a roster or own-domain From is not believed although nothing failed ('' if it is)."""
    if len(set(ev.from_addrs)) > 1:
        return f"the message has several From addresses ({', '.join(ev.from_addrs)})"
    if not ev.from_addr:
        return "the message has no From address"
    if ctx.authentication == "not-available" or verdict.proven:
        return ""
    return verdict.missing


def sender_trust(att: Attribution, ev: MessageEvidence, ctx: TrustContext) -> tuple[str | None, str]:
    """How far the sender of an attributed message is believed, and a note for the reason.

    The one place that decides trust (extend it here): ``staff`` for an assign; ``named`` when
    the receiving server failed SPF/DKIM/DMARC for the From; ``registered`` when From is the
    unit's roster address and ``domain`` when it is in the unit's own domain, both only with
    the server's aligned pass (``[attribution] authentication = "required"``) and one From
    address; ``thread`` when the message replies to our mail to that unit; ``named`` otherwise.
    """
    if att.unit is None:
        return None, ""
    if att.method == "manual":
        return STAFF, ""
    verdict = authresults.verdict(
        ev.auth_results,
        ev.from_addr,
        ctx.authserv_ids,
        ev.received_spf,
        order=ev.auth_order,
        mode=ctx.authentication,
        public_domains=ctx.public_domains,
        hops=ctx.received_hops,
        received_by=ctx.received_by,
    )
    if verdict.failed:
        by = " and ".join(verdict.checked_by) or "the receiving server"
        return NAMED, f"; {by} recorded {', '.join(verdict.failures)} for {ev.from_addr}: not believed"
    from_units = {u.id for u in ctx.roster.by_email.get(ev.from_addr or "", [])}
    level = None
    if att.method == "address" and att.unit in from_units:
        level = REGISTERED
    elif att.method == "domain":
        level = DOMAIN
    doubt = _unproven(ev, verdict, ctx) if level else ""
    if level and not doubt:
        return level, ""
    if ctx.thread_unit(ev) == att.unit:
        return THREAD, ""
    return NAMED, f"; not believed without proof: {doubt}" if doubt else ""


def manual_assignments(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """message id -> (unit, reason) for assign overrides in force (the latest one wins)."""
    out: dict[int, tuple[str, str]] = {}
    for oid, mid, unit, note, actor in conn.execute(
        "SELECT id, message, unit, note, actor FROM overrides "
        "WHERE action = 'assign' AND revoked_at IS NULL ORDER BY id"
    ):
        reason = f"assigned by {actor} (override {oid})" + (f": {note}" if note else "")
        out[mid] = (unit, reason)
    return out


def attribute(
    conn: sqlite3.Connection, roster: Roster, config, message_ids: Iterable[int] | None = None
) -> dict[int, Attribution]:
    """Work out and store (``attributions``, upsert) the unit of each message.

    ``message_ids=None`` recomputes every message (after a roster or config change); rows of
    messages that are no longer 'recorded' (duplicates, failures) are removed. Returns the
    decisions by message id. One transaction (a savepoint inside an open one).
    """
    ids = None if message_ids is None else sorted({int(i) for i in message_ids})
    if getattr(config, "scoped", False):  # [[campaigns]]: which campaign first (reconcile.scope)
        from reconcile.scope import attribute_campaigns

        work = partial(attribute_campaigns, conn, config, ids)
    else:
        attributor = Attributor(roster, getattr(config, "public_domains", []))
        trust = TrustContext.load(conn, roster, config)
        work = partial(_attribute_locked, conn, roster, attributor, trust, ids, config.campaign.id)
    # Read the evidence inside the write transaction: a concurrent writer cannot slip a
    # message in between reading and replacing the rows (two re-attributions at once).
    with transaction(conn):
        return work()


def kept_bounces(conn: sqlite3.Connection) -> dict[int, str]:
    """Bounces of our own mail (reconcile/outgoing/bounces.py) are never submissions: their
    verdicts (message id -> reason) are kept through a new attribution pass."""
    return dict(conn.execute("SELECT message, reason FROM attributions WHERE method = 'bounce'").fetchall())


def _attribute_locked(
    conn: sqlite3.Connection,
    roster: Roster,
    attributor: Attributor,
    trust: TrustContext,
    ids: list[int] | None,
    campaign: str,
) -> dict[int, Attribution]:
    manual = manual_assignments(conn)
    bounces = kept_bounces(conn)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    decisions: dict[int, Attribution] = {}
    for ev in load_evidence(conn, ids):
        if ev.id in bounces:
            decisions[ev.id] = Attribution(None, "bounce", bounces[ev.id])
        elif ev.id in manual and manual[ev.id][0] in roster.by_id:
            unit, reason = manual[ev.id]
            decisions[ev.id] = Attribution(unit, "manual", reason)
        else:
            decisions[ev.id] = attributor.decide(ev)
            if decisions[ev.id].unit is None and decisions[ev.id].method is None:
                in_thread = trust.thread_unit(ev)
                if in_thread in roster.by_id:
                    decisions[ev.id] = Attribution(
                        in_thread, "thread", f"replies to our mail to {roster.by_id[in_thread].name}"
                    )
        a = decisions[ev.id]
        a.trust, note = sender_trust(a, ev, trust)
        a.reason += note
    rows = [
        (mid, campaign if a.method != "bounce" else None, a.unit, a.method, a.reason, None, a.trust)
        for mid, a in decisions.items()
    ]
    store_attributions(conn, rows, ids, now)
    return decisions


def store_attributions(conn: sqlite3.Connection, rows: list[tuple], ids: list[int] | None, now: str) -> None:
    """Replace the attributions of ``ids`` (all with None) by ``rows``: (message, campaign,
    unit, method, reason, scope, trust)."""
    if ids is None:
        conn.execute("DELETE FROM attributions")
    else:
        conn.execute(
            "DELETE FROM attributions WHERE message IN (SELECT value FROM json_each(?))", [json.dumps(ids)]
        )
    conn.executemany(
        "INSERT OR REPLACE INTO attributions (message, campaign, unit, method, reason, scope, trust, decided_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*row, now) for row in rows],
    )
