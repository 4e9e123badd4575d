"""Load and validate mailroll's TOML configuration.

The keys are fixed by CONTRACT.md; everything else has a default here. A wrong or missing
key raises ConfigError naming the key and the file, which the CLI turns into exit status 2.
Relative paths in the file are resolved against the file's folder. Passwords are never read
from the file: only the name of the environment variable that holds them.
"""

# long: the whole config schema in one place, each table's reader next to its dataclass

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.campaigns import (  # noqa: F401 - re-exported: the config's vocabulary
    DEFAULT_SHEET_CHECKS,
    DEFAULT_SHEET_FIELDS,
    DEFAULT_SHEET_HEADER_CELLS,
    DEFAULT_SHEET_TEXT_ROWS,
    DEFAULT_VIDEO_CONTAINERS,
    DOCUMENT_FORMATS,
    ITEM_KINDS,
    Campaign,
    Contact,
    Item,
    SheetTemplate,
    combined_sheet,
    default_items,
    format_name,
)
from ingest.model import RECEIVED_KEPT


class ConfigError(Exception):
    """A problem with the configuration that the user has to fix (exit status 2)."""


DEFAULT_LINK_HOSTS = [
    "mail.163.com",
    "mail.126.com",
    "mail.yeah.net",
    "dashi.163.com",
    "fs.mail.qq.com",
    "wx.mail.qq.com",
    "mail.qq.com",
    "pan.baidu.com",
    "share.weiyun.com",
    "www.aliyundrive.com",
    "www.alipan.com",
    "cloud.189.cn",
    "caiyun.139.com",
    "yunpan.360.cn",
    "pan.quark.cn",
]

ITEMS = ("statistics", "report", "video")  # the items of the default campaign


@dataclass(frozen=True)
class Mailbox:
    kind: str  # "imap" | "maildir"
    host: str = ""
    port: int = 993
    tls: bool = True
    username: str = ""
    password_env: str = ""
    folder: str = "INBOX"
    path: Path | None = None
    # After a message is committed: "none", "flag" (IMAP keyword) or "move".
    post_action: str = "none"
    post_flag: str = "$Mailroll"
    post_folder: str = "mailroll-done"
    idle: bool = True
    timeout_s: float = 60.0
    # A broken connection is re-opened and the command repeated, this many tries in all,
    # waiting retry_backoff_s, then twice that, ... in between.
    retries: int = 3
    retry_backoff_s: float = 1.0
    # IMAP connections a poll may use: big messages stream two at a time, over a second one
    connections: int = 2

    def password(self) -> str:
        return _password_from_env(self.password_env, "mailbox.password_env")

    @property
    def source_name(self) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        return f"imap:{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class Smtp:
    host: str = ""
    port: int = 465
    tls: str = "ssl"  # "ssl" | "starttls" | "none"
    username: str = ""
    password_env: str = ""
    from_addr: str = ""
    per_minute: int = 20  # free mail providers throttle
    timeout_s: float = 30.0
    retries: int = 3  # attempts per mail on temporary failures (4xx, connection errors)
    backoff_s: float = 5.0  # wait before the 2nd attempt; doubles each time
    ca_file: Path | None = None  # trust this CA (PEM) instead of the system's (private CA, tests)

    @property
    def configured(self) -> bool:
        return bool(self.host and self.from_addr)

    def password(self) -> str:
        return _password_from_env(self.password_env, "smtp.password_env")


@dataclass(frozen=True)
class Storage:
    db: Path
    files: Path
    keep_raw: bool = True  # every message's raw bytes kept, compressed (ingest/raw.py)


@dataclass(frozen=True)
class Service:
    poll_every_s: float = 300.0
    lock_wait_s: float = 0.0
    heartbeat_stale_s: float | None = None  # default: 3 poll intervals
    remind_every_s: float = 300.0  # `serve` checks for due reminders this often
    idle_timeout_s: float = 600.0  # IMAP IDLE is renewed this often (RFC 2177: < 29 min)


