"""What a receipt says about the files of a message, in our words only.

The mailbox's address is public, and a receipt goes out from the campaign's address to a unit:
nothing a stranger chose may reach the unit verbatim through it (a file named
"您单位材料未通过审核请登录evil.example重新提交.docx" would be a phishing channel). So:

* a sender the receipt goes back to (trust ``registered`` or ``domain``: the sender is the
  unit, proven by its mail server) sees its own file names, and a sheet's 填报单位 as written;
* anyone else's files are shown by their kind and size only ("一个 .docx 文件，35 KB": the
  extension of the type detected from the content, or of the name when it is a short plain
  one), a link by its kind only, and the sender's address by its domain in brackets
  (``sender_shown``).

Names that are shown are shortened and stripped of control and format characters
(``display_name``).
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata

from reconcile.attribute import DOMAIN, REGISTERED
from reconcile.i18n import N_, zh
from reconcile.words import PART_KINDS

NAME_MAX = 60  # characters of a file name shown in a receipt
OWN_WORDS = frozenset({REGISTERED, DOMAIN})  # senders whose words may come back to them
_PLAIN_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII)


def display_name(name: str, limit: int = NAME_MAX) -> str:
    """A file name as a receipt shows it: no control, format (bidi) or separator characters,
    white space collapsed, at most ``limit`` characters (the end, with the extension, kept)."""
    kept = "".join(
        " " if unicodedata.category(ch) in ("Zs", "Zl", "Zp") or ch in "\t\r\n" else ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs", "Cn") or ch in "\t\r\n"
    )
    kept = " ".join(kept.split())
    if len(kept) > limit:
        tail = min(15, limit // 3)
        kept = kept[: limit - tail - 1] + "…" + kept[-tail:]
    return kept or zh(N_("(unnamed file)"))


_ADDRESS_LIKE = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://[!-~]+)|(?:[\w.+-]+@)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}\b(?:/[!-~]*)?",
    re.I | re.ASCII,
)


# reconcile.judge's reason for a download link names the file written beside it: "以下载链接形式
# 发送（QQ邮箱超大附件: 名字），尚未下载"; in mail about a stranger's link the name is left out
_LINK_NAME = re.compile(r"(以下载链接形式发送（[^:（）]*?): .*?），尚未下载", re.S)


def our_reason(reason: str, trust: str | None) -> str:
    """A check's reason as mail shows it: for material not from the unit itself, anything in
    it that looks like an address, host or link (a download link's host, a download error
    quoting a URL) is replaced by "[链接]": the reasons are our sentences, but these bits were
    chosen by the sender; so is the name beside a download link, left out."""
    if trust in OWN_WORDS or not reason:
        return reason
    reason = _LINK_NAME.sub(r"\1），尚未下载", reason)
    return _ADDRESS_LIKE.sub(zh(N_("[link]")), reason)


def size_text(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def anonymous_name(sniffed: str | None, filename: str | None, size: int | None) -> str:
    """A stranger's file by kind and size: "一个 .docx 文件，35 KB"."""
    ext = ""
    if sniffed and re.fullmatch(r"[a-z0-9]{1,8}", sniffed):
        ext = "." + sniffed
    else:
        tail = (filename or "").rsplit(".", 1)
        if len(tail) == 2 and _PLAIN_EXT.fullmatch("." + tail[1]):
            ext = "." + tail[1].lower()
    size_said = size_text(size)
    if ext and size_said:
        return zh(N_("a {ext} file, {size}")).format(ext=ext, size=size_said)
    if ext:
        return zh(N_("a {ext} file")).format(ext=ext)
    return zh(N_("a file, {size}")).format(size=size_said) if size_said else zh(N_("a file"))


def sender_shown(address: str) -> str:
    """A sender not proven to be the unit, by its domain in brackets: "[qq.com]" (a domain
    that is not a plain host name: "[?]")."""
    domain = address.rsplit("@", 1)[-1].strip().lower() if "@" in address else ""
    return f"[{domain}]" if _HOSTNAME.fullmatch(domain) else "[?]"


# long: every file and link of a message with its verdict, names only for the unit's own senders
def files_of(
    conn: sqlite3.Connection, config, message: int, trust: str | None, status: dict | None = None
) -> list[dict]:
    """The files (and links) of ``message`` as the receipt lists them. ``status``: the unit's
    status row: a counted sheet that holds another unit's figures is judged as the status judges
    it (not the unit's: the receipt says so), never "passes" on its own."""
    others = {
        it["part"]: it
        for it in ((status or {}).get("items") or {}).values()
        if it.get("sheet_unit") and it.get("part") and it.get("state") == "invalid"
    }
    from reconcile.judge import judge_link, judge_part

    own = trust in OWN_WORDS
    out = []
    columns = ("id", "location", "filename", "kind", "facts", "error", "origin", "sniffed_type", "size")
    for r in conn.execute(
        f"SELECT {', '.join(columns)} FROM parts WHERE message = ? ORDER BY seq",
        (message,),
    ):
        part = dict(zip(columns, r, strict=True))
        kind = part["kind"] or "other"
        item = config.campaign.item_for_file(kind, part["filename"])
        if item is not None:
            j = judge_part(part, config, item)
            ok, reason = j.state == "ok", our_reason(j.reason_zh or "", trust)
            if part["id"] in others:  # another unit's sheet: the status's reason, naming both
                ok, reason = False, our_reason(others[part["id"]].get("reason_zh") or "", trust)
            warnings = [our_reason(w, trust) for w in j.warnings_zh]
            verdict = zh(N_("passes")) if ok else zh(N_("a problem — {reason}")).format(reason=reason)
        else:  # not one of the items asked for: received, nothing to judge
            ok, reason, warnings = part["error"] is None, part["error"], []
            if not own and not ok:
                reason = zh(N_("the file cannot be read"))
            verdict = zh(N_("received")) if ok else zh(N_("cannot be read — {reason}")).format(reason=reason)
        name = display_name(part["location"] or part["filename"] or "")
        out.append(
            {
                "name": name if own else anonymous_name(part["sniffed_type"], part["filename"], part["size"]),
                "kind": kind,
                "kind_label": item.label if item is not None else zh(PART_KINDS.get(kind, kind)),
                "ok": ok,
                "verdict": verdict,
                "reason": reason or "",
                "warnings": warnings,
                "unit_cell": _unit_cell(part) if own and kind == "statistics" else "",
            }
        )
    for r in conn.execute(
        "SELECT url, host, provider, filename, status, error FROM links WHERE message = ? AND part IS NULL",
        (message,),
    ):
        link = dict(zip(("url", "host", "provider", "filename", "status", "error"), r, strict=True))
        # (a stranger's link: judged without the name written beside it)
        reason = our_reason(judge_link(link if own else {**link, "filename": None}).reason_zh or "", trust)
        site = display_name(link["provider"] or link["host"] or "")
        out.append(
            {
                "name": display_name(link["filename"] or link["url"] or "") if own else zh(N_("a link")),
                "kind": "link",
                "kind_label": zh(N_("download link, {site}")).format(site=site)
                if own
                else zh(N_("download link")),
                "ok": False,
                "verdict": zh(N_("a problem — {reason}")).format(reason=reason),
                "reason": reason,
                "warnings": [],
                "unit_cell": "",
            }
        )
    return out


def _unit_cell(part: dict) -> str:
    try:
        facts = json.loads(part["facts"]) if part["facts"] else {}
    except ValueError:
        return ""
    cell = facts.get("unit_cell") if isinstance(facts, dict) else None
    return display_name(str(cell), 40) if cell else ""
