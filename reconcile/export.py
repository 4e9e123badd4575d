"""`mailroll export DIR`: every unit's files under names a person recognises.

For every roster unit a folder ``DIR/<unit name>/`` (the unit id where two names would give the
same folder) holding the files of each item as the status counts them (``reconcile.status``, via
``status_cache.refresh``: no second judgement here), named ``<unit name>-<item label>.<ext>``
(``-1``, ``-2`` ... when the counted message carries several files of the item; for an
``images`` item every different picture counted), whatever their state; the item labels are the
campaign's (``[[campaigns.items]]`` label, ingest/campaigns.py); plus ``DIR/清单.xlsx`` and
``DIR/清单.csv``: one row per item (and per file), with the state and reason in Chinese, the name
as sent, the exported name, size, sha256, arrival, late.
``all_versions`` adds every earlier version under ``<unit>/历史版本/`` with its arrival time in
the name.

Names (reconcile/export_names.py) are safe on Windows and Linux: no reserved characters or
device names, at most 255 bytes (cut with a hashed suffix), never one of our own names (清单.*,
dotfiles), and the extension is the one of the type sniffed from the content (``.bin`` when
that type has no safe one), not the sender's.

Exporting again over the same DIR only changes what changed: a small manifest
(``DIR/.mailroll-export.json``) lists the files this command wrote with their sha256; files of
ours that no longer count are removed, others (anything a person put there) are left alone.
Files are hard-linked from the store when DIR is on the same file system (the shared inode is
made read-only, so editing the exported copy in place cannot alter the evidence), else copied;
never moved. 清单 is rewritten only when its rows changed, so a second export changes nothing.
"""

# long: planning (which files, which names) and writing (manifest, links or copies, 清单, zip)
# belong together: the manifest's rules are the plan's names

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from reconcile.export_names import detected_ext, safe_name
from reconcile.judge import MISSING
from reconcile.status import stored_time

log = logging.getLogger("mailroll.export")
MANIFEST = ".mailroll-export.json"
LIST_NAME = "清单"
HISTORY_DIR = "历史版本"
ITEM_STATE_ZH = {"ok": "合格", "invalid": "不合格", "missing": "未收到"}
LIST_HEADER = [
    "单位编号",
    "单位",
    "材料",
    "版本",
    "状态",
    "原因",
    "原文件名",
    "导出文件名",
    "大小（字节）",
    "sha256",
    "收到时间",
    "逾期",
]


@dataclass
class Entry:
    """One row of 清单: an item of a unit, with the file exported for it (if any)."""

    unit: str
    unit_name: str
    item: str  # the item's label
    version: str  # '计入' (counted) | '历史版本'
    state: str
    reason: str
    sent_name: str = ""
    path: str = ""  # relative to DIR, '/'-separated; '' when there is no file
    size: int | None = None
    sha256: str = ""
    arrival: str = ""
    late: bool = False
    source: Path | None = field(default=None, repr=False)

    def row(self) -> list:
        return [
            self.unit,
            self.unit_name,
            self.item,
            self.version,
            self.state,
            self.reason,
            self.sent_name,
            self.path,
            "" if self.size is None else self.size,
            self.sha256,
            self.arrival,
            "逾期" if self.late else "",
        ]


@dataclass
class ExportResult:
    directory: Path
    units: int = 0
    files: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    list_written: bool = False
    zip: str | None = None
    zip_written: bool = False

    def as_dict(self) -> dict:
        return {
            "dir": str(self.directory),
            "units": self.units,
            "files": self.files,
            "written": self.written,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "list_written": self.list_written,
            "zip": self.zip,
            "zip_written": self.zip_written,
        }


# ---------------------------------------------------------------------------------- planning


PART_COLS = ("id", "message", "filename", "location", "kind", "sha256", "size", "sniffed_type", "error")


def _parts(conn: sqlite3.Connection, unit_id: str, campaign) -> list[dict]:
    """The unit's files that can be one of the campaign's items (``item``: which one), in recorded,
    attributed messages, in arrival order."""
    rows = conn.execute(
        f"SELECT {', '.join('p.' + c for c in PART_COLS)}, m.received_at FROM parts p "
        "JOIN messages m ON m.id = p.message JOIN attributions a ON a.message = m.id "
        "WHERE a.unit = ? AND a.campaign = ? AND m.status = 'recorded' ORDER BY m.received_at, m.id, p.seq",
        [unit_id, campaign.id],
    ).fetchall()
    out = []
    for r in rows:
        p = dict(zip((*PART_COLS, "received_at"), r, strict=True))
        p["item"] = campaign.item_for_file(p["kind"], p["filename"])
        if p["item"] is not None:
            out.append(p)
    return out


