"""What a sender wrote: a message's own text, with the quoted mail below a reply and the mail
program's signature folded away, and whether it asks staff something. Recorded with the message
(``messages.text``, ``messages.question``) for `show`, `questions` and the web.

The text comes from the message's body (``ParsedMessage.body_text``: the plain part, else the
HTML part as text, bounded). Chinese mail programs mark quoted mail in their own words, which the
reply parsers on PyPI do not know (mail-parser-reply 1.36, language ``zh``, keeps QQ's
"原始邮件" block, NetEase's "回复的原邮件" and Foxmail's "写道：" whole), so the markers are
listed here, one line each, with the program that writes them."""

from __future__ import annotations

import json
import re

TEXT_MAX = 2000  # characters of own text kept for show, the web and questions (the contract)

# A line that starts the quoted or forwarded mail below what the sender wrote.
_QUOTE_START = re.compile(
    r"""^\s*(?:
        -{2,}\s*(?:原始邮件|Original\s+Message|回复的原邮件|Replied\s+Message|转发邮件信息|
                 Forwarded\s+message|原邮件|邮件原文)\s*-{2,}          # QQ, Outlook, NetEase, Gmail
      | -{2,}\s*forwarded\s+message\s*\(.{0,200}\)\s*-{2,}          # mailroll's own, before a forwarded .eml
      | _{8,}                                                       # Outlook's rule above the header
      | 在\s*\S.{2,120}(?:写道|wrote)\s*[:：]\s*$                     # Foxmail, NetEase: 在 …，"x" <y> 写道：
      | On\s.{4,200}\swrote:\s*$                                    # Gmail, Apple Mail
      | .{0,200}\d{4}[-/年]\d{1,2}[-/月]\d{1,2}.{0,80}(?:写道|wrote)\s*[:：]\s*$
                                                   # Gmail: x <y> 于2022年6月20日周一 09:00写道：
      | (?:\*\s*)?(?:发件人|From)\s*[:：].+$                          # a quoted header block (checked below)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
# The header block of quoted mail: a From line counts only when the next lines hold a date or subject.
_HEADER_FOLLOWS = re.compile(
    r"^\s*(?:\*\s*)?(?:发送时间|时间|日期|Sent|Date|主题|Subject|收件人|To)\s*[:：]", re.I
)
_FROM_LINE = re.compile(r"^\s*(?:\*\s*)?(?:发件人|From)\s*[:：]", re.I)
# Lines that mail programs add under the text ("Sent from my iPhone"), and the signature delimiter.
_CLIENT_TAG = re.compile(
    r"^\s*(?:发自|来自|Sent\s+from|Get\s+Outlook)\s*.{0,40}(?:iPhone|iPad|Android|手机|邮箱|Mail|客户端|大师|Outlook|App)"
    r".{0,20}$",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER = re.compile(r"^--\s?$")

# Asking staff something: a question mark, or the words Chinese writers ask (and ask for an
# answer) with. Words that also make ordinary statements (咨询电话, 如何开展, 人数多少不一, 有没有问题
# 请联系) are not among them; web addresses and e-mail addresses are taken out first (?pwd=).
_ASKS = re.compile(
    r"[?？]|请问|想问|想咨询|能否|可否|是否可以|是否需要|是否.{0,12}(?:请告知|请回复|请确认)|能不能|可不可以"
    r"|可以吗|行吗|好吗|对吗|是吗|吗[。！!，,\s]|吗$|怎么办|怎么弄|怎么交|请告知|请回复|麻烦确认|请确认一下|什么时候"
    r"|需不需要|要不要",
    re.MULTILINE,
)
_NOT_WORDS = re.compile(r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
# Characters a sender's program could not encode come out as "??" or U+FFFD: no question marks.
_MANGLED = re.compile(r"[?\ufffd]{2,}|\ufffd")


def own_text(body: str | None, limit: int = TEXT_MAX) -> str | None:
    """The sender's own words: the body up to the quoted mail, without quoted lines ("> "), the
    signature after a "-- " line or mail programs' "发自我的iPhone"; blank runs squeezed, at most
    ``limit`` characters (cut with "…"). None when nothing is left."""
    if not body:
        return None
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if _SIGNATURE_DELIMITER.match(line) or _starts_quote(lines, i):
            break
        if line.lstrip().startswith((">", "＞")) or _CLIENT_TAG.match(line):
            continue
        kept.append(line.rstrip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _starts_quote(lines: list[str], i: int) -> bool:
    line = lines[i]
    if not _QUOTE_START.match(line):
        return False
    if _FROM_LINE.match(line):  # "发件人: x" alone may be the sender's own words
        return any(_HEADER_FOLLOWS.match(nxt) for nxt in lines[i + 1 : i + 4])
    return True


def asks_something(subject: str | None, text: str | None) -> bool:
    """Whether the message asks staff something: a question mark or an asking word (请问, 能否,
    可以吗, ...) in the subject or the sender's own text (not in the quoted mail)."""
    return any(
        _ASKS.search(_MANGLED.sub(" ", _NOT_WORDS.sub(" ", s))) for s in (subject or "", text or "") if s
    )


def automatic(headers: dict) -> bool:
    """Whether the headers kept of a message (``Headers.selected()``) say a program sent it: an
    auto-reply, list or bulk mail, a delivery report, mailroll's own mail. Such mail asks
    nobody anything. (The receipts' ``auto_reason`` says the same in words, and more.)"""
    h = {str(k).lower().replace("-", "_"): v for k, v in headers.items()}
    if str(h.get("auto_submitted") or "no").strip().lower() != "no":
        return True
    if str(h.get("precedence") or "").strip().lower() in ("bulk", "junk", "list", "auto_reply"):
        return True
    if any(h.get(k) for k in ("list_id", "x_autoreply", "x_autorespond", "x_mailroll")):
        return True
    return str(h.get("content_type") or "").lower().startswith("multipart/report")


def is_question(subject: str | None, text: str | None, headers: dict) -> bool:
    """Whether the message is a question to staff: it asks something (``asks_something``) and
    no program sent it (``automatic``)."""
    return asks_something(subject, text) and not automatic(headers)


def from_stored(subject: str | None, body: str | None, headers_json: str | None) -> tuple[str | None, bool]:
    """(text, question) of a message recorded before they were kept (migration 7)."""
    try:
        headers = json.loads(headers_json or "{}")
    except ValueError:
        headers = {}
    text = own_text(body)
    return text, is_question(subject, text, headers if isinstance(headers, dict) else {})
