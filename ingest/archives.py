"""Open zip / 7z / rar attachments and add their members as parts.

``expand(parsed, limits, spool_dir)`` walks ``parsed.parts`` (including members it appends, so
archives inside archives are opened too, up to ``limits.max_archive_depth``). Each member becomes
an ``ExtractedPart`` with ``origin='archive'``, ``parent`` = index of the archive part and a
``location`` like ``材料.zip/科技周/统计表.xlsx``.

Bounds, per message: at most ``limits.max_archive_members`` members extracted in all,
``limits.max_archive_total_bytes`` uncompressed bytes in all; a member whose declared size is more
than ``limits.max_compression_ratio`` times its packed size (and over 1 MiB) is not extracted and
the archive part gets the error ``archive looks like a zip bomb (...)``. Output is also counted
while it is written, so an archive that lies about sizes cannot exceed the budget.

An archive that lists more than ``zipdir.MAX_ENTRIES`` (65,535) files is not opened: a zip's count
is read from its end records before ``zipfile`` lists anything (``ingest/zipdir.py``); a 7z or rar
is counted once listed (the memory and time that listing takes are bounded by the worker process
it runs in: ``ingest/workers.py``).

Archives are recognised by content (``classify.sniff``), so a .xlsx/.docx (OOXML) is never
opened here, while a plain zip misnamed ``统计表.xlsx`` is: its members are listed, and the part
itself is still judged as the sheet it claims to be (see docs/CLASSIFY.md).

Member names are for display only. Content goes to memory (small members) or to spool files
with random names in ``spool_dir``: a name like ``../../etc/passwd`` or ``/tmp/x`` is shown, never
used as a path. Directories, ``__MACOSX/``, ``._*``, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``
are skipped.

Zip names without the UTF-8 flag (bit 11) come from Chinese Windows in GBK: the bytes (which
zipfile decoded as cp437) are re-read as UTF-8 if valid, else GB18030; an Info-ZIP Unicode Path
extra field (0x7075) wins when present. 7z uses py7zr; rar uses rarfile, which needs an external
extractor (unrar, unar, 7z or bsdtar from libarchive-tools).
"""

# long: one backend per archive format (zip, 7z, rar) behind one interface, and the shared budget

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from ingest.classify import ARCHIVE_TYPES, sniff
from ingest.mime import sanitize_filename
from ingest.model import ExtractedPart, ParsedMessage
from ingest.sizes import human_size
from ingest.zipdir import MAX_ENTRIES, TooManyEntries, open_zip

IN_MEMORY_MAX = 1024 * 1024  # members up to this size stay in memory
BOMB_MIN_BYTES = 1024 * 1024  # below this a high ratio is harmless (a blank page compresses well)
CHUNK = 256 * 1024
SKIP_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}

ENCRYPTED = "the archive is password-protected"


class _Budget(Exception):
    """Raised by a bounded writer when a member produces more bytes than allowed."""


@dataclass
class _Member:
    name: str  # decoded display path inside the archive
    size: int  # declared uncompressed size
    packed: int | None  # declared compressed size (None when unknown, e.g. solid 7z)
    encrypted: bool
    is_dir: bool
    handle: Any  # backend object to open the member


def _copy(src, out) -> None:
    """Copy an archive member to its sink in chunks (the sink enforces the size budget)."""
    while chunk := src.read(CHUNK):
        out.write(chunk)


