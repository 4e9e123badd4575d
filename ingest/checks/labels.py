"""Row labels and figures as people type them into the statistics form.

``normalize_label`` makes ' 其中：线上活动（项）' and '线上活动' the same key; ``parse_figure``
reads '1,234', '１２', '118项', '约20', '3.5万' and converts to the row's unit.
"""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
# '1.', '1、', '2.3', '（一）', '(1)', '一、', '①' at the start of a label
_NUMBERING = re.compile(
    r"^(?:\(\s*[0-9一二三四五六七八九十]+\s*\)|[0-9]+(?:\.[0-9]+)*[.、]|[0-9]+(?:\.[0-9]+)+"
    r"|[一二三四五六七八九十]+[、.]|[\u2460-\u2473\u2776-\u277f])"
)
_CIRCLED = re.compile(r"^[\u2460-\u2473\u2776-\u277f\u3251-\u325f\u24eb-\u24f4]")
_PREFIX = re.compile(r"^(?:其中|含|包括)[:,、]?")
_BRACKET_TAIL = re.compile(r"(?:\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】|〔[^〔〕]*〕)$")


def nfkc(text: str) -> str:
    """Full-width to half-width (digits, brackets, colon, space) and compatibility forms."""
    return unicodedata.normalize("NFKC", text)


def normalize_label(text: object) -> str:
    """The comparable form of a row label.

    Removes all whitespace (also the full-width space U+3000), maps full-width forms to
    half-width (NFKC), and strips leading numbering ('1.', '（一）'), a '其中：' prefix, a
    trailing colon and a trailing unit in brackets ('（项）', '(万人次)', '[项]').
    """
    if text is None:
        return ""
    s = _CIRCLED.sub("", str(text).strip())  # before NFKC, which turns '①' into '1'
    s = _SPACE.sub("", nfkc(s))
    prev = None
    while s != prev:
        prev = s
        s = s.rstrip(":")
        s = _BRACKET_TAIL.sub("", s)
        s = _NUMBERING.sub("", s)
        s = _PREFIX.sub("", s)
    return s


def unit_multiplier(unit: str) -> tuple[float, str]:
    """'万人次' -> (10000, '人次'); '项' -> (1, '项')."""
    u = _SPACE.sub("", nfkc(unit or ""))
    for prefix, mult in (("亿", 1e8), ("万", 1e4), ("千", 1e3), ("百", 1e2)):
        if u.startswith(prefix) and len(u) > 1:
            return mult, u[len(prefix) :]
    return 1.0, u


EMPTY_MARKS = {"", "-", "--", "—", "——", "－", "/", "／", "\\", "无", "空", "暂无", "n/a", "N/A"}

_FIGURE = re.compile(
    r"^(?:约|大约|近|将近|超过|逾|共|计|共计|合计|累计|总计)?"
    r"([+-]?)(\d+(?:,\d{3})*(?:\.\d+)?|\d*\.\d+)"
    r"(亿|万|千|百)?"
    r"(余|多|以上|左右)?"
    r"([^\d.,+-]{0,8})$"
)


class NotANumber(ValueError):
    pass


def _tidy(value: float) -> int | float:
    value = round(value, 6)
    return int(value) if value == int(value) and abs(value) < 1e15 else value


def parse_figure(raw: object, unit: str = "") -> int | float | None:
    """The number in a cell, in the row's unit; None for an empty cell.

    Numbers stored as numbers are taken as they are (they are in the row's unit). Text is read
    leniently: thousands separators (',' and '，'), full-width digits, '约'/'共' prefixes,
    '余'/'多' suffixes and a unit suffix. When the text names its own magnitude or unit
    ('3.5万', '35000人次'), it is converted to the row's unit: in a 万人次 row both are 3.5.
    Raises NotANumber with the text when it is not a number.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise NotANumber(str(raw))
    if isinstance(raw, (int, float)):
        if raw != raw or raw in (float("inf"), float("-inf")):
            raise NotANumber(str(raw))
        return _tidy(float(raw))
    text = str(raw).strip()
    s = _SPACE.sub("", nfkc(text))
    if s in EMPTY_MARKS:
        return None
    m = _FIGURE.match(s)
    if not m:
        raise NotANumber(text)
    sign, digits, magnitude, _approx, tail = m.groups()
    number = float(digits.replace(",", ""))
    if sign == "-":
        number = -number
    row_mult, row_base = unit_multiplier(unit)
    if magnitude or tail:
        # the text says its own magnitude/unit: convert base units to the row's unit
        text_mult = {"亿": 1e8, "万": 1e4, "千": 1e3, "百": 1e2}.get(magnitude or "", 1.0)
        if not magnitude and tail:
            tail_mult, _ = unit_multiplier(tail)
            text_mult = tail_mult
        return _tidy(number * text_mult / row_mult)
    return _tidy(number)


def looks_numeric(raw: object, unit: str = "") -> bool:
    """True when the cell holds a number (not empty, not text)."""
    try:
        return parse_figure(raw, unit) is not None
    except NotANumber:
        return False


def format_number(value: float) -> str:
    """12 -> '12', 3.5 -> '3.5' (for warnings people read)."""
    return str(_tidy(value))
