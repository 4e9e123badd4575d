"""Raw messages kept as evidence (``[storage] keep_raw = true``, the default).

Every message's bytes, exactly as the server served them, are kept compressed beside the
attachment files, content-addressed by the sha256 of those bytes, under
``storage.files/raw/ab/cd/``; and the header block of every message is kept in the database
(``messages.raw_headers``), also for a message over the size limit that is never fetched.
``mailroll show --raw`` writes a message back, ``mailroll reprocess`` derives its facts again.

Compression: zstd (the ``zstandard`` package). Mail is mostly base64 and text; zstd compresses it
as well as gzip (a 15 MB base64 attachment: 0.733 of its size, gzip -6 0.740) at over ten times
gzip's speed, decompresses fast, and its streaming reader and writer let a 1 GB message be
written back without holding it. Level 3 (zstd's default): level 10 gave the same ratio on mail
at a quarter of the speed, and the copy is made for every message on the ingest path.

Two forms:

* ``<sha256>.eml.zst``: the whole message, one zstd frame.
* ``<sha256>.skel.zst``: a message that was streamed part by part over IMAP
  (ingest/sources/imap/skeleton.py): its big parts are already in the store as decoded files,
  so the copy is a *skeleton*: the bytes between them (headers, boundaries, small parts) as
  served, and for each big part a reference (its file's sha256 and how it was encoded: base64
  line length and line end, or as is). ``reassemble`` encodes the file again and yields the
  original bytes; the skeleton is only kept when that was verified when it was made (the
  sha256 and size of the reassembly equal what the server served), else the whole message is
  kept as ``.eml.zst``.

Skeleton format (inside the zstd frame): ``MRSKEL1\\n``, one JSON line (a list of segments:
``{"lit": n}`` for n literal bytes, ``{"ref": sha256, "enc": "base64"|"identity", "line": 76,
"eol": "\\r\\n", "final_eol": true, "len": n}``), then the literal bytes in order.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LEVEL = 3
SKELETON_MAGIC = b"MRSKEL1\n"
CHUNK = 1024 * 1024
FORMS = ("eml", "skel")


@dataclass
class RawCopy:
    """What is kept of one message's raw bytes, travelling from the source to the commit."""

    headers: bytes | None  # the header block as served (kept always, also for a message not fetched)
    sha256: str | None = None  # of the whole message as served; None: only the headers are kept
    size: int | None = None
    blob: bytes | None = None  # the compressed form, in memory ...
    blob_path: Path | None = None  # ... or in a spool file (a big message)
    form: str = "eml"  # 'eml' | 'skel'


def header_block(raw: bytes, limit: int = 1024 * 1024) -> bytes:
    """The header block (through the blank line that ends it), at most ``limit`` bytes."""
    head = raw[:limit]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    if not ends:
        return head
    end = min(ends)
    return head[: end + (4 if head[end : end + 4] == b"\r\n\r\n" else 2)]


def _compressor():
    import zstandard

    return zstandard.ZstdCompressor(level=LEVEL)


def whole(raw: bytes, header_limit: int = 1024 * 1024) -> RawCopy:
    """The raw copy of a message held in memory."""
    return RawCopy(
        headers=header_block(raw, header_limit),
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        blob=_compressor().compress(raw),
    )


def headers_only(header_bytes: bytes | None) -> RawCopy | None:
    return RawCopy(headers=header_bytes) if header_bytes else None


