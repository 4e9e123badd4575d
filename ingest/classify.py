"""What a file is (``sniff``, from its bytes) and what it is for (``classify``, the campaign item).

``sniff(data, path) -> str`` looks at the content only, never at the name:

    xlsx xls docx doc wps et pdf zip 7z rar mp4 mov avi mkv webm flv wmv mpg 3gp jpeg png gif heic
    bmp webp eml text html unknown
    (and, outside the campaign's needs: pptx ppt odt ods msg tiff avif encrypted-office)

* Zip files are opened (bounded) to tell OOXML from plain zip: ``[Content_Types].xml`` plus
  ``word/`` → docx, ``xl/`` → xlsx, ``ppt/`` → pptx. A truncated zip that cannot be opened is
  still recognised from its first local file headers, so a cut-off .xlsx sniffs as ``xlsx`` and
  the sheet check reports it as damaged.
* OLE2 compound files (via olefile) by stream names: ``WordDocument`` → doc (``wps`` when the
  name says .wps: Kingsoft WPS writes Word-compatible streams), ``Workbook``/``Book`` → xls
  (``et`` when named .et), ``PowerPoint Document`` → ppt, ``__substg1.0_*`` → msg (Outlook),
  ``EncryptedPackage`` → ``encrypted-office`` (a password-protected .docx/.xlsx).
* Media and images via the ``filetype`` library (magic numbers).

``classify(part, template) -> kind`` (rules also in docs/CLASSIFY.md).
"""

# long: the sniffing table and the item rules, read together

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import filetype

from ingest.model import ARCHIVE, IMAGE, MESSAGE, OTHER, REPORT, STATISTICS, VIDEO, ExtractedPart
from ingest.zipdir import TooManyEntries, open_zip

HEAD_BYTES = 64 * 1024
DOCX_XML_MAX = 20 * 1024 * 1024  # bytes of word/document.xml read when looking for the template

VIDEO_TYPES = {"mp4", "mov", "avi", "mkv", "webm", "flv", "wmv", "mpg", "3gp"}
IMAGE_TYPES = {"jpeg", "png", "gif", "heic", "bmp", "webp", "tiff", "avif"}
ARCHIVE_TYPES = {"zip", "7z", "rar"}
SHEET_TYPES = {"xlsx", "xls", "et"}
DOC_TYPES = {"docx", "doc", "wps"}

VIDEO_EXTS = {
    ".mp4",
    ".mov",
    ".m4v",
    ".avi",
    ".wmv",
    ".flv",
    ".mkv",
    ".mpg",
    ".mpeg",
    ".3gp",
    ".webm",
    ".ts",
    ".vob",
    ".rmvb",
    ".rm",
    ".f4v",
    ".asf",
}
SHEET_EXTS = {".xlsx", ".xls", ".et", ".xlsm", ".ett"}
DOC_EXTS = {".docx", ".doc", ".wps", ".docm", ".wpt"}

STAT_STRONG = ("统计表", "情况表", "统计")
REPORT_WORDS = ("总结", "报告", "汇报")
VIDEO_WORDS = ("视频", "影像")

_FILETYPE_MAP = {
    "jpg": "jpeg",
    "apng": "png",
    "m4v": "mp4",
    "tif": "tiff",
    "mp4": "mp4",
    "mov": "mov",
    "avi": "avi",
    "mkv": "mkv",
    "webm": "webm",
    "flv": "flv",
    "wmv": "wmv",
    "mpg": "mpg",
    "3gp": "3gp",
    "png": "png",
    "gif": "gif",
    "webp": "webp",
    "bmp": "bmp",
    "heic": "heic",
    "avif": "avif",
}

_EML_FIELD = re.compile(
    rb"^(received|return-path|from|date|message-id|mime-version|subject|to|"
    rb"delivered-to|reply-to|x-[a-z0-9-]+|dkim-signature|content-type|"
    rb"authentication-results|arc-[a-z-]+|cc|sender|thread-[a-z]+|x-qq-[a-z-]+)"
    rb"[ \t]*:",
    re.I,
)


def _head(data: bytes | None, path: Path | None) -> bytes:
    if data is not None:
        return data[:HEAD_BYTES]
    if path is not None:
        try:
            with open(path, "rb") as f:
                return f.read(HEAD_BYTES)
        except OSError:
            return b""
    return b""


def _source(data: bytes | None, path: Path | None) -> Any:
    return io.BytesIO(data) if data is not None else path


