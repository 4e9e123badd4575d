"""Staff decisions: assign, accept, reject, exempt, extend, dismiss; each one recorded and reversible.

Every decision is a row in ``overrides`` and an entry in ``audit_log`` (who, when, what, note),
written in one transaction. A decision is undone with ``revoke(override_id)``, which marks the
row revoked (never deletes it) and logs that too; the earlier state comes back by itself because
status is recomputed from facts and the decisions in force.

Which decision is in force: the latest one not revoked, per message (assign, and reject of a
message, dismiss: it then counts for nothing and leaves the queue; a later assign revokes it),
per unit and item (accept /
reject: the later replaces the earlier), per unit (exempt, extend).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingest.config import ConfigError, parse_rfc3339
from ingest.db import inserted_id, transaction
from reconcile.clerk_time import NotATime, examples, parse_clerk_time
from reconcile.i18n import gettext as _

ACTIONS = ("assign", "accept", "reject", "exempt", "extend", "dismiss", "answered")
# decisions about a message that make it count for nothing: `reject MESSAGE` (not the unit's
# material) and `dismiss MESSAGE` (not campaign material at all: advertising, spam, other business)
DROPPING = ("reject", "dismiss")
DROPPING_SQL = "('reject', 'dismiss')"
COLUMNS = "id, action, unit, item, message, value, note, actor, created_at, revoked_at, revoked_by, campaign"


class OverrideError(ValueError):
    """A request that cannot be carried out (unknown message, already revoked ...)."""


@dataclass
class Override:
    id: int
    action: str
    unit: str | None
    item: str | None
    message: int | None
    value: str | None
    note: str | None
    actor: str
    created_at: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    campaign: str | None = None  # NULL: made before campaigns existed (Config.legacy_campaign)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def audit(
    conn: sqlite3.Connection,
    actor: str,
    action: str,
    unit: str | None,
    detail: dict | None = None,
    note: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, unit, detail, note) VALUES (?, ?, ?, ?, ?, ?)",
        [_now(), actor, action, unit, json.dumps(detail or {}, ensure_ascii=False), note],
    )


def add(
    conn: sqlite3.Connection,
    action: str,
    actor: str,
    *,
    unit: str | None = None,
    item: str | None = None,
    message: int | None = None,
    value: str | None = None,
    note: str | None = None,
    campaign: str | None = None,
) -> int:
    """Record a decision (and its audit entry) about ``campaign``; returns the override id."""
    if action not in ACTIONS:
        raise OverrideError(f"unknown action {action!r}")
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO overrides (action, unit, item, message, value, note, actor, created_at, campaign) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [action, unit, item, message, value, note, actor, _now(), campaign],
        )
        oid = inserted_id(cur)
        audit(
            conn,
            actor,
            action,
            unit,
            {
                k: v
                for k, v in {
                    "override": oid,
                    "item": item,
                    "message": message,
                    "value": value,
                    "campaign": campaign,
                }.items()
                if v is not None
            },
            note,
        )
    return oid


@dataclass
class Assigned:
    override: int
    message: int
    previous_unit: str | None  # the unit the message counted for before, if another
    previous_method: str | None  # how it was attributed to that unit ("manual" = by hand)
    replaces: list[int]  # earlier assign decisions of this message, now revoked


def assign(
    conn: sqlite3.Connection,
    roster,
    config,
    message: int,
    unit: str,
    actor: str,
    note: str | None = None,
    campaign: str | None = None,
) -> Assigned:
    """Attribute ``message`` to ``unit`` by hand, whatever the rules say, and re-attribute it.

    One assign is in force per message: earlier ones are revoked, so revoking this one returns
    the message to automatic attribution. Raises OverrideError for a duplicate or failed message
    (it counts for no unit)."""
    from reconcile.attribute import attribute

    must_be_recorded(conn, message, "counts for no unit; assign the message it repeats instead")
    prev = conn.execute("SELECT unit, method FROM attributions WHERE message = ?", [message]).fetchone()
    with transaction(conn):  # the decision, the earlier ones revoked and the new attribution: all or none
        earlier = assigns_in_force(conn, message) + message_rejects_in_force(conn, message)
        oid = add(conn, "assign", actor, unit=unit, message=message, note=note, campaign=campaign)
        for o in earlier:
            revoke(conn, o.id, actor, f"replaced by override {oid}")
        attribute(conn, roster, config, [message])
    moved = prev is not None and prev[0] and prev[0] != unit
    return Assigned(
        oid, message, prev[0] if moved else None, prev[1] if moved else None, [o.id for o in earlier]
    )


def extend(
    conn: sqlite3.Connection,
    config,
    unit: str,
    until: str,
    actor: str,
    note: str | None = None,
    campaign: str | None = None,
    now: datetime | None = None,
) -> tuple[int, str]:
    """Give ``unit`` a later deadline (``until`` as ``parse_until`` reads it, ``now`` for 明天);
    returns the override id and the new deadline (RFC 3339). Never earlier than the campaign's."""
    tz = config.campaign.timezone
    when = parse_until(until, tz, now)
    deadline = config.campaign.deadline
    if when <= deadline:
        raise OverrideError(
            f"--until {when.astimezone(tz).isoformat(timespec='seconds')} is not later than the campaign "
            f"deadline {deadline.astimezone(tz).isoformat(timespec='seconds')}; to make a unit's deadline "
            "earlier is not supported"
        )
    value = when.isoformat(timespec="seconds")
    return add(conn, "extend", actor, unit=unit, value=value, note=note, campaign=campaign), value