def _local(text: str | None, tz, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return stored_time(text).astimezone(tz or UTC).strftime(fmt) if text else ""


def unit_folders(roster) -> dict[str, str]:
    """Folder name per unit id: the unit's name, or its id where two names give one folder."""
    names = {u.id: safe_name(u.name) for u in roster.units}
    taken: dict[str, int] = {}
    for n in names.values():
        taken[n.casefold()] = taken.get(n.casefold(), 0) + 1
    return {uid: (n if taken[n.casefold()] == 1 else safe_name(uid)) for uid, n in names.items()}


# long: one pass over the units and their items, building 清单's rows and the files to write
def plan(
    conn: sqlite3.Connection, rows: list[dict], roster, config, *, all_versions: bool = False
) -> list[Entry]:
    """The rows of 清单 and the files to write, from the status rows (``status_cache.refresh``)."""
    from ingest.store import FileStore

    store = FileStore(config.storage.files)
    tz = config.campaign.timezone
    folders = unit_folders(roster)
    entries: list[Entry] = []
    for row in rows:
        uid, uname = row["id"], row["name"]
        folder = folders[uid]
        parts = _parts(conn, uid, config.campaign)
        counted_shas: set[str] = set()
        for it in config.campaign.items:
            st = row["items"][it.id]
            label = it.label
            state = ITEM_STATE_ZH.get(st["state"], st["state"])
            reason = st.get("reason_zh") or st.get("reason") or ""
            if st["state"] == MISSING or not st.get("message"):
                entries.append(Entry(uid, uname, label, "计入", state, reason, late=bool(st.get("late"))))
                continue
            if it.kind == "images":  # every different picture counts, from whichever message
                mine = [p for p in parts if p["item"] == it and not p["error"]]
            else:
                mine = [p for p in parts if p["message"] == st["message"] and p["item"] == it]
            mine.sort(key=lambda p: p["id"] != st.get("part"))  # the counted file first
            files, seen = [], set()
            for p in mine:
                if p["sha256"] and p["sha256"] not in seen:
                    seen.add(p["sha256"])
                    files.append(p)
            counted_shas |= seen
            if not files:  # a link that was not fetched, or a file that was not kept
                sent = st.get("filename") or st.get("link") or ""
                entries.append(
                    Entry(
                        uid,
                        uname,
                        label,
                        "计入",
                        state,
                        reason,
                        sent_name=sent,
                        arrival=_local(st.get("arrived_at"), tz),
                        late=bool(st.get("late")),
                    )
                )
                continue
            for n, p in enumerate(files, start=1):
                suffix = "" if len(files) == 1 else f"-{n}"
                name = safe_name(f"{uname}-{label}{suffix}", detected_ext(p["sniffed_type"], p["filename"]))
                counted = p["id"] == st.get("part") or it.kind == "images"
                entries.append(
                    Entry(
                        uid,
                        uname,
                        label,
                        "计入" if counted else "同封邮件",
                        state if counted else "",
                        reason if counted else "",
                        sent_name=p["filename"] or p["location"] or "",
                        path=f"{folder}/{name}",
                        size=p["size"],
                        sha256=p["sha256"],
                        arrival=_local(st.get("arrived_at") if counted else p["received_at"], tz),
                        late=bool(st.get("late")) if counted else False,
                        source=store.path_for(p["sha256"]),
                    )
                )
        if all_versions:
            entries += _history(parts, row, folder, counted_shas, store, tz)
    return entries


def _history(parts, row, folder, counted_shas, store, tz) -> list[Entry]:
    """Every earlier version (distinct content) of each item, named with its arrival time."""
    out: list[Entry] = []
    seen = set(counted_shas)
    used: set[str] = set()
    for p in parts:
        if not p["sha256"] or p["sha256"] in seen:
            continue
        seen.add(p["sha256"])
        label = p["item"].label
        stamp = _local(p["received_at"], tz, "%Y%m%d-%H%M%S")
        base = f"{row['name']}-{label}-{stamp}"
        ext = detected_ext(p["sniffed_type"], p["filename"])
        name, n = safe_name(base, ext), 1
        while name.casefold() in used:
            n += 1
            name = safe_name(f"{base}-{n}", ext)
        used.add(name.casefold())
        out.append(
            Entry(
                row["id"],
                row["name"],
                label,
                "历史版本",
                "",
                "",
                sent_name=p["filename"] or p["location"] or "",
                path=f"{folder}/{HISTORY_DIR}/{name}",
                size=p["size"],
                sha256=p["sha256"],
                arrival=_local(p["received_at"], tz),
                source=store.path_for(p["sha256"]),
            )
        )
    return out


# ---------------------------------------------------------------------------------- writing


def _load_manifest(directory: Path) -> dict:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"files": {}, "list": None}
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return {"files": {}, "list": None}
    return data


