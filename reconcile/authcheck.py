"""Does real mail carry the results ``[attribution] authentication`` relies on?

With the default ``"required"``, a roster or own-domain From is believed only with a pass from
the receiving server's ``Authentication-Results`` (reconcile/authresults.py), with
``"received-spf"`` from its ``Received-SPF``. A mailbox whose server writes none (a local
Maildir, a relay), writes only Received-SPF, or writes them under another authserv-id than
``[attribution] authserv_ids`` names, leaves every unit ``named``: ``roster check`` and
``serve --check`` say so (``coverage_warning``), naming the ids the mail does carry.
"""

from __future__ import annotations

import json
import sqlite3

from reconcile.authresults import parse, server_wrote
from reconcile.i18n import gettext as _

RECENT = 50  # messages looked at, newest first


class _Carried:
    """What one message carries: the authserv-ids of the Authentication-Results its own servers
    wrote, whether it has their Received-SPF, whether it carries Authentication-Results below
    their Received: lines only, whether the positions were recorded, and the ``by`` host of its
    topmost Received: line."""

    def __init__(self, headers: str | None, at) -> None:
        self.ids: list[str] = []
        self.spf = self.below = False
        self.known = True
        self.by = ""
        try:
            h = json.loads(headers) if headers else {}
        except ValueError:
            h = {}
        if not isinstance(h, dict):
            return
        values, spf = h.get("authentication_results"), h.get("received_spf")
        every = [str(v) for v in values] if isinstance(values, list) else []
        spf = [str(v) for v in spf] if isinstance(spf, list) else []
        order = h.get("auth_order")
        hops, by = getattr(at, "received_hops", 1), getattr(at, "received_by", ()) or ()
        above, spf, _known = server_wrote(every, spf, order, hops, by)
        self.known = isinstance(order, list)
        self.ids = [i for i in (parse(v).authserv_id for v in above) if i]
        self.spf, self.below = bool(spf), bool(every) and not above
        tops = [str(k) for k in order if str(k).startswith("received:")] if isinstance(order, list) else []
        self.by = tops[0].partition(":")[2] if tops else ""


def unplaced(conn: sqlite3.Connection) -> int:
    """Recorded messages whose authentication headers' positions were not recorded (recorded
    before ingest kept them): none of them is believed; ``mailroll reprocess`` reads them again."""
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE status = 'recorded' AND headers IS NOT NULL "
            "AND (json_extract(headers, '$.authentication_results') IS NOT NULL "
            "OR json_extract(headers, '$.received_spf') IS NOT NULL) "
            "AND json_extract(headers, '$.auth_order') IS NULL"
        ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def hops_warning(config) -> str | None:
    """``[attribution] received_hops`` above 1 without ``received_by``: lines counted, not named."""
    at = getattr(config, "attribution", None)
    hops = getattr(at, "received_hops", 1)
    if hops <= 1 or getattr(at, "received_by", ()) or getattr(at, "authentication", "") == "not-available":
        return None
    return _(
        "[attribution] received_hops = {hops} counts Received: lines: on a message that reached "
        "fewer of the mailbox's servers, a line its sender wrote counts as theirs, and what he "
        "wrote above it is believed. Name the servers by the host of their Received: line's "
        '"by" clause in [attribution] received_by instead.'
    ).format(hops=hops)


def unplaced_warning(conn: sqlite3.Connection) -> str | None:
    n = unplaced(conn)
    if not n:
        return None
    return _(
        "{n} message(s) were recorded before mailroll kept where their authentication headers "
        "stood: none of their senders is believed (at most trust named). Read them again from "
        "their raw copies with mailroll reprocess --all."
    ).format(n=n)


def coverage_warning(conn: sqlite3.Connection, config) -> str | None:
    """A warning when some of the recent messages carry no results from the configured server.

    A receiving server stamps every message: when none carries its results, the setting is wrong
    (or the mailbox is a local Maildir); when only some do, those may have been written by their
    senders (the server adds none of its own, so a forged header is the topmost)."""
    at = getattr(config, "attribution", None)
    mode = getattr(at, "authentication", "required")
    if mode not in ("required", "received-spf"):
        return None
    wanted = set(getattr(at, "authserv_ids", ()) or ())
    try:
        rows = conn.execute(
            "SELECT headers FROM messages WHERE status = 'recorded' ORDER BY id DESC LIMIT ?", [RECENT]
        ).fetchall()
    except sqlite3.Error:
        return None
    carried = [_Carried(headers, at) for (headers,) in rows]
    if mode == "received-spf":
        return _spf_warning(sum(not c.spf for c in carried), len(rows))
    seen: dict[str, None] = {}
    lacking = with_spf = 0
    for c in carried:
        lacking += not (wanted & set(c.ids) if wanted else c.ids)
        with_spf += c.spf
        seen.update(dict.fromkeys(c.ids))
    if not lacking:
        return None  # every message carries the results
    if lacking == with_spf == len(rows) and not seen:
        return _(
            "none of the last {n} messages carries Authentication-Results, but each carries a "
            "Received-SPF: if the mailbox's server writes only that, set [attribution] "
            'authentication = "received-spf".'
        ).format(n=len(rows))
    server = " or ".join(sorted(wanted)) if wanted else _("the receiving server")
    if lacking < len(rows):
        return _(
            "{lacking} of the last {n} messages carry no Authentication-Results from {server}: a "
            "receiving server stamps every message, so the results the others carry may have been "
            "written by their senders. Name the server in [attribution] authserv_ids."
        ).format(lacking=lacking, n=len(rows), server=server)
    below = [c for c in carried if c.below]
    hosts = list(dict.fromkeys(c.by for c in below if c.by))
    return _none_carry(len(rows), server, list(seen), len(below), hosts)


def _none_carry(n: int, server: str, seen: list[str], below: int, hosts: list[str]) -> str:
    """The warning when none of the last ``n`` messages carries the configured server's results."""
    said = _(
        "none of the last {n} messages carries Authentication-Results from {server}, so no roster "
        "address is believed (trust named)."
    ).format(n=n, server=server)
    if below:
        named = ", ".join(f'"{h}"' for h in hosts[:3]) or '"mx.example.com"'
        return (
            said
            + " "
            + _(
                "{below} of them carry Authentication-Results only below the mailbox's own Received: "
                "lines, where headers the sender wrote stand: none of those is believed. If the "
                "mailbox's servers add more than one Received: line (e.g. Dovecot LMTP on top of "
                "the receiving server's), name each of them by the host of its Received: line's "
                '"by" clause in [attribution] received_by (the topmost in this mail: {hosts}; '
                "docs/RECONCILE.md). Results written below the receiving server's own line prove "
                "nothing (Gmail): counting more lines would believe what a sender wrote."
            ).format(below=below, hosts=named)
        )
    if seen:
        said += " " + _(
            "The mail carries results from {ids}: list the right one in [attribution] authserv_ids."
        ).format(ids=", ".join(seen[:5]))
    return (
        said
        + " "
        + _(
            "If the mailbox's server adds none (a local Maildir, a relay), set [attribution] "
            'authentication = "not-available".'
        )
    )


def _spf_warning(lacking: int, n: int) -> str | None:
    """The warning of ``authentication = "received-spf"``: messages without the server's Received-SPF."""
    if not lacking:
        return None
    return _(
        "{lacking} of the last {n} messages carry no Received-SPF from the receiving server, so "
        "their senders are not believed (trust named). If the server writes Authentication-Results, "
        'set [attribution] authentication = "required"; if it adds none, "not-available".'
    ).format(lacking=lacking, n=n)