@dataclass(frozen=True)
class Reminders:
    before: list[timedelta] = field(default_factory=lambda: [timedelta(days=3), timedelta(days=1)])
    before_labels: list[str] = field(default_factory=lambda: ["3d", "1d"])
    after_every: timedelta = timedelta(days=2)
    after_max: int = 3
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(8, 0)
    receipts: bool = True
    templates_dir: Path | None = None
    after_grace: timedelta = timedelta(hours=1)  # 'after-1' is due this long after the deadline
    receipts_max_age: timedelta = timedelta(days=3)  # older messages get no receipt (first start)
    receipts_per_day: int = 10  # at most this many receipts to one address in 24 h (loop guard)
    # at most this many recipients (To and Cc) per hour of receipts for mail from other addresses
    # than the units' own (a unit's own receipts are not capped: they go at the SMTP rate)
    receipts_per_hour: int = 30
    min_gap_minutes: float = 30.0  # a reminder due this soon after a mail to the unit is folded into it


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input. Anything beyond them is recorded with a reason, not processed."""

    max_message_bytes: int = 1024 * 1024 * 1024
    max_part_bytes: int = 1024 * 1024 * 1024
    max_parts: int = 1000
    max_header_bytes: int = 1024 * 1024
    max_archive_members: int = 500
    max_archive_depth: int = 3
    max_archive_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_compression_ratio: float = 200.0
    max_forward_depth: int = 5
    probe_timeout_s: float = 30.0
    max_sheet_xml_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 100_000_000
    stream_threshold_bytes: int = 2 * 1024 * 1024  # IMAP messages above this are streamed per part
    # bytes one message may add to disk from archive members and downloaded links (counted as
    # they are written, never trusting declared sizes)
    max_extracted_bytes: int = 2 * 1024 * 1024 * 1024
    message_timeout_s: float = 300.0  # worker time one message may take (parsing, archives, checks)
    worker_memory_bytes: int = 1024 * 1024 * 1024  # address space of a parsing/checking worker
    preview_timeout_s: float = 600.0  # making one video's browser-playable preview (ingest/previews.py)
    min_free_bytes: int = 1024 * 1024 * 1024  # below this free space in storage, polling pauses


@dataclass(frozen=True)
class Links:
    download: bool = False
    allowed_hosts: list[str] = field(default_factory=lambda: list(DEFAULT_LINK_HOSTS))
    max_bytes: int = 2 * 1024 * 1024 * 1024
    timeout_s: float = 600.0
    max_per_message: int = 5  # links downloaded per message; the rest are recorded, not fetched
    # Tests serve links from a local HTTP server; never enable in production.
    allow_insecure_local: bool = False


@dataclass(frozen=True)
class Roster:
    path: Path


NAMED_SENDERS = ("count", "review")
AUTHENTICATION = ("required", "received-spf", "not-available")


@dataclass(frozen=True)
class Attribution:
    """How far a sender is believed (docs/RECONCILE.md "Sender trust")."""

    # "count": a message attributed by a name only counts while nothing from a trusted sender
    # counts for that item; "review": it always waits for a staff decision
    named_senders: str = "count"
    # authserv-ids whose Authentication-Results are believed (of those above the own Received: lines);
    # empty: those naming the topmost one's id
    authserv_ids: tuple[str, ...] = ()
    # "required": registered/domain trust needs a pass aligned with the From domain in that
    # server's Authentication-Results; "received-spf": in its Received-SPF (a server that writes
    # only that); "not-available": the mailbox's server adds no results (a local Maildir, a relay)
    authentication: str = "required"
    # Received: lines the mailbox's own servers add: the results above the last of them are theirs
    # (1: the receiving server; 2: e.g. Postfix with OpenDMARC, then Dovecot LMTP on top)
    received_hops: int = 1
    # the own servers by the host of their Received: line's "by" clause (e.g. ["mx.126.com"]):
    # set, it replaces received_hops: the topmost Received: lines naming one of them are the own
    received_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebUser:
    name: str
    password_hash: str  # argon2 (`mailroll web passwd NAME` makes one)


@dataclass(frozen=True)
class Web:
    """`mailroll web`: who may sign in. Without users the page is read-only and loopback-only."""

    users: list[WebUser] = field(default_factory=list)
    session_minutes: float = 480.0  # a sign-in lasts this long (a working day)
    # the session cookie is sent over HTTPS only; None: true unless `mailroll web --host` is loopback
    secure_cookies: bool | None = None
    # served behind a reverse proxy (nginx) that sets X-Forwarded-For: the client's address is
    # its last entry (the sign-in limiter keys on it); without users every request is refused
    trusted_proxy: bool = False


@dataclass(frozen=True)
class Ui:
    lang: str | None = None  # "zh" | "en"; None: follow LANG / LC_ALL


@dataclass(frozen=True)
class Config:
    path: Path
    campaign: Campaign
    mailbox: Mailbox
    smtp: Smtp
    roster: Roster
    storage: Storage
    service: Service
    reminders: Reminders
    limits: Limits
    links: Links
    public_domains: list[str]
    raw: dict[str, Any]
    attribution: Attribution = field(default_factory=Attribution)
    web: Web = field(default_factory=Web)
    ui: Ui = field(default_factory=Ui)
    # every campaign of the file, in its order; ``campaign`` and ``roster`` are the one selected
    # (the first unless ``for_campaign`` chose another)
    campaigns: tuple[Campaign, ...] = ()
    # True when the file lists [[campaigns]]: then each message's campaign is worked out
    # (reconcile.scope); with the old [campaign] every message is for the one campaign
    scoped: bool = False

    @property
    def ingest_sheet(self) -> SheetTemplate:
        """What ingest reads sheets with: every campaign's sheet rows (``combined_sheet``)."""
        return combined_sheet(self.campaigns or (self.campaign,))

    @property
    def campaign_ids(self) -> list[str]:
        return [c.id for c in self.campaigns]

    @property
    def legacy_campaign(self) -> str | None:
        """The campaign that decisions and mail recorded before campaigns existed (campaign NULL
        in the database) belong to: the one with id 'default', else the only one; else None."""
        ids = self.campaign_ids
        if "default" in ids:
            return "default"
        return ids[0] if len(ids) == 1 else None

    def campaign_clause(self, column: str = "campaign") -> tuple[str, list]:
        """SQL (and its parameters) selecting rows about the selected campaign."""
        legacy = self.legacy_campaign == self.campaign.id
        return f"({column} = ? OR ({column} IS NULL AND ?))", [self.campaign.id, int(legacy)]

    def for_campaign(self, campaign_id: str) -> Config:
        """This config with ``campaign`` and ``roster`` those of the campaign ``campaign_id``."""
        for c in self.campaigns:
            if c.id == campaign_id:
                return replace(self, campaign=c, roster=Roster(c.roster) if c.roster else self.roster)
        raise ConfigError(
            f"no campaign {campaign_id!r} in {self.path}: the ids are {', '.join(self.campaign_ids)}"
        )

    def each_campaign(self) -> list[Config]:
        """One config per campaign (for what runs for all: serve, ingest's attribution)."""
        return [self.for_campaign(c.id) for c in self.campaigns]


