"""`reprocess [MESSAGE…|--all]` and the raw copy behind `show --raw MESSAGE`: the evidence kept
of every message (ingest/raw.py, ingest/reprocess.py)."""

from __future__ import annotations

import sys

import click

from reconcile.cli.app import App, UsageProblem, cli, emit_json, json_option, pass_app
from reconcile.i18n import gettext as _


def find_message(app: App, ref: str) -> int:
    """A message by number (as `messages` shows it) or Message-ID (with or without <>)."""
    ref = ref.strip()
    if ref.isdigit():
        number = int(ref) if ref.isascii() and len(ref) < 19 else -1  # past SQLite's integers: none
        row = app.conn.execute("SELECT id FROM messages WHERE id = ?", [number]).fetchone()
        if row:
            return row[0]
        raise UsageProblem(_("no message number {ref}: see `mailroll messages`").format(ref=ref))
    rows = app.conn.execute(
        "SELECT id FROM messages WHERE message_id = ? ORDER BY received_at, id", [ref.strip("<>")]
    ).fetchall()
    if not rows:
        raise UsageProblem(
            _("no message with Message-ID {ref}: see `mailroll messages --json`").format(ref=ref)
        )
    if len(rows) > 1:
        click.echo(
            "mailroll: "
            + _(
                "{n} messages have this Message-ID ({ids}); writing #{first}, the first to arrive "
                "(give the number for another)"
            ).format(n=len(rows), ids=", ".join(str(r[0]) for r in rows), first=rows[0][0]),
            err=True,
        )
    return rows[0][0]


def write_raw(app: App, ref: str) -> None:
    """The message as the server served it, to standard output (binary). Where only its header
    was kept, the header (exit 0, a note on stderr); where nothing was, exit 1."""
    from ingest.store import FileStore

    mid = find_message(app, ref)
    sha, headers = app.conn.execute(
        "SELECT raw_sha256, raw_headers FROM messages WHERE id = ?", [mid]
    ).fetchone()
    out = sys.stdout.buffer
    if sha:
        store = FileStore(app.config.storage.files)
        try:
            for chunk in store.raw.open(sha, store.path_for):
                out.write(chunk)
        except FileNotFoundError as e:
            raise click.ClickException(f"message #{mid}: {e}") from None
        out.flush()
        return
    if headers:  # all there is: written as a message with an empty body, said on stderr
        out.write(_ended(bytes(headers)))
        out.flush()
        click.echo(
            f"mailroll: message #{mid}: only its header was kept (over the size limit, or keep_raw "
            "was off): the header is written, the body is not",
            err=True,
        )
        return
    raise click.ClickException(
        f"message #{mid}: no raw copy was kept (recorded before keep_raw, or keep_raw is off)"
    )


def _ended(header: bytes) -> bytes:
    """The header block with the blank line that ends it (some sources keep it without)."""
    eol = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    if header.endswith(eol * 2) or not header.strip():
        return header
    return header + (eol if header.endswith(eol) else eol * 2)


@cli.command()
@click.argument("messages", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every message that has a raw copy.")
@json_option
@pass_app
def reprocess(app: App, messages: tuple[str, ...], all_: bool, as_json: bool) -> None:
    """Derive the facts of recorded messages again from their kept raw copies (after an upgrade),
    without the mailbox, then attribute them again."""
    if bool(messages) == all_:
        raise click.UsageError(_("name the messages (number or Message-ID), or give --all"))
    from ingest.pipeline import poll_once
    from ingest.reprocess import KeptRawSource, select
    from ingest.store import FileStore
    from reconcile.attribute import attribute
    from reconcile.daemon.lock import ingest_lock
    from reconcile.status_cache import ensure_attributed

    config = app.config
    ids = None if all_ else [find_message(app, m) for m in messages]
    store = FileStore(config.storage.files)
    with ingest_lock(config, wait_s=config.service.lock_wait_s):
        chosen = select(app.conn, store, ids)
        result = poll_once(config, app.conn, source=KeptRawSource(app.conn, store, chosen.ids))
        ensure_attributed(app.conn, app.roster, config)
        if result.recorded_ids:
            attribute(app.conn, app.roster, config, result.recorded_ids)
    counts = {
        "reprocessed": result.new,
        "recorded": len(result.recorded_ids),
        "duplicate": result.duplicate,
        "failed": result.failed,
        "skipped": chosen.skipped,
    }
    if as_json:
        emit_json(counts)
        return
    click.echo(
        _(
            "{reprocessed} message(s) derived again from their raw copies: "
            "{recorded} recorded, {duplicate} duplicate, {failed} failed; {skipped} skipped"
        ).format(**(counts | {"skipped": len(chosen.skipped)}))
    )
    for s in chosen.skipped:
        click.echo(f"  #{s['message']}: {s['reason']}", err=True)
