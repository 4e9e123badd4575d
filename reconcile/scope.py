"""Which campaign a message is for, when the config lists campaigns (``[[campaigns]]``).

One mailbox serves many notices and plenty of other mail (questions, project paperwork). The
evidence is tried most certain first; the first level that names exactly one campaign decides
(``attributions.scope`` records why):

1. ``assign``   a staff ``assign MESSAGE UNIT --campaign ID`` (not revoked) always wins;
2. ``thread``   the message replies to our mail for a campaign (notice, receipt, reminder: its
                In-Reply-To or References name an ``outbox`` Message-ID). The unit we wrote to
                is the sender when no roster evidence says otherwise (a reply from a personal
                mailbox counts, method ``thread``);
3. ``keyword``  a campaign's keywords in the subject or a file name (only campaigns open at the
                message's arrival: ``opens`` .. ``closes``);
4. ``fit``      otherwise, among the campaigns open at arrival: the material fits only one
                campaign's items (files of the kinds it asks for; a document only when its
                name or the subject says it is a report or names the item; the items' labels
                and keywords weigh in), preferring campaigns whose roster knows the sender.

A message that fits no campaign gets the disposition ``other`` (no receipt, counted nowhere,
``messages --disposition other``); one that fits several equally stays unmatched with a reason
naming them, for ``assign --campaign`` to settle. Within the chosen campaign, the unit is the one
``reconcile.attribute`` finds with that campaign's roster.

With the old ``[campaign]`` form there is one campaign and no scope: every message is for it,
exactly as before campaigns existed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconcile.attribute import (
    Attribution,
    Attributor,
    TrustContext,
    kept_bounces,
    load_evidence,
    sender_trust,
    store_attributions,
)
from reconcile.pictures import decoration
from reconcile.roster import Roster, load_roster
from reconcile.status import LINK_DOCUMENT_SUFFIXES, stored_time

REPORT_WORDS = ("总结", "报告", "汇报")
OTHER = "other"  # attributions.method of a message for no campaign


@dataclass
class ScopedAttribution(Attribution):
    campaign: str | None = None
    scope: str | None = None  # why this campaign (or why none)


@dataclass
class MessageFacts:
    """What scope looks at besides the attribution evidence."""

    id: int
    received_at: datetime
    subject: str
    replies_to: list[str]  # In-Reply-To first, then References from the newest
    files: list[tuple[str, str]] = field(default_factory=list)  # (parts.kind, file name)
    video_links: int = 0  # download links not fetched (they stand in for a video)


# ------------------------------------------------------------------------------- reading


def json_object(text: str | None) -> dict:
    """A JSON object stored as text (messages.headers); {} for anything else."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ids(value) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).split()
    return [str(x).strip().strip("<>") for x in items if str(x).strip()]


def message_facts(conn: sqlite3.Connection, ids: list[int] | None) -> dict[int, MessageFacts]:
    where, params = "", []
    if ids is not None:
        where = " AND m.id IN (SELECT value FROM json_each(?))"
        params = [json.dumps(ids)]
    out: dict[int, MessageFacts] = {}
    for mid, received_at, subject, headers in conn.execute(
        "SELECT m.id, m.received_at, m.subject, m.headers FROM messages m "
        f"WHERE m.status = 'recorded'{where}",
        params,
    ):
        h = json_object(headers)
        refs = _ids(h.get("references"))
        out[mid] = MessageFacts(
            mid, stored_time(received_at), subject or "", [*_ids(h.get("in_reply_to")), *reversed(refs)]
        )
    for mid, kind, filename, facts in conn.execute(
        "SELECT p.message, p.kind, coalesce(p.filename, p.location, ''), "
        "CASE p.kind WHEN 'image' THEN p.facts END FROM parts p "
        f"JOIN messages m ON m.id = p.message WHERE m.status = 'recorded'{where} ORDER BY p.message, p.seq",
        params,
    ):
        if mid in out and not (facts and decoration(json_object(facts))):  # not a signature's logo
            out[mid].files.append((kind, filename))
    for mid, filename in conn.execute(
        "SELECT l.message, coalesce(l.filename, '') FROM links l JOIN messages m ON m.id = l.message "
        f"WHERE m.status = 'recorded' AND l.status != 'downloaded'{where}",
        params,
    ):
        if mid in out and not filename.lower().endswith(LINK_DOCUMENT_SUFFIXES):
            out[mid].video_links += 1
    return out