def _display_path(name: str) -> str:
    """An archive member path for display: '/' separators, no '', '.', '..' or drive parts."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":
        parts = parts[1:]
    cleaned = [sanitize_filename(p) or "_" for p in parts]
    return "/".join(cleaned)


def _skipped(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts:
        return True
    if any(p.lower() == "__macosx" for p in parts):
        return True
    base = parts[-1]
    return base.lower() in SKIP_NAMES or base.startswith("._")


# ---------------------------------------------------------------------------------------------
# Zip names
# ---------------------------------------------------------------------------------------------


def _unicode_path_extra(extra: bytes) -> str | None:
    """Info-ZIP Unicode Path extra field (0x7075): version, crc32 of the raw name, UTF-8 name."""
    i = 0
    while i + 4 <= len(extra):
        hid, size = struct.unpack("<HH", extra[i : i + 4])
        body = extra[i + 4 : i + 4 + size]
        if hid == 0x7075 and len(body) > 5 and body[0] == 1:
            try:
                return body[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
        i += 4 + size
    return None


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """The real name of a zip member: UTF-8 flag, Unicode Path extra field, else the raw bytes
    re-read as UTF-8 or GB18030 (Chinese Windows' 'compressed folder' writes GBK)."""
    if info.flag_bits & 0x800:
        return info.filename
    uni = _unicode_path_extra(info.extra or b"")
    if uni:
        return uni
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    if raw.isascii():
        return info.filename
    for cs in ("utf-8", "gb18030"):
        try:
            return raw.decode(cs).replace("\\", "/")
        except UnicodeDecodeError:
            continue
    return info.filename


# ---------------------------------------------------------------------------------------------
# Backends: each yields the member list and opens members as binary streams
# ---------------------------------------------------------------------------------------------


def _open_source(part: ExtractedPart) -> BinaryIO:
    if part.data is not None:
        return io.BytesIO(part.data)
    assert part.spool is not None, "an archive is either in memory or spooled"
    return cast(BinaryIO, open(part.spool, "rb"))


class _ZipBackend:
    def __init__(self, fp: BinaryIO):
        self.zf = open_zip(fp)

    def members(self) -> list[_Member]:
        out = []
        for info in self.zf.infolist():
            out.append(
                _Member(
                    name=zip_member_name(info),
                    size=info.file_size,
                    packed=info.compress_size,
                    encrypted=bool(info.flag_bits & 0x1),
                    is_dir=info.is_dir(),
                    handle=info,
                )
            )
        return out

    def extract(self, wanted: list[_Member], sink: Callable[[_Member], _Sink]) -> dict[int, str]:
        errors: dict[int, str] = {}
        for m in wanted:
            out = sink(m)
            try:
                with self.zf.open(m.handle) as src:
                    _copy(src, out)
            except _Budget as e:
                errors[id(m)] = str(e)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
                errors[id(m)] = _zip_error(e)
            finally:
                out.close()
        return errors

    def close(self) -> None:
        self.zf.close()


def _zip_error(e: Exception) -> str:
    text = str(e)
    if "CRC" in text:
        return "the file inside the archive is damaged (checksum mismatch)"
    if isinstance(e, NotImplementedError) or "compression method" in text:
        return f"the file inside the archive uses a compression method that cannot be read ({text})"
    return f"the file inside the archive is damaged ({text or type(e).__name__})"


class _SevenZipBackend:
    def __init__(self, fp: BinaryIO, budget: int):
        import py7zr

        self.py7zr = py7zr
        self.fp = fp
        self.budget = budget
        self.sz = py7zr.SevenZipFile(fp, mode="r", max_extract_size=budget)
        self.encrypted = self.sz.needs_password()

    def members(self) -> list[_Member]:
        _check_count(len(self.sz.files))
        out = []
        for info in self.sz.list():
            out.append(
                _Member(
                    name=info.filename,
                    size=info.uncompressed or 0,
                    packed=info.compressed,
                    encrypted=self.encrypted,
                    is_dir=info.is_directory,
                    handle=info.filename,
                )
            )
        return out

    # long: py7zr's writer-factory protocol wants its classes defined where the sinks are known
    def extract(self, wanted: list[_Member], sink: Callable[[_Member], _Sink]) -> dict[int, str]:
        from py7zr.helpers import get_sanitized_output_path
        from py7zr.io import Py7zIO, WriterFactory

        errors: dict[int, str] = {}
        by_key: dict[str, _Member] = {}
        targets = []
        for m in wanted:
            try:
                key = get_sanitized_output_path(m.handle, None).as_posix()
            except Exception:  # noqa: BLE001 - py7zr refuses traversal names: skip the member
                errors[id(m)] = "the file has an unsafe path inside the archive and was not extracted"
                continue
            if key in by_key:
                errors[id(m)] = "a second file with the same name inside the archive was not extracted"
                continue
            by_key[key] = m
            targets.append(m.handle)
        sinks: dict[str, _Sink] = {}

        class _Writer(Py7zIO):
            def __init__(self, s: _Sink):
                self.s = s
                self.n = 0

            def write(self, data):
                self.s.write(bytes(data))
                self.n += len(data)
                return len(data)

            def read(self, size=None):
                return b""

            def seek(self, offset, whence=0):
                return 0

            def flush(self):
                return None

            def size(self):
                return self.n

        class _Factory(WriterFactory):
            def create(self, filename: str) -> Py7zIO:
                m = by_key.get(filename) or by_key.get(Path(filename).as_posix())
                if m is None:
                    raise _Budget("unexpected member")
                s = sinks.get(filename) or sink(m)
                sinks[filename] = s
                return _Writer(s)

        if targets:
            try:
                self.sz.reset()
                self.sz.extract(targets=targets, factory=_Factory())
            except _Budget as e:
                for m in by_key.values():
                    errors.setdefault(id(m), str(e))
            except MemoryError:
                raise  # the worker's memory limit: recorded as such by the worker
            except Exception as e:  # noqa: BLE001 - damaged 7z, unsupported method, size limit
                for key, m in by_key.items():
                    if key not in sinks or sinks[key].failed:
                        errors.setdefault(id(m), f"the file inside the archive could not be extracted ({e})")
        for s in sinks.values():
            s.close()
        for key, m in by_key.items():
            if key not in sinks and id(m) not in errors and m.size > 0:
                errors[id(m)] = "the file inside the archive could not be extracted"
        return errors

    def close(self) -> None:
        self.sz.close()


def _check_count(entries: int) -> None:
    """A 7z or rar lists its files in a header with no cheap count ahead (zipdir does it for
    zips): once listed, as many as a zip may have at most are looked at."""
    if entries > MAX_ENTRIES:
        raise TooManyEntries(f"the archive lists {entries:,} files, more than {MAX_ENTRIES:,}: not opened")


def _rar_name(info: Any) -> str:
    """A rar member name: RAR 4 names without the Unicode flag (0x200) are in the sender's
    Windows code page (GBK in China); rarfile guesses UTF-16 for them, so decode the raw bytes."""
    raw = getattr(info, "orig_filename", None)
    flags = getattr(info, "flags", 0) or 0
    if isinstance(raw, bytes) and not flags & 0x200 and b"\0" not in raw:
        for cs in ("utf-8", "gb18030"):
            try:
                return raw.decode(cs).replace("\\", "/")
            except UnicodeDecodeError:
                continue
    return str(info.filename).replace("\\", "/")


class _RarBackend:
    def __init__(self, fp: BinaryIO | str):
        import rarfile

        self.rarfile = rarfile
        self.rf = rarfile.RarFile(fp)
        self.encrypted_headers = self.rf.needs_password()

    def members(self) -> list[_Member]:
        _check_count(len(self.rf.infolist()))
        out = []
        for info in self.rf.infolist():
            out.append(
                _Member(
                    name=_rar_name(info),
                    size=info.file_size,
                    packed=info.compress_size,
                    encrypted=info.needs_password(),
                    is_dir=info.is_dir(),
                    handle=info,
                )
            )
        return out

    def extract(self, wanted: list[_Member], sink: Callable[[_Member], _Sink]) -> dict[int, str]:
        errors: dict[int, str] = {}
        for m in wanted:
            out = sink(m)
            try:
                with self.rf.open(m.handle) as src:
                    _copy(src, out)
            except _Budget as e:
                errors[id(m)] = str(e)
            except self.rarfile.RarCannotExec:
                errors[id(m)] = (
                    "rar files cannot be opened on this server: install unrar or bsdtar (libarchive-tools)"
                )
            except MemoryError:
                raise  # the worker's memory limit: recorded as such by the worker
            except Exception as e:  # noqa: BLE001 - hostile archive: record why the member was not extracted
                errors[id(m)] = f"the file inside the rar archive could not be extracted ({e})"
            finally:
                out.close()
        return errors

    def close(self) -> None:
        self.rf.close()


# ---------------------------------------------------------------------------------------------
# Output: memory first, a spool file with a random name once large
# ---------------------------------------------------------------------------------------------


class _Sink:
    def __init__(self, spool_dir: Path, cap: int, cap_reason: str, state: _State | None = None):
        self.spool_dir = spool_dir
        self.cap = cap
        self.cap_reason = cap_reason
        self.state = state  # the message's budget: charged with the bytes actually written
        self.buf: io.BytesIO | None = io.BytesIO()
        self.file: Any = None
        self.path: Path | None = None
        self.n = 0
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.n + len(data) > self.cap:
            self.failed = True
            raise _Budget(self.cap_reason)
        if self.state is not None:
            if len(data) > self.state.bytes_left:
                self.failed = True
                raise _Budget(self.state.over_budget)
            self.state.bytes_left -= len(data)
        self.n += len(data)
        if self.buf is not None and self.n > IN_MEMORY_MAX:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="member-", dir=self.spool_dir)
            self.file = os.fdopen(fd, "wb")
            self.path = Path(name)
            self.file.write(self.buf.getvalue())
            self.buf = None
        if self.buf is not None:
            self.buf.write(data)
        else:
            self.file.write(data)

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()

    def discard(self) -> None:
        self.close()
        if self.state is not None:
            self.state.bytes_left += self.n  # nothing of it is kept
        if self.path is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
        self.path = None
        self.buf = None

    def fill(self, part: ExtractedPart) -> None:
        part.size = self.n
        if self.buf is not None:
            part.data = self.buf.getvalue()
        else:
            part.spool = self.path


