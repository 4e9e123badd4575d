"""Per-unit status: which submission of each item counts, whether it is ok, invalid or late,
and the unit's state, as ``status --json`` shows it.

The rules are in docs/RECONCILE.md ("Status", "Sender trust", "Staff decisions"); the rows are
cached by ``reconcile.status_cache``. This module imports nothing heavy.
"""

# long: the status rules, in the order docs/RECONCILE.md states them

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from reconcile.attribute import STAFF, TRUSTED
from reconcile.judge import (
    INVALID,
    MISSING,
    OK,
    Judgement,
    describe,
    facts_of,
    judge_link,
    judge_part,
    unreadable,
)
from reconcile.pictures import decoration
from reconcile.sheet_owner import check_sheet_unit
from reconcile.vocab import UnitState

log = logging.getLogger("mailroll.status")
LINK_DOCUMENT_SUFFIXES = (".xls", ".xlsx", ".et", ".doc", ".docx", ".wps", ".pdf")


def stored_time(text: str) -> datetime:
    """A time as the database stores it (ISO 8601, UTC when it has no zone)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso_text(value: datetime, tz=None) -> str:
    return value.astimezone(tz or UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------- computing


PART_COLUMNS = (
    "id",
    "message",
    "seq",
    "origin",
    "location",
    "filename",
    "kind",
    "sha256",
    "size",
    "facts",
    "error",
)


def part_rows(conn: sqlite3.Connection, where: str, params: list) -> Iterator[dict]:
    """``parts`` rows (``p``, joined and filtered by ``where``) as dicts of ``PART_COLUMNS``, in
    message and file order: what judging and `show` read of each file."""
    for row in conn.execute(
        f"SELECT p.{', p.'.join(PART_COLUMNS)} FROM parts p {where} ORDER BY p.message, p.seq", params
    ):
        yield dict(zip(PART_COLUMNS, row, strict=True))


def _load(conn: sqlite3.Connection, campaign: str):
    """The messages attributed to a unit in ``campaign``, with their parts and unfetched links."""
    messages: dict[int, dict] = {}
    by_unit: dict[str, list[int]] = defaultdict(list)
    for mid, unit, method, reason, trust, message_id, received_at, subject, from_addr in conn.execute(
        "SELECT m.id, a.unit, a.method, a.reason, a.trust, m.message_id, m.received_at, m.subject, "
        "m.from_addr "
        "FROM attributions a JOIN messages m ON m.id = a.message "
        "WHERE a.unit IS NOT NULL AND a.campaign = ? AND m.status = 'recorded' "
        # reconcile.overrides.DROPPING: reject / dismiss MESSAGE
        "AND m.id NOT IN (SELECT message FROM overrides WHERE action IN ('reject', 'dismiss') "
        "AND message IS NOT NULL "
        "AND revoked_at IS NULL)",
        [campaign],
    ):
        messages[mid] = {
            "id": mid,
            "unit": unit,
            "method": method,
            "reason": reason,
            "trust": trust,
            "message_id": message_id,
            "received_at": received_at,
            "at": stored_time(received_at),
            "subject": subject,
            "from": from_addr,
        }
        by_unit[unit].append(mid)
    parts: dict[int, list[dict]] = defaultdict(list)
    for p in part_rows(
        conn,
        "JOIN attributions a ON a.message = p.message WHERE a.unit IS NOT NULL AND a.campaign = ?",
        [campaign],
    ):
        if p["message"] in messages:
            parts[p["message"]].append(p)
    links: dict[int, list[dict]] = defaultdict(list)
    lcols = ("id", "message", "url", "host", "provider", "filename", "status", "part", "error")
    for row in conn.execute(
        f"SELECT l.{', l.'.join(lcols)} FROM links l JOIN attributions a ON a.message = l.message "
        "WHERE a.unit IS NOT NULL AND a.campaign = ? AND l.status != 'downloaded' ORDER BY l.id",
        [campaign],
    ):
        link = dict(zip(lcols, row, strict=True))
        name = (link["filename"] or "").lower()
        if link["message"] in messages and not name.endswith(LINK_DOCUMENT_SUFFIXES):
            links[link["message"]].append(link)
    return messages, by_unit, parts, links


def missing_item() -> dict[str, Any]:
    """An item nothing was received for."""
    return {
        "state": MISSING,
        "late": False,
        "trust": None,
        "reason": None,
        "reason_zh": None,
        "submissions": 0,
    }


def _files(item, mid: int, parts: dict, campaign) -> list[dict]:
    """The files of message ``mid`` that can be the campaign's ``item``."""
    return [
        p
        for p in parts.get(mid, ())
        if p["kind"] == item.part_kind
        and campaign.item_for_file(p["kind"], p["filename"]) == item
        and not (p["kind"] == "image" and decoration(facts_of(p)))  # a signature's logo ...
    ]


