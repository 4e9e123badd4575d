"""Limits tested just past their boundary, not with values so extreme that a wrong unit or a
dropped limit still passes (found by generated mutants, scripts/mutation.py): the free-space
floor a little above and a little below the disk's real free space, a message's time budget
exceeded by a second and one left a second short."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
import worker_helpers as h
from fixtures.mail import build_mail

from ingest.workers import MessageBudget, WorkerPool, WorkLimit

MB = 1024 * 1024
JUNE_20 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)
# the disk is shared: other programs write while the test runs; this much change is absorbed
MARGIN = 64 * MB


def test_the_free_space_floor_just_above_and_just_below_what_the_disk_has(campaign):
    campaign.run("ingest", "--once")  # the files directory exists
    campaign.deliver(build_mail(subject="太原市科技局 材料"), when=JUNE_20)
    free = shutil.disk_usage(campaign.files_dir).free
    campaign.configure(limits={"min_free_bytes": free + MARGIN})
    paused = campaign.run("ingest", "--once", expect=1)
    assert "below limits.min_free_bytes" in paused.stderr
    assert campaign.run("messages", "--json").json == []
    free = shutil.disk_usage(campaign.files_dir).free
    campaign.configure(limits={"min_free_bytes": max(1, free - MARGIN)})
    campaign.run("ingest", "--once")
    assert [m["disposition"] for m in campaign.run("messages", "--json").json] == ["attributed"]


@pytest.fixture
def pool():
    with WorkerPool(1, memory_bytes=300 * MB) as p:
        yield p


def test_a_message_budget_exceeded_by_a_second_stops_the_work_one_left_short_does_not(pool):
    assert pool.run(h.spin, 2.0, budget=MessageBudget(3.0)) == "done"
    with pytest.raises(WorkLimit) as e:
        pool.run(h.spin, 4.0, budget=MessageBudget(3.0))
    assert e.value.kind == "time"
