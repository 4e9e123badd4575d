"""Whose figures a statistics sheet holds: its 填报单位 cell against the unit that sent it.

A sheet whose 填报单位 names another roster unit is that unit's sheet, not the sender's: counted
for the sender it would add the other unit's figures to the province's totals a second time
(docs/RECONCILE.md, "Status"). It is ``invalid`` for the sender, the reason naming both units,
until staff ``accept`` it (it then counts, with a warning) or ``assign`` the message (to the
unit it names, where it is its own sheet; or, by hand, to the sender: a warning only).
"""

from __future__ import annotations

from typing import Any

from reconcile.i18n import N_, zh
from reconcile.judge import INVALID, facts_of

OTHER_UNIT = N_("the statistics sheet's 填报单位 is {other} ({other_id}), not this unit ({unit})")
OTHER_UNIT_WARNING = N_("the sheet says 填报单位 {cell} ({other_id}), but the mail came from {unit}")


def check_sheet_unit(st: dict[str, Any], unit, roster, part: dict | None, names, by_hand: bool) -> None:
    """Record the counted sheet's 填报单位 (``unit_cell``) in the item ``st``; when it names one
    other roster unit, set ``sheet_unit`` and make the item invalid (a warning only when staff
    assigned the message to ``unit`` by hand)."""
    cell = facts_of(part).get("unit_cell") if part else None
    if not cell:
        return
    st["unit_cell"] = str(cell)
    named = {uid for m in names.find(str(cell)) for uid in m.units}
    if not named or unit.id in named or len(named) != 1:
        return
    other = roster.by_id[next(iter(named))]
    st["sheet_unit"] = other.id
    words = {"cell": cell, "other": other.name, "other_id": other.id, "unit": unit.name}
    if by_hand:
        st["warnings"].append(OTHER_UNIT_WARNING.format(**words))
        st["warnings_zh"].append(zh(OTHER_UNIT_WARNING).format(**words))
        return
    reason, reason_zh = OTHER_UNIT.format(**words), zh(OTHER_UNIT).format(**words)
    if st["state"] == INVALID and st.get("reason"):
        reason = f"{reason}; {st['reason']}"
        reason_zh = f"{reason_zh}；{st.get('reason_zh') or st['reason']}"
    st.update(state=INVALID, reason=reason, reason_zh=reason_zh)