def _sniff_zip(data: bytes | None, path: Path | None, head: bytes) -> str:
    names: list[str] = []
    try:
        with open_zip(_source(data, path)) as zf:
            names = [i.filename for i in zf.infolist()[:5000]]
    except TooManyEntries:
        return "zip"  # too many entries to be an Office file; expanding it says why not
    except Exception:  # noqa: BLE001 - truncated/damaged: read local headers from the head
        pos = 0
        while len(names) < 50:
            i = head.find(b"PK\x03\x04", pos)
            if i < 0 or i + 30 > len(head):
                break
            n = int.from_bytes(head[i + 26 : i + 28], "little")
            names.append(head[i + 30 : i + 30 + n].decode("cp437", "replace"))
            pos = i + 30
        # truncated OOXML: content types + folder prefixes appear early in the bytes
        for marker in (b"word/", b"xl/", b"ppt/"):
            if marker in head and b"[Content_Types].xml" in head:
                names.append(marker.decode())
    lower = [n.lower() for n in names]
    if any(n == "mimetype" for n in lower):
        text = head[30:200]
        if b"opendocument.text" in text:
            return "odt"
        if b"opendocument.spreadsheet" in text:
            return "ods"
    ooxml = "[content_types].xml" in lower
    if ooxml or any(n.startswith(("word/", "xl/", "ppt/")) for n in lower):
        if any(n.startswith("word/") for n in lower):
            return "docx"
        if any(n.startswith("xl/") for n in lower):
            return "xlsx"
        if any(n.startswith("ppt/") for n in lower):
            return "pptx"
    return "zip"


_KINGSOFT = {".wps": "wps", ".wpt": "wps", ".et": "et", ".ett": "et"}


def refine_by_name(sniffed: str, filename: str | None) -> str:
    """Kingsoft WPS writes .wps/.et in Word/Excel binary form: the name tells them apart."""
    ext = Path(filename).suffix.lower() if filename else ""
    if sniffed == "doc" and _KINGSOFT.get(ext) == "wps":
        return "wps"
    if sniffed == "xls" and _KINGSOFT.get(ext) == "et":
        return "et"
    return sniffed


def _sniff_ole(data: bytes | None, path: Path | None) -> str:
    try:
        import olefile

        ole = olefile.OleFileIO(_source(data, path))
        try:
            streams = {"/".join(e) for e in ole.listdir(streams=True, storages=True)}
        finally:
            ole.close()
    except Exception:  # noqa: BLE001 - damaged compound file
        return "unknown"
    low = {s.lower() for s in streams}
    if "encryptedpackage" in low:
        return "encrypted-office"
    if any(s.startswith("__substg1.0_") or s.startswith("__properties_version1.0") for s in low):
        return "msg"
    if "worddocument" in low:
        return "doc"
    if "workbook" in low or "book" in low:
        return "xls"
    if "powerpoint document" in low:
        return "ppt"
    if any("wps" in s for s in low):
        return "wps"
    return "unknown"


def _looks_like_eml(head: bytes) -> bool:
    text = head[:8192].lstrip(b"\r\n")
    lines = re.split(rb"\r?\n", text)
    fields = 0
    has_from_or_date = False
    for line in lines[:200]:
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            continue
        if _EML_FIELD.match(line):
            fields += 1
            if line[:5].lower() in (b"from:", b"date:") or line[:9].lower() == b"received:":
                has_from_or_date = True
        elif re.match(rb"^[\x21-\x39\x3b-\x7e]+:", line):
            continue  # some other header field
        else:
            return False
    return fields >= 2 and has_from_or_date


def _is_text(head: bytes) -> bool:
    if not head:
        return False
    if b"\x00" in head[:8192]:
        return False
    sample = head[:8192]
    for cs in ("utf-8", "gb18030"):
        try:
            text = sample.decode(cs)
        except UnicodeDecodeError:
            # a multi-byte character may be cut at the end of the sample
            try:
                text = sample[:-3].decode(cs)
            except UnicodeDecodeError:
                continue
        bad = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t\f")
        return bad <= len(text) // 100
    return False


def sniff(data: bytes | None, path: Path | None) -> str:
    """The type of a file from its content (see module docstring for the values). Never raises."""
    head = _head(data, path)
    if not head:
        return "unknown"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _sniff_zip(data, path, head)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return refine_by_name(_sniff_ole(data, path), path.name if path else None)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    kind = None
    try:
        kind = filetype.guess(head)
    except Exception:  # noqa: BLE001 - hostile bytes: filetype's guess is a hint only
        kind = None
    if kind is not None and kind.extension in _FILETYPE_MAP:
        return _FILETYPE_MAP[kind.extension]
    if head[4:8] == b"ftyp":  # ISO media filetype does not know (e.g. brand 'qt  ' variants)
        brand = head[8:12]
        if brand == b"qt  ":
            return "mov"
        if brand.startswith(b"3g"):
            return "3gp"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "heic"
        return "mp4"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<meta")):
        return "html"
    if _looks_like_eml(head):
        return "eml"
    if _is_text(head):
        return "text"
    return "unknown"


# ---------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------


def _ext(name: str) -> str:
    return Path(name).suffix.lower() if name else ""


def _name_says(name: str) -> str | None:
    """'statistics' | 'report' | None from the words in a file name."""
    if any(w in name for w in ("统计表", "情况表")):
        return STATISTICS
    if any(w in name for w in REPORT_WORDS):
        return REPORT
    if "统计" in name:
        return STATISTICS
    return None


