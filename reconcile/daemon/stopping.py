"""Stop requests for ``mailroll serve``: SIGTERM and SIGINT set one event, ``STOP``.

The handlers are installed as soon as the command line says ``serve`` (``reconcile.cli.main``,
before the rest of the program is imported), so a stop request during start-up is honoured like
any other: the daemon starts nothing more and exits 0, instead of dying of the signal.

After the first request SIGTERM is ignored: a service manager (or a script) that asks again
gets the same clean stop, never a process killed halfway through its shutdown (Python gives
the default action back to every signal it handled while the interpreter exits, so a second
SIGTERM then would end it with "killed by signal 15"). SIGKILL still ends it at once; a second
Ctrl-C too (a person at a terminal who does not want to wait).
"""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()


def _on_signal(signum, _frame) -> None:
    STOP.set()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def catch_stop_signals() -> threading.Event:
    """Route SIGTERM and SIGINT to ``STOP`` (main thread only; installing again is harmless)."""
    if not STOP.is_set():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    return STOP


def wants_serve(args: list[str]) -> bool:
    """Does this command line run the daemon (``serve``, not ``serve --check`` or ``--help``)?"""
    return "serve" in args and not {"--check", "--help", "-h"} & set(args)
