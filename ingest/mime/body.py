"""The content of a leaf entity, and the text of the message body.

``payload_bytes(entity)`` undoes an entity's Content-Transfer-Encoding (tolerant base64,
quoted-printable, uuencode) and says in words what was damaged. ``finish_body`` turns the
text/plain and text/html parts found into ``ParsedMessage.body_text`` (the plain text, else the
text of the HTML via ``html_to_text``), ``html`` and ``links``, bounded to ``BODY_TEXT_MAX`` and
``HTML_MAX``. ``parse_message`` and the IMAP streaming path both use it, so both fill a message
alike.
"""

from __future__ import annotations

import logging
import quopri
import re
import unicodedata
from collections.abc import Sequence
from email.message import Message
from typing import Any

from ingest.mime.text import bounded_utf8, tolerant_b64
from ingest.model import ParsedMessage

log = logging.getLogger("ingest.mime")  # one logger for the whole package

BODY_TEXT_MAX = 64 * 1024  # bytes of UTF-8 kept in ParsedMessage.body_text
HTML_MAX = 1024 * 1024  # bytes of HTML kept (links live at the end of NetEase mail)


def payload_bytes(entity: Message, spill: Any = None) -> tuple[bytes, str | None]:
    """The decoded content of a leaf entity. Returns (bytes, problem in words or None).

    ``spill`` (``spill.Spill``) gives back the runs set aside before parsing, if any."""
    # the stored payload: get_payload(decode=False) would already decode 8-bit text lossily
    raw = getattr(entity, "_payload", None)
    if isinstance(raw, list) or raw is None:
        return b"", None
    if spill is not None and spill.has_tokens(raw):
        raw = spill.expand(raw)
        if "uu" in str(entity.get("Content-Transfer-Encoding", "") or "").lower():
            entity.set_payload(raw.decode("ascii", "surrogateescape"))  # get_payload reads it
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    cte = str(entity.get("Content-Transfer-Encoding", "") or "").strip().lower()
    if cte == "base64":
        out, damaged = tolerant_b64(data)
        return out, (
            f"the base64 data is incomplete or damaged; {len(out):,} bytes could be decoded"
        ) if damaged else None
    if cte == "quoted-printable":
        return quopri.decodestring(data), None
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        try:
            decoded = entity.get_payload(decode=True)
            return decoded if isinstance(decoded, bytes) else b"", None
        except Exception:  # noqa: BLE001 - hostile data: recorded as a defect
            return data, "the uuencoded data could not be decoded"
    return data, None


def html_to_text(html: str) -> str:
    """Visible text of an HTML body (script/style dropped, block ends become new lines)."""
    try:
        import lxml.html

        doc = lxml.html.document_fromstring(html[:HTML_MAX])
        for bad in list(doc.iter("script", "style", "head")):
            bad.drop_tree()
        for el in doc.iter("br", "p", "div", "tr", "li", "h1", "h2", "h3", "table"):
            el.tail = "\n" + (el.tail or "")
        text = doc.text_content()
    except Exception:  # noqa: BLE001 - empty or unparseable HTML: strip tags crudely
        text = re.sub(r"<[^>]*>", " ", html[:HTML_MAX])
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n", text).strip()


def finish_body(
    parsed: ParsedMessage, plain: list[str], html: list[str], extra_text: Sequence[str] = ()
) -> str | None:
    """Set ``parsed.html``, ``parsed.body_text`` and ``parsed.links`` from the text parts found.

    ``plain``/``html`` are the decoded text/plain and text/html bodies in message order (forwarded
    ones after the main one). The body is the plain text, or the text of the HTML when there is
    no plain text, bounded to 64 KiB; links (big attachments, cloud drives) are looked for in both.
    Used by ``parse_message`` and by the IMAP streaming path, so both fill a message alike.
    Returns a defect in words when links could not be read, else None."""
    joined_html = "\n".join(html)
    parsed.html = bounded_utf8(joined_html, HTML_MAX)
    main_plain = "\n".join(plain)
    text = main_plain if main_plain.strip() else (html_to_text(parsed.html) if joined_html else "")
    if extra_text:
        text += "\n" + "\n".join(extra_text)
    parsed.body_text = bounded_utf8(_clean_body(text), BODY_TEXT_MAX)
    try:  # big-attachment / cloud-drive links in the text and HTML (also of forwarded messages)
        from ingest.links import find_links

        parsed.links = find_links(parsed.body_text, parsed.html)
    except Exception as e:  # noqa: BLE001 - links are a bonus, never a reason to fail the message
        log.exception("finding links failed")
        return f"links in the message text could not be read ({type(e).__name__})"
    return None


def _clean_body(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
