"""The page's Chinese words for states and decisions: the catalog's (reconcile/words.py), the one
place each is written. Items are called by the campaign's labels (config)."""

from __future__ import annotations

from reconcile import words
from reconcile.i18n import N_, zh

UNIT_STATE_ZH = words.chinese(words.UNIT_STATES)
ITEM_STATE_ZH = words.chinese(words.ITEM_STATES)
DISPOSITION_ZH = words.chinese(words.DISPOSITIONS)
ACTION_ZH = words.chinese(words.DECISIONS)
QUEUE_STATE_ZH = words.chinese(words.QUEUE_STATES)  # 未处理, 不相关, 不计入, 已指定
LATE_ZH = zh(N_("late"))  # 逾期
EXEMPT_ZH = zh(N_("exempt"))  # 免报