PUBLIC_MAIL_DOMAINS = [
    "163.com",
    "126.com",
    "yeah.net",
    "qq.com",
    "foxmail.com",
    "vip.qq.com",
    "sina.com",
    "sina.cn",
    "vip.sina.com",
    "sohu.com",
    "139.com",
    "189.cn",
    "wo.cn",
    "aliyun.com",
    "tom.com",
    "21cn.com",
    "vip.163.com",
    "vip.126.com",
    "188.com",
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
]


def _password_from_env(var: str, key: str) -> str:
    if not var:
        raise ConfigError(f"{key} is not set: name the environment variable that holds the password")
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(
            f"environment variable {var} (named by {key}) is not set: export it with the password"
        )
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str, key: str = "duration") -> timedelta:
    """'3d', '12h', '30m', '45s' -> timedelta."""
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"{key}: {text!r} is not a duration like '3d', '12h', '30m'")
    n, unit = float(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


def parse_time_of_day(text: str, key: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"{key}: {text!r} is not a time of day like '21:00'") from e


def parse_rfc3339(text: str, key: str = "time") -> datetime:
    try:
        value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"{key}: {text!r} is not an RFC 3339 time like 2022-06-25T23:59:59+08:00") from e
    if value.tzinfo is None:
        raise ConfigError(f"{key}: {text!r} has no time zone offset (add +08:00 or Z)")
    return value


