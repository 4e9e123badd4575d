"""The console entry point: ``mailroll`` and ``python -m reconcile``.

``status --json`` is answered from the cached rows when they are current
(``reconcile.status_cache``), before click and the config module load; everything else runs the
click application in ``reconcile.cli.app``.
"""

from __future__ import annotations

import os
import sys

from reconcile.daemon.stopping import catch_stop_signals, wants_serve
from reconcile.status_cache import cached_status_json


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the quick road when it applies, else the full CLI."""
    # the database, the files and the logs hold what units sent: readable by this user only,
    # whatever umask the shell or cron gives (the service sets StateDirectoryMode=0700 too)
    os.umask(0o077)
    args = sys.argv[1:] if argv is None else argv
    if wants_serve(args):  # from the first moment: a stop during start-up is a clean stop
        catch_stop_signals()
    out = cached_status_json(args)
    if out is not None:
        sys.stdout.buffer.write(out.encode("utf-8"))
        sys.stdout.flush()
        return
    from reconcile.cli.app import main as cli_main

    cli_main(argv)
