"""`status`, `stats` and `show UNIT`: where every unit stands.

`status --json` without filters is the hot path (scripts poll it): when nothing changed since
the last computation it prints the cached rows (``unit_status``) without loading the roster or
any heavy library. Anything else refreshes the cache first (reconcile.status_cache.refresh), which
also re-attributes every message when the roster or config file changed.
"""

from __future__ import annotations

from datetime import UTC

import click

from reconcile.cli.app import App, UsageProblem, campaign_option, cli, emit_json, json_option, pass_app
from reconcile.i18n import N_, chinese
from reconcile.i18n import gettext as _
from reconcile.words import DECIDED, DECISIONS, ITEM_STATES, MAILS, PART_KINDS, TRUSTS, UNIT_STATES, word


def state_word(state: str) -> str:
    return word(ITEM_STATES, state) if state in ITEM_STATES else word(UNIT_STATES, state)


def kind_word(kind: str) -> str:
    """What a file is (parts.kind): in Chinese the catalog's word, else the kind itself."""
    return word(PART_KINDS, kind) if chinese() else kind


def item_word(item: str, labels: dict[str, str]) -> str:
    """An item as people call it: the campaign's label (统计表) in Chinese, else its id."""
    return labels.get(item, item) if chinese() else item


def styled(style: str, text: str) -> str:
    """``text`` (escaped) in a rich ``style``."""
    from rich.markup import escape

    return f"[{style}]{escape(text)}[/]"


def reason_of(d: dict) -> str | None:
    """The reason in the reader's language (``reason_zh`` when speaking Chinese)."""
    return (d.get("reason_zh") if chinese() else None) or d.get("reason")


def warnings_of(d: dict) -> list[str]:
    return (d.get("warnings_zh") if chinese() else None) or d.get("warnings") or []


STATE_STYLE = {
    "ok": "green",
    "invalid": "red",
    "missing": "yellow",
    "complete": "green",
    "incomplete": "yellow",
    "exempt": "cyan",
    "missing_unit": "red",
}


def wide_console():
    """The shared console, but at least 160 columns when the output is not a terminal (files, pipes)."""
    from reconcile.cli.app import console

    con = console()
    if not con.is_terminal and con.width < 160:
        con.width = 160
    return con


def current_rows(app: App) -> list[dict]:
    from reconcile.status_cache import refresh

    return refresh(app.conn, app.roster, app.config)


def find_unit(app: App, text: str):
    """The unit the clerk means by ``text`` (id, name, alias, or a part of a name only one unit
    has), or a usage error that says what to do (the candidates, when several)."""
    found = app.roster.lookup(text)
    if not found:
        raise UsageProblem(_("unknown unit {text}: see `mailroll roster list`").format(text=text))
    if len(found) > 1:
        raise UsageProblem(
            _("{text} names {n} units ({ids}): give the id").format(
                text=text, n=len(found), ids=_(", ").join(f"{u.id} {u.name}" for u in found[:10])
            )
        )
    return found[0]


def find_item(app: App, text: str) -> str:
    """The item id the clerk means by ``text`` (its id, label, the name mail gives it, or a
    word that names it: 视频 for 影像资料), or a usage error listing the items."""
    found = app.config.campaign.find_items(text)
    if len(found) == 1:
        return found[0].id
    raise UsageProblem(
        _("no item {wrong} in campaign {campaign}: the items are {items}").format(
            wrong=repr(text),
            campaign=app.config.campaign.id,
            items=_(", ").join(f"{i.id} ({i.label})" for i in app.config.campaign.items),
        )
    )


def local_time(iso: str | None, tz) -> str:
    """An RFC 3339 time from the database as 'YYYY-MM-DD HH:MM' in the campaign's time zone."""
    if not iso:
        return ""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@cli.command()