def our_mail(conn: sqlite3.Connection, config) -> dict[str, tuple[str, str | None, str]]:
    """Message-ID of every mail we sent -> (campaign, unit, kind). Rows written before campaigns
    existed (campaign NULL) belong to the legacy campaign."""
    legacy = config.legacy_campaign
    out = {}
    for message_id, campaign, unit, kind in conn.execute(
        "SELECT smtp_message_id, campaign, unit, kind FROM outbox"
    ):
        cid = campaign or legacy
        if cid:
            out[message_id.strip("<>")] = (cid, unit, kind)
    return out


def manual_scopes(conn: sqlite3.Connection, config) -> dict[int, tuple[str | None, str, str]]:
    """message id -> (campaign, unit, reason) for assign overrides in force (the latest wins)."""
    legacy = config.legacy_campaign
    out: dict[int, tuple[str | None, str, str]] = {}
    for oid, mid, unit, note, actor, campaign in conn.execute(
        "SELECT id, message, unit, note, actor, campaign FROM overrides "
        "WHERE action = 'assign' AND revoked_at IS NULL ORDER BY id"
    ):
        reason = f"assigned by {actor} (override {oid})" + (f": {note}" if note else "")
        out[mid] = (campaign or legacy, unit, reason)
    return out


# ------------------------------------------------------------------------------- deciding


def _doc_fits(item, filename: str, subject: str) -> bool:
    """A document counts as material only when it says it is a report or names the item."""
    return any(w in filename for w in REPORT_WORDS) or any(
        w and (w in filename or w in subject) for w in item.words
    )


def fit(campaign, facts: MessageFacts) -> tuple[int, list[str]]:
    """How well the message's material fits the campaign's items: (score, labels of the items
    it fits). Each fitting file scores one; each item named in a file name or subject one more."""
    score, labels = 0, []
    for kind, filename in facts.files:
        for item in campaign.items:
            if item.part_kind != kind:
                continue
            if item.kind == "document" and not _doc_fits(item, filename, facts.subject):
                continue
            score += 1
            if item.label not in labels:
                labels.append(item.label)
            break
    if facts.video_links:
        video = campaign.first("video")
        if video is not None:
            score += facts.video_links
            labels.append(video.label)
    texts = [facts.subject, *(f for _, f in facts.files)]
    for item in campaign.items:
        if any(w and w in t for w in item.words for t in texts) and any(
            k == item.part_kind for k, _ in facts.files
        ):
            score += 1
    return score, labels


def keyword_hits(campaign, facts: MessageFacts) -> list[str]:
    texts = [facts.subject, *(f for _, f in facts.files)]
    return [k for k in campaign.keywords if any(k in t for t in texts)]


def decide(
    facts: MessageFacts,
    campaigns: list,
    threads: dict[str, tuple[str, str | None, str]],
    units: dict[str, str | None],
) -> tuple[str | None, str, str | None]:
    """(campaign id or None, why, unit of our mail replied to). Campaign None with ``other`` in
    the reason's place means the message is for no campaign (see ``OTHER``)."""
    by_id = {c.id: c for c in campaigns}
    for ref in facts.replies_to:
        hit = threads.get(ref)
        if hit and hit[0] in by_id:
            cid, unit, kind = hit
            return cid, f"a reply to our {kind} for {by_id[cid].name}", unit
    open_ = [c for c in campaigns if c.is_open(facts.received_at)]
    named = {c.id: keyword_hits(c, facts) for c in open_}
    named = {cid: words for cid, words in named.items() if words}
    if len(named) == 1:
        cid, words = next(iter(named.items()))
        return cid, f"names {', '.join(words)} ({by_id[cid].name})", None
    candidates = [c for c in open_ if c.id in named] if named else open_
    scored = [(c, *fit(c, facts)) for c in candidates]
    scored = [(c, score, labels) for c, score, labels in scored if score > 0]
    known = [s for s in scored if units.get(s[0].id)]
    if known:
        scored = known
    if not scored:
        if named:
            return None, "names several campaigns: " + _listing(by_id, named), None
        return None, OTHER, None
    best = max(score for _, score, _ in scored)
    top = [(c, labels) for c, score, labels in scored if score == best]
    if len(top) == 1:
        c, labels = top[0]
        return c.id, f"its material ({', '.join(labels)}) fits {c.name}", None
    shown = "; ".join(f"{c.id} ({', '.join(labels)})" for c, labels in top)
    return None, f"fits several campaigns equally: {shown}", None


