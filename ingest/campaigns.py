"""Campaigns and their items, as the config describes them (read by ``ingest.config``).

A campaign is one notice: a name, a deadline, a roster and the items it asks for. The old form,
``[campaign]`` + ``[roster]``, is one campaign with id ``default`` and the three items of the
Science Week notice; ``[[campaigns]]`` with ``[[campaigns.items]]`` writes any number of them.

An item has a kind, which says which recorded files can be it (``PART_KINDS``: the kind ingest
gave the file, docs/CLASSIFY.md); where a campaign has two items of one kind, the item's label
and keywords in the file name tell them apart (``item_for_file``). Every label shown to people
(status tables, the workbook, receipts, reminders, the notice) comes from here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_SHEET_FIELDS: list[tuple[str, str]] = [
    ("活动总数", "项"),
    ("线上活动", "项"),
    ("线下活动", "项"),
    ("参与人数", "万人次"),
    ("线上参与", "万人次"),
    ("线下参与", "万人次"),
    ("参与科技人员", "人次"),
    ("开放实验室及科普基地", "个"),
    ("科普讲座", "场"),
    ("科普展览", "场"),
    ("发放科普资料", "万份"),
    ("媒体报道", "篇"),
    ("投入经费", "万元"),
]
DEFAULT_SHEET_HEADER_CELLS = ["填报单位", "联系人", "联系电话"]
DEFAULT_SHEET_TEXT_ROWS = ["重点活动名称及简介", "备注"]
# Sums that should hold; a mismatch is a warning, never a failure.
DEFAULT_SHEET_CHECKS = [
    ["活动总数", "线上活动", "线下活动"],
    ["参与人数", "线上参与", "线下参与"],
]
DEFAULT_VIDEO_CONTAINERS = ["mp4", "mov", "m4v", "avi", "wmv", "flv", "mkv", "mpg", "3gp", "webm"]

# `formats` of document and images items: the names people write -> the format ingest records
FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "txt": "text", "heif": "heic", "htm": "html"}
DOCUMENT_FORMATS = ("docx", "pdf", "doc", "wps", "odt", "text")  # what a report's facts can say


def format_name(text: str) -> str:
    """'.JPG' -> 'jpeg', 'docx' -> 'docx': a format as ingest records it (``facts.format``)."""
    name = str(text).strip().lower().lstrip(".")
    return FORMAT_ALIASES.get(name, name)


# item kind -> the kind ingest records for a file that can be such an item (parts.kind)
PART_KINDS = {"sheet": "statistics", "document": "report", "video": "video", "images": "image"}
ITEM_KINDS = tuple(PART_KINDS)
DEFAULT_ID = "default"


@dataclass(frozen=True)
class SheetTemplate:
    fields: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_SHEET_FIELDS))
    header_cells: list[str] = field(default_factory=lambda: list(DEFAULT_SHEET_HEADER_CELLS))
    text_rows: list[str] = field(default_factory=lambda: list(DEFAULT_SHEET_TEXT_ROWS))
    sum_checks: list[list[str]] = field(default_factory=lambda: [list(c) for c in DEFAULT_SHEET_CHECKS])
    title: str = "开展情况统计表"

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.fields]


@dataclass(frozen=True)
class Item:
    """One thing a campaign asks each unit for."""

    id: str  # the key in `status --json` items, and on the command line
    label: str  # short, for tables and the workbook: 统计表
    kind: str  # 'sheet' | 'document' | 'video' | 'images'
    required: bool = True  # false: shown, never makes a unit incomplete
    keywords: tuple[str, ...] = ()  # words in a file name that make a file this item
    mail_label: str = ""  # how mail to units names it (default: label): 开展情况统计表
    sheet: SheetTemplate | None = None  # kind 'sheet'
    min_text_chars: int = 200  # kind 'document'
    max_duration_s: float = 180.0  # kind 'video'
    containers: tuple[str, ...] = tuple(DEFAULT_VIDEO_CONTAINERS)  # kind 'video'
    min_count: int = 1  # kind 'images': at least this many different pictures
    formats: tuple[str, ...] = ()  # kinds 'document', 'images': the formats accepted (empty: any)
    synonyms: tuple[str, ...] = ()  # other names a clerk types for it on the command line (视频)

    def accepts(self, fmt: str | None) -> bool:
        """Is a file of format ``fmt`` (as recorded in its facts) acceptable for this item?"""
        return not self.formats or (fmt is not None and format_name(fmt) in self.formats)

    @property
    def part_kind(self) -> str:
        return PART_KINDS[self.kind]

    @property
    def said(self) -> str:
        """The label in mail to units."""
        return self.mail_label or self.label

    @property
    def words(self) -> tuple[str, ...]:
        """What in a file name points to this item."""
        return (self.label, *self.keywords)


def default_items(
    sheet: SheetTemplate | None = None,
    min_text_chars: int = 200,
    max_duration_s: float = 180.0,
    containers: list[str] | None = None,
) -> tuple[Item, ...]:
    """The three items of today's ``[campaign]`` (the Science Week notice)."""
    return (
        Item(
            "statistics",
            "统计表",
            "sheet",
            mail_label="开展情况统计表",
            sheet=sheet or SheetTemplate(),
            synonyms=("统计", "报表"),
        ),
        Item("report", "总结报告", "document", min_text_chars=min_text_chars, synonyms=("总结", "报告")),
        Item(
            "video",
            "视频",
            "video",
            mail_label="视频（影像资料）",
            synonyms=("影像资料", "影像", "录像", "视频资料"),
            max_duration_s=max_duration_s,
            containers=tuple(containers or DEFAULT_VIDEO_CONTAINERS),
        ),
    )


