"""Staff decisions and the roster: assign, accept, reject, exempt, extend, revoke, overrides,
reattribute, roster check, roster list.

Each decision is an override (printed with its number) and an audit log entry naming the actor
(``$MAILROLL_ACTOR``, else the login name). Nothing is ever deleted: ``mailroll revoke N``
undoes decision N (also an assign: the message then goes back to automatic attribution), and
``mailroll overrides`` lists them all.
"""

from __future__ import annotations

from pathlib import Path

import click

from ingest.db import transaction
from reconcile.cli.app import App, UsageProblem, campaign_option, cli, emit_json, json_option, pass_app
from reconcile.cli.status_cmd import find_unit, local_time

_unit = find_unit


def _done(as_json: bool, data: dict, text: str) -> None:
    if as_json:
        emit_json(data)
    else:
        click.echo(text)


@cli.command()
@campaign_option
@click.argument("message")
@click.argument("unit")
@click.option("--note", help="Why (kept in the audit log).")
@json_option
@pass_app
def assign(app: App, message: str, unit: str, note: str | None, as_json: bool) -> None:
    """Attribute MESSAGE (number or Message-ID) to UNIT (id, name or alias), whatever the rules say."""
    from reconcile import overrides
    from reconcile.attribute import attribute

    u = _unit(app, unit)
    try:
        mid = overrides.resolve_message(app.conn, message)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    status = app.conn.execute("SELECT status FROM messages WHERE id = ?", [mid]).fetchone()[0]
    if status != "recorded":
        raise UsageProblem(
            f"message {message} is a {status} message and counts for no unit; "
            f"assign the message it repeats instead (see `mailroll messages`)"
        )
    row = app.conn.execute("SELECT unit, method FROM attributions WHERE message = ?", [mid]).fetchone()
    if row and row[0] and row[0] != u.id:
        prev = app.roster.by_id.get(row[0])
        shown = f"{prev.name} ({prev.id})" if prev else f"{row[0]} (not in the roster)"
        how = "by hand" if row[1] == "manual" else f"automatically ({row[1]})"
        click.echo(
            f"warning: message #{mid} was attributed {how} to {shown}; it now counts for {u.name} instead",
            err=True,
        )
    conn = app.conn
    with transaction(conn):
        earlier = overrides.assigns_in_force(conn, mid) + overrides.message_rejects_in_force(conn, mid)
        oid = overrides.add(
            conn, "assign", app.actor, unit=u.id, message=mid, note=note, campaign=app.config.campaign.id
        )
        # one assign in force per message: revoking the new one returns to automatic attribution
        for o in earlier:
            overrides.revoke(conn, o.id, app.actor, f"replaced by override {oid}")
        attribute(conn, app.roster, app.config, [mid])
    _done(
        as_json,
        {
            "override": oid,
            "message": mid,
            "unit": u.id,
            "previous_unit": row[0] if row and row[0] != u.id else None,
            "replaces": [o.id for o in earlier],
        },
        f"override {oid}: message #{mid} assigned to {u.name} ({u.id}); undo with `mailroll revoke {oid}`",
    )


def _item_decision(action: str):
    @campaign_option
    @click.argument("unit")
    @click.argument("item", required=(action != "reject"))
    @click.option(
        "--note",
        required=(action == "reject"),
        help="Why (shown as the reason; required for reject)." if action == "reject" else "Why.",
    )
    @json_option
    @pass_app
    def command(app: App, unit: str, item: str, note: str | None, as_json: bool) -> None:
        from reconcile import overrides

        if item is None:
            _reject_message(app, unit, note or "", as_json)
            return
        u = _unit(app, unit)
        if item not in app.config.campaign.item_ids:
            raise UsageProblem(
                f"no item {item!r} in campaign {app.config.campaign.id}: "
                f"the items are {', '.join(app.config.campaign.item_ids)}"
            )
        oid = overrides.add(
            app.conn, action, app.actor, unit=u.id, item=item, note=note, campaign=app.config.campaign.id
        )
        state = "ok" if action == "accept" else "invalid"
        _done(
            as_json,
            {"override": oid, "unit": u.id, "item": item, "action": action},
            f"override {oid}: {item} of {u.name} {action}ed (now {state}); undo with `mailroll revoke {oid}`",
        )

    command.__doc__ = (
        f"{action.capitalize()} UNIT's ITEM by hand: it counts as "
        f"{'ok' if action == 'accept' else 'invalid'} whatever the checks say."
    )
    if action == "reject":
        command.__doc__ += (
            "\n\nWith no ITEM, the first argument is a MESSAGE (number or Message-ID), e.g. one "
            "waiting in `mailroll review`: it then counts for no item of its unit."
        )
    return cli.command(name=action)(command)


