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

from reconcile.cli.app import App, UsageProblem, campaign_option, cli, emit_json, json_option, pass_app
from reconcile.cli.status_cmd import find_item, find_unit, item_word, local_time, state_word
from reconcile.i18n import N_
from reconcile.i18n import gettext as _
from reconcile.words import DECISIONS, word

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
@click.option("--note", help=N_("Why (kept in the audit log)."))
@json_option
@pass_app
def assign(app: App, message: str, unit: str, note: str | None, as_json: bool) -> None:
    """Attribute MESSAGE (number or Message-ID) to UNIT (id, name or alias), whatever the rules say."""
    from reconcile import overrides

    u = _unit(app, unit)
    try:
        mid = overrides.resolve_message(app.conn, message)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    try:
        done = overrides.assign(
            app.conn, app.roster, app.config, mid, u.id, app.actor, note, campaign=app.config.campaign.id
        )
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    if done.previous_unit:
        prev = app.roster.by_id.get(done.previous_unit)
        shown = (
            f"{prev.name} ({prev.id})"
            if prev
            else _("{unit} (not in the roster)").format(unit=done.previous_unit)
        )
        how = (
            _("by hand")
            if done.previous_method == "manual"
            else _("automatically ({method})").format(method=done.previous_method)
        )
        click.echo(
            _(
                "warning: message #{id} was attributed {how} to {shown}; it now counts for {unit} instead"
            ).format(id=mid, how=how, shown=shown, unit=u.name),
            err=True,
        )
    oid = done.override
    _done(
        as_json,
        {
            "override": oid,
            "message": mid,
            "unit": u.id,
            "previous_unit": done.previous_unit,
            "replaces": done.replaces,
        },
        _(
            "override {oid}: message #{id} assigned to {name} ({unit}); undo with `mailroll revoke {oid}`"
        ).format(oid=oid, id=mid, name=u.name, unit=u.id),
    )


def _item_decision(action: str):
    @campaign_option
    @click.argument("unit")
    @click.argument("item", required=(action != "reject"))
    @click.option(
        "--note",
        required=(action == "reject"),
        help=N_("Why (shown as the reason; required for reject).") if action == "reject" else N_("Why."),
    )
    @json_option
    @pass_app
    def command(app: App, unit: str, item: str, note: str | None, as_json: bool) -> None:
        from reconcile import overrides

        if item is None:
            _reject_message(app, unit, note or "", as_json)
            return
        u = _unit(app, unit)
        item = find_item(app, item)
        oid = overrides.add(
            app.conn, action, app.actor, unit=u.id, item=item, note=note, campaign=app.config.campaign.id
        )
        state = "ok" if action == "accept" else "invalid"
        _done(
            as_json,
            {"override": oid, "unit": u.id, "item": item, "action": action},
            (
                _("override {oid}: {item} of {name} accepted (now {state}); undo: `mailroll revoke {oid}`")
                if action == "accept"
                else _(
                    "override {oid}: {item} of {name} rejected (now {state}); undo: `mailroll revoke {oid}`"
                )
            ).format(
                oid=oid,
                item=item_word(item, app.config.campaign.labels),
                name=u.name,
                state=state_word(state),
            ),
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
            _("{error}; to reject an item of a unit, name it: `mailroll reject UNIT ITEM --note WHY`").format(
                error=e
            )
        ) from None
    try:
        oid = overrides.drop_message(app.conn, "reject", mid, app.actor, note)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    row = app.conn.execute("SELECT unit FROM attributions WHERE message = ?", [mid]).fetchone()
    _done(
        as_json,
        {"override": oid, "message": mid, "unit": row[0] if row else None, "action": "reject"},
        _(
            "override {oid}: message #{id} rejected: it counts for no unit's items and leaves the queue; "
            "undo with `mailroll revoke {oid}`"
        ).format(oid=oid, id=mid),
    )


accept = _item_decision("accept")
reject = _item_decision("reject")


@cli.command()
@campaign_option
@click.argument("unit")
@click.option("--note", required=True, help=N_("Why the unit need not send anything."))
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
        _("override {oid}: {name} exempt; undo with `mailroll revoke {oid}`").format(oid=oid, name=u.name),
    )


