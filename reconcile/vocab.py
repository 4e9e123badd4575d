"""The words mailroll's conclusions are stated in, each with its Chinese label.

Values are the contract's words (``status --json``, the database); ``label`` is what the
workbook and the mail to units say. Being ``StrEnum``s, members compare equal to their plain
string values, so rows read back from JSON or SQLite need no conversion.
"""

from __future__ import annotations

from enum import StrEnum


class _Labelled(StrEnum):
    """A StrEnum whose members are declared as ``NAME = "value", "标签"``."""

    label: str

    def __new__(cls, value: str, label: str = "") -> _Labelled:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member


class ItemState(_Labelled):
    """An item's state for a unit (docs/RECONCILE.md)."""

    OK = "ok", "合格"
    INVALID = "invalid", "不合格"
    MISSING = "missing", "未收到"


class UnitState(_Labelled):
    """A unit's state: every item ok, nothing received, or anything in between."""

    COMPLETE = "complete", "齐全"
    INCOMPLETE = "incomplete", "不齐全"
    MISSING = "missing", "未报送"


class Trust(_Labelled):
    """How far an item's sender is trusted (CONTRACT.md, "Sender trust")."""

    REGISTERED = "registered", "登记邮箱"
    DOMAIN = "domain", "本单位邮箱域名"
    THREAD = "thread", "回复本系统邮件"
    STAFF = "staff", "人工指定"
    NAMED = "named", "仅凭名称（非登记邮箱）"


class OutboxState(StrEnum):
    """A mail's row in ``outbox`` (the table of meanings is in reconcile/outgoing/outbox.py)."""

    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"  # temporary failure: tried again on the next run
    FAILED = "failed"  # permanent failure: never tried again
    UNKNOWN = "unknown"  # may or may not have been delivered: never sent again
    SKIPPED = "skipped"  # a deferred reminder overtaken by a later stage

    @classmethod
    def after(cls, failure_kind: str) -> OutboxState:
        """The state a failed send leaves: SendFailure.kind 'temporary', 'permanent', 'ambiguous'."""
        return {"temporary": cls.DEFERRED, "permanent": cls.FAILED, "ambiguous": cls.UNKNOWN}[failure_kind]


# the states of a mail that did not go out as it should, and what that means for the sender
NOT_SENT = {
    OutboxState.DEFERRED: "not sent, will be retried on the next run",
    OutboxState.FAILED: "refused for good, not retried",
    OutboxState.UNKNOWN: "may or may not have been delivered, not sent again",
}