def whole_from_chunks(chunks: Iterator[bytes], spool_dir: Path, header_limit: int = 1024 * 1024) -> RawCopy:
    """The raw copy of a message read in pieces (never held whole), compressed into a spool file."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"spool-raw-{uuid.uuid4().hex}"
    h, size, head = hashlib.sha256(), 0, b""
    try:
        with open(path, "wb") as f, _compressor().stream_writer(f, closefd=False) as w:
            for chunk in chunks:
                h.update(chunk)
                size += len(chunk)
                if len(head) < header_limit:
                    head += chunk[: header_limit - len(head)]
                w.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return RawCopy(headers=header_block(head, header_limit), sha256=h.hexdigest(), size=size, blob_path=path)


IN_MEMORY_MAX = 8 * 1024 * 1024  # a file up to this is compressed in memory, a bigger one in pieces


def from_file(path: Path, spool_dir: Path, header_limit: int = 1024 * 1024) -> RawCopy:
    """The raw copy of a message in a file (a Maildir message), never held whole when big."""
    if path.stat().st_size <= IN_MEMORY_MAX:
        return whole(path.read_bytes(), header_limit)

    def pieces() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    return whole_from_chunks(pieces(), spool_dir, header_limit)


# ---------------------------------------------------------------------------------- skeleton


def skeleton_blob(segments: list[dict], literals: list[bytes]) -> bytes:
    head = SKELETON_MAGIC + json.dumps(segments, separators=(",", ":")).encode() + b"\n"
    return _compressor().compress(head + b"".join(literals))


def encode_again(path: Path, seg: dict) -> Iterator[bytes]:
    """The encoded bytes of a stored (decoded) file, laid out as ``seg`` says."""
    if seg["enc"] == "identity":
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        return
    line, eol, final_eol = int(seg["line"]), seg["eol"].encode(), bool(seg["final_eol"])
    group = line // 4 * 3  # bytes per line
    per_read = group * max(1, CHUNK // group)  # whole lines per read
    with open(path, "rb") as f:
        data = f.read(per_read)
        while data:
            following = f.read(per_read)
            yield encode_lines(data, line, eol, bool(following) or final_eol)
            data = following


def encode_lines(data: bytes, line: int, eol: bytes, final_eol: bool) -> bytes:
    """``data`` in base64, cut in lines of ``line`` characters ending with ``eol`` (also after the
    last one when ``final_eol``)."""
    text = binascii.b2a_base64(data, newline=False)
    out = eol.join(text[i : i + line] for i in range(0, len(text), line))
    return out + eol if final_eol and out else out


def reassemble(blob_reader, resolve: Callable[[str], Path]) -> Iterator[bytes]:
    """The original bytes from a skeleton stream (``blob_reader`` positioned after the magic)."""
    segments = json.loads(_readline(blob_reader))
    for seg in segments:
        if "lit" in seg:
            left = int(seg["lit"])
            while left:
                chunk = blob_reader.read(min(CHUNK, left))
                if not chunk:
                    raise ValueError("the raw copy is truncated")
                left -= len(chunk)
                yield chunk
        else:
            yield from encode_again(resolve(seg["ref"]), seg)


def _readline(reader) -> bytes:
    out = bytearray()
    while True:
        c = reader.read(1)
        if not c or c == b"\n":
            return bytes(out)
        out += c


# ---------------------------------------------------------------------------------- the store


class RawStore:
    """The raw copies under ``<files>/raw/ab/cd/<sha256>.<form>.zst``."""

    def __init__(self, files_root: Path):
        self.root = Path(files_root) / "raw"
        self.tmp = Path(files_root) / ".tmp"
        self.files_root = Path(files_root)

    def path_for(self, sha: str, form: str = "eml") -> Path:
        return self.root / sha[:2] / sha[2:4] / f"{sha}.{form}.zst"

    def find(self, sha: str) -> Path | None:
        for form in FORMS:
            p = self.path_for(sha, form)
            if p.exists():
                return p
        return None

    def exists(self, sha: str) -> bool:
        return self.find(sha) is not None

    def put(self, copy: RawCopy) -> None:
        """Write the copy (atomically: temp file, fsync, rename); nothing when it is there."""
        if copy.sha256 is None or (copy.blob is None and copy.blob_path is None):
            return
        target = self.path_for(copy.sha256, copy.form)
        if target.exists():
            if copy.blob_path is not None:
                copy.blob_path.unlink(missing_ok=True)
            return
        self.tmp.mkdir(parents=True, exist_ok=True)
        if copy.blob_path is not None:
            tmp = copy.blob_path
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        else:
            tmp = self.tmp / f"spool-raw-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(copy.blob or b"")
                f.flush()
                os.fsync(f.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        copy.blob_path = None

    def delete(self, sha: str) -> int:
        n = 0
        for form in FORMS:
            p = self.path_for(sha, form)
            if p.exists():
                p.unlink()
                n += 1
        return n

    def open(self, sha: str, part_path: Callable[[str], Path]) -> Iterator[bytes]:
        """The message's bytes as served, in pieces. ``part_path(sha)`` locates a stored file."""
        import zstandard

        path = self.find(sha)
        if path is None:
            raise FileNotFoundError(f"no raw copy {sha[:12]}… in {self.root}")
        with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as reader:
            if path.name.endswith(".skel.zst"):
                if reader.read(len(SKELETON_MAGIC)) != SKELETON_MAGIC:
                    raise ValueError(f"{path} is not a skeleton")
                yield from reassemble(reader, part_path)
                return
            while chunk := reader.read(CHUNK):
                yield chunk
