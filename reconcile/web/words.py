"""The page's Chinese words for states and decisions: the catalog's (reconcile/words.py). Items
are called by the campaign's labels (config)."""

from __future__ import annotations

from reconcile import words

UNIT_STATE_ZH = words.chinese(words.UNIT_STATES)
ITEM_STATE_ZH = words.chinese(words.ITEM_STATES)
DISPOSITION_ZH = words.chinese(words.DISPOSITIONS)
ACTION_ZH = words.chinese(words.DECISIONS)
