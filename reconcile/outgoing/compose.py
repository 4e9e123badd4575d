"""Composing the mails mailroll sends: our Message-IDs, the headers, and the Jinja2 templates.

Headers
-------
Every mail has a Message-ID we make (``<...mailroll-receipt@domain>`` / ``...mailroll-reminder``,
stored in ``outbox.smtp_message_id`` to match bounces and replies), ``Auto-Submitted:
auto-replied`` (receipts) or ``auto-generated`` (reminders) per RFC 3834, ``X-Mailroll:
receipt|reminder``, and ``X-Auto-Response-Suppress: All`` (Exchange then sends no out-of-office
answer). We do **not** set ``Precedence: bulk``: these are personal mails to one unit, and some
providers score ``bulk`` as spam.
"""

from __future__ import annotations

import re
import socket
import unicodedata
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Our Message-IDs: '<3f2a...(20 hex).mailroll-receipt@126.com>'
OUR_MESSAGE_ID = re.compile(r"[\w.\-]*\.mailroll-(?:receipt|reminder|notice)@[\w.\-]+", re.ASCII)


def new_message_id(config, kind: str) -> str:
    """A Message-ID (without <>) that says it is ours: '...mailroll-receipt@126.com'."""
    domain = config.smtp.from_addr.rsplit("@", 1)[-1] if "@" in config.smtp.from_addr else socket.getfqdn()
    # short enough that the header is never folded: '<20 hex>.mailroll-reminder@domain'
    return f"{uuid.uuid4().hex[:20]}.mailroll-{kind}@{domain}"


_ADDRESS_FORBIDDEN = set('<>()[]\\,;:"')


def valid_address(address: str | None) -> bool:
    """Whether ``address`` may be a recipient: one '@' between two non-empty halves, at most
    254 characters, no white space of any kind (also U+2028/U+2029 line and paragraph
    separators), no control or format character, none of <>()[]\\,;:". A sender can write
    anything into From; such an address is refused, never handed to the mail library."""
    if not address or len(address) > 254 or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not local or not domain or "." not in domain:
        return False
    return not any(
        ch in _ADDRESS_FORBIDDEN or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs")
        for ch in address
    )


def is_our_message_id(message_id: str | None) -> bool:
    return bool(message_id and OUR_MESSAGE_ID.fullmatch(message_id.strip().strip("<>")))


def compose(
    config,
    *,
    kind: str,
    to: list[str],
    subject: str,
    body: str,
    message_id: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    now: datetime | None = None,
    cc: list[str] | None = None,
    attachments: list[tuple[str, bytes]] | None = None,
) -> EmailMessage:
    """The mail as it goes out (UTF-8 text). ``cc``: copies, shown in a Cc header;
    ``attachments``: (file name, content) pairs (the notice's blank form)."""
    msg = EmailMessage()
    msg["From"] = formataddr((config.campaign.name, config.smtp.from_addr))
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(config.campaign.timezone))
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
        refs = [r.strip("<>") for r in (references or []) if r] + [in_reply_to.strip("<>")]
        seen: list[str] = []
        for r in refs:
            if r not in seen:
                seen.append(r)
        msg["References"] = " ".join(f"<{r}>" for r in seen[-20:])
    if kind not in ("notice", "reply"):  # the notice and staff's answers are people's letters
        msg["Auto-Submitted"] = "auto-replied" if kind == "receipt" else "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Mailroll"] = kind
    msg.set_content(body, cte="base64")  # 7-bit safe for any server
    for name, data in attachments or []:
        maintype, subtype = _mime_type(name)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def _mime_type(name: str) -> tuple[str, str]:
    import mimetypes

    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    maintype, subtype = guessed.split("/", 1)
    return maintype, subtype


# How the mail templates are read; scripts/messages.py extracts their ``_()`` with the same.
TEMPLATE_OPTIONS = {"trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": True}


def template_env(config):
    """Jinja2 environment: ``reminders.templates_dir``, then the config's folder, then built-in.
    ``_()`` in a template is the message catalog's Chinese (the mail goes to the units, in
    Chinese, whatever the language of the command that sends it)."""
    import jinja2

    from reconcile.i18n import translations

    dirs = []
    if config.reminders.templates_dir:
        dirs.append(str(config.reminders.templates_dir))
    dirs.append(str(Path(config.path).parent))
    dirs.append(str(TEMPLATES))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs, encoding="utf-8"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=TEMPLATE_OPTIONS["trim_blocks"],
        lstrip_blocks=TEMPLATE_OPTIONS["lstrip_blocks"],
        keep_trailing_newline=TEMPLATE_OPTIONS["keep_trailing_newline"],
    )
    env.install_gettext_translations(translations("zh"), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(config, name: str, **context) -> tuple[str, str]:
    """Render template ``name`` (e.g. 'reminder.j2'): first line 'Subject: ...', a blank line,
    then the body. Returns (subject, body)."""
    text = template_env(config).get_template(name).render(**context)
    head, _, body = text.partition("\n")
    if not head.lower().startswith("subject:"):
        raise ValueError(f"template {name} must start with a 'Subject: ...' line")
    return " ".join(head[len("subject:") :].split()), body.lstrip("\n")


def contact_lines(config) -> list[str]:
    """The office's contacts (``[campaign] contacts``), one line each, as receipts and
    reminders end: "吴玉祥（山西省科学技术厅），电话 0351-4060103"."""
    from reconcile.i18n import N_, zh

    out = []
    for c in config.campaign.contacts:
        line = zh(N_("{name} ({org})")).format(name=c.name, org=c.org) if c.org else c.name
        if c.phone:
            line = zh(N_("{who}, phone {phone}")).format(who=line, phone=c.phone)
        out.append(line)
    return out