@cli.command()
@campaign_option
@click.argument("unit")
@click.option(
    "--until",
    "until",
    required=True,
    help=N_("New deadline: RFC 3339, or 'YYYY-MM-DD HH:MM' in the campaign's time zone."),
)
@click.option("--note", help=N_("Why."))
@json_option
@pass_app
def extend(app: App, unit: str, until: str, note: str | None, as_json: bool) -> None:
    """Give UNIT a later deadline (lateness and reminders use it)."""
    from reconcile import overrides
    from reconcile.cli.service_cmd import now_option_time

    u = _unit(app, unit)
    try:
        oid, value = overrides.extend(
            app.conn,
            app.config,
            u.id,
            until,
            app.actor,
            note,
            campaign=app.config.campaign.id,
            now=now_option_time(app, None),
        )
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    _done(
        as_json,
        {"override": oid, "unit": u.id, "until": value},
        _("override {oid}: deadline of {name} extended to {value}; undo with `mailroll revoke {oid}`").format(
            oid=oid, name=u.name, value=value
        ),
    )


@cli.command()
@click.argument("override_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--note", help=N_("Why."))
@json_option
@pass_app
def revoke(app: App, override_id: int, note: str | None, as_json: bool) -> None:
    """Undo staff decision OVERRIDE_ID (see `mailroll overrides`)."""
    from reconcile import overrides

    try:
        o = overrides.revoke_decision(app.conn, app.any_roster, app.any_config, override_id, app.actor, note)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    what = " ".join(
        str(x)
        for x in (
            o.action,
            o.unit,
            item_word(o.item, app.config.campaign.labels) if o.item else None,
            _("message #{id}").format(id=o.message) if o.message else None,
        )
        if x
    )
    _done(as_json, o.as_dict(), _("override {id} ({what}) revoked").format(id=o.id, what=what))


@cli.command("overrides")
@campaign_option
@click.option("--all", "show_all", is_flag=True, help=N_("Include revoked decisions."))
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
        click.echo(_("no staff decisions"))
    tz = app.config.campaign.timezone
    for o in rows:
        what = " ".join(
            str(x)
            for x in (
                word(DECISIONS, o["action"]),
                o["unit"] or "",
                o["item"] or "",
                o["value"] or "",
                _("message #{id}").format(id=o["message"]) if o["message"] else "",
            )
            if x
        )
        line = f"{o['id']:>4}  {what}  " + _("by {actor} at {time}").format(
            actor=o["actor"], time=local_time(o["created_at"], tz)
        )
        if o["unit"] and o["unit"] not in app.roster.by_id:
            line += "  " + _("(unit {unit} is not in the roster)").format(unit=o["unit"])
        if o["note"]:
            line += f"  ({o['note']})"
        if o["revoked_at"]:
            line += (
                "  ["
                + _("revoked by {actor} at {time}").format(
                    actor=o["revoked_by"], time=local_time(o["revoked_at"], tz)
                )
                + "]"
            )
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
        _("{n} messages: {matched} attributed, {unmatched} unmatched").format(
            n=len(decisions), matched=matched, unmatched=len(decisions) - matched
        ),
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
    from reconcile.roster import Finding, check_roster

    decisions = []
    unproven = unplaced = None
    if Path(app.config.storage.db).exists():
        from reconcile.authcheck import coverage_warning, unplaced_warning
        from reconcile.overrides import unknown_units

        decisions = unknown_units(app.conn, app.roster, app.config)
        unproven = coverage_warning(app.conn, app.config)
        unplaced = unplaced_warning(app.conn)
    findings = check_roster(app.roster, decisions)
    if unproven:
        findings.append(Finding("no-authentication-results", [], unproven))
    if unplaced:
        findings.append(Finding("authentication-positions-unknown", [], unplaced))
    if as_json:
        emit_json({"units": len(app.roster.units), "findings": [f.as_dict() for f in findings]})
    else:
        for f in findings:
            click.echo(f"{f.kind}: {f.message}")
        click.echo(
            _("{units} units, {findings} findings").format(
                units=len(app.roster.units), findings=len(findings)
            )
        )
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

    table = Table(title=escape(_("roster: {path} ({n} units)").format(path=app.roster.path, n=len(rows))))
    for col in (_("id"), _("name"), _("aliases"), _("emails"), _("category"), _("contact")):
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