class _Reader:
    """Typed access to a TOML table that names the key and file in every error."""

    def __init__(self, data: dict, prefix: str, file: Path):
        self.data, self.prefix, self.file = data, prefix, file
        self.known: set[str] = set()  # keys this reader was asked for
        self.children: list[_Reader] = []

    def allow(self, *keys: str) -> None:
        """Keys that are valid here although this configuration does not read them."""
        self.known.update(keys)

    def check_unknown(self) -> None:
        """A key nobody asked for is a typo (``pol_every_s``): stop, naming it and a guess."""
        import difflib

        for key in self.data:
            if key not in self.known:
                guess = difflib.get_close_matches(key, sorted(self.known), n=1)
                hint = (
                    f": did you mean {self._name(guess[0])}?"
                    if guess
                    else (f": known keys are {', '.join(sorted(self.known))}" if self.known else "")
                )
                raise ConfigError(f"{self.file}: unknown key {self._name(key)}{hint}")
        for child in self.children:
            child.check_unknown()

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self._name(key)} {why}")

    def table(self, key: str, required: bool = False) -> _Reader:
        self.known.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is missing: add a [" + self._name(key) + "] table")
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        child = _Reader(value, self._name(key), self.file)
        self.children.append(child)
        return child

    def tables(self, key: str) -> list[_Reader]:
        """An array of tables (``[[campaigns]]``): one reader per table, named key[0], key[1], ..."""
        self.known.add(key)
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"must be written as [[{self._name(key)}]] tables")
        out = []
        for n, v in enumerate(value):
            child = _Reader(v, f"{self._name(key)}[{n}]", self.file)
            self.children.append(child)
            out.append(child)
        return out

    def get(self, key: str, kind: type | tuple, default: Any = ..., choices: tuple | None = None) -> Any:
        self.known.add(key)
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if bool not in kinds and isinstance(value, bool):
            raise self.fail(key, f"must be {' or '.join(k.__name__ for k in kinds)}, not {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.fail(key, f"must be {' or '.join(k.__name__ for k in kinds)}, not {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    @overload
    def path(self, key: str, default: str = ...) -> Path: ...
    @overload
    def path(self, key: str, default: None) -> Path | None: ...
    def path(self, key: str, default: Any = ...) -> Path | None:
        value = self.get(key, str, default)
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.file.parent / p).resolve()


def default_config_path() -> Path:
    return Path(os.environ.get("MAILROLL_CONFIG", "config.toml"))


def load_config(path: str | os.PathLike | None = None) -> Config:
    file = Path(path) if path else default_config_path()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {file} not found: pass --config PATH, set MAILROLL_CONFIG, "
            f"or copy config.example.toml to {file}"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {file}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    return config_from_dict(data, file.resolve())


# long: one reader per config table, in the order the docs list them
def config_from_dict(data: dict, file: Path) -> Config:
    root = _Reader(data, "", file)

    campaigns = _campaigns(root, file)
    campaign = campaigns[0]

    m = root.table("mailbox", required=True)
    kind = m.get("kind", str, "maildir", choices=("imap", "maildir"))
    if kind == "imap":
        mailbox = Mailbox(
            kind=kind,
            host=m.get("host", str),
            port=m.get("port", int, 993),
            tls=m.get("tls", bool, True),
            username=m.get("username", str),
            password_env=m.get("password_env", str),
            folder=m.get("folder", str, "INBOX"),
            post_action=m.get("post_action", str, "none", choices=("none", "flag", "move")),
            post_flag=m.get("post_flag", str, "$Mailroll"),
            post_folder=m.get("post_folder", str, "mailroll-done"),
            idle=m.get("idle", bool, True),
            timeout_s=m.get("timeout_s", float, 60.0),
            retries=max(1, m.get("retries", int, 3)),
            retry_backoff_s=m.get("retry_backoff_s", float, 1.0),
            connections=min(2, max(1, m.get("connections", int, 2))),
        )
    else:
        mailbox = Mailbox(kind=kind, path=m.path("path"), folder=m.get("folder", str, ""))
        # the IMAP settings may stay in the file while a Maildir is used (and vice versa)
        m.allow(
            "host",
            "port",
            "tls",
            "username",
            "password_env",
            "post_action",
            "post_flag",
            "post_folder",
            "idle",
            "timeout_s",
            "retries",
            "retry_backoff_s",
            "connections",
        )
    if kind == "imap":
        m.allow("path")

    s = root.table("smtp")
    smtp = Smtp(
        host=s.get("host", str, ""),
        port=s.get("port", int, 465),
        tls=s.get("tls", str, "ssl", choices=("ssl", "starttls", "none")),
        username=s.get("username", str, ""),
        password_env=s.get("password_env", str, ""),
        from_addr=s.get("from", str, ""),
        per_minute=s.get("per_minute", int, 20),
        timeout_s=s.get("timeout_s", float, 30.0),
        retries=max(1, s.get("retries", int, 3)),
        backoff_s=s.get("backoff_s", float, 5.0),
        ca_file=s.path("ca_file", None),
    )

    st = root.table("storage")
    storage = Storage(
        db=st.path("db", "mailroll.db"),
        files=st.path("files", "files"),
        keep_raw=st.get("keep_raw", bool, True),
    )

    sv = root.table("service")
    service = Service(
        poll_every_s=sv.get("poll_every_s", float, 300.0),
        lock_wait_s=sv.get("lock_wait_s", float, 0.0),
        heartbeat_stale_s=sv.get("heartbeat_stale_s", float, None),
        remind_every_s=sv.get("remind_every_s", float, 300.0),
        idle_timeout_s=sv.get("idle_timeout_s", float, 600.0),
    )
    if service.poll_every_s <= 0:
        raise sv.fail("poll_every_s", "must be a positive number of seconds")

    rm = root.table("reminders")
    before_labels = [str(x) for x in rm.get("before", list, ["3d", "1d"])]
    before = [parse_duration(x, f"{file}: reminders.before") for x in before_labels]
    quiet = rm.get("quiet_hours", str, "21:00-08:00")
    quiet_start = quiet_end = None
    if quiet.strip():
        try:
            a, b = quiet.split("-")
        except ValueError:
            raise rm.fail(
                "quiet_hours", f"{quiet!r} must look like '21:00-08:00' (or \"\" for none)"
            ) from None
        quiet_start = parse_time_of_day(a, f"{file}: reminders.quiet_hours")
        quiet_end = parse_time_of_day(b, f"{file}: reminders.quiet_hours")
    reminders = Reminders(
        before=before,
        before_labels=before_labels,
        after_every=parse_duration(rm.get("after_every", str, "2d"), f"{file}: reminders.after_every"),
        after_max=rm.get("after_max", int, 3),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        receipts=rm.get("receipts", bool, True),
        templates_dir=rm.path("templates_dir", None),
        after_grace=parse_duration(rm.get("after_grace", str, "1h"), f"{file}: reminders.after_grace"),
        receipts_max_age=parse_duration(
            rm.get("receipts_max_age", str, "3d"), f"{file}: reminders.receipts_max_age"
        ),
        receipts_per_day=rm.get("receipts_per_day", int, 10),
        receipts_per_hour=rm.get("receipts_per_hour", int, Reminders.receipts_per_hour),
        min_gap_minutes=rm.get("min_gap_minutes", float, Reminders.min_gap_minutes),
    )
    if reminders.min_gap_minutes < 0:
        raise rm.fail("min_gap_minutes", "must be 0 or more (minutes)")

    lm = root.table("limits")
    defaults = Limits()
    limits = Limits(
        **{
            name: lm.get(name, type(getattr(defaults, name)), getattr(defaults, name))
            for name in Limits.__dataclass_fields__
        }
    )

    for key in ("message_timeout_s", "worker_memory_bytes", "preview_timeout_s"):
        if getattr(limits, key) <= 0:
            raise lm.fail(key, "must be a positive number")

    lk = root.table("links")
    links = Links(
        download=lk.get("download", bool, False),
        allowed_hosts=[str(h).lower() for h in lk.get("allowed_hosts", list, DEFAULT_LINK_HOSTS)],
        max_bytes=lk.get("max_bytes", int, Links.max_bytes),
        timeout_s=lk.get("timeout_s", float, Links.timeout_s),
        max_per_message=lk.get("max_per_message", int, Links.max_per_message),
        allow_insecure_local=lk.get("allow_insecure_local", bool, False),
    )

    at = root.table("attribution")
    public = [str(d).lower() for d in at.get("public_domains", list, PUBLIC_MAIL_DOMAINS)]
    authserv_ids = at.get("authserv_ids", list, [])
    if not all(isinstance(i, str) and i.strip() for i in authserv_ids):
        raise at.fail(
            "authserv_ids", f'must be a list of server names like ["mx.126.com"], not {authserv_ids!r}'
        )
    received_by = at.get("received_by", list, [])
    if not all(isinstance(i, str) and i.strip() and " " not in i.strip() for i in received_by):
        raise at.fail("received_by", f'must be a list of host names like ["mx.126.com"], not {received_by!r}')
    attribution = Attribution(
        named_senders=at.get("named_senders", str, "count", choices=NAMED_SENDERS),
        authserv_ids=tuple(i.strip().lower() for i in authserv_ids),
        authentication=at.get("authentication", str, "required", choices=AUTHENTICATION),
        received_hops=at.get("received_hops", int, 1),
        received_by=tuple(i.strip().lower().rstrip(".") for i in received_by),
    )
    if not 1 <= attribution.received_hops <= RECEIVED_KEPT:
        raise at.fail("received_hops", f"must be 1 to {RECEIVED_KEPT}")

    wb = root.table("web")
    users = []
    for i, entry in enumerate(wb.get("users", list, [])):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise wb.fail(f"users[{i}]", 'must look like {name = "王芳", password_hash = "$argon2id$..."}')
        ph = entry.get("password_hash")
        if not isinstance(ph, str) or not ph.startswith("$argon2"):
            raise wb.fail(
                f"users[{i}].password_hash",
                "must be an argon2 hash: make one with `mailroll web passwd NAME`",
            )
        extra = set(entry) - {"name", "password_hash"}
        if extra:
            raise wb.fail(f"users[{i}]", f"has unknown keys {', '.join(sorted(extra))}")
        users.append(WebUser(entry["name"].strip(), ph))
    if len({u.name for u in users}) != len(users):
        raise wb.fail("users", "names the same user twice")
    web = Web(
        users=users,
        session_minutes=wb.get("session_minutes", float, 480.0),
        secure_cookies=wb.get("secure_cookies", bool, None),
        trusted_proxy=wb.get("trusted_proxy", bool, False),
    )
    if web.session_minutes <= 0:
        raise wb.fail("session_minutes", "must be a positive number of minutes")
    ui = Ui(lang=root.table("ui").get("lang", str, None, choices=("zh", "en")))

    root.check_unknown()
    assert campaign.roster is not None, "a campaign read from the file names its roster"
    return Config(
        path=file,
        campaign=campaign,
        mailbox=mailbox,
        smtp=smtp,
        roster=Roster(campaign.roster),
        storage=storage,
        service=service,
        reminders=reminders,
        limits=limits,
        links=links,
        public_domains=public,
        raw=data,
        campaigns=tuple(campaigns),
        attribution=attribution,
        scoped="campaigns" in data,
        web=web,
        ui=ui,
    )


# ---------------------------------------------------------------------------------- campaigns

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CLOSES_AFTER_DEADLINE = timedelta(days=30)


def _campaigns(root: _Reader, file: Path) -> list[Campaign]:
    """``[campaign]`` (+ ``[roster]``): one campaign, id 'default'; or ``[[campaigns]]``."""
    many = root.tables("campaigns")
    if not many:
        if "campaign" not in root.data:
            raise root.fail("campaign", "is missing: add a [campaign] table (or [[campaigns]] tables)")
        roster_path = _roster_path(root.table("roster", required=True), "path")
        return [_single_campaign(root.table("campaign", required=True), roster_path)]
    if "campaign" in root.data:
        raise ConfigError(f"{file}: write either [campaign] or [[campaigns]], not both")
    default_roster = None
    if "roster" in root.data:
        default_roster = _roster_path(root.table("roster"), "path")
    out: list[Campaign] = []
    for c in many:
        campaign = _listed_campaign(c, default_roster)
        if campaign.id in {x.id for x in out}:
            raise c.fail("id", f"{campaign.id!r} is used by another campaign: each needs its own id")
        out.append(campaign)
    return out


def _roster_path(r: _Reader, key: str) -> Path:
    path = r.path(key)
    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise r.fail(key, f"must be a .csv or .xlsx file, not {path.name}")
    return path


def _timezone(c: _Reader) -> ZoneInfo:
    tzname = c.get("timezone", str, "Asia/Shanghai")
    try:
        return ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        raise c.fail("timezone", f"{tzname!r} is not a known time zone (e.g. 'Asia/Shanghai')") from None


@overload
def _time(c: _Reader, key: str, tz: ZoneInfo) -> datetime: ...
@overload
def _time(c: _Reader, key: str, tz: ZoneInfo, default: None) -> datetime | None: ...
def _time(c: _Reader, key: str, tz: ZoneInfo, default: Any = ...) -> datetime | None:
    """An RFC 3339 time; one without offset is read in the campaign's time zone."""
    text = c.get(key, str, default)
    if text is None:
        return None
    try:
        return parse_rfc3339(text, f"{c.file}: {c._name(key)}")
    except ConfigError:
        try:
            return datetime.fromisoformat(text).replace(tzinfo=tz)
        except ValueError:
            raise c.fail(key, f"{text!r} is not an RFC 3339 time like 2022-06-25T23:59:59+08:00") from None


def _sheet_template(sheet: _Reader) -> SheetTemplate:
    sheet_fields = DEFAULT_SHEET_FIELDS
    if "fields" in sheet.data:
        raw_fields = sheet.get("fields", list)
        try:
            sheet_fields = [(str(f["label"]), str(f.get("unit", ""))) for f in raw_fields]
        except (TypeError, KeyError):
            raise sheet.fail("fields", "must be a list of {label = ..., unit = ...} tables") from None
        if not sheet_fields:
            raise sheet.fail("fields", "must name at least one figure")
    return SheetTemplate(
        fields=list(sheet_fields),
        header_cells=[str(x) for x in sheet.get("header_cells", list, DEFAULT_SHEET_HEADER_CELLS)],
        text_rows=[str(x) for x in sheet.get("text_rows", list, DEFAULT_SHEET_TEXT_ROWS)],
        sum_checks=[[str(y) for y in x] for x in sheet.get("sum_checks", list, DEFAULT_SHEET_CHECKS)],
        title=sheet.get("title", str, "开展情况统计表"),
    )


def _max_duration(r: _Reader) -> float:
    value = r.get("max_duration_s", float, 180.0)
    if value <= 0:
        raise r.fail("max_duration_s", "must be a positive number of seconds")
    return value


def _containers(r: _Reader) -> tuple[str, ...]:
    return tuple(str(x).lower() for x in r.get("containers", list, DEFAULT_VIDEO_CONTAINERS))


def _single_campaign(c: _Reader, roster: Path) -> Campaign:
    """Today's ``[campaign]`` with ``[campaign.sheet]``, ``[campaign.report]``, ``[campaign.video]``."""
    tz = _timezone(c)
    deadline = _time(c, "deadline", tz)
    video, report = c.table("video"), c.table("report")
    items = default_items(
        sheet=_sheet_template(c.table("sheet")),
        min_text_chars=report.get("min_text_chars", int, 200),
        max_duration_s=_max_duration(video),
        containers=list(_containers(video)),
    )
    return Campaign(
        name=c.get("name", str),
        deadline=deadline,
        timezone=tz,
        items=items,
        roster=roster,
        notice=_notice_path(c),
        contacts=_contacts(c),
    )


def _contacts(c: _Reader) -> tuple[Contact, ...]:
    """``contacts = [{name = "吴玉祥", org = "山西省科学技术厅", phone = "0351-4060103"}]``."""
    out = []
    for entry in c.get("contacts", list, []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise c.fail("contacts", 'must be a list of {name = "...", org = "...", phone = "..."} tables')
        unknown = set(entry) - {"name", "org", "phone"}
        if unknown or not all(isinstance(entry.get(k, ""), str) for k in ("org", "phone")):
            raise c.fail("contacts", "takes name, org and phone (text) for each contact")
        out.append(
            Contact(entry["name"].strip(), entry.get("org", "").strip(), entry.get("phone", "").strip())
        )
    return tuple(out)


def _notice_path(c: _Reader) -> Path | None:
    path = c.path("notice", None)
    if path is not None and not path.is_file():
        raise c.fail("notice", f"names {path}, which is not a file: the notice's text (UTF-8)")
    return path


def _listed_campaign(c: _Reader, default_roster: Path | None) -> Campaign:
    """One ``[[campaigns]]`` table with its ``[[campaigns.items]]``."""
    cid = c.get("id", str)
    if not _ID.match(cid):
        raise c.fail(
            "id", f"{cid!r} must be letters, digits, '-', '_' or '.' (it is typed on the command line)"
        )
    tz = _timezone(c)
    deadline = _time(c, "deadline", tz)
    if "roster" in c.data:
        roster = _roster_path(c, "roster")
    elif default_roster is not None:
        roster = default_roster
    else:
        raise c.fail("roster", 'is missing: name the campaign\'s roster file (roster = "roster.csv")')
    opens = _time(c, "opens", tz, None)
    closes = _time(c, "closes", tz, None) or deadline + CLOSES_AFTER_DEADLINE
    if opens is not None and opens >= closes:
        raise c.fail("opens", "must be before closes (and before 30 days after the deadline)")
    items: list[Item] = []
    for r in c.tables("items"):
        item = _item(r)
        if item.id in {i.id for i in items}:
            raise r.fail("id", f"{item.id!r} is used by another item of the campaign")
        items.append(item)
    if not items:
        raise c.fail("items", "is missing: add [[campaigns.items]] tables, one per item asked for")
    return Campaign(
        id=cid,
        name=c.get("name", str),
        deadline=deadline,
        timezone=tz,
        items=tuple(items),
        roster=roster,
        keywords=tuple(str(k) for k in c.get("keywords", list, []) if str(k).strip()),
        opens=opens,
        closes=closes,
        notice=_notice_path(c),
        contacts=_contacts(c),
    )


def _item(r: _Reader) -> Item:
    iid = r.get("id", str)
    if not _ID.match(iid):
        raise r.fail("id", f"{iid!r} must be letters, digits, '-', '_' or '.'")
    kind = r.get("kind", str, choices=ITEM_KINDS)
    common = dict(
        id=iid,
        label=r.get("label", str, iid),
        kind=kind,
        required=r.get("required", bool, True),
        keywords=tuple(str(k) for k in r.get("keywords", list, []) if str(k).strip()),
        mail_label=r.get("mail_label", str, ""),
        synonyms=tuple(str(k) for k in r.get("synonyms", list, []) if str(k).strip()),
    )
    if kind == "sheet":
        return Item(**common, sheet=_sheet_template(r))
    if kind == "document":
        formats = _formats(r, DOCUMENT_FORMATS)
        return Item(**common, min_text_chars=r.get("min_text_chars", int, 200), formats=formats)
    if kind == "video":
        return Item(**common, max_duration_s=_max_duration(r), containers=_containers(r))
    count = r.get("min_count", int, 1)
    if count < 1:
        raise r.fail("min_count", "must be at least 1")
    return Item(**common, min_count=count, formats=_formats(r, None))


def _formats(r: _Reader, known: tuple[str, ...] | None) -> tuple[str, ...]:
    """``formats = ["pdf", "docx"]``: the formats an item accepts (empty or absent: any)."""
    formats = tuple(format_name(x) for x in r.get("formats", list, []) if str(x).strip())
    strange = [f for f in formats if known is not None and f not in known]
    if strange:
        raise r.fail("formats", f"names {', '.join(strange)}: the formats read are {', '.join(known or ())}")
    return formats
