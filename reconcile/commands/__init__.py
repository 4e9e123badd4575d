"""One module per area of the CLI. Each module adds its commands to ``reconcile.cli.cli``."""

import importlib

MODULES = [
    "ingest_cmd",  # ingest --once, messages, unmatched
    "status_cmd",  # status, stats, show
    "staff_cmd",  # assign, accept, reject, exempt, extend, revoke, overrides, roster, reattribute
    "report_cmd",  # report --xlsx/--csv
    "template_cmd",  # template --xlsx/--docx
    "service_cmd",  # serve, remind, receipts
]


def register_all() -> None:
    for name in MODULES:
        importlib.import_module(f"reconcile.commands.{name}")
