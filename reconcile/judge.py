"""The rules: whether a recorded part passes, in words a person understands.

Ingest measured the facts (``parts.facts``, ``parts.error``); here the campaign's limits are
applied to them (docs/DESIGN.md, "Judging"). Changing a limit in the config changes the
judgement at once, with nothing ingested again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ingest.campaigns import Item, SheetTemplate
from reconcile.vocab import ItemState

OK, INVALID, MISSING = ItemState.OK, ItemState.INVALID, ItemState.MISSING
MISSING_PROBLEMS = {"not found", "empty", "missing"}


@dataclass
class Judgement:
    """A verdict in English (``reason``, ``warnings``: the contract's words) and in Chinese
    (``reason_zh``, ``warnings_zh``: for the workbook and the mail to units)."""

    state: str  # 'ok' | 'invalid'
    reason: str | None = None  # why invalid, in plain words
    warnings: list[str] = field(default_factory=list)  # shown, never fail
    reason_zh: str | None = None  # the same reason in Chinese
    warnings_zh: list[str] = field(default_factory=list)


def facts_of(row: Mapping[str, Any]) -> dict:
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


def minutes(seconds: float) -> str:
    """180 -> '3:00', 200.4 -> '3:20' (to the nearest second)."""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def minutes_over(seconds: float, limit: float) -> str:
    """The length of a video over ``limit``, never written as the limit itself: 200 -> '3:20',
    but 180.4 -> '3:00.4' and 180.04 -> '3:00.04' against a 3:00 limit (cut, not rounded, to
    the first decimal place that shows it is over)."""
    text = minutes(seconds)
    if text != minutes(limit):
        return text
    exact = Decimal(repr(seconds))
    for places in range(1, 7):
        cut = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)
        if cut > Decimal(repr(limit)):
            break
    whole = int(cut)
    return f"{whole // 60}:{whole % 60:02d}{str(cut - whole)[1:]}"


def judge_part(row: Mapping[str, Any], config, item: Item | None = None) -> Judgement:
    """Judge one ``parts`` row (a mapping with kind, facts, error) against the campaign's
    ``item`` (default: the campaign's first item the file can be)."""
    kind = row["kind"]
    error = row["error"]
    if error:
        return Judgement(INVALID, str(error), reason_zh=error_zh(str(error)))
    facts = facts_of(row)
    if item is None:
        item = next((i for i in config.campaign.items if i.part_kind == kind), None)
    if kind == "statistics":
        return _statistics(facts, item.sheet if item and item.sheet else SheetTemplate())
    if kind == "report":
        document = item or Item("", "", "document")
        if not document.accepts(facts.get("format")):
            return _refused_format(facts.get("format"), document)
        return _report(facts, document.min_text_chars)
    if kind == "video":
        return _video(facts, item or Item("", "", "video"))
    return Judgement(OK)


def unreadable(row: Mapping[str, Any]) -> bool:
    """The part could not be read at all (ingest recorded an error, or a sheet without facts),
    as opposed to read and failing a check."""
    if row["error"]:
        return True
    return row["kind"] == "statistics" and not facts_of(row)


# ingest's sheet warnings (English, docs/FACTS.md) in Chinese; others are shown as they are
_WARNINGS_ZH = (
    ("the workbook contains macros", "表格含有宏，宏未运行，只读取了数值"),
    ("none of the form's rows were found", "未找到统计表的指标行，是否为开展情况统计表？"),
    ("scanned PDF without a text layer", "扫描版PDF，没有文字层"),
    ("the video has no sound track", "视频没有声音"),
)


def _in_chinese(text: str, table, fallback: str) -> str:
    """The Chinese wording of the first entry of ``table`` whose English words ``text`` contains."""
    return next((zh for en, zh in table if en in text), fallback)


def warning_zh(text: str) -> str:
    return _in_chinese(text, _WARNINGS_ZH, text)


def _listing(labels: list[str], raw: dict, sep: str = ", ") -> str:
    """'活动总数, 科普展览 ('无')': the labels, quoting what was written where something was."""
    return sep.join(
        f"{label} ('{raw[label]}')" if str(raw.get(label) or "").strip() else label for label in labels
    )


# What the checks say when a file cannot be read (ingest/checks, ingest/archives), in the words
# a unit's clerk reads in a Chinese mail; first match wins, anything else keeps the English detail.
_ERRORS_ZH: list[tuple[str, str]] = [
    ("password-protected", "文件设有密码，无法打开：请去掉密码后重新发送"),
    ("sent as a PDF", "统计表以PDF发送，无法读取其中的数字：请发送.xlsx或.docx格式的统计表"),
    ("not a video file", "不是视频文件（内容不是已知的视频格式）"),
    ("no video stream", "文件中没有视频画面（只有声音）"),
    ("could not be probed within", "视频未能在限定时间内检查完毕，请稍后重新发送或联系工作人员"),
    ("length cannot be read", "无法读取视频时长（文件可能已损坏或不完整）"),
    ("web page", "文件实为网页（可能是下载失败），不是所需的文件"),
    ("without LibreOffice", "暂时无法读取该格式：请以.xlsx、.docx或.pdf格式发送"),
    ("XML bomb", "文件结构异常（疑似恶意文件），未读取"),
    ("too large", "文件过大，无法检查"),
    ("zip archive without", "文件实为压缩包，不是所需的文档：请直接发送文档"),
    ("not a spreadsheet", "不是统计表文件：请发送.xlsx或.docx格式的统计表"),
    ("not a report document", "不是总结报告文档：请以.docx或.pdf格式发送"),
    ("not a Word document", "不是Word文档：请以.docx或.pdf格式发送"),
    ("damaged", "文件已损坏，无法打开：请重新发送"),
    ("cannot be opened", "文件无法打开：请重新发送"),
    ("not a valid", "文件无法打开（格式不正确）：请重新发送"),
]


def error_zh(error: str) -> str:
    """The Chinese reason for a file that could not be read."""
    return _in_chinese(error, _ERRORS_ZH, f"未能读取：{error}")


def _statistics(facts: dict, sheet: SheetTemplate) -> Judgement:
    if not facts:
        return Judgement(
            INVALID,
            "the sheet could not be read (no figures were recorded)",
            reason_zh="未能读取统计表（没有读到任何数字）",
        )
    labels = sheet.labels
    facts = for_template(facts, sheet)
    problems = facts.get("problems") or {}
    raw = {k: v for k, v in (facts.get("raw") or {}).items() if isinstance(v, str)}
    order = {label: i for i, label in enumerate(labels)}

    def ordered(keys):
        return sorted(keys, key=lambda k: order.get(k, len(order)))

    not_found = ordered(k for k, v in problems.items() if str(v).lower() in ("not found", "missing"))
    empty = ordered(k for k, v in problems.items() if str(v).lower() == "empty")
    other = [
        (k, problems[k])
        for k in ordered(k for k, v in problems.items() if str(v).lower() not in MISSING_PROBLEMS)
    ]
    reasons, reasons_zh = [], []
    if labels and set(labels) <= set(not_found):
        reasons.append(
            f"none of the form's rows ({labels[0]}, {labels[1] if len(labels) > 1 else ''}…) were found: "
            f"is this the {sheet.title}?"
        )
        reasons_zh.append(f"未找到统计表的任何指标行（{'、'.join(labels[:2])}…），请确认是否为{sheet.title}")
    elif not_found:
        reasons.append("the sheet lacks " + ", ".join(not_found))
        reasons_zh.append("统计表缺少：" + "、".join(not_found))
    if empty:
        reasons.append(f"the sheet has no figures for {_listing(empty, raw)} (empty cells)")
        reasons_zh.append(f"统计表未填写：{_listing(empty, raw, '、')}（空白）")
    for label, why in other:
        why = str(why)
        reasons.append(f"{label} is {why}" if why.startswith("not ") else f"{label}: {why}")
        if why.startswith("not a number: "):
            reasons_zh.append(f"{label}不是数字：{why[len('not a number: ') :]}")
        elif why.startswith("a formula"):
            reasons_zh.append(f"{label}是没有保存计算结果的公式，请用Excel或WPS打开后重新保存")
        else:
            reasons_zh.append(f"{label}：{why}")
    figures = facts.get("figures") or {}
    for label in ordered(figures):
        value = figures[label]
        if isinstance(value, (int, float)) and value < 0:
            reasons.append(f"{label} is negative ({value:g})")
            reasons_zh.append(f"{label}为负数（{value:g}）")
    warnings = [str(w) for w in facts.get("warnings") or []]
    warnings_zh = [warning_zh(w) for w in warnings]
    if reasons:
        return Judgement(INVALID, "; ".join(reasons), warnings, "；".join(reasons_zh), warnings_zh)
    return Judgement(OK, None, warnings, None, warnings_zh)


_SUM_WARNING = re.compile(r"^(.+) = [^,]*, but (.+) is ")


def for_template(facts: dict, sheet: SheetTemplate) -> dict:
    """A sheet's facts as they concern one template. Ingest read the sheet for every campaign's
    form at once (``ingest.campaigns.combined_sheet``): figures, problems and warnings about
    rows this template does not have, or sums it does not check, are not this campaign's."""
    labels = set(sheet.labels)
    recorded = set(facts.get("figures") or {}) | set(facts.get("problems") or {})
    foreign = recorded - labels
    # read for another form only (recorded before this form was configured): none of its rows
    # was looked for, so none was found, until `mailroll reprocess` reads the sheet again
    unread = [] if recorded & labels else sheet.labels
    if not foreign and not unread:
        return facts
    checks = {(" + ".join(c[1:]), c[0]) for c in sheet.sum_checks if c}

    def ours(warning: str) -> bool:
        m = _SUM_WARNING.match(warning)
        if m:
            return (m.group(1), m.group(2)) in checks
        return not any(warning.startswith(f"{label} is ") for label in foreign)

    out = dict(facts)
    for key in ("figures", "problems", "raw"):
        out[key] = {k: v for k, v in (facts.get(key) or {}).items() if k in labels}
    out["warnings"] = [w for w in facts.get("warnings") or [] if ours(str(w))]
    out["problems"].update(dict.fromkeys(unread, "not found"))
    return out


def _refused_format(fmt: str | None, item: Item) -> Judgement:
    """A document of a format the item does not accept (``formats``)."""
    shown = fmt or "unknown"
    return Judgement(
        INVALID,
        f"the {item.label} is a {shown} file: only {', '.join(item.formats)} accepted",
        reason_zh=f"{item.label}为{shown}格式，仅接受{'、'.join(item.formats)}格式，请按要求的格式重新发送",
    )


def _report(facts: dict, need: int) -> Judgement:
    fmt = facts.get("format") or "document"
    if facts.get("encrypted"):
        return Judgement(
            INVALID,
            f"the report ({fmt}) is password-protected: send it without a password",
            reason_zh=f"总结报告（{fmt}）设有密码，请发送没有密码的文件",
        )
    if facts.get("scanned"):
        return Judgement(OK, None, ["scanned PDF without a text layer"], None, ["扫描版PDF，没有文字层"])
    chars = int(facts.get("text_chars") or 0)
    if chars < need:
        if chars == 0:
            return Judgement(
                INVALID, f"the report ({fmt}) contains no text", reason_zh=f"总结报告（{fmt}）没有文字内容"
            )
        return Judgement(
            INVALID,
            f"the report ({fmt}) has only {chars} characters of text, at least {need} expected",
            reason_zh=f"总结报告（{fmt}）只有{chars}个字，至少需要{need}个字",
        )
    return Judgement(OK)


def _video(facts: dict, item: Item) -> Judgement:
    if not facts or facts.get("duration_s") is None:
        return Judgement(INVALID, "the video's length could not be measured", reason_zh="未能测出视频时长")
    allowed = {c.lower() for c in item.containers}
    container = str(facts.get("container") or "").lower()
    names = {container, *(str(facts.get("format_name") or "").lower().split(","))} - {""}
    if allowed and not names & allowed:
        shown = container or facts.get("format_name") or "unknown"
        return Judgement(
            INVALID,
            f"video format {shown} is not accepted (send {', '.join(sorted(allowed))})",
            reason_zh=f"视频格式{shown}不符合要求（请发送{'、'.join(sorted(allowed))}格式）",
        )
    duration = float(facts["duration_s"])
    limit = float(item.max_duration_s)
    if duration > limit:
        lasts = minutes_over(duration, limit)
        return Judgement(
            INVALID,
            f"video lasts {lasts}, over the {minutes(limit)} limit",
            reason_zh=f"视频时长{lasts}，超过{minutes(limit)}的限制",
        )
    warnings, warnings_zh = [], []
    if not facts.get("audio_codec"):
        warnings.append("the video has no sound track")
        warnings_zh.append("视频没有声音")
    return Judgement(OK, None, warnings, None, warnings_zh)


def judge_link(link: Mapping[str, Any]) -> Judgement:
    """A video sent as a download link that was not fetched (links row)."""
    what = link["provider"] or link["host"] or "link"
    if link["filename"]:
        what = f"{what}: {link['filename']}"
    reason = f"sent as a download link ({what}), not fetched"
    reason_zh = f"以下载链接形式发送（{what}），尚未下载"
    status = link["status"]
    if status == "not-allowed":
        reason += " (the link's host is not on the allowed list)"
        reason_zh += "（链接所在网站不在允许下载的范围内）"
    elif status == "failed" and link["error"]:
        reason += f" (download failed: {link['error']})"
        reason_zh += f"（下载失败：{link['error']}）"
    return Judgement(INVALID, reason, reason_zh=reason_zh)


def describe(row: Mapping[str, Any]) -> str:
    """One line of measured facts for people: '3:20, mp4 h264/aac, 1280x720'. The same in every
    language: it is the ``details`` of `status --json` (cached, shared by every process)."""
    facts = facts_of(row)
    kind = row["kind"]
    if not facts:
        return ""
    if kind == "video" and facts.get("duration_s") is not None:
        codecs = "/".join(str(c) for c in (facts.get("video_codec"), facts.get("audio_codec")) if c)
        size = f"{facts['width']}x{facts['height']}" if facts.get("width") else ""
        return ", ".join(
            x
            for x in (
                minutes(float(facts["duration_s"])),
                " ".join(y for y in (facts.get("container"), codecs) if y),
                size,
            )
            if x
        )
    if kind == "statistics":
        bits = []
        if facts.get("unit_cell"):
            bits.append(f"填报单位 {facts['unit_cell']}")
        figures = facts.get("figures") or {}
        if "活动总数" in figures:
            bits.append(
                f"活动总数 {figures['活动总数']:g}" if isinstance(figures["活动总数"], (int, float)) else ""
            )
        return ", ".join(b for b in bits if b)
    if kind == "report":
        bits = [str(facts.get("format") or "")]
        if facts.get("pages"):
            bits.append(f"{facts['pages']} pages")
        bits.append(f"{facts.get('text_chars', 0)} characters")
        return ", ".join(b for b in bits if b)
    return ""
