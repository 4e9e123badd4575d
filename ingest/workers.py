"""Worker processes for the work a sender controls: parsing, archives, classifying, checks.

A crafted message must not be able to stall a poll, starve the machine or crash mailroll. So
what reads sender-made bytes runs in a separate process with two enforced limits:

* memory: ``RLIMIT_AS`` = ``limits.worker_memory_bytes`` (address space, so it covers C
  libraries too); an allocation beyond it fails and the task ends with ``WorkLimit("memory")``;
* time: the task's share of the message's budget (``MessageBudget``, ``limits.message_timeout_s``
  in all for one message); past it the worker's whole process group is killed (SIGTERM, which
  also ends the external tools it started, then SIGKILL) and the task ends with
  ``WorkLimit("time")``. A worker that dies any other way ends the task with ``WorkLimit("crash")``.

A killed worker is replaced; the pool and the poll go on. The pipeline turns a ``WorkLimit``
into a recorded reason ("processing took over 300 s", "the archive needs more than 1 GiB to
open").

``WorkerPool(size, memory_bytes)`` keeps ``size`` long-lived processes (default: one per core),
started lazily from a ``forkserver`` (a small, clean parent: a worker's address space is not the
poll's; the modules the tasks need are loaded once, in the server). ``submit(fn, *args,
budget=...)`` returns a ``concurrent.futures.Future``; ``run`` waits for it. Tasks are plain
module-level functions; arguments and results cross the boundary pickled, so they are small
objects and paths: a big file stays in the spool directory and crosses as its path. Tasks run
in any free worker, in parallel: one message's checks, or (for the pipeline that overlaps
messages) several messages' work, keep both cores busy while the poll's thread commits one
message at a time, in arrival order.

Workers die with the poll: each asks the kernel for SIGKILL when its parent (the forkserver)
goes, and the forkserver exits when mailroll does.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.util
import os
import queue
import resource
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

# loaded once in the forkserver, so a new worker starts in milliseconds, ready to parse and check
PRELOAD = [
    "ingest.worker_tasks",
    "ingest.checks.sheet",
    "ingest.checks.report",
    "ingest.checks.image",
    "lxml.html",
    # the checks import these when first used: loaded here, a worker's first sheet or report
    # costs no import (serve answers its first message as fast as the others), and the
    # workers share the pages instead of each holding a copy
    "openpyxl",
    "docx",
    "av",  # FFmpeg's demuxers: the video check
]
_PR_SET_PDEATHSIG = 1
KILL_GRACE_S = 1.0  # between SIGTERM (tools end) and SIGKILL of a worker over its time


class WorkLimit(Exception):
    """A task hit a limit: ``kind`` is "time", "memory" or "crash"."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail


@dataclass
class MessageBudget:
    """The worker time one message may still use (``limits.message_timeout_s`` in all), shared by
    its tasks: a task may run for what is left when it starts."""

    seconds: float
    spent: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def remaining(self) -> float:
        with self._lock:
            return self.seconds - self.spent

    def spend(self, seconds: float) -> None:
        with self._lock:
            self.spent += seconds


@dataclass
class _Task:
    fn: Callable
    args: tuple
    budget: MessageBudget | None
    future: Future
    limit: float | None = None  # seconds, when the task has a time limit of its own


def _worker_main(conn: Connection, memory_bytes: int) -> None:
    """A worker's life: its own process group, the memory ceiling, then tasks until EOF."""
    os.setpgid(0, 0)
    try:  # die with the forkserver (which exits with mailroll)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the poll's to handle
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = ("ok", fn(*args))
        except MemoryError:
            result = ("limit", "memory")
        except RecursionError:
            result = ("error", "its structure is nested too deeply (RecursionError)")
        except Exception as e:  # noqa: BLE001 - reported to the caller, who records it
            result = ("error", f"{type(e).__name__}: {str(e)[:300]}")
        try:
            conn.send(result)
        except MemoryError:
            conn.send(("limit", "memory"))
        except OSError:  # the poll is gone
            return


def _on_term(signum, frame) -> None:
    """Asked to stop (over time): end the external tools this worker started, then exit."""
    try:
        from ingest.checks.common import kill_running_tools

        kill_running_tools()
    finally:
        os._exit(1)


def _ready() -> int:
    time.sleep(0.05)  # long enough for the other threads to take theirs: each starts its worker
    return os.getpid()


