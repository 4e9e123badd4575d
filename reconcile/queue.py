"""The queue staff work through: messages no unit was found for (`unmatched`), and what staff
decided about them (`unmatched --all`, the web's 未匹配 page and its 已处理 list).

A message is ``open`` while it is unmatched and undecided; staff close it by ``assign`` (it
counts for a unit: ``assigned``), ``reject MESSAGE`` (``rejected``: it counts for nothing) or
``dismiss MESSAGE`` (``dismissed``: not campaign material: advertising, spam, other business).
``revoke N`` brings it back. Messages pending review leave `review` the same way
(reconcile/status.py leaves rejected and dismissed messages out).
"""

from __future__ import annotations

import sqlite3

from reconcile.overrides import DROPPING, Override, listing

OPEN, DISMISSED, REJECTED, ASSIGNED = "open", "dismissed", "rejected", "assigned"
QUEUE_STATES = (OPEN, DISMISSED, REJECTED, ASSIGNED)
_STATE_OF = {"dismiss": DISMISSED, "reject": REJECTED, "assign": ASSIGNED}
FIELDS = ("message_id", "from", "subject", "reason", "received_at", "id")


def decisions_by_message(conn: sqlite3.Connection) -> dict[int, Override]:
    """The deciding decision in force per message: a reject or dismiss over an assign (the
    message then counts for nothing), else the latest."""
    out: dict[int, Override] = {}
    for o in listing(conn, include_revoked=False):
        if o.message is None or o.action not in _STATE_OF:
            continue
        held = out.get(o.message)
        if held is None or o.action in DROPPING or held.action == "assign":
            out[o.message] = o
    return out


def queue_rows(conn: sqlite3.Connection, rows: list[dict], decided: bool) -> list[dict]:
    """`unmatched [--all] --json` rows from ``rows`` (reconcile.messages.message_rows), oldest
    first: the open ones (unmatched, undecided); with ``decided`` also those staff decided,
    each with ``state``, ``decided_by``, ``decided_at``, ``note`` and ``override``."""
    decisions = decisions_by_message(conn)
    out = []
    for r in rows:
        o = decisions.get(r["id"])
        if r["disposition"] in ("duplicate", "failed"):
            continue
        if o is None:
            if r["disposition"] != "unmatched":
                continue
            state = OPEN
        elif not decided:
            continue
        else:
            state = _STATE_OF[o.action]
        row = {k: r[k] for k in FIELDS}
        if decided:
            row.update(
                state=state,
                decided_by=o.actor if o else None,
                decided_at=o.created_at if o else None,
                note=o.note if o else None,
                override=o.id if o else None,
                unit=r["unit"],
                campaign=r["campaign"],
            )
        out.append(row)
    return out
