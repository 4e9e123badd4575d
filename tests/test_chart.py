"""The overview's progress chart: every number on its two axes is a whole number of units or
messages (7 messages a day once gave a right axis of 0, 1.75, 3.5 ...)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from reconcile.progress import Day
from reconcile.web.chart import progress_svg

AXIS_LABEL = re.compile(r'<text x="[\d.]+" y="[\d.]+" font-size="11"[^>]*>([^<]*)</text>')


@pytest.mark.parametrize("units", [1, 3, 7, 16, 23, 150, 2000])
@pytest.mark.parametrize("most_mail", [0, 1, 3, 5, 7, 9, 13, 38, 101])
def test_axes_count_in_whole_numbers(units, most_mail):
    start = date(2022, 6, 10)
    days = [
        Day(
            start + timedelta(days=i),
            complete=min(i, units),
            incomplete=0,
            missing=units - min(i, units),
            arrivals=a,
        )
        for i, a in enumerate((0, most_mail, most_mail // 2))
    ]
    labels = [v for v in AXIS_LABEL.findall(progress_svg(days, units, start + timedelta(days=2))) if v]
    numbers = [float(v) for v in labels if re.fullmatch(r"[\d.]+", v)]
    assert len(numbers) == 10, labels
    assert all(n.is_integer() for n in numbers), labels
    assert max(numbers[0::2]) >= units and max(numbers[1::2]) >= most_mail