def _write_manifest(directory: Path, data: dict) -> None:
    tmp = directory / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(directory / MANIFEST)


def _same_file(path: Path, sha: str, size: int | None) -> bool:
    """Whether ``path`` already holds the content ``sha`` (hashing only when the size matches)."""
    try:
        if size is not None and path.stat().st_size != size:
            return False
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1024 * 1024):
                h.update(chunk)
    except OSError:
        return False
    return h.hexdigest() == sha


def _place(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (read-only inode), or copy it; atomically, never a move."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # a short temporary name (a dotfile: no unit's folder or file starts with a dot): the
    # target's own name may take all of the 255 bytes a name can have
    tmp = target.with_name(f".{hashlib.sha256(target.name.encode()).hexdigest()[:16]}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copyfile(source, tmp)
    else:
        try:
            mode = stat.S_IMODE(source.stat().st_mode)
            os.chmod(source, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        except OSError:
            log.info("cannot make %s read-only", source)
    os.replace(tmp, target)


def _list_tables(entries: list[Entry]):
    from reconcile.report import Table

    t = Table(LIST_NAME, freeze_row=1)
    t.add(LIST_HEADER, header=True)
    for e in entries:
        t.add(e.row())
    t.filter_range = (0, len(t.rows) - 1, len(LIST_HEADER))
    return [t]


def _write_list(directory: Path, entries: list[Entry]) -> None:
    from reconcile.report import write_xlsx
    from reconcile.tables_csv import write_csv_file

    tables = _list_tables(entries)
    write_xlsx(tables, directory / f"{LIST_NAME}.xlsx")
    write_csv_file(directory / f"{LIST_NAME}.csv", tables[0].rows)


def export(
    conn: sqlite3.Connection,
    rows: list[dict],
    roster,
    config,
    directory: str | os.PathLike,
    *,
    all_versions: bool = False,
    zip_path: str | os.PathLike | None = None,
) -> ExportResult:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = plan(conn, rows, roster, config, all_versions=all_versions)
    result = ExportResult(directory, units=len(rows))
    manifest = _load_manifest(directory)
    old: dict[str, str] = manifest["files"]
    wanted = {e.path: e for e in entries if e.path}
    for rel in sorted(set(old) - set(wanted)):
        target = directory / rel
        if target.is_file() and _same_file(target, old[rel], None):
            target.unlink()
            result.removed.append(rel)
        for parent in target.parents:  # folders of ours left empty
            if parent == directory:
                break
            try:
                parent.rmdir()
            except OSError:
                break
    files: dict[str, str] = {}
    for rel, e in wanted.items():
        target = directory / rel
        files[rel] = e.sha256
        if old.get(rel) == e.sha256 and _same_file(target, e.sha256, e.size):
            result.unchanged += 1
            continue
        if e.source is None or not e.source.is_file():
            raise FileNotFoundError(f"{e.unit_name} {e.item}: the stored file {e.source} is missing")
        _place(e.source, target)
        result.written.append(rel)
    result.files = len(wanted)
    folders = unit_folders(roster)
    for row in rows:  # every unit gets its folder, also one that sent nothing
        (directory / folders[row["id"]]).mkdir(exist_ok=True)
    digest = hashlib.sha256(json.dumps([e.row() for e in entries], ensure_ascii=False).encode()).hexdigest()
    list_files = [directory / f"{LIST_NAME}.xlsx", directory / f"{LIST_NAME}.csv"]
    if manifest.get("list") != digest or not all(p.exists() for p in list_files):
        _write_list(directory, entries)
        result.list_written = True
    _write_manifest(directory, {"files": files, "list": digest})
    if zip_path is not None:
        result.zip = str(zip_path)
        result.zip_written = write_zip(
            directory, sorted(files) + [p.name for p in list_files], Path(zip_path)
        )
    return result


def write_zip(directory: Path, members: list[str], path: Path) -> bool:
    """Zip ``members`` (paths relative to ``directory``) into ``path``; False when an identical
    zip is already there. Non-ASCII names are stored as UTF-8 with the UTF-8 flag (bit 11),
    which zipfile sets for them: Windows Explorer, WPS and bsdtar show the Chinese names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for rel in members:
            source = directory / rel
            info = zipfile.ZipInfo.from_file(source, rel)
            compressible = source.suffix.lower() in (".csv", ".txt", ".doc", ".xls", ".et", ".wps")
            info.compress_type = zipfile.ZIP_DEFLATED if compressible else zipfile.ZIP_STORED
            with open(source, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
    if path.exists() and _same_file(path, _sha(tmp), tmp.stat().st_size):
        tmp.unlink()
        return False
    tmp.replace(path)
    return True


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()