def revoke_decision(
    conn: sqlite3.Connection, roster, config, override_id: int, actor: str, note: str | None = None
) -> Override:
    """``revoke``, and for an assign, work out the message's unit again by the rules."""
    o = revoke(conn, override_id, actor, note)
    if o.action == "assign" and o.message:
        from reconcile.attribute import attribute

        attribute(conn, roster, config, [o.message])
    return o


def get(conn: sqlite3.Connection, override_id: int) -> Override | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM overrides WHERE id = ?",
        [override_id],
    ).fetchone()
    return Override(*row) if row else None


def revoke(conn: sqlite3.Connection, override_id: int, actor: str, note: str | None = None) -> Override:
    """Undo a decision. Raises OverrideError if it does not exist or is already revoked."""
    with transaction(conn):
        o = get(conn, override_id)
        if o is None:
            raise OverrideError(f"there is no override {override_id}: see `mailroll overrides`")
        if o.revoked_at:
            raise OverrideError(
                f"override {override_id} was already revoked by {o.revoked_by} at {o.revoked_at}"
            )
        now = _now()
        conn.execute(
            "UPDATE overrides SET revoked_at = ?, revoked_by = ? WHERE id = ?", [now, actor, override_id]
        )
        audit(
            conn,
            actor,
            "revoke",
            o.unit,
            {"override": override_id, "action": o.action, "item": o.item, "message": o.message},
            note,
        )
    o.revoked_at, o.revoked_by = now, actor
    return o


def listing(
    conn: sqlite3.Connection, *, unit: str | None = None, include_revoked: bool = True, config=None
) -> list[Override]:
    """Decisions, oldest first; with ``config``: only those about its selected campaign, and the
    decisions about a message for no campaign in particular (``reject MESSAGE``: it counts for
    nothing in any campaign, so every campaign lists it and can revoke it)."""
    sql = f"SELECT {COLUMNS} FROM overrides WHERE 1=1"
    params: list = []
    if unit is not None:
        sql += " AND unit = ?"
        params.append(unit)
    if not include_revoked:
        sql += " AND revoked_at IS NULL"
    if config is not None:
        clause, more = config.campaign_clause()
        sql += f" AND ({clause} OR (campaign IS NULL AND action IN {DROPPING_SQL} AND message IS NOT NULL))"
        params += more
    return [Override(*r) for r in conn.execute(sql + " ORDER BY id", params)]


@dataclass
class InForce:
    """The decisions in force, arranged for status."""

    items: dict[tuple[str, str], Override]  # (unit, item) -> accept/reject
    exempt: dict[str, Override]  # unit -> exempt
    extend: dict[str, tuple[datetime, Override]]  # unit -> (deadline, extend)


def in_force(conn: sqlite3.Connection, config=None) -> InForce:
    """The decisions in force (about the selected campaign of ``config``, when given)."""
    items: dict[tuple[str, str], Override] = {}
    exempt: dict[str, Override] = {}
    extend: dict[str, tuple[datetime, Override]] = {}
    for o in listing(conn, include_revoked=False, config=config):
        if o.action in ("accept", "reject") and o.unit and o.item:
            items[(o.unit, o.item)] = o
        elif o.action == "exempt" and o.unit:
            exempt[o.unit] = o
        elif o.action == "extend" and o.unit and o.value:
            try:
                extend[o.unit] = (parse_rfc3339(o.value), o)
            except ConfigError:
                continue
    return InForce(items, exempt, extend)