@dataclass(frozen=True)
class Contact:
    """One of the office's contacts, named at the end of receipts and reminders."""

    name: str
    org: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Campaign:
    name: str
    deadline: datetime
    timezone: ZoneInfo
    id: str = DEFAULT_ID
    items: tuple[Item, ...] = field(default_factory=default_items)
    roster: Path | None = None
    keywords: tuple[str, ...] = ()  # subject or file names with one of them: this campaign
    opens: datetime | None = None  # mail before this is not for it
    closes: datetime | None = None  # nor after this (the config's default: deadline + 30 days)
    notice: Path | None = None  # the notice's text (a UTF-8 file), for `mailroll notify`
    contacts: tuple[Contact, ...] = ()  # `contacts = [{name, org, phone}]`: the office's people

    # ------------------------------------------------------------------ items
    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)

    def item(self, item_id: str) -> Item:
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(item_id)

    def find_items(self, text: str) -> list[Item]:
        """The items ``text`` names, as a clerk types it: an id, label or mail label (case,
        width and spaces ignored), else one of its synonyms or file-name words (视频, 影像资料
        for the video item whatever its label)."""
        key = _plain(text)
        named = [i for i in self.items if key in (_plain(i.id), _plain(i.label), _plain(i.said))]
        return named or [i for i in self.items if key and key in (_plain(w) for w in (*i.synonyms, *i.words))]

    def first(self, kind: str) -> Item | None:
        """The first item of an item kind ('sheet', ...), None if the campaign asks for none."""
        return next((i for i in self.items if i.kind == kind), None)

    @property
    def labels(self) -> dict[str, str]:
        """item id -> short label."""
        return {i.id: i.label for i in self.items}

    def item_for_file(self, part_kind: str, filename: str | None) -> Item | None:
        """The item a recorded file of ``part_kind`` counts for: among the items that kind can
        be, the first whose label or keywords the file name contains, else the first of them
        that no other file name rule claims (the first item of the kind)."""
        candidates = [i for i in self.items if i.part_kind == part_kind]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        name = filename or ""
        named = next((i for i in candidates if any(w and w in name for w in i.words)), None)
        return named or candidates[0]

    def is_open(self, at: datetime) -> bool:
        return (self.opens is None or at >= self.opens) and (self.closes is None or at <= self.closes)

    # ------------------------------------------------ what ingest measures files against
    @property
    def sheet(self) -> SheetTemplate:
        item = self.first("sheet")
        return item.sheet if item is not None and item.sheet is not None else SheetTemplate()

    @property
    def video_max_duration_s(self) -> float:
        item = self.first("video")
        return item.max_duration_s if item is not None else 180.0

    @property
    def report_min_text_chars(self) -> int:
        item = self.first("document")
        return item.min_text_chars if item is not None else 200


def _union(lists) -> list:
    out: list = []
    for values in lists:
        out.extend(v for v in values if v not in out)
    return out


def combined_sheet(campaigns) -> SheetTemplate:
    """The template ingest reads every sheet with. Ingest records facts before it is known which
    campaign a message is for (reconcile.scope decides that from the attribution), so it reads
    every figure, header cell and text row that any campaign's sheet items ask for (the first
    campaign's first) and records every sum check's outcome; reconcile then judges a sheet
    against the template of the campaign's item it counts for (``reconcile.judge``). With one
    sheet template (the usual case) it is that template."""
    templates = [i.sheet for c in campaigns for i in c.items if i.kind == "sheet" and i.sheet is not None]
    if not templates:
        return SheetTemplate()
    if len(templates) == 1 or all(t == templates[0] for t in templates):
        return templates[0]
    units: dict[str, str] = {}
    for t in templates:
        for label, unit in t.fields:
            units.setdefault(label, unit)  # (the same row label in two forms: the first one's unit)
    return SheetTemplate(
        fields=list(units.items()),
        header_cells=_union(t.header_cells for t in templates),
        text_rows=_union(t.text_rows for t in templates),
        sum_checks=_union(t.sum_checks for t in templates),
        title=templates[0].title,
    )


def _plain(text: str) -> str:
    """For matching what a clerk types: NFKC (full width as half), no spaces, lower case."""
    return "".join(unicodedata.normalize("NFKC", text or "").split()).lower()
