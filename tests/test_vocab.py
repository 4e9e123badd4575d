"""The vocabulary: the contract's words (status --json, the outbox) with their Chinese labels."""

from __future__ import annotations

import json

from reconcile.vocab import NOT_SENT, ItemState, OutboxState, Trust, UnitState


def test_states_are_the_contracts_words_and_serialize_as_plain_strings():
    assert [s.value for s in ItemState] == ["ok", "invalid", "missing"]
    assert [s.value for s in UnitState] == ["complete", "incomplete", "missing", "exempt"]
    assert [t.value for t in Trust] == ["registered", "domain", "thread", "staff", "named"]
    row = {"state": UnitState.INCOMPLETE, "items": {"video": {"state": ItemState.MISSING}}}
    assert json.loads(json.dumps(row)) == {"state": "incomplete", "items": {"video": {"state": "missing"}}}
    assert ItemState("invalid") is ItemState.INVALID and ItemState.OK == "ok"


def test_labels_are_what_the_workbook_says():
    assert [s.label for s in UnitState] == ["齐全", "不齐全", "未报送", "免报"]
    assert [s.label for s in ItemState] == ["合格", "不合格", "未收到"]


def test_a_failed_send_leaves_the_outbox_state_of_its_kind():
    assert [OutboxState.after(k) for k in ("temporary", "permanent", "ambiguous")] == [
        "deferred",
        "failed",
        "unknown",
    ]
    assert set(NOT_SENT) == {OutboxState.DEFERRED, OutboxState.FAILED, OutboxState.UNKNOWN}