def _reject_message(app: App, message: str, note: str, as_json: bool) -> None:
    """`reject MESSAGE --note WHY`: the message stays on record but counts for nothing."""
    from reconcile import overrides

    try:
        mid = overrides.resolve_message(app.conn, message)
    except overrides.OverrideError as e:
        raise UsageProblem(
            f"{e}; to reject an item of a unit, name it: `mailroll reject UNIT ITEM --note WHY`"
        ) from None
    row = app.conn.execute("SELECT unit FROM attributions WHERE message = ?", [mid]).fetchone()
    unit = row[0] if row else None
    oid = overrides.add(app.conn, "reject", app.actor, unit=unit, message=mid, note=note)
    _done(
        as_json,
        {"override": oid, "message": mid, "unit": unit, "action": "reject"},
        f"override {oid}: message #{mid} rejected: it counts for no unit's items; "
        f"undo with `mailroll revoke {oid}`",
    )


accept = _item_decision("accept")
reject = _item_decision("reject")


@cli.command()
@campaign_option
@click.argument("unit")
@click.option("--note", required=True, help="Why the unit need not send anything.")
@json_option
@pass_app
def exempt(app: App, unit: str, note: str, as_json: bool) -> None:
    """Mark UNIT as not expected to send material: shown as exempt, never reminded."""
    from reconcile import overrides

    u = _unit(app, unit)
    oid = overrides.add(app.conn, "exempt", app.actor, unit=u.id, note=note, campaign=app.config.campaign.id)
    _done(
        as_json,
        {"override": oid, "unit": u.id, "action": "exempt"},
        f"override {oid}: {u.name} exempt; undo with `mailroll revoke {oid}`",
    )


@cli.command()
@campaign_option
@click.argument("unit")
@click.option(
    "--until",
    "until",
    required=True,
    help="New deadline: RFC 3339, or 'YYYY-MM-DD HH:MM' in the campaign's time zone.",
)
@click.option("--note", help="Why.")
@json_option
@pass_app
def extend(app: App, unit: str, until: str, note: str | None, as_json: bool) -> None:
    """Give UNIT a later deadline (lateness and reminders use it)."""
    from reconcile import overrides

    u = _unit(app, unit)
    try:
        when = overrides.parse_until(until, app.config.campaign.timezone)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    deadline = app.config.campaign.deadline
    if when <= deadline:
        tz = app.config.campaign.timezone
        raise UsageProblem(
            f"--until {when.astimezone(tz).isoformat(timespec='seconds')} is not later than the campaign deadline "
            f"{deadline.astimezone(tz).isoformat(timespec='seconds')}; "
            "to make a unit's deadline earlier is not supported"
        )
    value = when.isoformat(timespec="seconds")
    oid = overrides.add(
        app.conn, "extend", app.actor, unit=u.id, value=value, note=note, campaign=app.config.campaign.id
    )
    _done(
        as_json,
        {"override": oid, "unit": u.id, "until": value},
        f"override {oid}: deadline of {u.name} extended to {value}; undo with `mailroll revoke {oid}`",
    )


