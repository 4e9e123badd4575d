"""One poller per mailbox, one sender at a time: advisory file locks next to the database.

* ``ingest_lock(config)``: held by ``serve`` for its whole life and by ``ingest --once`` for one
  poll. Two pollers on the same mailbox and database would fetch the same messages twice and
  fight over the watermark. The lock file is ``<db>.lock``; it holds the holder's pid so the
  refusal can name it.
* ``send_lock(config)``: held while receipts or reminders are being sent (``serve`` or a
  ``remind`` run). Only under it may an outbox row left in ``sending`` be declared ``unknown``:
  nobody else can be in the middle of sending it.

``fcntl.flock`` locks vanish with the process (even on ``kill -9``), so a crash never leaves a
stale lock behind; the file itself stays and is harmless.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click


class LockBusy(click.ClickException):
    """Another mailroll holds the lock. Exit status 1 with a message saying who."""

    exit_code = 1

    def show(self, file=None) -> None:  # click's hook: no "Error:" prefix
        click.echo(f"mailroll: {self.format_message()}", err=True)


def lock_path(config, suffix: str = ".lock") -> Path:
    db = Path(config.storage.db)
    return db.with_name(db.name + suffix)


def _holder_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def file_lock(path: Path, wait_s: float, busy_message: str) -> Iterator[int]:
    """Hold an exclusive flock on ``path``; wait up to ``wait_s`` seconds, else raise LockBusy.

    ``busy_message`` may contain ``{pid}`` (the holder's pid, or '?').
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    pid = _holder_pid(fd)
                    for _ in range(10):  # the holder may have the lock but not yet written its pid
                        if pid:
                            break
                        time.sleep(0.05)
                        pid = _holder_pid(fd)
                    raise LockBusy(busy_message.format(pid=pid if pid else "?")) from None
                time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield fd
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def ingest_lock(config, wait_s: float | None = None) -> Iterator[None]:
    """The mailbox lock (``serve``, ``ingest --once``). Waits up to ``service.lock_wait_s``."""
    wait = config.service.lock_wait_s if wait_s is None else wait_s
    with file_lock(
        lock_path(config), wait, "another mailroll (pid {pid}) is polling this mailbox; try again later"
    ):
        yield


@contextmanager
def send_lock(config, wait_s: float = 60.0) -> Iterator[None]:
    """The outbox lock: one sender at a time (``serve``'s send jobs, ``remind``)."""
    with file_lock(
        lock_path(config, ".send.lock"),
        wait_s,
        "another mailroll (pid {pid}) is sending mail; try again later",
    ):
        yield


@contextmanager
def sending(config, conn, wait_s: float = 60.0) -> Iterator[None]:
    """Hold the send lock, after marking the outbox rows a crash left in ``sending`` as
    ``unknown``: they are never sent again (a mail twice looks careless). Every sender (``serve``
    at start, ``remind``, ``receipts``, ``notify``) goes through here."""
    from reconcile.outgoing import outbox

    with send_lock(config, wait_s):
        outbox.recover_interrupted(conn)
        yield