# ---------------------------------------------------------------------------------------------
# expand
# ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    members_left: int
    bytes_left: int  # of the message's budget, counted as bytes are written
    declared_left: int = 0  # ... as the archives declare them (refuses early what would not fit)
    over_budget: str = ""
    limit: str = ""  # the budget in words, with the key that sets it


def expand(parsed: ParsedMessage, limits: Any, spool_dir: Path) -> None:
    """Append the members of every archive part of ``parsed`` as parts (see module docstring).

    Never raises on bad archives: the archive part gets ``error`` in words."""
    spool_dir = Path(spool_dir)
    extracted = getattr(limits, "max_extracted_bytes", limits.max_archive_total_bytes)
    budget = min(limits.max_archive_total_bytes, extracted)
    key = (
        "limits.max_extracted_bytes"
        if extracted < limits.max_archive_total_bytes
        else "limits.max_archive_total_bytes"
    )
    state = _State(
        members_left=limits.max_archive_members,
        bytes_left=budget,
        declared_left=budget,
        over_budget=f"the files inside the archives unpack to more than the limit of {human_size(budget)} "
        f"for one message ({key}): not extracted",
        limit=f"{human_size(budget)} for one message ({key})",
    )
    depth: dict[int, int] = {}
    i = 0
    while i < len(parsed.parts):
        part = parsed.parts[i]
        if part.parent is not None and part.origin == "archive":
            depth[i] = depth.get(part.parent, 0) + 1
        else:
            depth[i] = 0
        if part.error is None and (part.data is not None or part.spool is not None):
            if part.sniffed_type is None:
                part.sniffed_type = sniff(part.data, part.spool)
            if part.sniffed_type in ARCHIVE_TYPES:
                if depth[i] >= limits.max_archive_depth:
                    part.error = (
                        f"archive nested more than {limits.max_archive_depth} levels deep "
                        "inside other archives: not opened"
                    )
                else:
                    try:
                        _expand_one(parsed, i, limits, spool_dir, state)
                    except MemoryError:
                        raise  # the worker's memory limit: recorded as such by the worker
                    except Exception as e:  # noqa: BLE001 - last line of defence
                        part.error = (
                            part.error or f"the archive could not be opened ({type(e).__name__}: {e})"
                        )
        i += 1


