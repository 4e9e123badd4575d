"""The objects that travel along ingest's data path.

    source (imap, maildir) ──Envelope + raw──> parse ──ParsedMessage──> parts (archives, forwards)
        ──ExtractedPart──> classify ──> probe (facts) ──> store (files + one DB transaction)

Sources know nothing of MIME; the parser knows nothing of mailboxes; nothing here knows units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Kinds of part (parts.kind)
STATISTICS, REPORT, VIDEO, IMAGE, ARCHIVE, MESSAGE, OTHER = (
    "statistics",
    "report",
    "video",
    "image",
    "archive",
    "message",
    "other",
)
KINDS = (STATISTICS, REPORT, VIDEO, IMAGE, ARCHIVE, MESSAGE, OTHER)


@dataclass
class Envelope:
    """What the mailbox knows of a message, before anyone reads it."""

    source: str  # Mailbox.source_name
    key: str  # unique within the source ('UIDVALIDITY:UID', Maildir base name)
    received_at: datetime  # server arrival time (INTERNALDATE / Maildir delivery time), aware
    size: int | None = None
    uid: int | None = None  # IMAP UID, for post-processing actions
    path: Path | None = None  # Maildir file


@dataclass
class Headers:
    """Decoded top-level headers of one message (or of a forwarded one)."""

    message_id: str | None = None
    from_addr: str | None = None  # lower-case address
    from_name: str | None = None
    reply_to: str | None = None
    to_addrs: list[str] = field(default_factory=list)
    subject: str = ""
    date: str | None = None  # as sent
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto_submitted: str | None = None  # Auto-Submitted
    precedence: str | None = None
    list_id: str | None = None
    return_path: str | None = None
    content_type: str | None = None  # e.g. multipart/report; report-type=delivery-status
    extra: dict[str, str] = field(default_factory=dict)  # X-Mailer, X-Autoreply, ...
    # Authentication-Results values as received, topmost first (RFC 8601); read by
    # reconcile/authresults.py, which trusts only the receiving server's own
    authentication_results: list[str] = field(default_factory=list)
    received_spf: list[str] = field(default_factory=list)  # Received-SPF values, topmost first
    from_addrs: list[str] = field(default_factory=list)  # every address of every From header

    def selected(self) -> dict[str, Any]:
        """The headers kept in messages.headers (JSON)."""
        out = {
            "in_reply_to": self.in_reply_to,
            "references": self.references,
            "auto_submitted": self.auto_submitted,
            "precedence": self.precedence,
            "list_id": self.list_id,
            "return_path": self.return_path,
            "content_type": self.content_type,
            "authentication_results": self.authentication_results,
            "received_spf": self.received_spf,
            # several From addresses: the sender is never trusted (reconcile/attribute.py)
            "from_addresses": self.from_addrs if len(self.from_addrs) > 1 else None,
        }
        out.update(self.extra)
        return {k: v for k, v in out.items() if v not in (None, [], "")}


@dataclass
class ExtractedPart:
    """One file that came with a message: an attachment, an archive member, a forwarded
    message's attachment, or a file downloaded from a link.

    The content is either in memory (``data``) or already on disk in a spool file (``spool``,
    owned by the pipeline, deleted after storing). ``error`` set means the part could not be
    extracted (too large, encrypted archive, ...): it is still recorded, with the reason.
    """

    location: str  # 'report.zip/统计表.xlsx'
    filename: str | None
    declared_type: str | None
    origin: str = "attachment"  # 'attachment' | 'archive' | 'forwarded' | 'link'
    data: bytes | None = None
    spool: Path | None = None
    size: int | None = None
    parent: int | None = None  # index into ParsedMessage.parts of the container
    error: str | None = None
    # filled in later along the path
    sniffed_type: str | None = None
    kind: str = OTHER
    sha256: str | None = None
    facts: dict[str, Any] | None = None
    inline: bool = False  # an inline (cid:) image of an HTML body: a photo, not a file sent


@dataclass
class Link:
    url: str
    host: str
    provider: str
    filename: str | None = None


@dataclass
class ParsedMessage:
    headers: Headers
    body_text: str = ""  # decoded text (plain, or text from HTML), bounded
    html: str = ""  # raw HTML body (bounded), for finding links
    parts: list[ExtractedPart] = field(default_factory=list)
    forwarded: list[Headers] = field(default_factory=list)  # headers of message/rfc822 parts
    links: list[Link] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    content_sha256: str | None = None