@cli.command()
@click.argument("override_id", type=int)
@click.option("--note", help="Why.")
@json_option
@pass_app
def revoke(app: App, override_id: int, note: str | None, as_json: bool) -> None:
    """Undo staff decision OVERRIDE_ID (see `mailroll overrides`)."""
    from reconcile import overrides

    try:
        o = overrides.revoke(app.conn, override_id, app.actor, note)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    if o.action == "assign" and o.message:
        from reconcile.attribute import attribute

        attribute(app.conn, app.any_roster, app.any_config, [o.message])
    what = " ".join(
        str(x) for x in (o.action, o.unit, o.item, f"message #{o.message}" if o.message else None) if x
    )
    _done(as_json, o.as_dict(), f"override {o.id} ({what}) revoked")


@cli.command("overrides")
@campaign_option
@click.option("--all", "show_all", is_flag=True, help="Include revoked decisions.")
@json_option
@pass_app
def overrides_cmd(app: App, show_all: bool, as_json: bool) -> None:
    """Staff decisions in force (with --all, also revoked ones)."""
    from reconcile import overrides

    rows = [o.as_dict() for o in overrides.listing(app.conn, include_revoked=show_all)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no staff decisions")
    tz = app.config.campaign.timezone
    for o in rows:
        what = " ".join(
            str(x)
            for x in (
                o["action"],
                o["unit"] or "",
                o["item"] or "",
                o["value"] or "",
                f"message #{o['message']}" if o["message"] else "",
            )
            if x
        )
        line = f"{o['id']:>4}  {what}  by {o['actor']} at {local_time(o['created_at'], tz)}"
        if o["unit"] and o["unit"] not in app.roster.by_id:
            line += f"  (unit {o['unit']} is not in the roster)"
        if o["note"]:
            line += f"  ({o['note']})"
        if o["revoked_at"]:
            line += f"  [revoked by {o['revoked_by']} at {local_time(o['revoked_at'], tz)}]"
        click.echo(line)


@cli.command()
@json_option
@pass_app
def reattribute(app: App, as_json: bool) -> None:
    """Work out the unit of every message again (status does this by itself after a roster change)."""
    from reconcile.attribute import attribute

    decisions = attribute(app.conn, app.any_roster, app.any_config, None)
    matched = sum(1 for a in decisions.values() if a.unit)
    _done(
        as_json,
        {"messages": len(decisions), "attributed": matched, "unmatched": len(decisions) - matched},
        f"{len(decisions)} messages: {matched} attributed, {len(decisions) - matched} unmatched",
    )


@cli.group()
def roster() -> None:
    """The roster of units (the file named by roster.path)."""


@roster.command("check")
@campaign_option
@json_option
@pass_app
def roster_check(app: App, as_json: bool) -> None:
    """Look for likely mistakes in the roster. Exit 1 if any are found, 2 if the file is unreadable."""
    from reconcile.roster import check_roster

    decisions = []
    if Path(app.config.storage.db).exists():
        from reconcile.overrides import unknown_units

        decisions = unknown_units(app.conn, app.roster, app.config)
    findings = check_roster(app.roster, decisions)
    if as_json:
        emit_json({"units": len(app.roster.units), "findings": [f.as_dict() for f in findings]})
    else:
        for f in findings:
            click.echo(f"{f.kind}: {f.message}")
        click.echo(f"{len(app.roster.units)} units, {len(findings)} findings")
    if findings:
        click.get_current_context().exit(1)


@roster.command("list")
@campaign_option
@json_option
@pass_app
def roster_list(app: App, as_json: bool) -> None:
    """Every unit: id, name, aliases, addresses, category, contact."""
    rows = [
        {
            "id": u.id,
            "name": u.name,
            "aliases": list(u.aliases),
            "emails": list(u.emails),
            "category": u.category,
            "contact": u.contact,
            "phone": u.phone,
        }
        for u in app.roster.units
    ]
    if as_json:
        emit_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    from reconcile.cli.status_cmd import wide_console

    table = Table(title=f"roster: {escape(str(app.roster.path))} ({len(rows)} units)")
    for col in ("id", "name", "aliases", "emails", "category", "contact"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            escape(r["id"]),
            escape(r["name"]),
            escape("; ".join(r["aliases"])),
            escape("; ".join(r["emails"])),
            escape(r["category"]),
            escape(" ".join(x for x in (r["contact"], r["phone"]) if x)),
        )
    wide_console().print(table)
