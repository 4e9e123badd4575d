"""`mailroll web`: the office's page (reconcile.web) served by waitress; `mailroll web passwd NAME`
makes a password hash for ``[web] users``."""

from __future__ import annotations

import ipaddress
import sys

import click

from reconcile.cli.app import App, UsageProblem, cli
from reconcile.i18n import gettext as _

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cli.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Worker threads.")
@click.pass_context
def web(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """The office's page in the browser (Chinese): status, units, unmatched mail, statistics.

    Without [web] users in the config it is read-only and listens on loopback only. It never
    takes the ingest lock, so it runs beside `mailroll serve`. With several campaigns each page
    takes ?campaign=ID (default: --campaign, else the first)."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    if app is None:  # the group always makes one; for mypy
        raise click.UsageError("mailroll web runs under the mailroll command")
    # every campaign is served (?campaign=ID); --campaign (or MAILROLL_CAMPAIGN) names the default
    config = app.config if app.campaign_id else app.all_config
    if not config.web.users and not is_loopback(host):
        raise UsageProblem(
            _(
                "--host {host}: without [web] users the page is read-only and only served on loopback "
                "(127.0.0.1); add users (`mailroll web passwd NAME`) to serve it to the network"
            ).format(host=host)
        )
    if config.web.trusted_proxy and not is_loopback(host):
        raise UsageProblem(
            _(
                "--host {host}: with [web] trusted_proxy the page is served to the reverse proxy on "
                "this machine only (127.0.0.1); a client reaching it directly could write its own "
                "X-Forwarded-For. Let the proxy listen on the network (docs/WEB.md)"
            ).format(host=host)
        )
    import threading

    from waitress import create_server

    from reconcile.web import create_app
    from reconcile.web.warm import keep_warm

    wsgi = create_app(config.path, default_campaign=app.campaign_id, host=host)
    # proxy headers reach the page (never believed): without users it refuses proxied requests
    server = create_server(
        wsgi, host=host, port=port, threads=threads, ident="mailroll", clear_untrusted_proxy_headers=False
    )
    mode = "staff sign-in" if config.web.users else "read-only"
    click.echo(f"mailroll web: http://{host}:{server.effective_port}/ ({mode}); Ctrl-C stops it", err=True)
    stop = threading.Event()
    keep_warm(config.path, stop)  # the status cache refreshed soon after new mail, not by a page
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()


@web.command("passwd")
@click.argument("name")
def passwd(name: str) -> None:
    """Ask for NAME's password and print the [web] users entry to add to the config."""
    import json

    from reconcile.web.auth import hash_password

    if sys.stdin.isatty():
        password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise UsageProblem(_("the password must have at least 8 characters"))
    quoted = json.dumps(name, ensure_ascii=False)
    entry = f"{{name = {quoted}, password_hash = {json.dumps(hash_password(password))}}}"
    click.echo("# add to the config file:")
    click.echo("[web]")
    click.echo(f"users = [{entry}]")
