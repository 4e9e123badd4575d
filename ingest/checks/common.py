"""Helpers shared by the checks: the error type, the file's format, containers, LibreOffice.

Every check raises :class:`CheckError` with a reason a person reads ("the sheet is
password-protected"); :func:`ingest.checks.probe` turns it into ``parts.error``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import olefile

from ingest.zipdir import TooManyEntries, open_zip


class CheckError(Exception):
    """The file cannot be read; the message is the reason, in plain words."""


# The sniffed-type vocabulary of ingest/classify.py (DESIGN.md), plus the extensions that map to it.
EXTENSION_FORMATS = {
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xltx": "xlsx",
    ".xltm": "xlsx",
    ".xls": "xls",
    ".et": "et",
    ".ett": "et",
    ".docx": "docx",
    ".docm": "docx",
    ".dotx": "docx",
    ".doc": "doc",
    ".wps": "wps",
    ".pdf": "pdf",
    ".zip": "zip",
    ".txt": "text",
    ".csv": "text",
    ".mp4": "mp4",
    ".m4v": "m4v",
    ".mov": "mov",
    ".avi": "avi",
    ".mkv": "mkv",
    ".webm": "webm",
    ".flv": "flv",
    ".wmv": "wmv",
    ".mpg": "mpg",
    ".mpeg": "mpg",
    ".3gp": "3gp",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".gif": "gif",
    ".bmp": "bmp",
    ".webp": "webp",
    ".heic": "heic",
    ".ods": "ods",
    ".odt": "odt",
}


def extension_format(filename: str | None) -> str | None:
    """The format a file name's extension announces ('统计表.XLSX' -> 'xlsx'), or None."""
    if not filename:
        return None
    return EXTENSION_FORMATS.get(Path(filename).suffix.lower())


def file_format(sniffed: str | None, filename: str | None) -> str | None:
    """The format to read the file as: the sniffed content type first, then the extension.

    Sniffing wins because people rename files ('统计表.xls' that is really .xlsx). When the
    sniffer only saw a generic container ('zip' for an OOXML file it could not place, 'unknown'),
    the extension decides.
    """
    ext = extension_format(filename)
    if (sniffed, ext) in (("doc", "wps"), ("xls", "et")):
        return ext  # Kingsoft WPS files are Word/Excel-compatible inside: keep the name's format
    if sniffed and sniffed not in ("unknown", "zip", "text"):
        return sniffed
    if sniffed == "zip" and ext in ("xlsx", "docx"):
        return ext
    return ext or sniffed


def is_ole(path: Path) -> bool:
    """True for an OLE2 compound file (.xls, .doc, .et, .wps, or an encrypted OOXML file)."""
    try:
        return olefile.isOleFile(str(path))
    except OSError:
        return False


def ole_is_encrypted_ooxml(path: Path) -> bool:
    """True when an OLE file is a password-protected .xlsx/.docx (an 'EncryptedPackage' stream)."""
    try:
        with olefile.OleFileIO(str(path)) as ole:
            return ole.exists("EncryptedPackage") or ole.exists("EncryptionInfo")
    except Exception:  # noqa: BLE001 - hostile file: unreadable as OLE means not encrypted
        return False


def open_ooxml_zip(path: Path, max_xml_bytes: int, what: str) -> zipfile.ZipFile:
    """Open an .xlsx/.docx as a zip after checking what it would unpack to.

    The declared uncompressed sizes are summed before anything is parsed; Python's zipfile
    never returns more than the declared size of a member, so the check bounds the parser.
    """
    try:
        zf = open_zip(path)
    except TooManyEntries as e:
        raise CheckError(f"the {what} cannot be opened: {e}") from None
    except zipfile.BadZipFile:
        raise CheckError(
            f"the {what} cannot be opened: the file is damaged or not an Office file "
            f"(it is not a valid zip container)"
        ) from None
    total = sum(i.file_size for i in zf.infolist())
    if total > max_xml_bytes:
        zf.close()
        raise CheckError(
            f"the {what} is too large to read: it unpacks to {total // (1024 * 1024)} MB "
            f"(limit {max_xml_bytes // (1024 * 1024)} MB)"
        )
    return zf


