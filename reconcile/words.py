"""The words for states, items and decisions, once, in the message catalog (reconcile/i18n.py):
the CLI shows them in the reader's language, the web page and the workbook in Chinese (``zh``).
States and trust are declared in reconcile/vocab.py (value and English word); the rest here."""

from __future__ import annotations

from reconcile.i18n import N_, zh
from reconcile.i18n import gettext as _
from reconcile.vocab import ItemState, Trust, UnitState

UNIT_STATES = {s.value: s.word for s in UnitState}
ITEM_STATES = {s.value: s.word for s in ItemState}
DISPOSITIONS = {
    "attributed": N_("attributed"),
    "unmatched": N_("unmatched"),
    "duplicate": N_("duplicate"),
    "failed": N_("failed"),
    "review": N_("review"),
    "other": N_("other"),
}
TRUSTS = {t.value: t.word for t in Trust}  # who sent the counted file (attributions.trust)
DECISIONS = {  # as the audit log names them
    "assign": N_("assign"),
    "accept": N_("accept"),
    "reject": N_("reject"),
    "exempt": N_("exempt"),
    "extend": N_("extend"),
    "revoke": N_("revoke"),
    "dismiss": N_("dismiss"),
    "answered": N_("answered"),
}
DECIDED = {  # "accepted by 王芳"
    "assign": N_("assigned"),
    "accept": N_("accepted"),
    "reject": N_("rejected"),
    "exempt": N_("exempted"),
    "extend": N_("extended"),
    "revoke": N_("revoked"),
    "dismiss": N_("dismissed"),
    "answered": N_("marked answered"),
}
QUEUE_STATES = {  # a message in the queue (`unmatched --all`, reconcile/queue.py)
    "open": N_("open"),
    "dismissed": N_("dismissed"),
    "rejected": N_("rejected"),
    "assigned": N_("assigned"),
}
# what a recorded file is (parts.kind), for files that are none of the campaign's items (an
# item's own label comes from the config): the receipt says it; `show` in Chinese
PART_KINDS = {
    "statistics": N_("statistics sheet"),
    "report": N_("document"),
    "video": N_("video"),
    "image": N_("picture"),
    "archive": N_("archive"),
    "message": N_("forwarded message"),
    "other": N_("other file"),
}
MAILS = {"receipt": N_("receipt"), "reminder": N_("reminder")}


def word(table: dict[str, str], key: str | None) -> str:
    """``key``'s word in the current language (the key itself if the table lacks it)."""
    return _(table[key]) if key in table else (key or "")


def chinese(table: dict[str, str]) -> dict[str, str]:
    """The table in Chinese, whatever the process's language (web page, workbook)."""
    return {k: zh(v) for k, v in table.items()}
