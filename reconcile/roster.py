"""The roster: the units expected to send material, read from a .csv or .xlsx file.

Header on the first row: ``id``, ``name``, ``aliases`` (``;`` separated, also ``；``),
``emails`` (``;`` or ``,`` separated), then optional ``category``, ``contact``, ``phone``.
Chinese headers work too (单位/名称, 别名, 邮箱, 类别, 联系人, 电话). A mistake in the file
(missing column, duplicate id, empty name, bad address) raises ``ConfigError`` naming the
file, row and column: the CLI turns it into exit status 2.

``check_roster`` finds what is legal but likely wrong (the same address under two units, an
alias that is part of another unit's name, a unit without an address, duplicate names).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ingest.config import ConfigError

# column -> accepted header spellings (compared after normalising case and width)
HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("id", "编号", "代码", "单位代码", "单位编号"),
    "name": ("name", "单位", "名称", "单位名称"),
    "aliases": ("aliases", "alias", "别名", "简称"),
    "emails": ("emails", "email", "e-mail", "邮箱", "电子邮箱", "邮件地址"),
    "category": ("category", "类别", "分类", "单位类别"),
    "contact": ("contact", "联系人"),
    "phone": ("phone", "电话", "联系电话"),
}
REQUIRED = ("id", "name", "aliases", "emails")
MAX_ROWS = 100_000

_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_WS = re.compile(r"\s+")


def normalize(text: str | None) -> str:
    """Text for matching: full-width to half-width (NFKC), no whitespace, lower case."""
    if not text:
        return ""
    return _WS.sub("", unicodedata.normalize("NFKC", str(text))).lower()


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    category: str = ""
    contact: str = ""
    phone: str = ""
    row: int = 0  # row number in the file (header = 1)

    @property
    def names(self) -> tuple[str, ...]:
        """The full name and every alias."""
        return (self.name, *self.aliases)

    @property
    def domains(self) -> set[str]:
        return {e.rsplit("@", 1)[1] for e in self.emails}


@dataclass
class Finding:
    """Something in the roster that is probably a mistake."""

    kind: str  # 'shared-address' | 'alias-inside-name' | 'no-address' | 'duplicate-name'
    # | 'decision-for-unknown-unit' | 'no-authentication-results' (reconcile/authcheck.py)
    units: list[str]  # unit ids concerned
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "units": self.units, "message": self.message}


@dataclass
class Roster:
    path: Path
    units: list[Unit]
    by_id: dict[str, Unit] = field(default_factory=dict)
    by_email: dict[str, list[Unit]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {u.id: u for u in self.units}
        self.by_email = {}
        for u in self.units:
            for e in u.emails:
                self.by_email.setdefault(e, []).append(u)

    def find_all(self, text: str) -> list[Unit]:
        """Units whose id, full name or alias is ``text`` (whitespace, width and case ignored)."""
        if text in self.by_id:
            return [self.by_id[text]]
        key = normalize(text)
        return [u for u in self.units if normalize(u.id) == key or any(normalize(n) == key for n in u.names)]

    def lookup(self, text: str) -> list[Unit]:
        """The units a clerk means by ``text``: those ``find_all`` gives (id, full name, alias),
        else those whose full name or an alias contains it, two characters at least (忻州 ->
        忻州市科学技术局, but also 忻州市科协: then both, for the clerk to choose)."""
        exact = self.find_all(text)
        key = normalize(text)
        if exact or len(key) < 2:  # one character picks no unit by a part of its name
            return exact
        return [u for u in self.units if any(key in normalize(n) for n in u.names)]

    def find(self, text: str) -> Unit | None:
        """The one unit called ``text`` (id, name or alias); None if unknown or ambiguous."""
        found = self.find_all(text)
        return found[0] if len(found) == 1 else None


def split_list(value: str, separators: str) -> list[str]:
    parts = re.split("[" + re.escape(separators) + "]", value or "")
    return [p.strip() for p in parts if p.strip()]


def load_roster(path: str | Path) -> Roster:
    """Read the roster file (.csv UTF-8 with or without BOM, or .xlsx)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"roster file {path} not found: set roster.path in the config")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(path)
    elif suffix == ".xlsx":
        rows = _read_xlsx(path)
    else:
        raise ConfigError(f"roster file {path}: must be .csv or .xlsx")
    return _parse_rows(path, rows)


def _read_csv(path: Path) -> list[list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"roster file {path}: not UTF-8 text (byte {e.start}); save it as 'CSV UTF-8' or use .xlsx"
        ) from None
    rows = []
    for i, row in enumerate(csv.reader(io.StringIO(text, newline=""))):
        if i > MAX_ROWS:
            raise ConfigError(f"roster file {path}: more than {MAX_ROWS} rows")
        rows.append(row)
    return rows


def _read_xlsx(path: Path) -> list[list[str]]:
    import zipfile

    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise ConfigError(f"roster file {path}: cannot be opened as an .xlsx workbook ({e})") from None
    try:
        ws = wb.worksheets[0]
        rows = []
        for i, row in enumerate(ws.iter_rows(values_only=True)):
            if i > MAX_ROWS:
                raise ConfigError(f"roster file {path}: more than {MAX_ROWS} rows")
            rows.append(["" if v is None else _cell_text(v) for v in row])
        return rows
    finally:
        wb.close()


