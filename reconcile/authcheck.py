"""Does real mail carry the results ``[attribution] authentication = "required"`` relies on?

With the default ``"required"``, a roster or own-domain From is believed only with a pass from
the receiving server's ``Authentication-Results`` (reconcile/authresults.py). A mailbox whose
server writes none (a local Maildir, a relay), or writes them under another authserv-id than
``[attribution] authserv_ids`` names, leaves every unit ``named``: ``roster check`` and
``serve --check`` say so (``coverage_warning``), naming the ids the mail does carry.
"""

from __future__ import annotations

import json
import sqlite3

from reconcile.authresults import parse
from reconcile.i18n import gettext as _

RECENT = 50  # messages looked at, newest first


def _carried(headers: str | None) -> tuple[list[str], bool]:
    """(authserv-ids of a message's Authentication-Results, whether it has a Received-SPF)."""
    try:
        h = json.loads(headers) if headers else {}
    except ValueError:
        return [], False
    if not isinstance(h, dict):
        return [], False
    values = h.get("authentication_results")
    ids = [parse(str(v)).authserv_id for v in values] if isinstance(values, list) else []
    return [i for i in ids if i], bool(h.get("received_spf"))


def coverage_warning(conn: sqlite3.Connection, config) -> str | None:
    """A warning when some of the recent messages carry no results from the configured server.

    A receiving server stamps every message: when none carries its results, the setting is wrong
    (or the mailbox is a local Maildir); when only some do, those may have been written by their
    senders (the server adds none of its own, so a forged header is the topmost)."""
    at = getattr(config, "attribution", None)
    if getattr(at, "authentication", "required") != "required":
        return None
    wanted = set(getattr(at, "authserv_ids", ()) or ())
    try:
        rows = conn.execute(
            "SELECT headers FROM messages WHERE status = 'recorded' ORDER BY id DESC LIMIT ?", [RECENT]
        ).fetchall()
    except sqlite3.Error:
        return None
    seen: dict[str, None] = {}
    lacking = with_spf = 0
    for (headers,) in rows:
        ids, spf = _carried(headers)
        lacking += not (wanted & set(ids) if wanted else ids)
        with_spf += spf
        seen.update(dict.fromkeys(ids))
    if not lacking or (lacking == with_spf == len(rows) and not wanted):
        return None  # every message carries the results (or, from a server that writes none, Received-SPF)
    server = " or ".join(sorted(wanted)) if wanted else _("the receiving server")
    if lacking < len(rows):
        return _(
            "{lacking} of the last {n} messages carry no Authentication-Results from {server}: a "
            "receiving server stamps every message, so the results the others carry may have been "
            "written by their senders. Name the server in [attribution] authserv_ids."
        ).format(lacking=lacking, n=len(rows), server=server)
    said = _(
        "none of the last {n} messages carries Authentication-Results from {server}, so no roster "
        "address is believed (trust named)."
    ).format(n=len(rows), server=server)
    if seen:
        said += " " + _(
            "The mail carries results from {ids}: list the right one in [attribution] authserv_ids."
        ).format(ids=", ".join(list(seen)[:5]))
    return (
        said
        + " "
        + _(
            "If the mailbox's server adds none (a local Maildir, a relay), set [attribution] "
            'authentication = "not-available".'
        )
    )
