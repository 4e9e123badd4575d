"""One module per area of the CLI. Each module adds its commands to ``reconcile.cli.cli``."""
import importlib

MODULES = [
    "ingest_cmd",     # ingest --once, messages, unmatched, show (facts side)
    "status_cmd",     # status, stats, show
    "staff_cmd",      # assign, accept, reject, exempt, extend, revoke, roster ...
    "report_cmd",     # report --xlsx/--csv
    "template_cmd",   # template --xlsx/--docx
    "service_cmd",    # serve, remind
]


def register_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(f"reconcile.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"reconcile.commands.{name}":
                raise
