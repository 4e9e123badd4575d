"""pytest plugin for the mutation runs (scripts/mutation.py): each mutant's tests run in a
process mutmut forked from the one that ran the whole selection first. That parent may already
have started multiprocessing's forkserver (mailroll's workers, ingest/workers.py); a forked child
cannot wait on its parent's child, and every test using a worker would then fail for that
reason alone, counting the mutant as killed. A child starts its own forkserver instead."""

from __future__ import annotations

import os
from multiprocessing import forkserver


def pytest_configure(config) -> None:
    server = forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None or _owns(pid):
        return
    fresh = forkserver.ForkServer()
    forkserver._forkserver = fresh
    for name in ("ensure_running", "get_inherited_fds", "connect_to_new_process", "set_forkserver_preload"):
        setattr(forkserver, name, getattr(fresh, name))


def _owns(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return True
