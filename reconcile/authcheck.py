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


def _carried(headers: str | None, hops: int = 1) -> tuple[list[str], bool, bool]:
    """(authserv-ids of a message's Authentication-Results, whether it has a Received-SPF), of
    those the mailbox's own servers wrote (above the ``hops``-th Received:, where that was
    recorded), and whether it carries Authentication-Results below that line only."""
    try:
        h = json.loads(headers) if headers else {}
    except ValueError:
        return [], False, False
    if not isinstance(h, dict):
        return [], False, False
    values, spf = h.get("authentication_results"), h.get("received_spf")
    every = [str(v) for v in values] if isinstance(values, list) else []
    spf = [str(v) for v in spf] if isinstance(spf, list) else []
    above, spf, _known = server_wrote(every, spf, h.get("auth_order"), hops)
    ids = [parse(v).authserv_id for v in above]
    return [i for i in ids if i], bool(spf), bool(every) and not above


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
    carried = [_carried(headers, getattr(at, "received_hops", 1)) for (headers,) in rows]
    if mode == "received-spf":
        return _spf_warning(sum(not spf for _ids, spf, _below in carried), len(rows))
    seen: dict[str, None] = {}
    lacking = with_spf = below = 0
    for ids, spf, only_below in carried:
        lacking += not (wanted & set(ids) if wanted else ids)
        with_spf += spf
        below += only_below
        seen.update(dict.fromkeys(ids))
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
    return _none_carry(len(rows), server, list(seen), below)


def _none_carry(n: int, server: str, seen: list[str], below: int) -> str:
    """The warning when none of the last ``n`` messages carries the configured server's results."""
    said = _(
        "none of the last {n} messages carries Authentication-Results from {server}, so no roster "
        "address is believed (trust named)."
    ).format(n=n, server=server)
    if below:
        return (
            said
            + " "
            + _(
                "{below} of them carry Authentication-Results only below the mailbox's own Received: "
                "lines, where headers the sender wrote stand: none of those is believed. If the "
                "mailbox's servers add more than one Received: line (e.g. Dovecot LMTP on top of "
                "the receiving server's), set [attribution] received_hops (docs/RECONCILE.md)."
            ).format(below=below)
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