def _day(value: datetime, tz) -> str:
    return value.astimezone(tz or UTC).strftime("%Y-%m-%d")


def _best(ps: list[dict], config, item) -> tuple[dict, Judgement]:
    judged = [(p, judge_part(p, config, item)) for p in ps]
    return next(((p, j) for p, j in judged if j.state == OK), judged[0])


def _carries(item, mid: int, parts: dict, links: dict, campaign) -> bool:
    """Whether message ``mid`` carries something that can be ``item`` (a file, or for the
    campaign's video a download link)."""
    if _files(item, mid, parts, campaign):
        return True
    return item.kind == "video" and campaign.first("video") == item and bool(links.get(mid))


def _trusted(message: dict) -> bool:
    # None: attributed before trust was recorded (re-attributed on the next refresh)
    return message["trust"] is None or message["trust"] in TRUSTED


def counted_messages(
    item, mids: list[int], messages: dict, parts: dict, links: dict, campaign, review_all: bool
) -> tuple[list[int], list[int]]:
    """(the unit's messages that may count for ``item``, the named ones held for review).

    A named sender's message counts only while no trusted sender's message carries the item
    (never, when ``review_all``)."""
    trusted = [m for m in mids if _trusted(messages[m])]
    named = [m for m in mids if not _trusted(messages[m])]
    if review_all or any(_carries(item, m, parts, links, campaign) for m in trusted):
        return trusted, [m for m in named if _carries(item, m, parts, links, campaign)]
    return mids, []


def _pending_entry(message: dict, items: list[str], review_all: bool) -> dict[str, Any]:
    if review_all:
        why = "only named: every such message waits for review ([attribution] named_senders)"
    else:
        why = f"only named; the {' and '.join(items)} from a trusted sender counts instead"
    return {
        "message": message["id"],
        "message_id": message["message_id"],
        "from": message["from"],
        "subject": message["subject"],
        "received_at": message["received_at"],
        "attribution": message["reason"],
        "items": items,
        "reason": why,
    }


# long: one item's verdict: latest file, earlier fallbacks, overrides, late; the rules read in order
def _item_status(
    unit_id: str,
    item,
    mids: list[int],
    messages: dict,
    parts: dict,
    links: dict,
    config,
    deadline: datetime,
    tz,
) -> dict[str, Any]:
    """Which submission of ``item`` counts for the unit, and what it is worth.

    * The latest message carrying a file of the item counts (within it an ok file if any).
    * A video download link that was not fetched never displaces a video file the unit sent,
      earlier or later: it only stands in (invalid, "sent as a download link ...") when no video
      file arrived at all.
    * A later file that could not be read at all (``unreadable``) does not displace an earlier ok
      one: the earlier one keeps counting and a warning names the later file. A later file that
      was read but fails a check replaces the earlier one.
    """
    campaign = config.campaign
    order = sorted(mids, key=lambda m: (messages[m]["at"], m))
    if item.kind == "images":
        return _images_status(item, order, messages, parts, campaign, deadline, tz)

    def files(m: int) -> list[dict]:
        return _files(item, m, parts, campaign)

    carrying = [m for m in order if files(m)]
    ls: list[dict] = []
    if not carrying and item.kind == "video" and campaign.first("video") == item:
        carrying = [m for m in order if links.get(m)]
        if carrying:
            ls = links[carrying[-1]]
    if not carrying:
        return missing_item()
    latest = carrying[-1]
    chosen: dict | None = None
    warnings: list[str] = []
    warnings_zh: list[str] = []
    if ls:
        judgement = judge_link(ls[0])
    else:
        chosen, judgement = _best(files(latest), config, item)
        if judgement.state != OK and all(unreadable(p) for p in files(latest)):
            # walk back over files that could not be read to the latest readable submission
            skipped = [latest]
            for m in reversed(carrying[:-1]):
                ps = files(m)
                if all(unreadable(p) for p in ps):
                    skipped.append(m)
                    continue
                earlier, ej = _best(ps, config, item)
                if ej.state == OK:
                    what = KIND_WORDS.get(item.kind, item.kind)
                    what_zh = item.label
                    for s in reversed(skipped):
                        bad, bj = _best(files(s), config, item)
                        name = bad["filename"] or bad["location"] or "?"
                        day = _day(messages[s]["at"], tz)
                        warnings.append(
                            f"a later file {name} ({day}) could not be read: {bj.reason}; "
                            f"the earlier {what} still counts"
                        )
                        why_zh = (bj.reason_zh or bj.reason or "").removeprefix("未能读取：")
                        warnings_zh.append(
                            f"之后发送的文件{name}（{day}）未能读取：{why_zh}；仍以之前的{what_zh}为准"
                        )
                    latest, chosen, judgement = m, earlier, ej
                break
    msg = messages[latest]
    arrived = msg["at"]
    if chosen is not None and chosen["sha256"]:
        sha = chosen["sha256"]
        for m in mids:
            if messages[m]["at"] < arrived and any(p["sha256"] == sha for p in parts.get(m, ())):
                arrived = messages[m]["at"]
    late = arrived > deadline
    out: dict[str, Any] = {
        "state": judgement.state,
        "late": late,
        "trust": msg["trust"],
        "reason": judgement.reason,
        "reason_zh": judgement.reason_zh if judgement.reason else None,
        "message": latest,
        "message_id": msg["message_id"],
        "filename": (chosen or {}).get("filename") or (ls[0]["filename"] if ls else None),
        "location": (chosen or {}).get("location"),
        "part": (chosen or {}).get("id"),
        "sha256": (chosen or {}).get("sha256"),
        "arrived_at": iso_text(arrived, tz),
        "sent_at": iso_text(msg["at"], tz),
        "details": describe(chosen) if chosen else "",
        "warnings": judgement.warnings + warnings,
        "warnings_zh": (judgement.warnings_zh or list(judgement.warnings)) + warnings_zh,
        "submissions": len(carrying),
    }
    if ls:
        out["link"] = ls[0]["url"]
    return out