_DOCX_TAG = re.compile(r"<(/?)w:(tbl|t)(?=[\s>/])[^<>]*>")


def table_text_docx(xml: str) -> list[str]:
    """The text of each top-level table in a .docx's ``word/document.xml``, in one linear pass.

    Tags are matched with ``[^<>]*`` (a failed try ends at the next ``<``), and the text after a
    ``<w:t>`` runs to the next ``<``: every character is looked at a bounded number of times, so
    crafted XML (thousands of unclosed ``<w:tbl>``) costs no more than its length."""
    tables: list[str] = []
    depth = 0
    current: list[str] = []
    for m in _DOCX_TAG.finditer(xml):
        closing, name = m.group(1), m.group(2)
        if name == "tbl":
            if closing:
                if depth == 1:
                    tables.append("".join(current))
                    current = []
                depth = max(0, depth - 1)
            elif not m.group(0).endswith("/>"):
                depth += 1
        elif depth and not closing and not m.group(0).endswith("/>"):
            end = xml.find("<", m.end())
            current.append(xml[m.end() : end if end >= 0 else len(xml)])
    return tables


def _table_labels_docx(source: Any, labels: list[str]) -> int:
    """How many template labels appear in the tables of a .docx (bounded read, linear scan)."""
    try:
        with open_zip(source) as zf:
            info = zf.getinfo("word/document.xml")
            if info.file_size > DOCX_XML_MAX:
                return 0
            with zf.open(info) as f:
                xml = f.read(DOCX_XML_MAX + 1).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - hostile file: an unreadable docx counts no images
        return 0
    found = set()
    for text in table_text_docx(xml[:DOCX_XML_MAX]):
        found |= {lab for lab in labels if lab in text}
    return len(found)


def _labels_in_ole(data: bytes | None, path: Path | None, labels: list[str]) -> int:
    """Template labels stored as UTF-16LE text in a .doc/.wps (Word keeps Chinese text so)."""
    try:
        if data is not None:
            blob = data
        elif path is not None:
            blob = path.read_bytes()[: 50 * 1024 * 1024]
        else:
            return 0
    except OSError:
        return 0
    return sum(1 for lab in labels if lab.encode("utf-16-le") in blob)


def _looks_like_template(part: ExtractedPart, sniffed: str, template: Any) -> bool:
    labels = list(getattr(template, "labels", []) or [])
    if not labels:
        return False
    need = min(2, len(labels))
    if sniffed == "docx":
        src = io.BytesIO(part.data) if part.data is not None else part.spool
        return src is not None and _table_labels_docx(src, labels) >= need
    if sniffed in ("doc", "wps"):
        return _labels_in_ole(part.data, part.spool, labels) >= need
    return False


def classify(part: ExtractedPart, template: Any = None) -> str:
    """The campaign kind of a part (statistics, report, video, image, archive, message, other).

    Sets ``part.sniffed_type`` if it was not set yet. Never raises."""
    if part.sniffed_type is None:
        part.sniffed_type = (
            sniff(part.data, part.spool) if (part.data is not None or part.spool) else "unknown"
        )
    part.sniffed_type = st = refine_by_name(part.sniffed_type, part.filename)
    name = part.filename or ""
    ext = _ext(name)
    declared = (part.declared_type or "").lower()
    said = _name_says(name)

    if st == "eml" or declared in ("message/rfc822", "message/global"):
        return MESSAGE
    if st in ARCHIVE_TYPES:
        # a zip posing as .xlsx/.docx is judged as what its name claims, so the check says why
        # it is not a valid sheet/document
        if st == "zip" and ext in SHEET_EXTS:
            return STATISTICS
        if st == "zip" and ext in DOC_EXTS:
            return said or REPORT
        return ARCHIVE
    if st in VIDEO_TYPES:
        return VIDEO
    if st in IMAGE_TYPES:
        return IMAGE
    if st in SHEET_TYPES:
        return STATISTICS
    if st in DOC_TYPES:
        if said:
            return said
        return STATISTICS if _looks_like_template(part, st, template) else REPORT
    if st in ("pdf", "odt"):
        return STATISTICS if said == STATISTICS else REPORT
    if st == "ods":
        return STATISTICS
    if st == "encrypted-office":
        # a password-protected .docx/.xlsx: the check reports the password
        if ext in SHEET_EXTS:
            return STATISTICS
        return said or REPORT
    if st in ("unknown", "text", "html") or st is None:
        # a damaged file that claims by its name to be a campaign item is judged as that item,
        # so the unit is told what is wrong instead of the file being silently ignored
        if ext in VIDEO_EXTS or declared.startswith("video/"):
            return VIDEO
        if ext in SHEET_EXTS:
            return STATISTICS
        if ext in DOC_EXTS or ext == ".pdf":
            return said or REPORT
    if any(w in name for w in VIDEO_WORDS) and (declared.startswith("video/") or ext in VIDEO_EXTS):
        return VIDEO
    return OTHER