def _listing(by_id: dict, named: dict[str, list[str]]) -> str:
    return "; ".join(f"{cid} ({', '.join(words)})" for cid, words in named.items())


# ------------------------------------------------------------------------------- recording


def rosters(config) -> dict[str, Roster]:
    """Each campaign's roster (a file shared by campaigns is read once)."""
    read: dict = {}
    out: dict[str, Roster] = {}
    for c in config.campaigns:
        if c.roster not in read:
            read[c.roster] = load_roster(c.roster)
        out[c.id] = read[c.roster]
    return out


def attribute_campaigns(conn: sqlite3.Connection, config, ids: list[int] | None) -> dict[int, Attribution]:
    """Attribute messages (all with ``ids=None``) to a campaign and, within it, a unit; store
    them in ``attributions``. Call inside a write transaction."""
    campaigns = list(config.campaigns)
    public = getattr(config, "public_domains", [])
    by_campaign = rosters(config)
    attributors = {cid: Attributor(r, public) for cid, r in by_campaign.items()}
    trust = {cid: TrustContext.load(conn, r, config) for cid, r in by_campaign.items()}
    threads = our_mail(conn, config)
    manual = manual_scopes(conn, config)
    facts = message_facts(conn, ids)
    bounces = kept_bounces(conn)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    decisions: dict[int, ScopedAttribution] = {}
    for ev in load_evidence(conn, ids):
        if ev.id in bounces:
            decisions[ev.id] = ScopedAttribution(None, "bounce", bounces[ev.id])
            continue
        if ev.id in manual:
            cid, unit, reason = manual[ev.id]
            if cid in by_campaign and unit in by_campaign[cid].by_id:
                decisions[ev.id] = ScopedAttribution(
                    unit, "manual", reason, trust="staff", campaign=cid, scope="assigned by staff"
                )
                continue
        found = {cid: a.decide(ev) for cid, a in attributors.items()}
        units = {cid: a.unit for cid, a in found.items()}
        cid, why, thread_unit = decide(facts[ev.id], campaigns, threads, units)
        if cid is None:
            method = OTHER if why == OTHER else None
            reason = (
                "for no campaign: not a reply to our mail, no campaign's keywords, no material an open "
                "campaign asks for"
                if method == OTHER
                else why
            )
            decisions[ev.id] = ScopedAttribution(None, method, reason, campaign=None, scope=why)
            continue
        a = found[cid]
        # a reply to our mail to a unit is that unit's, unless its address says otherwise (the
        # thread is stronger evidence than a name in the subject)
        if thread_unit and a.method not in ("address", "domain") and thread_unit in by_campaign[cid].by_id:
            name = by_campaign[cid].by_id[thread_unit].name
            a = Attribution(thread_unit, "thread", f"replies in the thread of our mail to {name}")
        level, note = sender_trust(a, ev, trust[cid])
        decisions[ev.id] = ScopedAttribution(
            a.unit, a.method, a.reason + note, trust=level, campaign=cid, scope=why
        )
    rows = [(mid, a.campaign, a.unit, a.method, a.reason, a.scope, a.trust) for mid, a in decisions.items()]
    store_attributions(conn, rows, ids, now)
    out: dict[int, Attribution] = dict(decisions)
    return out
