"""The words mailroll's conclusions are stated in, each with its words for people.

Values are the contract's words (``status --json``, the database); ``word`` is the English a
person reads (the message catalog's msgid, translated where shown: reconcile/words.py) and
``label`` its Chinese from the catalog, what the workbook, the web page and the mail to units
say: each wording lives once, in reconcile/locale. Being ``StrEnum``s, members compare equal to their plain
string values, so rows read back from JSON or SQLite need no conversion.
"""

from __future__ import annotations

from enum import StrEnum

from reconcile.i18n import N_, zh


class _Labelled(StrEnum):
    """A StrEnum whose members are declared as ``NAME = "value", N_("English word")``."""

    word: str

    def __new__(cls, value: str, word: str = "") -> _Labelled:
        member = str.__new__(cls, value)
        member._value_ = value
        member.word = word or value
        return member

    @property
    def label(self) -> str:
        """The word in Chinese (the catalog's)."""
        return zh(self.word)


class ItemState(_Labelled):
    """An item's state for a unit (docs/RECONCILE.md)."""

    OK = "ok", N_("ok")
    INVALID = "invalid", N_("invalid")
    MISSING = "missing", N_("missing")


class UnitState(_Labelled):
    """A unit's state: every item ok, no item received, anything in between, or not expected to
    send (staff's ``exempt``): the four add up to the roster."""

    COMPLETE = "complete", N_("complete")
    INCOMPLETE = "incomplete", N_("incomplete")
    MISSING = "missing", N_("nothing sent")
    EXEMPT = "exempt", N_("exempt")


class Trust(_Labelled):
    """How far an item's sender is trusted (CONTRACT.md, "Sender trust")."""

    REGISTERED = "registered", N_("registered")
    DOMAIN = "domain", N_("domain")
    THREAD = "thread", N_("thread")
    STAFF = "staff", N_("staff")
    NAMED = "named", N_("named")


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
