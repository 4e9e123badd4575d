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

STATE_STYLE = {
    "ok": "green",
    "invalid": "red",
    "missing": "yellow",
    "complete": "green",
    "incomplete": "yellow",
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
    """The unit called ``text`` (id, name or alias), or a usage error that says what to do."""
    found = app.roster.find_all(text)
    if not found:
        raise UsageProblem(f"unknown unit {text}: see `mailroll roster list`")
    if len(found) > 1:
        raise UsageProblem(f"{text} names {len(found)} units ({', '.join(u.id for u in found)}): give the id")
    return found[0]


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
    help="Only units in this state (repeatable).",
)
@click.option(
    "--missing",
    "missing",
    multiple=True,
    metavar="ITEM",
    help="Only units that have not sent this item (an item id, repeatable).",
)
@click.option(
    "--invalid",
    "invalid",
    multiple=True,
    metavar="ITEM",
    help="Only units whose counted item fails its check (an item id, repeatable).",
)
@click.option("--late", is_flag=True, help="Only units with a late item.")
@click.option(
    "--category", "categories", multiple=True, help="Only units of this roster category (repeatable)."
)
@json_option
@pass_app
def status(app: App, states, missing, invalid, late, categories, as_json: bool) -> None:
    """One row per roster unit: what arrived, whether it passes, whether it was late."""
    filtered = bool(states or missing or invalid or late or categories)
    if as_json and not filtered:
        from reconcile.status_cache import cached_rows

        cached = cached_rows(app.conn, app.config)
        if cached is not None:
            click.echo("[" + ", ".join(cached) + "]")
            return
    from reconcile.status import matches

    wrong = [i for i in (*missing, *invalid) if i not in app.config.campaign.item_ids]
    if wrong:
        raise UsageProblem(
            f"no item {', '.join(wrong)} in campaign {app.config.campaign.id}: "
            f"the items are {', '.join(app.config.campaign.item_ids)}"
        )
    known = sorted({u.category for u in app.roster.units if u.category})
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise UsageProblem(
            f"no unit has the category {', '.join(unknown)}; "
            f"the roster's categories: {', '.join(known) or '(none)'}"
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
    text = {"ok": "ok", "invalid": "invalid", "missing": "—"}[st]
    if item.get("late"):
        text += " (late)"
    if item.get("override"):
        text += " *"
    out = f"[{STATE_STYLE[st]}]{text}[/]"
    if st == "invalid" and item.get("reason"):
        out += f"\n[dim]{escape(item['reason'])}[/]"
    return out


def _short_time(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else ""


def _render_status(app: App, rows: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from reconcile.heartbeat import ago, heartbeat
    from reconcile.status import summary

    con = wide_console()
    table = Table(title=escape(app.config.campaign.name), show_lines=False)
    table.add_column("unit", no_wrap=True)
    items = app.config.campaign.item_ids
    for col in ("category", *items, "late", "last arrival"):
        table.add_column(col, overflow="fold")
    for r in rows:
        name = escape(r["name"]) + f"\n[dim]{escape(r['id'])}[/]"
        if r.get("exempt"):
            name += " [cyan](exempt)[/]"
        table.add_row(
            name,
            escape(r.get("category") or ""),
            *(_cell(r["items"][i]) for i in items),
            "[red]late[/]" if r["late"] else "",
            _short_time(r.get("last_arrival")),
        )
    con.print(table)
    s = summary(rows)
    line = f"{s['complete']} complete, {s['incomplete']} incomplete, {s['missing']} missing, {s['late']} late"
    if s["exempt"]:
        line += f", {s['exempt']} exempt"
    con.print(line)
    pending = [(r, p) for r in rows for p in r.get("pending_review") or []]
    if pending:
        con.print(
            f"[yellow]{len(pending)} message(s) pending review[/] (sent by someone not registered for the "
            "unit; `mailroll review`, then `mailroll assign MESSAGE UNIT` or `mailroll reject MESSAGE`):"
        )
        for r, p in pending:
            con.print(
                f"  #{p['message']} for {escape(r['name'])} from {escape(p['from'] or '?')}: "
                f"{escape(p['subject'] or '')}"
            )
    if any(i.get("override") for r in rows for i in r["items"].values()):
        con.print("[dim]* decided by staff (see `mailroll show UNIT`)[/]")
    hb = heartbeat(app.conn, app.config)
    if hb:
        text = f"last poll {ago(hb['age_s'])}"
        if hb["stale"]:
            con.print(f"[bold red]warning: {text}: is `mailroll serve` running?[/]")
        else:
            con.print(f"[dim]{text}[/]")
        if hb.get("last_error"):
            con.print(f"[red]last error: {escape(hb['last_error'])}[/]")


def since_time(app: App, text: str):
    """``--changed-since``: RFC 3339, or a local time / date in the campaign's time zone."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageProblem(f"--changed-since {text!r}: give a time like 2022-06-26T09:00:00+08:00") from None
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
    from rich.markup import escape
    from rich.table import Table

    sheet = app.config.campaign.first("sheet")
    units = dict(sheet.sheet.fields) if sheet is not None and sheet.sheet else {}
    table = Table(title=f"{escape(app.config.campaign.name)}: {data['units']} units with a valid sheet")
    table.add_column("field")
    table.add_column("total", justify="right")
    table.add_column("unit")
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
            f"not counted ({len(data['left_out'])}): "
            + ", ".join(f"{u['name']} ({u['reason']})" for u in data["left_out"]),
            markup=False,
        )
    for note in data.get("notes") or []:
        con.print(f"note: {note}", markup=False)
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
    con.print(
        f"addresses: {', '.join(d['emails']) or '(none)'}"
        + (f"; contact {escape(d['contact'])} {escape(d.get('phone') or '')}" if d.get("contact") else "")
    )
    line = f"state: [{STATE_STYLE.get(s['state'], 'red')}]{s['state']}[/]"
    if s["late"]:
        line += " [red](late)[/]"
    if s.get("exempt"):
        line += f" [cyan]exempt[/] {escape(s.get('exempt_note') or '')}"
    line += f"; deadline {s['deadline']}" + (" (extended)" if s.get("deadline_extended") else "")
    con.print(line)
    for item, label in labels.items():
        it = s["items"][item]
        text = f"  {item} ({label}): [{STATE_STYLE[it['state']]}]{it['state']}[/]"
        if it.get("late"):
            text += " [red]late[/]"
        if it.get("filename"):
            text += f" {escape(it['filename'])}"
        if it.get("arrived_at"):
            text += f", arrived {it['arrived_at']}"
        if it.get("trust"):
            text += f", sender {it['trust']}"
        if it.get("details"):
            text += f" [dim]({escape(it['details'])})[/]"
        con.print(text)
        if it.get("reason"):
            con.print(f"      reason: {escape(it['reason'])}")
        for w in it.get("warnings") or []:
            con.print(f"      [yellow]warning:[/] {escape(w)}")
        if it.get("override"):
            o = it["override"]
            con.print(
                f"      [cyan]{o['action']}ed by {escape(o['actor'])}[/] (override {o['id']})"
                + (f": {escape(o['note'])}" if o.get("note") else "")
            )
    _render_versions(con, d.get("versions") or {}, labels)
    con.print(f"\n[bold]messages ({len(d['messages'])})[/]")
    for m in d["messages"]:
        con.print(
            f"  #{m['id']} {m['received_at']} from {escape(m['from'] or '?')}: {escape(m['subject'] or '')}"
        )
        con.print(f"      [dim]{escape(m['attribution'] or '')}[/]")
        if m.get("trust"):
            con.print(
                f"      sender trust: {escape(m['trust'])}"
                + (
                    f" [yellow]pending review[/]: {escape(m['pending_review'])}"
                    if m.get("pending_review")
                    else ""
                )
            )
        for p in m["parts"]:
            mark = {"ok": "[green]ok[/]", "invalid": "[red]invalid[/]"}.get(p.get("state"), p["kind"])
            line = f"      - {escape(p['location'] or p['filename'] or '?')} {escape('[' + p['kind'] + ']')} {mark}"
            if p.get("counted"):
                line += " [bold](counted)[/]"
            con.print(line)
            if p.get("reason"):
                con.print(f"          {escape(p['reason'])}")
            for w in p.get("warnings") or []:
                con.print(f"          [yellow]warning:[/] {escape(w)}")
        for link in m["links"]:
            con.print(
                f"      - link {escape(link['provider'] or link['host'] or '')} {escape(link['filename'] or '')}: "
                f"{link['status']}" + (f" ({escape(link['error'])})" if link.get("error") else "")
            )
    if d["overrides"]:
        con.print("\n[bold]staff decisions[/]")
        for o in d["overrides"]:
            what = " ".join(
                str(x)
                for x in (
                    o["action"],
                    o.get("item") or "",
                    o.get("value") or "",
                    f"message #{o['message']}" if o.get("message") else "",
                )
                if x
            )
            line = f"  override {o['id']}: {escape(what)} by {escape(o['actor'])} at {local_time(o['created_at'], tz)}"
            if o.get("note"):
                line += f": {escape(o['note'])}"
            if o.get("revoked_at"):
                line += (
                    f" [dim](revoked by {escape(o['revoked_by'])} at {local_time(o['revoked_at'], tz)})[/]"
                )
            con.print(line)
    if d["outbox"]:
        con.print("\n[bold]mail sent to the unit[/]")
        for o in d["outbox"]:
            con.print(
                f"  {o['kind']} {o.get('stage') or ''} to {', '.join(o['to'])}: {o['status']}"
                f" {o.get('sent_at') or o['created_at']}"
                + (f" ({escape(o['error'])})" if o.get("error") else "")
            )
    if d["audit"]:
        con.print("\n[bold]audit log[/]")
        for a in d["audit"]:
            what = " ".join(str(a["detail"].get(k)) for k in ("item", "value") if a["detail"].get(k))
            ref = f" (override {a['detail']['override']})" if a["detail"].get("override") else ""
            words = [
                local_time(a["at"], tz),
                escape(a["actor"]),
                a["action"],
                escape(what),
                ref.strip(),
                escape(a.get("note") or ""),
            ]
            con.print("  " + " ".join(w for w in words if w))