@campaign_option
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["complete", "incomplete", "missing", "late", "exempt"]),
    help=N_("Only units in this state (repeatable)."),
)
@click.option(
    "--missing",
    "missing",
    multiple=True,
    metavar="ITEM",
    help=N_("Only units that have not sent this item (an item id, repeatable)."),
)
@click.option(
    "--invalid",
    "invalid",
    multiple=True,
    metavar="ITEM",
    help=N_("Only units whose counted item fails its check (an item id, repeatable)."),
)
@click.option("--late", is_flag=True, help=N_("Only units with a late item."))
@click.option(
    "--category", "categories", multiple=True, help=N_("Only units of this roster category (repeatable).")
)
@json_option
@pass_app
def status(app: App, states, missing, invalid, late, categories, as_json: bool) -> None:
    """One row per roster unit: what arrived, whether it passes, whether it was late."""
    filtered = bool(states or missing or invalid or late or categories)
    if as_json and not filtered:
        from reconcile.status_cache import status_json

        click.echo(status_json(app.conn, app.config, lambda: app.roster), nl=False)
        return
    from reconcile.status import matches

    missing = tuple(find_item(app, i) for i in missing)
    invalid = tuple(find_item(app, i) for i in invalid)
    known = sorted({u.category for u in app.roster.units if u.category})
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise UsageProblem(
            _("no unit has the category {unknown}; the roster's categories: {known}").format(
                unknown=", ".join(unknown), known=", ".join(known) or _("(none)")
            )
        )
    rows = [
        r
        for r in current_rows(app)
        if matches(r, state=states, missing=missing, invalid=invalid, late=late, category=categories)
    ]
    if as_json:
        emit_json(rows)
        return
    _render_status(app, rows)


def _cell(item: dict) -> str:
    from rich.markup import escape

    st = item["state"]
    text = state_word(st) if st != "missing" else "—"
    if item.get("late"):
        text += _(" (late)")
    if item.get("override"):
        text += " *"
    out = styled(STATE_STYLE[st], text)
    if item.get("filename"):
        out += f"\n{escape(item['filename'])}"
    if item.get("unit_cell"):
        out += "\n" + escape(_("unit named in the sheet: {unit}").format(unit=item["unit_cell"]))
    reason = reason_of(item)
    if st == "invalid" and reason:
        out += f"\n[dim]{escape(reason)}[/]"
    return out