def _images_status(item, order: list[int], messages: dict, parts: dict, campaign, deadline, tz) -> dict:
    """An ``images`` item: at least ``min_count`` different pictures (by content), counted over
    all the unit's messages; late when the last one needed arrived after the deadline."""
    first_seen: dict[str, int] = {}
    refused: list[str] = []  # pictures of a format the item does not accept
    for m in order:
        for p in _files(item, m, parts, campaign):
            if p["sha256"] and not p["error"]:
                fmt = facts_of(p).get("format")
                if item.accepts(fmt):
                    first_seen.setdefault(p["sha256"], m)
                elif len(refused) < 3:
                    refused.append(f"{p['filename'] or p['location']} ({fmt or 'unknown format'})")
    if not first_seen and not any(_files(item, m, parts, campaign) for m in order):
        return missing_item()
    got, need = len(first_seen), item.min_count
    arrivals = sorted(first_seen.values(), key=lambda m: (messages[m]["at"], m))
    carrying = sorted({m for m in order if _files(item, m, parts, campaign)})
    out: dict[str, Any] = {
        "state": OK,
        "late": False,
        "reason": None,
        "reason_zh": None,
        "count": got,
        "warnings": [],
        "warnings_zh": [],
        "submissions": len(carrying),
    }
    if got < need:
        reason = f"{got} different picture{'s' if got != 1 else ''} received, at least {need} expected"
        reason_zh = f"只收到{got}张不同的图片，至少需要{need}张"
        if refused:
            accepted = ", ".join(item.formats)
            reason += f"; not counted, not in an accepted format ({accepted}): {', '.join(refused)}"
            reason_zh += (
                f"；以下图片格式不符合要求（仅接受{'、'.join(item.formats)}），未计入：{'、'.join(refused)}"
            )
        out.update(state=INVALID, reason=reason, reason_zh=reason_zh)
        counted = arrivals[-1] if arrivals else carrying[-1]
    else:
        counted = arrivals[need - 1]
        out["late"] = messages[counted]["at"] > deadline
    msg = messages[counted]
    out.update(
        message=counted,
        message_id=msg["message_id"],
        trust=msg["trust"],
        arrived_at=iso_text(msg["at"], tz),
        sent_at=iso_text(msg["at"], tz),
        details=f"{got} pictures",
    )
    return out


KIND_WORDS = {"sheet": "sheet", "document": "report", "video": "video", "images": "pictures"}


def _apply_override(item_status: dict, o) -> None:
    item_status["override"] = {
        "id": o.id,
        "action": o.action,
        "note": o.note,
        "actor": o.actor,
        "at": o.created_at,
    }
    if o.action == "accept":
        item_status["checked"] = {
            "state": item_status["state"],
            "reason": item_status["reason"],
            "reason_zh": item_status.get("reason_zh"),
        }
        item_status["state"], item_status["reason"], item_status["reason_zh"] = OK, None, None
        if item_status.get("submissions", 0) == 0:
            item_status["late"] = False
            item_status["trust"] = STAFF
    elif o.action == "reject":
        item_status["checked"] = {
            "state": item_status["state"],
            "reason": item_status["reason"],
            "reason_zh": item_status.get("reason_zh"),
        }
        item_status["state"] = INVALID
        item_status["reason"] = f"rejected by staff: {o.note}" if o.note else "rejected by staff"
        item_status["reason_zh"] = f"工作人员认定不合格：{o.note}" if o.note else "工作人员认定不合格"


