"""The worker processes that read what senders made: memory and time limits are enforced, a
killed worker takes its children with it, and the pool goes on."""

from __future__ import annotations

import os
import time

import pytest
import worker_helpers as h

from ingest.workers import MessageBudget, TaskError, WorkerPool, WorkLimit

MB = 1024 * 1024


@pytest.fixture
def pool():
    with WorkerPool(2, memory_bytes=300 * MB) as p:
        yield p


def test_tasks_run_in_separate_processes_each_its_own_group(pool):
    pid, group = pool.run(h.pid_and_group)
    assert pid != os.getpid() and group == pid


def test_memory_over_the_ceiling_is_a_limit_and_the_pool_goes_on(pool):
    assert pool.run(h.allocate, 50 * MB) == 50 * MB
    with pytest.raises(WorkLimit) as e:
        pool.run(h.allocate, 400 * MB)
    assert e.value.kind == "memory"
    assert pool.run(h.allocate, 10 * MB) == 10 * MB


def test_time_over_the_budget_kills_the_worker_and_its_children(pool, tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(WorkLimit) as e:
        pool.run(h.sleep_with_child, str(pid_file), budget=MessageBudget(2.0))
    assert e.value.kind == "time"
    child = int(pid_file.read_text())
    for _ in range(50):  # reaped by init once killed
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the worker's child process survived the kill"
    assert pool.run(h.spin, 0.1) == "done"


def test_one_budget_is_shared_by_the_tasks_of_a_message(pool):
    budget = MessageBudget(1.5)
    assert pool.run(h.spin, 1.0, budget=budget) == "done"
    with pytest.raises(WorkLimit) as e:
        pool.run(h.spin, 1.0, budget=budget)  # 0.5 s were left
    assert e.value.kind == "time"
    assert budget.remaining() <= 0


def test_a_crashing_worker_and_a_failing_task_are_reported(pool):
    with pytest.raises(WorkLimit) as e:
        pool.run(h.die)
    assert e.value.kind == "crash"
    with pytest.raises(TaskError, match="ValueError: odd input"):
        pool.run(h.fail)
    assert pool.run(h.spin, 0.0) == "done"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_mailroll_starts_its_workers_under_a_long_tmpdir(campaign, tmp_path):
    """The forkserver's Unix socket lives in the temporary directory, and such paths are limited
    to 107 bytes: a long TMPDIR (a service's private one, a sandbox) used to stop every poll with
    "AF_UNIX path too long"."""
    from fixtures.mail import build_mail

    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    campaign.deliver(build_mail(subject="太原市科学技术局 科技活动周材料", body="见附件"))
    result = campaign.run_process("ingest", "--once", "--json", env={"TMPDIR": str(long_tmp)})
    assert result.json["new"] == 1 and result.json["failed"] == 0
