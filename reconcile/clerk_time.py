"""Times as a clerk types them: `extend --until`, `--now`, the web's 延期 form.

RFC 3339 (``2022-06-30T18:00:00+08:00``) as before, and in the campaign's time zone:
``2022-06-30``, ``2022-06-30 18:00``, ``2022/6/30``, ``6月30日``, ``2022年6月30日 18:00``,
``6月30日18点30分``, ``下午6点``, ``今天``/``明天``/``后天``, ``周五``/``星期五`` (the next one),
``下周一`` (Monday of next week). A day without a time of day means the caller's ``day_time``:
its end (23:59:59) for a deadline, noon for ``--now`` (midnight would be in the quiet hours).

dateparser 1.x was tried first: it reads neither ``6月30日`` nor ``下周一``."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta

from ingest.config import ConfigError, parse_rfc3339

_WEEKDAYS = dict(zip("一二三四五六日天1234567", (0, 1, 2, 3, 4, 5, 6, 6, 0, 1, 2, 3, 4, 5, 6), strict=True))
_RELATIVE_DAYS = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2}

_DAY = re.compile(
    r"^(?:(?P<y>\d{4})[-/年.])?(?P<m>\d{1,2})[-/月.](?P<d>\d{1,2})[日号]?"  # 2022-06-30, 6月30日
    r"|^(?P<rel>今天|今日|明天|明日|后天)"
    r"|^(?P<next>下)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])"
)
_CLOCK = re.compile(
    r"^(?P<half>上午|早上|中午|下午|晚上|半夜|夜里|凌晨)?"
    r"(?:(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?|(?P<hc>\d{1,2})[点时](?:(?P<mc>\d{1,2})分?|半)?)$"
)


class NotATime(ValueError):
    """What the clerk typed is no time this module reads."""


END_OF_DAY = time(23, 59, 59)
NOON = time(12, 0)


def parse_clerk_time(text: str, tz, now: datetime, day_time: time = END_OF_DAY) -> datetime:
    """The time ``text`` names, in ``tz`` for local forms; ``now`` for 明天/周五; a day alone
    at ``day_time``. NotATime when it names none."""
    raw = _normalize(text)
    try:
        return parse_rfc3339(raw, "time")
    except ConfigError:
        pass
    day, rest = _day(raw, now.astimezone(tz).date())
    rest = rest.strip(" ,，T")
    if day is None:
        if not _CLOCK.match(rest):
            raise NotATime(text)
        day = now.astimezone(tz).date()  # 下午6点: today
    if not rest:
        return datetime.combine(day, day_time, tz)
    clock = _clock(rest)
    if clock is None:
        raise NotATime(text)
    return datetime.combine(day, clock, tz)


def examples(tz, now: datetime) -> str:
    """Forms the clerk may type, with today's dates: for error messages."""
    today = now.astimezone(tz).date()
    later = today + timedelta(days=2)
    return ", ".join(
        (
            later.isoformat(),
            f"{later.isoformat()} 18:00",
            f"{later.month}月{later.day}日",
            f"{later.year}年{later.month}月{later.day}日 18:00",
            "明天",
            "下周一",
        )
    )


def _normalize(text: str) -> str:
    """Full-width digits and colons as ASCII (NFKC), outer blanks gone."""
    return unicodedata.normalize("NFKC", text or "").strip()


def _day(raw: str, today: date) -> tuple[date | None, str]:
    m = _DAY.match(raw)
    if m is None:
        return None, raw
    rest = raw[m.end() :]
    if m.group("rel"):
        return today + timedelta(days=_RELATIVE_DAYS[m.group("rel")]), rest
    if m.group("wd"):
        weekday = _WEEKDAYS[m.group("wd")]
        if m.group("next"):  # 下周一: that day of next week (the week starts on Monday)
            return today - timedelta(days=today.weekday()) + timedelta(days=7 + weekday), rest
        ahead = (weekday - today.weekday()) % 7  # 周五: the next Friday, today if it is one
        return today + timedelta(days=ahead), rest
    year = int(m.group("y")) if m.group("y") else today.year
    try:
        day = date(year, int(m.group("m")), int(m.group("d")))
    except ValueError:
        raise NotATime(raw) from None
    if not m.group("y") and day < today - timedelta(days=180):  # 1月5日 typed in December: next year's
        try:
            day = day.replace(year=year + 1)
        except ValueError:  # 2月29日, and next year has none
            raise NotATime(raw) from None
    return day, rest


def _clock(rest: str) -> time | None:
    m = _CLOCK.match(rest)
    if m is None:
        return None
    if m.group("h") is not None:
        hour, minute, second = int(m.group("h")), int(m.group("mi")), int(m.group("s") or 0)
    else:
        hour = int(m.group("hc"))
        minute = 30 if rest.endswith("半") else int(m.group("mc") or 0)
        second = 0
    half = m.group("half")
    if half in ("晚上", "半夜", "夜里") and hour == 12 and minute == 0:
        return END_OF_DAY  # 晚上12点: the day's end (not its noon)
    if half in ("下午", "晚上") and hour < 12:
        hour += 12
    if half == "中午" and hour < 11:
        hour += 12
    if half in ("凌晨", "半夜") and hour == 12:
        hour = 0
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        return None
    return time(hour, minute, second)