# long: the status rows built in one pass over one snapshot
def unit_statuses(
    conn: sqlite3.Connection, roster, config, now: datetime | None = None, as_of: datetime | None = None
) -> list[dict]:
    """The status of every roster unit, in roster order (contract shape plus extras).

    Reads attributions as they are: call ``ensure_attributed`` (or ``refresh``) first.
    ``as_of`` (an aware datetime): conclude from the messages received up to then only, as if
    later mail had not arrived (staff decisions are taken as they are now). Never cached.
    """
    from reconcile.attribute import NameIndex
    from reconcile.overrides import in_force

    campaign = config.campaign
    tz = campaign.timezone
    messages, by_unit, parts, links = _load(conn, campaign.id)
    if as_of is not None:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be an aware datetime")
        messages = {m: v for m, v in messages.items() if v["at"] <= as_of}
        by_unit = defaultdict(list, {u: [m for m in ms if m in messages] for u, ms in by_unit.items()})
    parts_by_id = {p["id"]: p for ps in parts.values() for p in ps}
    names = None
    decisions = in_force(conn, config)
    review_all = getattr(getattr(config, "attribution", None), "named_senders", "count") == "review"
    out = []
    for unit in roster.units:
        all_mids = by_unit.get(unit.id, [])
        held: dict[int, list[str]] = {}
        if review_all:
            held = {m: [] for m in all_mids if not _trusted(messages[m])}
        mids = [m for m in all_mids if m not in held]
        deadline = config.campaign.deadline
        extended = decisions.extend.get(unit.id)
        if extended:
            deadline = extended[0]
        items: dict[str, dict] = {}
        for item in campaign.items:
            counting, waiting = counted_messages(item, all_mids, messages, parts, links, campaign, review_all)
            for m in waiting:
                held.setdefault(m, []).append(item.id)
            st = _item_status(unit.id, item, counting, messages, parts, links, config, deadline, tz)
            if item.kind == "sheet" and st.get("part"):
                names = names or NameIndex(roster)
                by_hand = messages[st["message"]]["method"] == "manual"
                check_sheet_unit(st, unit, roster, parts_by_id.get(st["part"]), names, by_hand)
            o = decisions.items.get((unit.id, item.id))
            if o is not None:
                _apply_override(st, o)
            items[item.id] = st
        required = [i.id for i in campaign.items if i.required]
        states = [items[i]["state"] for i in required]
        ex = decisions.exempt.get(unit.id)
        if ex is not None:
            state = UnitState.EXEMPT  # neither incomplete nor missing: the four states add up
        elif all(s == OK for s in states):
            state = UnitState.COMPLETE
        elif all(items[i]["state"] == MISSING for i in items):
            state = UnitState.MISSING  # no item received, whatever else the unit wrote
        else:
            state = UnitState.INCOMPLETE
        last = max((messages[m]["at"] for m in mids), default=None)
        out.append(
            {
                "id": unit.id,
                "name": unit.name,
                "state": state,
                "late": any(items[i]["late"] for i in items),
                "items": items,
                "category": unit.category,
                "exempt": ex is not None,
                "exempt_note": ex.note if ex else None,
                "deadline": iso_text(deadline, tz),
                "deadline_extended": extended is not None,
                "last_arrival": iso_text(last, tz) if last else None,
                "messages": len(mids),
                "emails": list(unit.emails),
                "pending_review": [
                    _pending_entry(messages[m], held[m], review_all)
                    for m in sorted(held, key=lambda m: (messages[m]["at"], m))
                ],
            }
        )
    return out


# ---------------------------------------------------------------------------------- filters


def matches(
    row: dict,
    *,
    state: Iterable[str] = (),
    missing: Iterable[str] = (),
    late: bool = False,
    category: Iterable[str] = (),
    invalid: Iterable[str] = (),
) -> bool:
    """The status filters shared by `status` and `status --json`."""
    state, missing, category, invalid = list(state), list(missing), list(category), list(invalid)
    if state:
        wanted = set(state)
        if not (
            row["state"] in wanted
            or ("exempt" in wanted and row.get("exempt"))
            or ("late" in wanted and row.get("late"))
        ):
            return False
    if missing and not all(row["items"][i]["state"] == MISSING for i in missing):
        return False
    if invalid and not all(row["items"][i]["state"] == INVALID for i in invalid):
        return False
    if late and not row.get("late"):
        return False
    if category and row.get("category") not in category:
        return False
    return True


def summary(rows: list[dict]) -> dict[str, int]:
    """Units per state (complete + incomplete + missing + exempt = units) and the late ones; what
    the CLI, the web overview and the workbook's 汇总 say."""
    out = {"units": len(rows), "complete": 0, "incomplete": 0, "missing": 0, "exempt": 0, "late": 0}
    for r in rows:
        out[r["state"]] += 1
        out["late"] += bool(r.get("late"))
    return out