def _open_backend(part: ExtractedPart, fp: BinaryIO, budget: int) -> Any:
    if part.sniffed_type == "zip":
        return _ZipBackend(fp)
    if part.sniffed_type == "7z":
        return _SevenZipBackend(fp, budget)
    # rarfile hands a path to the external extractor; a file object would be copied per member
    return _RarBackend(str(part.spool) if part.data is None and part.spool is not None else fp)


def _open_error(kind: str, e: Exception) -> str:
    if isinstance(e, TooManyEntries):
        return str(e)
    name = type(e).__name__
    text = str(e)
    if "password" in name.lower() or "password" in text.lower() or "encrypt" in text.lower():
        return ENCRYPTED
    if kind == "rar" and ("cannot" in text.lower() and "exec" in text.lower() or name == "RarCannotExec"):
        return "rar files cannot be opened on this server: install unrar or bsdtar (libarchive-tools)"
    return f"the {kind} archive is damaged and cannot be opened ({text or name})"


def _expand_one(parsed: ParsedMessage, index: int, limits: Any, spool_dir: Path, state: _State) -> None:
    part = parsed.parts[index]
    kind = part.sniffed_type
    fp = _open_source(part)
    try:
        try:
            backend = _open_backend(part, fp, max(state.bytes_left, 1))
            members = backend.members()
        except MemoryError:
            raise  # over the worker's memory limit: the worker records it as such, not as damage
        except Exception as e:  # noqa: BLE001 - hostile archive: record why it cannot be opened
            part.error = _open_error(kind or "archive", e)
            return
        try:
            _extract_members(parsed, index, backend, members, limits, spool_dir, state)
        finally:
            try:
                backend.close()
            except Exception:  # noqa: BLE001 - closing only; the result is already recorded
                pass
    finally:
        fp.close()


