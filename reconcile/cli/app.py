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
import logging
import os
import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

import click

from ingest.config import Config, ConfigError, load_config
from reconcile import i18n
from reconcile.i18n import N_
from reconcile.i18n import gettext as _

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
                _(
                    "{path} has several campaigns: say which with --campaign ID (or "
                    "MAILROLL_CAMPAIGN=ID); the ids are {ids}"
                ).format(path=config.path, ids=", ".join(config.campaign_ids))
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
    from reconcile.status_cache import json_text

    click.echo(json_text(data), nl=False)


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
            click.echo(_("mailroll: config error: {error}").format(error=e), err=True)
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
            click.echo(_("mailroll: interrupted"), err=True)
            ctx.exit(130)
        except Exception as e:  # noqa: BLE001 - last resort: say what happened, exit 1
            from ingest.sources.base import MailboxError

            if isinstance(e, MailboxError):  # its message already says what to check
                click.echo(_("mailroll: mailbox error: {error}").format(error=e), err=True)
                ctx.exit(1)
            app = ctx.find_object(App)
            if app is not None and app.verbose > 1:
                raise
            log.debug("failure", exc_info=True)
            click.echo(
                _("mailroll: error: {kind}: {error} (run with -vv for details)").format(
                    kind=e.__class__.__name__, error=e
                ),
                err=True,
            )
            ctx.exit(1)


@click.group(cls=MailrollGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="MAILROLL_CONFIG",
    help=N_("Config file (TOML). Default: $MAILROLL_CONFIG, else ./config.toml."),
)
@click.option("-v", "--verbose", count=True, help=N_("More log output (-v info, -vv debug)."))
@click.option(
    "--lang",
    type=click.Choice(i18n.LANGS),
    help=N_("Language for people: zh or en (default: [ui] lang, else the locale LANG/LC_ALL)."),
)
@click.option(
    "--campaign",
    "campaign",
    envvar="MAILROLL_CAMPAIGN",
    metavar="ID",
    help=N_("The campaign (see `mailroll campaigns`); needed when the config lists several."),
)
@click.version_option(package_name="mailroll")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, verbose: int, lang: str | None, campaign: str | None
) -> None:
    """mailroll: turns a campaign mailbox into a roll call of who sent what."""
    setup_logging(verbose)
    speak(i18n.choose(lang, configured_lang(config_path)))
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
    return click.option("--json", "as_json", is_flag=True, help=N_("Machine-readable JSON output."))(f)


def configured_lang(config_path: str | None) -> str | None:
    """``[ui] lang`` from the config file, read cheaply; None if unset or unreadable (the real
    config load reports problems)."""
    import tomllib

    path = config_path or os.environ.get("MAILROLL_CONFIG") or "config.toml"
    try:
        with open(path, "rb") as f:
            value = tomllib.load(f).get("ui", {}).get("lang")
    except (OSError, ValueError, AttributeError):
        return None
    return value if value in i18n.LANGS else None


def _lang_from_argv(argv: list[str]) -> tuple[str | None, str | None]:
    """--lang and --config among the global options (before the command), for help text."""
    lang = config = None
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt in ("--lang", "--config") and rest:
            value = rest.pop(0)
        elif opt.startswith(("--lang=", "--config=")):
            opt, value = opt.split("=", 1)
        else:
            continue
        if opt == "--lang":
            lang = value
        else:
            config = value
    return lang, config


def speak(lang: str) -> None:
    """Use ``lang`` for everything people read: our messages, help texts and click's own words."""
    i18n.activate(lang)
    import click.core
    import click.decorators
    import click.exceptions
    import click.formatting
    import click.parser
    import click.types

    for module in (
        click.core,
        click.decorators,
        click.exceptions,
        click.formatting,
        click.parser,
        click.types,
    ):
        vars(module)["_"] = _  # click's words ("Usage:", "Options", "Error: ...") from our catalog
    localize_help(cli)


# click's own words, in our catalog so that help and usage errors speak the user's language
CLICK_WORDS = (
    N_("Usage:"),
    N_("Options"),
    N_("Commands"),
    N_("Show this message and exit."),
    N_("Show the version and exit."),
    N_("Error: {message}"),
    N_("Try '{command} {option}' for help."),
    N_("No such command {name!r}."),
    N_("No such option {name!r}."),
    N_("Missing argument"),
    N_("Missing option"),
    N_("Missing command."),
    N_("Invalid value for {param_hint}: {message}"),
    N_("Invalid value: {message}"),
    N_("Aborted!"),
    N_("default: {default}"),
    N_("env var: {var}"),
    N_("Option {name!r} requires an argument."),
    N_("Got unexpected extra argument ({args})"),
)


def localize_help(command: click.Command) -> None:
    """Help texts in the current language (the English originals are kept to translate again)."""
    originals = command.__dict__.setdefault("_mailroll_help", (command.help, command.short_help))
    command.help = _(originals[0]) if originals[0] else originals[0]
    command.short_help = _(originals[1]) if originals[1] else originals[1]
    for param in command.params:
        if isinstance(param, click.Option):
            original = param.__dict__.setdefault("_mailroll_help", param.help)
            param.help = _(original) if original else original
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            localize_help(sub)


def main(argv: list[str] | None = None) -> None:
    lang, config = _lang_from_argv(sys.argv[1:] if argv is None else argv)
    speak(i18n.choose(lang, configured_lang(config)))
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
    "web_cmd",  # web, web passwd
    "search_cmd",  # search WORDS...
    "questions_cmd",  # questions, answered
    "reply_cmd",  # reply, answers
]


def register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"reconcile.cli.{name}")


register_commands()