def unknown_units(conn: sqlite3.Connection, roster, config=None) -> list[Override]:
    """Decisions in force that name a unit no longer in the roster (renamed or removed id).

    They do nothing (status only looks at roster units; an assign to such a unit falls back to
    automatic attribution) but staff should revoke or redo them: `overrides` marks them and
    `roster check` reports them."""
    return [
        o
        for o in listing(conn, include_revoked=False, config=config)
        if o.unit
        and o.unit not in roster.by_id
        and not (o.action in DROPPING and o.message and o.campaign is None)
    ]


def assigns_in_force(conn: sqlite3.Connection, message: int) -> list[Override]:
    """The assign decisions in force for one message, oldest first."""
    return [o for o in listing(conn, include_revoked=False) if o.action == "assign" and o.message == message]


def message_rejects_in_force(conn: sqlite3.Connection, message: int | None = None) -> list[Override]:
    """``reject MESSAGE`` and ``dismiss MESSAGE`` decisions in force (of one message, or all),
    oldest first: such a message counts for no item (reconcile/status.py) and leaves the queue."""
    return [
        o
        for o in listing(conn, include_revoked=False)
        if o.action in DROPPING and o.message is not None and (message is None or o.message == message)
    ]


def drop_message(conn: sqlite3.Connection, action: str, message: int, actor: str, note: str) -> int:
    """``reject MESSAGE`` / ``dismiss MESSAGE``: the message stays on record but counts for
    nothing and leaves `unmatched` and `review`. One such decision per message is in force:
    deciding again replaces the earlier one (revoked, logged)."""
    if action not in DROPPING:
        raise OverrideError(f"unknown action {action!r}")
    if not (note or "").strip():
        raise OverrideError("say why (--note)")
    must_be_recorded(conn, message, "is in no queue; decide about the message it repeats, or retry it")
    row = conn.execute("SELECT unit FROM attributions WHERE message = ?", [message]).fetchone()
    earlier = message_rejects_in_force(conn, message)
    oid = add(conn, action, actor, unit=row[0] if row else None, message=message, note=note.strip())
    for o in earlier:
        revoke(conn, o.id, actor, f"replaced by override {oid}")
    return oid


def must_be_recorded(conn: sqlite3.Connection, message: int, otherwise: str) -> None:
    """OverrideError unless ``message`` exists and is recorded (a duplicate or a failed message
    is in no queue and counts for nothing): "message N is a duplicate message and <otherwise>"."""
    row = conn.execute("SELECT status FROM messages WHERE id = ?", [message]).fetchone()
    if row is None:
        raise OverrideError(f"unknown message {message}")
    if row[0] != "recorded":
        raise OverrideError(
            f"message {message} is a {row[0]} message and {otherwise} (see `mailroll messages`)"
        )


def resolve_message(conn: sqlite3.Connection, text: str) -> int:
    """A message by its mailroll id (a number) or its Message-ID (with or without <>)."""
    text = text.strip()
    if text.isascii() and text.isdigit() and int(text) < 2**63:  # SQLite's integers
        row = conn.execute("SELECT id FROM messages WHERE id = ?", [int(text)]).fetchone()
        if row:
            return row[0]
    mid = text.strip("<>")
    rows = conn.execute(
        "SELECT id FROM messages WHERE message_id = ? ORDER BY (status = 'recorded') DESC, id", [mid]
    ).fetchall()
    if rows:
        return rows[0][0]
    raise OverrideError(f"unknown message {text}: give the number or Message-ID shown by `mailroll messages`")


def parse_until(text: str, tz, now: datetime | None = None) -> datetime:
    """A new deadline as the clerk types it (``reconcile.clerk_time``): RFC 3339, or
    '2022-06-30 18:00', '6月30日' (the end of that day), '明天', '下周一' in the campaign's zone."""
    now = now or datetime.now(UTC)
    try:
        return parse_clerk_time(text, tz, now)
    except NotATime:
        raise OverrideError(
            _("--until {text!r} is not a time; write e.g. {examples} (campaign time zone)").format(
                text=text, examples=examples(tz, now)
            )
        ) from None