# long: one pass over the members with the shared byte budget; its steps share that state
def _extract_members(
    parsed: ParsedMessage,
    index: int,
    backend: Any,
    members: list[_Member],
    limits: Any,
    spool_dir: Path,
    state: _State,
) -> None:
    part = parsed.parts[index]
    problems: list[str] = []
    wanted: list[_Member] = []
    archive_size = part.size or (
        len(part.data) if part.data is not None else Path(part.spool).stat().st_size if part.spool else 0
    )
    files = [m for m in members if not m.is_dir and not _skipped(m.name)]
    if not files:
        problems.append("the archive contains no files")
    if any(m.encrypted for m in files) or getattr(backend, "encrypted", False):
        problems.append(ENCRYPTED)
    # a solid 7z gives no per-file packed size: judge the whole archive's ratio instead
    declared_total = sum(m.size for m in files)
    whole_ratio = declared_total / max(archive_size, 1)
    bomb_reported = False
    for m in files:
        if m.encrypted or getattr(backend, "encrypted", False):
            continue
        packed = m.packed if m.packed is not None else None
        ratio = (m.size / max(packed, 1)) if packed is not None else whole_ratio
        if m.size > BOMB_MIN_BYTES and ratio > limits.max_compression_ratio:
            if not bomb_reported:
                problems.append(
                    f"archive looks like a zip bomb ({_display_path(m.name) or 'a file'}: "
                    f"{human_size(m.size)} packed into {human_size(packed if packed is not None else archive_size)}, "
                    f"ratio {ratio:,.0f}:1 over the limit of {limits.max_compression_ratio:,.0f}:1); "
                    "such files were not extracted"
                )
                bomb_reported = True
            continue
        if state.members_left <= 0:
            problems.append(
                f"more than {limits.max_archive_members:,} files in archives: the rest were not extracted"
            )
            break
        if m.size > min(state.declared_left, state.bytes_left):
            problems.append(
                f"archive looks like a zip bomb (it unpacks to more than the limit of "
                f"{state.limit}); the rest was not extracted"
            )
            break
        if m.size > limits.max_part_bytes:
            problems.append(
                f"{_display_path(m.name)} is {human_size(m.size)}, over the limit of "
                f"{human_size(limits.max_part_bytes)}: not extracted"
            )
            continue
        state.members_left -= 1
        state.declared_left -= m.size  # (the budget itself is charged as bytes are written: sizes lie)
        wanted.append(m)

    sinks: dict[int, _Sink] = {}

    def sink(m: _Member) -> _Sink:
        # a member may not produce more than it declared (zipfile enforces this too), nor more
        # than the part limit
        cap = min(max(m.size, 0) + 1, limits.max_part_bytes) if m.size else limits.max_part_bytes
        s = _Sink(
            spool_dir,
            cap=cap,
            cap_reason="the file inside the archive is larger than it "
            "claims: not extracted (possible zip bomb)",
            state=state,
        )
        sinks[id(m)] = s
        return s

    errors = backend.extract(wanted, sink) if wanted else {}
    location = part.location
    for m in wanted:
        shown = _display_path(m.name)
        child = ExtractedPart(
            location=f"{location}/{shown}",
            filename=sanitize_filename(shown.rsplit("/", 1)[-1]),
            declared_type=None,
            origin="archive",
            parent=index,
        )
        s = sinks.get(id(m))
        err = errors.get(id(m))
        if err is None and s is not None and s.n < m.size:
            err = "the file inside the archive is incomplete"
        if err == state.over_budget:
            problems.append(err)
        if err is not None or s is None:
            child.error = err or "the file inside the archive could not be extracted"
            child.size = m.size
            if s is not None:
                s.discard()
        else:
            s.fill(child)
        parsed.parts.append(child)
    if problems:
        # keep the first problem of each kind, password first
        seen: list[str] = []
        for p in problems:
            if p not in seen:
                seen.append(p)
        part.error = "; ".join(seen)


def cleanup(parsed: ParsedMessage) -> None:
    """Delete the spool files this module created for ``parsed`` (the pipeline may call it after
    storing; it owns spool files otherwise)."""
    for p in parsed.parts:
        if p.origin == "archive" and p.spool is not None:
            try:
                os.unlink(p.spool)
            except OSError:
                pass


__all__ = ["expand", "zip_member_name", "cleanup", "ENCRYPTED"]
