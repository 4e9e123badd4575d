"""Open a zip only after reading what its directory claims: a few MB of central directory can list
a million entries, and ``zipfile.ZipFile`` turns every one into an object before anyone can count
them (gigabytes of memory for a small attachment).

``open_zip(source)`` reads the end-of-central-directory record (and its ZIP64 form) first, in
constant memory, and refuses a zip that lists more than ``MAX_ENTRIES`` entries or whose directory
is larger than ``MAX_DIRECTORY_BYTES`` with ``TooManyEntries`` (a message in words); otherwise it
returns ``zipfile.ZipFile(source)``. Used wherever mailroll opens a zip a sender made: sniffing,
the .docx table search, the sheet and report checks, archive expansion.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

MAX_ENTRIES = 65_535  # a real archive of photos or a .docx lists far fewer
MAX_DIRECTORY_BYTES = 32 * 1024 * 1024
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_TAIL = 22 + 65535  # the EOCD record plus the longest comment


class TooManyEntries(zipfile.BadZipFile):
    """The zip's directory is too large to read (a subclass of BadZipFile: callers that treat a
    damaged zip as unreadable treat this one so, with this message)."""


def directory_size(fp: BinaryIO) -> tuple[int, int] | None:
    """(entries, central directory bytes) as the end records claim, or None when not found."""
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    start = max(0, size - _TAIL)
    fp.seek(start)
    tail = fp.read(size - start)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    cd_size = struct.unpack("<I", tail[at + 12 : at + 16])[0]
    loc = at - 20
    if loc >= 0 and tail[loc : loc + 4] == _ZIP64_LOCATOR:
        offset = struct.unpack("<Q", tail[loc + 8 : loc + 16])[0]
        if offset + 56 <= size:
            fp.seek(offset)
            rec = fp.read(56)
            if rec[:4] == _ZIP64_EOCD:
                entries, cd_size = struct.unpack("<QQ", rec[32:48])
    return entries, cd_size


def check_directory(fp: BinaryIO) -> None:
    """Raise TooManyEntries when the zip in ``fp`` claims too large a directory."""
    found = directory_size(fp)
    fp.seek(0)
    if found is None:
        return
    entries, cd_size = found
    if entries > MAX_ENTRIES:
        raise TooManyEntries(f"the archive lists {entries:,} files, more than {MAX_ENTRIES:,}: not opened")
    if cd_size > MAX_DIRECTORY_BYTES:
        raise TooManyEntries(
            f"the archive's list of files is {cd_size // (1024 * 1024):,} MB, "
            f"more than {MAX_DIRECTORY_BYTES // (1024 * 1024)} MB: not opened"
        )


def open_zip(source: Any) -> zipfile.ZipFile:
    """``zipfile.ZipFile(source)`` for reading, after ``check_directory``. ``source`` is a path,
    bytes or a binary file object."""
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(source)
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            check_directory(fp)
        return zipfile.ZipFile(source)
    check_directory(source)
    return zipfile.ZipFile(source)