def soffice_binary() -> str | None:
    """The LibreOffice command, or None when LibreOffice is not installed."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def run_tool(args: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run an external tool in its own process group; on timeout kill the whole group.

    Raises CheckError("... could not be ... within N s") on timeout.
    """
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    RUNNING_TOOLS.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise CheckError(f"{what} within {timeout:g} s") from None
    finally:
        RUNNING_TOOLS.discard(proc.pid)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


# process groups of the tools running now (a worker stopped over its time ends them first)
RUNNING_TOOLS: set[int] = set()


def kill_running_tools() -> None:
    for pgid in list(RUNNING_TOOLS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def convert_with_libreoffice(path: Path, source_ext: str, target: str, timeout: float, workdir: Path) -> Path:
    """Convert a file with headless LibreOffice ('doc' -> 'docx', 'et' -> 'xlsx', 'doc' -> 'txt').

    The stored file has no extension, so it is linked under a name with ``source_ext`` first.
    A fresh user profile per call keeps parallel conversions from locking each other out.
    Returns the converted file; raises CheckError when LibreOffice is missing, fails or hangs.
    """
    soffice = soffice_binary()
    if not soffice:
        raise CheckError("LibreOffice is not installed")
    src = workdir / f"input.{source_ext}"
    try:
        os.symlink(path.resolve(), src)
    except OSError:
        shutil.copyfile(path, src)
    profile = workdir / "profile"
    out_dir = workdir / "out"
    out_dir.mkdir()
    target_ext = target.split(":", 1)[0]
    args = [
        soffice,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--norestore",
        "--nologo",
        "--nodefault",
        "--convert-to",
        target,
        "--outdir",
        str(out_dir),
        str(src),
    ]
    result = run_tool(args, timeout, "LibreOffice could not convert the file")
    produced = out_dir / f"input.{target_ext}"
    if not produced.exists():
        detail = (result.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise CheckError("LibreOffice could not convert the file" + (f" ({detail[-1]})" if detail else ""))
    return produced


def temp_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="mailroll-check-")


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


XML_BOMB = (
    "the file contains XML entity declarations (an 'XML bomb' that would expand enormously); it was not read"
)


def unreadable(e: BaseException, what: str, fmt: str) -> CheckError:
    """The CheckError for a library's failure to open a file, with the reason a person can use."""
    for err in _chain(e):
        name = type(err).__name__
        text = str(err)
        if (
            name in ("EntitiesForbidden", "DTDForbidden", "ExternalReferenceForbidden")
            or "entity" in text.lower()
            and ("amplification" in text.lower() or "loop" in text.lower())
        ):
            return CheckError(XML_BOMB)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if len(text) > 120:
        text = text[:117] + "..."
    return CheckError(f"the {what} cannot be opened: the file is not a valid .{fmt} ({text})")


def ole_streams(path: Path) -> set[str] | None:
    """Lower-case stream names of an OLE2 file, or None when it cannot be opened as one."""
    try:
        with olefile.OleFileIO(str(path)) as ole:
            return {"/".join(e).lower() for e in ole.listdir(streams=True, storages=True)}
    except Exception:  # noqa: BLE001 - hostile file: olefile raises many types
        return None


def check_ole(path: Path, wanted: str, what: str) -> None:
    """Make sure an OLE file is a real Word ('word') or Excel ('excel') 97-2003/WPS file before
    handing it to xlrd or LibreOffice (which would import any bytes as plain text)."""
    streams = ole_streams(path)
    if streams is None:
        raise CheckError(
            f"the {what} cannot be opened: the file is damaged (not a valid Office 97-2003 file)"
        )
    if "encryptedpackage" in streams:
        raise CheckError(f"the {what} is password-protected")
    has_word = "worddocument" in streams
    has_excel = "workbook" in streams or "book" in streams
    if wanted == "word" and not has_word:
        raise CheckError(f"not a {what}: the file is an Office 97-2003 file but not a Word document")
    if wanted == "excel" and not (has_excel or has_word):
        raise CheckError(
            f"not a {what}: the file is an Office 97-2003 file but not a workbook or Word document"
        )
