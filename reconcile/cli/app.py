"""The ``mailroll`` command line.

Every command reads the config named by ``--config`` (or ``MAILROLL_CONFIG``, else
``./config.toml``). Output is a readable table for people, and JSON with ``--json`` for scripts.
Exit status: 0 success, 2 usage or config error (the message says what to fix), 1 other failures.

The commands themselves live beside it in ``reconcile/cli/*_cmd.py``, one module per area; this module holds
what they share: the ``App`` context (config, database, roster, loaded lazily), output helpers and
error handling. Heavy libraries are imported inside the commands that need them, so that quick
commands start quickly.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

import click

from ingest.config import Config, ConfigError, load_config

log = logging.getLogger("mailroll")


class UsageProblem(click.UsageError):
    """A mistake in what the user asked for (unknown unit, item, ...): exit status 2."""


class App:
    """What a command needs, opened on first use."""

    def __init__(self, config_path: str | None, verbose: int, campaign: str | None = None):
        self.config_path = config_path
        self.verbose = verbose
        self.campaign_id = campaign or None

    @cached_property
    def all_config(self) -> Config:
        """The config as written, every campaign in it (``campaign``: the first)."""
        return load_config(self.config_path)

    @cached_property
    def config(self) -> Config:
        """The config with the campaign chosen by ``--campaign`` (or the only one) selected.

        With several campaigns and none chosen: a usage error (exit 2) listing the ids."""
        config = self.all_config
        if self.campaign_id is not None:
            return config.for_campaign(self.campaign_id)
        if len(config.campaigns) > 1:
            raise UsageProblem(
                f"{config.path} has several campaigns: say which with --campaign ID (or "
                f"MAILROLL_CAMPAIGN=ID); the ids are {', '.join(config.campaign_ids)}"
            )
        return config

    def select_campaign(self, campaign: str) -> None:
        """Choose the campaign (``--campaign`` given after the command)."""
        self.campaign_id = campaign
        for name in ("config", "roster", "any_roster"):
            self.__dict__.pop(name, None)

    @property
    def any_config(self) -> Config:
        """For commands that work for every campaign (ingest, messages, serve): the chosen
        campaign if there is one, else the first."""
        if self.campaign_id is None and len(self.all_config.campaigns) > 1:
            return self.all_config
        return self.config

    @cached_property
    def conn(self):
        """Plain sqlite3 connection (migrated). Cheap; used by read-mostly commands."""
        from ingest.db import open_connection

        return open_connection(self.all_config.storage.db)

    @cached_property
    def db(self):
        """sqlite-utils Database over the same connection."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @cached_property
    def roster(self):
        from reconcile.roster import load_roster

        return load_roster(self.config.roster.path)

    @cached_property
    def any_roster(self):
        """The roster of ``any_config``'s campaign."""
        from reconcile.roster import load_roster

        return load_roster(self.any_config.roster.path)

    @property
    def actor(self) -> str:
        """Who is acting, for the audit log."""
        return (
            os.environ.get("MAILROLL_ACTOR")
            or os.environ.get("SUDO_USER")
            or os.environ.get("USER")
            or "staff"
        )


pass_app = click.make_pass_decorator(App)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=None, default=str))


def console():
    from rich.console import Console

    return Console(soft_wrap=False)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or hand it to ``render`` for people."""
    if as_json:
        emit_json(data)
    else:
        render(data)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if os.environ.get("MAILROLL_LOG_LEVEL"):
        level = getattr(logging, os.environ["MAILROLL_LOG_LEVEL"].upper(), level)
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # Libraries that narrate every oddity of a broken attachment: their findings are recorded
    # as facts and reasons; keep them out of the log unless debugging.
    for noisy in ("pypdf", "mailparser", "py7zr", "PIL", "openpyxl", "docx", "apscheduler.executors"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)


class MailrollGroup(click.Group):
    """Turns known errors into clear messages and the contract's exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as e:
            click.echo(f"mailroll: config error: {e}", err=True)
            ctx.exit(2)
        except (
            click.ClickException,
            click.exceptions.Exit,
            click.exceptions.Abort,
            SystemExit,
            BrokenPipeError,
        ):
            raise
        except KeyboardInterrupt:
            click.echo("mailroll: interrupted", err=True)
            ctx.exit(130)
        except Exception as e:  # noqa: BLE001 - last resort: say what happened, exit 1
            from ingest.sources.base import MailboxError

            if isinstance(e, MailboxError):  # its message already says what to check
                click.echo(f"mailroll: mailbox error: {e}", err=True)
                ctx.exit(1)
            app = ctx.find_object(App)
            if app is not None and app.verbose > 1:
                raise
            log.debug("failure", exc_info=True)
            click.echo(f"mailroll: error: {e.__class__.__name__}: {e} (run with -vv for details)", err=True)
            ctx.exit(1)


@click.group(cls=MailrollGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="MAILROLL_CONFIG",
    help="Config file (TOML). Default: $MAILROLL_CONFIG, else ./config.toml.",
)
@click.option(
    "--campaign",
    "campaign",
    envvar="MAILROLL_CAMPAIGN",
    metavar="ID",
    help="The campaign (see `mailroll campaigns`); needed when the config lists several.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="mailroll")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, campaign: str | None, verbose: int) -> None:
    """mailroll: turns a campaign mailbox into a roll call of who sent what."""
    setup_logging(verbose)
    ctx.obj = App(config_path, verbose, campaign)


def campaign_option(f):
    """``--campaign ID`` also after the command (``mailroll assign 7 sxu --campaign kpr2022``)."""

    def choose(ctx: click.Context, _param, value: str | None) -> None:
        app = ctx.find_object(App)
        if value and app is not None:
            app.select_campaign(value)

    return click.option(
        "--campaign",
        metavar="ID",
        expose_value=False,
        callback=choose,
        help="The campaign (as the global --campaign).",
    )(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="mailroll")
    except BrokenPipeError:  # `mailroll status | head`: the reader has all it wants
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


# One module per area of the CLI; each adds its commands to ``cli`` when imported.
COMMAND_MODULES = [
    "ingest_cmd",  # ingest --once, messages, unmatched
    "status_cmd",  # status, stats, show
    "staff_cmd",  # assign, accept, reject, exempt, extend, revoke, overrides, roster, reattribute
    "report_cmd",  # report --xlsx/--csv
    "template_cmd",  # template --xlsx/--docx
    "service_cmd",  # serve, remind, receipts
    "review_cmd",  # review
    "export_cmd",  # export DIR [--zip PATH] [--all-versions]
    "evidence_cmd",  # reprocess, and the raw copy for show --raw
    "campaigns_cmd",  # campaigns
]


def register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"reconcile.cli.{name}")


register_commands()