class _Worker:
    """One process and the pipe to it."""

    def __init__(self, ctx, memory_bytes: int):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, memory_bytes), daemon=True)
        self.process.start()
        child.close()

    def run(self, task: _Task) -> Any:
        """Send the task and wait for the answer, within the task's budget."""
        left = None if task.budget is None else task.budget.remaining()
        if left is not None and left <= 0:
            raise WorkLimit("time")
        timeout = left if task.limit is None or (left is not None and left <= task.limit) else task.limit
        started = time.monotonic()
        try:
            self.conn.send((task.fn, task.args))
            if not self.conn.poll(timeout):
                self.kill()
                raise WorkLimit("time" if timeout == left else "task time")
            status, value = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.process.join(5)
            code = self.process.exitcode
            raise WorkLimit(
                "memory" if code == -signal.SIGKILL else "crash", f"worker ended with status {code}"
            ) from None
        finally:
            if task.budget is not None:
                task.budget.spend(time.monotonic() - started)
        if status == "ok":
            return value
        if status == "limit":
            raise WorkLimit(value)
        raise TaskError(value)

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        """Stop the worker and everything it started (its process group)."""
        pid = self.process.pid
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            self.process.join(wait)
            if self.process.exitcode is not None:
                try:  # the group may outlive its leader (a tool that ignored SIGTERM)
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                break
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.process.join(5)
            if self.process.exitcode is None:
                self.kill()


class TaskError(Exception):
    """The task raised an exception in the worker (a bug or odd input): its text."""


def _short_socket_dir() -> None:
    """The forkserver listens on a Unix socket in multiprocessing's temporary directory, and such
    a path may not exceed 107 bytes: under a long TMPDIR (a service's private one, a sandbox)
    starting the workers failed with "AF_UNIX path too long". Then that directory, and only it,
    is made in /tmp (multiprocessing keeps it for the process's life and removes it at exit)."""
    if len(os.fsencode(tempfile.gettempdir())) <= 60:
        return
    saved = tempfile.tempdir
    tempfile.tempdir = "/tmp"
    try:
        multiprocessing.util.get_temp_dir()
    finally:
        tempfile.tempdir = saved


class WorkerPool:
    """``size`` worker processes with ``memory_bytes`` of address space each (see module doc)."""

    def __init__(self, size: int | None = None, memory_bytes: int = 0):
        self.size = max(1, size or os.cpu_count() or 1)
        self.memory_bytes = memory_bytes
        _short_socket_dir()
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)
        self._tasks: queue.Queue[_Task | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._warming: list[Future] | None = None

    def submit(
        self, fn: Callable, *args: Any, budget: MessageBudget | None = None, limit: float | None = None
    ) -> Future:
        """Run ``fn(*args)`` in a worker, within what is left of ``budget`` and at most ``limit``
        seconds. The future's exception is ``WorkLimit`` when the task hit a limit (kind "task
        time": its own), ``TaskError`` when it raised."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            while len(self._threads) < self.size:  # (each starts its process at its first task)
                t = threading.Thread(
                    target=self._serve, name=f"mailroll-worker-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()
            self._tasks.put(_Task(fn, args, budget, future, limit))
        return future

    def run(self, fn: Callable, *args: Any, budget: MessageBudget | None = None) -> Any:
        return self.submit(fn, *args, budget=budget).result()

    def warm(self, wait: bool = True) -> None:
        """Start every worker now and (``wait``) wait until each answers: the first message then
        pays nothing for start-up. The poll starts them first thing without waiting (the
        forkserver loads the checks' libraries while the mailbox is opened), and waits before
        the first message is read."""
        if self._warming is None:
            self._warming = [self.submit(_ready) for _ in range(self.size)]
        if wait and self._warming:
            futures, self._warming = self._warming, []  # (an error is raised once, not at every call)
            for f in futures:
                f.result()

    def _serve(self) -> None:
        """One thread per worker process: take a task, run it there, replace a worker that hit a
        limit (killed, dead, or out of memory: a fresh process is cheap)."""
        worker: _Worker | None = None
        try:
            while True:
                task = self._tasks.get()
                if task is None:
                    return
                if not task.future.set_running_or_notify_cancel():
                    continue
                try:
                    if worker is None or not worker.alive():
                        worker = _Worker(self._ctx, self.memory_bytes)
                    result = worker.run(task)
                except TaskError as e:
                    task.future.set_exception(e)
                except BaseException as e:  # noqa: BLE001 - WorkLimit or a broken worker: handed to the caller
                    if worker is not None:
                        worker.close()
                    worker = None
                    task.future.set_exception(e)
                else:
                    task.future.set_result(result)
        finally:
            if worker is not None:
                worker.close()

    def close(self) -> None:
        """Stop the workers (after the tasks already queued)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)
        for t in threads:
            t.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