def _cell_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _column_letter(index: int) -> str:
    s = ""
    index += 1
    while index:
        index, r = divmod(index - 1, 26)
        s = chr(65 + r) + s
    return s


# long: one pass over the rows; each column's check names the cell
def _parse_rows(path: Path, rows: list[list[str]]) -> Roster:
    if not rows or not any(c.strip() for c in rows[0]):
        raise ConfigError(
            f"roster file {path}: empty; the first row must be the header id,name,aliases,emails"
        )
    header = [normalize(c) for c in rows[0]]
    columns: dict[str, int] = {}
    for key, spellings in HEADERS.items():
        for i, h in enumerate(header):
            if h in {normalize(s) for s in spellings}:
                columns.setdefault(key, i)
                break
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        raise ConfigError(
            f"roster file {path}, row 1: missing column {', '.join(missing)} "
            f"(the header row must have id, name, aliases, emails; found {', '.join(c for c in rows[0] if c)})"
        )

    def cell(row: list[str], key: str) -> str:
        i = columns.get(key)
        if i is None or i >= len(row):
            return ""
        return (row[i] or "").strip()

    units: list[Unit] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any((c or "").strip() for c in row):
            continue  # blank line
        where = f"roster file {path}, row {n}"
        uid = cell(row, "id")
        name = cell(row, "name")
        if not uid:
            raise ConfigError(f"{where}, column {_column_letter(columns['id'])} (id): empty id")
        if uid in seen:
            raise ConfigError(
                f"{where}, column {_column_letter(columns['id'])} (id): duplicate id {uid!r} (also on row {seen[uid]})"
            )
        seen[uid] = n
        if not name:
            raise ConfigError(
                f"{where}, column {_column_letter(columns['name'])} (name): empty name for unit {uid!r}"
            )
        aliases = tuple(dict.fromkeys(a for a in split_list(cell(row, "aliases"), ";；") if a != name))
        emails = []
        for e in split_list(cell(row, "emails"), ";；,，"):
            e = unicodedata.normalize("NFKC", e).strip().strip("<>").lower()
            if not _EMAIL.match(e):
                raise ConfigError(
                    f"{where}, column {_column_letter(columns['emails'])} (emails): {e!r} is not an e-mail address"
                )
            emails.append(e)
        units.append(
            Unit(
                id=uid,
                name=name,
                aliases=aliases,
                emails=tuple(dict.fromkeys(emails)),
                category=cell(row, "category"),
                contact=cell(row, "contact"),
                phone=cell(row, "phone"),
                row=n,
            )
        )
    if not units:
        raise ConfigError(f"roster file {path}: no units below the header row")
    return Roster(path=path, units=units)


# long: the roster findings in the order staff fix them
def check_roster(roster: Roster, decisions=()) -> list[Finding]:
    """Legal but likely wrong: shared addresses, aliases inside other names, no address, same names;
    and staff decisions in force (``decisions``: overrides with .id, .action, .unit, .item,
    .message) that name a unit id the roster no longer has."""
    findings: list[Finding] = []
    for o in decisions:
        if o.unit and o.unit not in roster.by_id:
            what = " ".join(
                str(x) for x in (o.action, o.item, f"message #{o.message}" if o.message else None) if x
            )
            findings.append(
                Finding(
                    "decision-for-unknown-unit",
                    [o.unit],
                    f"override {o.id} ({what}) names unit {o.unit}, which is not in the roster: it has no effect; "
                    f"revoke it (`mailroll revoke {o.id}`) and decide again for the right unit",
                )
            )
    for email, units in roster.by_email.items():
        if len(units) > 1:
            findings.append(
                Finding(
                    "shared-address",
                    [u.id for u in units],
                    f"{email} is listed under {len(units)} units ({', '.join(u.id for u in units)}): "
                    f"mail from it cannot be attributed by address",
                )
            )
    names: dict[str, list[Unit]] = {}
    for u in roster.units:
        for n in u.names:
            names.setdefault(normalize(n), [])
            if u not in names[normalize(n)]:
                names[normalize(n)].append(u)
    for key, units in names.items():
        if len(units) > 1:
            findings.append(
                Finding(
                    "duplicate-name",
                    [u.id for u in units],
                    f"the name {key!r} belongs to {', '.join(u.id for u in units)}: a subject naming it is ambiguous",
                )
            )
    for u in roster.units:
        for alias in u.aliases:
            a = normalize(alias)
            if len(a) < 2:
                continue
            for other in roster.units:
                if other is u:
                    continue
                for n in other.names:
                    if a != normalize(n) and a in normalize(n):
                        findings.append(
                            Finding(
                                "alias-inside-name",
                                [u.id, other.id],
                                f"alias {alias!r} of {u.id} is part of {other.id}'s name {n!r}: "
                                f"that longer name wins, but check the alias is what you mean",
                            )
                        )
    for u in roster.units:
        if not u.emails:
            findings.append(
                Finding(
                    "no-address",
                    [u.id],
                    f"{u.id} ({u.name}) has no e-mail address: its mail is matched only by name, "
                    "and it gets no reminders",
                )
            )
    return findings


def file_fingerprint(path: Path | str) -> str:
    """mtime and size of a file, to notice that it changed (empty if it does not exist)."""
    import os

    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_mtime_ns}:{st.st_size}"
