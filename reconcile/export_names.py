"""Names of exported files (``mailroll export``, the web's downloads): safe on Windows and Linux,
and named by what the file *is*.

* The extension is the one of the type sniffed from the content (``parts.sniffed_type``,
  ingest/classify.py), never the sender's: a .docx sent as ``总结报告.hta`` is exported and
  downloaded as ``….docx``; a type with no safe extension (HTML, unknown bytes) as ``.bin``, so
  a double-click never runs what a stranger sent. 清单 keeps the name as sent.
* No reserved characters (``<>:"/\\|?*``, control characters), no reserved device names (CON,
  NUL, COM1 ...), no trailing dot or space.
* Names of our own files in the export folder (``清单.*``, the manifest ``.mailroll-export.json``,
  any dotfile: our temporary files start with a dot) are prefixed with ``_``: a unit named
  ``清单.xlsx`` gets the folder ``_清单.xlsx`` and never collides with the list.
* At most 255 bytes in UTF-8 (the limit of a file name on Linux and macOS file systems; 85 Chinese
  characters): a longer name is cut on a character boundary and ends with ``~`` and 8 hex
  digits of the full name's sha256, so two long names that begin alike stay apart.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath

MAX_BYTES = 255
OUR_NAMES = re.compile(r"^(\.|清单\.)", re.IGNORECASE)  # dotfiles, 清单.xlsx / 清单.csv
UNSAFE_EXT = ".bin"

_BAD_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,10}$")

# sniffed type (ingest/classify.py sniff) -> the extension a file of that type is saved with;
# a type not listed here (html, eml, unknown ...) is saved as .bin
TYPE_EXTENSIONS = {
    **{t: f".{t}" for t in ("xlsx", "xls", "et", "docx", "doc", "wps", "pdf", "pptx", "ppt")},
    **{t: f".{t}" for t in ("odt", "ods", "zip", "7z", "rar", "msg")},
    **{t: f".{t}" for t in ("mp4", "mov", "avi", "mkv", "webm", "flv", "wmv", "mpg", "3gp")},
    **{t: f".{t}" for t in ("png", "gif", "heic", "bmp", "webp", "avif")},
    "jpeg": ".jpg",
    "tiff": ".tif",
    "text": ".txt",
}
# a password-protected Office file sniffs as one type: the sender's extension tells which
ENCRYPTED_OFFICE = {".docx", ".xlsx", ".pptx", ".doc", ".xls", ".ppt"}


def detected_ext(sniffed_type: str | None, filename: str | None = None) -> str:
    """The extension for a file of the sniffed type (``.bin`` when it has no safe one)."""
    sniffed = (sniffed_type or "").lower()
    if sniffed == "encrypted-office":
        sent = PurePath(filename or "").suffix.lower()
        return sent if sent in ENCRYPTED_OFFICE else UNSAFE_EXT
    return TYPE_EXTENSIONS.get(sniffed, UNSAFE_EXT)


def name_by_type(filename: str | None, sniffed_type: str | None, fallback: str) -> str:
    """The sender's file name with the extension of what the file is (a download's name)."""
    stem = PurePath(filename or "").stem or fallback
    return safe_name(stem, detected_ext(sniffed_type, filename))


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def safe_name(name: str, ext: str = "", limit: int = MAX_BYTES) -> str:
    """``name + ext`` made safe as one path component (see the module docstring), at most
    ``limit`` bytes of UTF-8."""
    ext = ext if _SAFE_EXT.match(ext or "") else ""
    stem = _BAD_CHARS.sub("_", name).strip().rstrip(". ") or "_"
    if _RESERVED.match(stem) or _RESERVED.match(stem + ext) or OUR_NAMES.match(stem + ext):
        stem = "_" + stem
    room = limit - len(ext.encode("utf-8"))
    if len(stem.encode("utf-8")) > room:
        tag = "~" + hashlib.sha256((name + ext).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = _cut(stem, room - len(tag)).rstrip(". ") + tag
    return stem + ext
