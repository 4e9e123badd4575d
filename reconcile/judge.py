"""The rules: whether a recorded part passes, in words a person understands.

Ingest measured the facts (``parts.facts``, ``parts.error``); here the campaign's limits are
applied to them (docs/DESIGN.md, "Judging"). Changing a limit in the config changes the
judgement at once, with nothing ingested again.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

OK, INVALID, MISSING = "ok", "invalid", "missing"
ITEMS = ("statistics", "report", "video")
MISSING_PROBLEMS = {"not found", "empty", "missing"}


@dataclass
class Judgement:
    state: str                       # 'ok' | 'invalid'
    reason: str | None = None        # why invalid, in plain words
    warnings: list[str] = field(default_factory=list)  # shown, never fail


def _facts(row: Mapping[str, Any]) -> dict:
    facts = row.get("facts") if hasattr(row, "get") else row["facts"]
    if isinstance(facts, dict):
        return facts
    if not facts:
        return {}
    try:
        value = json.loads(facts)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def minutes(seconds: float, precise: bool = False) -> str:
    """180 -> '3:00'; precise adds tenths ('3:00.4') when they matter."""
    if precise:
        whole = math.floor(seconds)
        tenths = int(round((seconds - whole) * 10))
        if tenths == 10:
            whole, tenths = whole + 1, 0
        text = f"{whole // 60}:{whole % 60:02d}"
        return f"{text}.{tenths}" if tenths else text
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def judge_part(row: Mapping[str, Any], config) -> Judgement:
    """Judge one ``parts`` row (a mapping with kind, facts, error) against the campaign."""
    kind = row["kind"]
    error = row["error"]
    if error:
        return Judgement(INVALID, str(error))
    facts = _facts(row)
    if kind == "statistics":
        return _statistics(facts, config)
    if kind == "report":
        return _report(facts, config)
    if kind == "video":
        return _video(facts, config)
    return Judgement(OK)


def _statistics(facts: dict, config) -> Judgement:
    if not facts:
        return Judgement(INVALID, "the sheet could not be read (no figures were recorded)")
    problems = facts.get("problems") or {}
    labels = config.campaign.sheet.labels
    order = {label: i for i, label in enumerate(labels)}
    lacking = sorted((k for k, v in problems.items() if str(v).lower() in MISSING_PROBLEMS),
                     key=lambda k: order.get(k, len(order)))
    other = sorted(((k, v) for k, v in problems.items() if str(v).lower() not in MISSING_PROBLEMS),
                   key=lambda kv: order.get(kv[0], len(order)))
    reasons = []
    if labels and set(labels) <= set(lacking):
        reasons.append(f"none of the form's rows ({labels[0]}, {labels[1] if len(labels) > 1 else ''}…) were found: "
                       f"is this the {config.campaign.sheet.title}?")
    elif lacking:
        reasons.append("the sheet lacks " + ", ".join(lacking))
    for label, why in other:
        reasons.append(f"{label} is {why}" if str(why).startswith("not ") else f"{label}: {why}")
    figures = facts.get("figures") or {}
    for label in sorted(figures, key=lambda k: order.get(k, len(order))):
        value = figures[label]
        if isinstance(value, (int, float)) and value < 0:
            reasons.append(f"{label} is negative ({value:g})")
    warnings = [str(w) for w in facts.get("warnings") or []]
    if reasons:
        return Judgement(INVALID, "; ".join(reasons), warnings)
    return Judgement(OK, None, warnings)


def _report(facts: dict, config) -> Judgement:
    fmt = facts.get("format") or "document"
    if facts.get("encrypted"):
        return Judgement(INVALID, f"the report ({fmt}) is password-protected: send it without a password")
    if facts.get("scanned"):
        return Judgement(OK, None, ["scanned PDF without a text layer"])
    chars = int(facts.get("text_chars") or 0)
    need = config.campaign.report_min_text_chars
    if chars < need:
        if chars == 0:
            return Judgement(INVALID, f"the report ({fmt}) contains no text")
        return Judgement(INVALID, f"the report ({fmt}) has only {chars} characters of text, at least {need} expected")
    return Judgement(OK)


def _video(facts: dict, config) -> Judgement:
    if not facts or facts.get("duration_s") is None:
        return Judgement(INVALID, "the video's length could not be measured")
    allowed = {c.lower() for c in config.campaign.video_containers}
    container = str(facts.get("container") or "").lower()
    names = {container, *(str(facts.get("format_name") or "").lower().split(","))} - {""}
    if allowed and not names & allowed:
        return Judgement(INVALID, f"video format {container or facts.get('format_name') or 'unknown'} is not accepted "
                                  f"(send {', '.join(sorted(allowed))})")
    duration = float(facts["duration_s"])
    limit = float(config.campaign.video_max_duration_s)
    if duration > limit:
        precise = minutes(duration) == minutes(limit)
        return Judgement(INVALID, f"video lasts {minutes(duration, precise)}, over the {minutes(limit)} limit")
    warnings = []
    if not facts.get("audio_codec"):
        warnings.append("the video has no sound track")
    return Judgement(OK, None, warnings)


def judge_link(link: Mapping[str, Any]) -> Judgement:
    """A video sent as a download link that was not fetched (links row)."""
    what = link["provider"] or link["host"] or "link"
    if link["filename"]:
        what = f"{what}: {link['filename']}"
    reason = f"sent as a download link ({what}), not fetched"
    status = link["status"]
    if status == "not-allowed":
        reason += " (the link's host is not on the allowed list)"
    elif status == "failed" and link["error"]:
        reason += f" (download failed: {link['error']})"
    return Judgement(INVALID, reason)


def describe(row: Mapping[str, Any]) -> str:
    """One line of measured facts for people: '3:20, mp4 h264/aac, 1280x720'."""
    facts = _facts(row)
    kind = row["kind"]
    if not facts:
        return ""
    if kind == "video" and facts.get("duration_s") is not None:
        codecs = "/".join(str(c) for c in (facts.get("video_codec"), facts.get("audio_codec")) if c)
        size = f"{facts['width']}x{facts['height']}" if facts.get("width") else ""
        return ", ".join(x for x in (minutes(float(facts["duration_s"])),
                                      " ".join(y for y in (facts.get("container"), codecs) if y), size) if x)
    if kind == "statistics":
        bits = []
        if facts.get("unit_cell"):
            bits.append(f"填报单位 {facts['unit_cell']}")
        figures = facts.get("figures") or {}
        if "活动总数" in figures:
            bits.append(f"活动总数 {figures['活动总数']:g}" if isinstance(figures["活动总数"], (int, float)) else "")
        return ", ".join(b for b in bits if b)
    if kind == "report":
        bits = [str(facts.get("format") or "")]
        if facts.get("pages"):
            bits.append(f"{facts['pages']} pages")
        bits.append(f"{facts.get('text_chars', 0)} characters")
        return ", ".join(b for b in bits if b)
    return ""