def _short_time(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else ""


def _render_status(app: App, rows: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from reconcile.heartbeat import heartbeat
    from reconcile.status import summary

    con = wide_console()
    table = Table(title=escape(app.config.campaign.name), show_lines=False)
    table.add_column(_("unit"), no_wrap=True)
    items = app.config.campaign.item_ids
    labels = app.config.campaign.labels
    for col in (_("category"), *(item_word(i, labels) for i in items), _("late"), _("last arrival")):
        table.add_column(col, overflow="fold")
    for r in rows:
        name = escape(r["name"]) + f"\n[dim]{escape(r['id'])}[/]"
        if r.get("exempt"):
            name += " " + styled("cyan", "(" + _("exempt") + ")")
        table.add_row(
            name,
            escape(r.get("category") or ""),
            *(_cell(r["items"][i]) for i in items),
            styled("red", _("late")) if r["late"] else "",
            _short_time(r.get("last_arrival")),
        )
    con.print(table)
    s = summary(rows)
    line = _(
        "{units} units: {complete} complete, {incomplete} incomplete, {missing} missing, {exempt} exempt; "
        "{late} late"
    ).format(**s)
    con.print(line, markup=False)
    _print_pending(con, rows)
    if any(i.get("override") for r in rows for i in r["items"].values()):
        con.print(styled("dim", _("* decided by staff (see `mailroll show UNIT`)")))
    _print_heartbeat(con, heartbeat(app.conn, app.config))


def _print_pending(con, rows: list[dict]) -> None:
    """The messages waiting for a staff decision, under the status table."""
    from rich.markup import escape

    pending = [(r, p) for r in rows for p in r.get("pending_review") or []]
    if pending:
        con.print(
            styled("yellow", _("{n} message(s) pending review").format(n=len(pending)))
            + " "
            + escape(
                _(
                    "(sent by someone not registered for the unit; `mailroll review`, then "
                    "`mailroll assign MESSAGE UNIT` or `mailroll reject MESSAGE`):"
                )
            )
        )
        for r, p in pending:
            con.print(
                "  "
                + escape(
                    _("#{id} for {unit} from {sender}: {subject}").format(
                        id=p["message"], unit=r["name"], sender=p["from"] or "?", subject=p["subject"] or ""
                    )
                )
            )


def _print_heartbeat(con, hb: dict | None) -> None:
    """When the daemon last polled, and its last error."""
    from reconcile.heartbeat import ago

    if hb:
        text = _("last poll {ago}").format(ago=ago(hb["age_s"]))
        if hb["stale"]:
            con.print(
                styled("bold red", _("warning: {text}: is `mailroll serve` running?").format(text=text))
            )
        else:
            con.print(styled("dim", text))
        if hb.get("last_error"):
            con.print(styled("red", _("last error: {error}").format(error=hb["last_error"])))


def since_time(app: App, text: str):
    """``--changed-since``: RFC 3339, or a local time / date in the campaign's time zone."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageProblem(
            _("--changed-since {text!r}: give a time like 2022-06-26T09:00:00+08:00").format(text=text)
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=app.config.campaign.timezone)


@cli.command()
@click.option(
    "--changed-since",
    "since",
    metavar="TIME",
    help="Also list the units whose counted sheet's figures changed since TIME (RFC 3339).",
)
@campaign_option
@json_option
@pass_app
def stats(app: App, since: str | None, as_json: bool) -> None:
    """The statistics sheets' figures added up over units with a valid sheet."""
    from reconcile.stats import collect

    when = since_time(app, since) if since else None
    rows = current_rows(app)
    data = collect(app.conn, rows, app.config)
    if when is not None:
        from reconcile.versions import changed_since

        data["changed_since"] = when.isoformat()
        data["changed"] = changed_since(app.conn, app.roster, app.config, rows, when)
    if as_json:
        emit_json(data)
        return
    _render_stats(app, data)


def _render_stats(app: App, data: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    sheet = app.config.campaign.first("sheet")
    units = dict(sheet.sheet.fields) if sheet is not None and sheet.sheet else {}
    table = Table(
        title=escape(
            _("{campaign}: {n} units with a valid sheet").format(
                campaign=app.config.campaign.name, n=data["units"]
            )
        )
    )
    table.add_column(_("field"))
    table.add_column(_("total"), justify="right")
    table.add_column(_("unit of measure"))
    for label, total in data["fields"].items():
        table.add_row(
            escape(label),
            f"{total:g}" if isinstance(total, float) else str(total),
            escape(units.get(label, "")),
        )
    con = wide_console()
    con.print(table)
    if data["left_out"]:
        con.print(
            _("not counted ({n}): ").format(n=len(data["left_out"]))
            + _(", ").join(f"{u['name']} ({reason_of(u)})" for u in data["left_out"]),
            markup=False,
        )
    if chinese():
        from reconcile.report_stats import stats_notes_zh

        notes = stats_notes_zh(data)
    else:
        notes = data.get("notes") or []
    for note in notes:
        con.print(_("note: {note}").format(note=note), markup=False)
    if "changed" in data:
        con.print(f"changed since {data['changed_since']}: {len(data['changed'])} unit(s)", markup=False)
        for u in data["changed"]:
            what = "; ".join(c["text"] for c in u["changes"]) or "no figures"
            if not u["counted_then"]:
                what = "newly counted: " + what
            elif not u["counted_now"]:
                what = "no longer counted: " + what
            con.print(f"  {u['name']}: {what}", markup=False)


@cli.command()
@campaign_option
@click.argument("unit")
@click.option(
    "--raw", is_flag=True, help="UNIT is a message (number or Message-ID): write it as the server served it."
)
@json_option
@pass_app
def show(app: App, unit: str, raw: bool, as_json: bool) -> None:
    """Everything about one unit: messages, files, checks, staff decisions, mail sent to it.

    `show --raw MESSAGE > x.eml`: the message's raw bytes, as the server served them."""
    if raw:
        from reconcile.cli.evidence_cmd import write_raw

        write_raw(app, unit)
        return
    from reconcile.unit_detail import unit_detail

    u = find_unit(app, unit)
    rows = current_rows(app)
    detail = unit_detail(app.conn, app.roster, app.config, u, next(r for r in rows if r["id"] == u.id))
    if as_json:
        emit_json(detail)
        return
    _render_show(detail, app.config.campaign.labels, app.config.campaign.timezone, set(app.roster.by_id))
    if app.config.campaign.contacts:  # whom the unit is told to call (receipts and reminders end so)
        from reconcile.outgoing.compose import contact_lines

        click.echo(_("\noffice contacts: {contacts}").format(contacts="; ".join(contact_lines(app.config))))


def _render_versions(con, versions: dict, labels: dict[str, str]) -> None:
    """Every version of each item, in arrival order: which counts and why; figures that changed."""
    from rich.markup import escape

    if not any(len(v) > 1 for v in versions.values()):
        return
    con.print("\n[bold]versions[/]")
    for item, vs in versions.items():
        if not vs:
            continue
        con.print(f"  {item} ({labels.get(item, item)}): {len(vs)} version(s)")
        for n, v in enumerate(vs, start=1):
            mark = "[bold green]counts[/]" if v["counts"] else "[dim]not counted[/]"
            con.print(
                f"    {n}. {v['received_at']} {escape(v['filename'] or '?')} (message #{v['message']}) "
                f"{mark}: {escape(v['why'])}"
            )
            if v.get("changes"):
                con.print("       changed: " + escape("; ".join(c["text"] for c in v["changes"])))


# long: the `show` page printed top to bottom, section after section
def _render_show(d: dict, labels: dict[str, str], tz=None, roster_ids: set | None = None) -> None:
    from rich.markup import escape

    con = wide_console()
    s = d["status"]
    con.print(f"[bold]{escape(d['name'])}[/] ({escape(d['id'])}) {escape(d.get('category') or '')}")
    line = _("addresses: {emails}").format(emails=", ".join(d["emails"]) or _("(none)"))
    if d.get("contact"):
        line += _("; contact {contact} {phone}").format(contact=d["contact"], phone=d.get("phone") or "")
    con.print(escape(line))
    line = _("state: {state}").format(
        state=f"[{STATE_STYLE.get(s['state'], 'red')}]{escape(state_word(s['state']))}[/]"
    )
    if s["late"]:
        line += " " + styled("red", _("(late)"))
    if s.get("exempt"):
        line += " " + styled("cyan", _("exempt")) + " " + escape(s.get("exempt_note") or "")
    line += escape(_("; deadline {deadline}").format(deadline=s["deadline"]))
    if s.get("deadline_extended"):
        line += escape(_(" (extended)"))
    con.print(line)
    for item, item_label in labels.items():
        it = s["items"][item]
        label = "" if chinese() else f" ({item_label})"
        shown = styled(STATE_STYLE[it["state"]], state_word(it["state"]))
        text = f"  {escape(item_word(item, labels))}{label}: {shown}"
        if it.get("late"):
            text += " " + styled("red", _("late"))
        if it.get("filename"):
            text += f" {escape(it['filename'])}"
        if it.get("arrived_at"):
            text += escape(_(", arrived {time}").format(time=it["arrived_at"]))
        if it.get("trust"):
            text += escape(_(", sender {trust}").format(trust=word(TRUSTS, it["trust"])))
        if it.get("details"):
            text += f" [dim]({escape(it['details'])})[/]"
        con.print(text)
        if reason_of(it):
            con.print("      " + escape(_("reason: {reason}").format(reason=reason_of(it))))
        for w in warnings_of(it):
            con.print("      " + styled("yellow", _("warning:")) + " " + escape(w))
        if it.get("override"):
            o = it["override"]
            said = _("{action} by {actor} (override {id})").format(
                action=word(DECIDED, o["action"]), actor=o["actor"], id=o["id"]
            )
            con.print(f"      [cyan]{escape(said)}[/]" + (f": {escape(o['note'])}" if o.get("note") else ""))
    _render_versions(con, d.get("versions") or {}, labels)
    con.print("\n" + styled("bold", _("messages ({n})").format(n=len(d["messages"]))))
    for m in d["messages"]:
        con.print(
            "  "
            + escape(
                _("#{id} {time} from {sender}: {subject}").format(
                    id=m["id"], time=m["received_at"], sender=m["from"] or "?", subject=m["subject"] or ""
                )
            )
        )
        con.print(f"      [dim]{escape(m['attribution'] or '')}[/]")
        if m.get("question"):
            con.print("      " + styled("magenta", _("question to staff")))
        for line in (m.get("text") or "").splitlines():
            con.print("      │ " + escape(line))
        if m.get("trust"):
            con.print(
                "      "
                + escape(_("sender trust: {trust}").format(trust=word(TRUSTS, m["trust"])))
                + (
                    " " + styled("yellow", _("pending review")) + ": " + escape(m["pending_review"])
                    if m.get("pending_review")
                    else ""
                )
            )
        for p in m["parts"]:
            kind = kind_word(p["kind"])
            said = state_word(p["state"]) if p.get("state") in ("ok", "invalid") else kind
            colour = {"ok": "green", "invalid": "red"}.get(p.get("state"), "")
            mark = f"[{colour}]{escape(said)}[/]" if colour else escape(said)
            where = escape(p["location"] or p["filename"] or "?")
            line = f"      - {where} {escape('[' + kind + ']')} {mark}"
            if p.get("counted"):
                line += " " + styled("bold", _("(counted)"))
            con.print(line)
            part_reason = reason_of(p)
            if part_reason:
                con.print(f"          {escape(part_reason)}")
            for w in warnings_of(p):
                con.print("          " + styled("yellow", _("warning:")) + " " + escape(w))
        for link in m["links"]:
            con.print(
                "      - "
                + escape(
                    _("link {provider} {filename}: {status}").format(
                        provider=link["provider"] or link["host"] or "",
                        filename=link["filename"] or "",
                        status=link["status"],
                    )
                    + (f" ({link['error']})" if link.get("error") else "")
                )
            )
    if d["overrides"]:
        con.print("\n" + styled("bold", _("staff decisions")))
        for o in d["overrides"]:
            what = " ".join(
                str(x)
                for x in (
                    word(DECISIONS, o["action"]),
                    item_word(o["item"], labels) if o.get("item") else "",
                    o.get("value") or "",
                    _("message #{id}").format(id=o["message"]) if o.get("message") else "",
                )
                if x
            )
            line = _("override {id}: {what} by {actor} at {time}").format(
                id=o["id"], what=what, actor=o["actor"], time=local_time(o["created_at"], tz)
            )
            if o.get("note"):
                line += f": {o['note']}"
            line = escape(line)
            if o.get("revoked_at"):
                revoked = _("(revoked by {actor} at {time})").format(
                    actor=o["revoked_by"], time=local_time(o["revoked_at"], tz)
                )
                line += f" [dim]{escape(revoked)}[/]"
            con.print(line)
    if d["outbox"]:
        con.print("\n" + styled("bold", _("mail sent to the unit")))
        for o in d["outbox"]:
            con.print(
                "  "
                + escape(
                    _("{kind} {stage} to {to}: {status} {time}").format(
                        kind=word(MAILS, o["kind"]),
                        stage=o.get("stage") or "",
                        to=", ".join(o["to"]),
                        status=o["status"],
                        time=o.get("sent_at") or o["created_at"],
                    )
                    + (f" ({o['error']})" if o.get("error") else "")
                )
            )
    if d["audit"]:
        con.print("\n" + styled("bold", _("audit log")))
        for a in d["audit"]:
            what = " ".join(str(a["detail"].get(k)) for k in ("item", "value") if a["detail"].get(k))
            ref = (
                _("(override {id})").format(id=a["detail"]["override"]) if a["detail"].get("override") else ""
            )
            words = [
                local_time(a["at"], tz),
                a["actor"],
                word(DECISIONS, a["action"]),
                what,
                ref,
                a.get("note") or "",
            ]
            con.print("  " + escape(" ".join(w for w in words if w)))
