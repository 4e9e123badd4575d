"""A big message, part by part: ``Streamer`` builds its ParsedMessage without holding it whole.

Round trips are what a streamed message costs, so there are few: first the header and
BODYSTRUCTURE, then in one command the MIME headers of every leaf together with the content of
the small ones (text bodies, sheets, reports: up to ``WHOLE_PART_MAX`` each, ``BATCH_BYTES`` per
command), then each big leaf in chunks with partial FETCH (``BODY.PEEK[2]<0.4194304>``). A
chunk is decoded (``decode.StreamDecoder``), hashed and written to its spool file by a
``SpoolWriter`` thread while the next chunk is on the wire; the writer asks the kernel to start
writing each chunk to disk at once (``store.start_writeback``), so the store's one fsync, later
and in another thread, finds little left to do. A forwarded message (message/rfc822) that is
small goes to the parser whole; a big one is walked like the outer message. Parts over
``limits.max_part_bytes`` are recorded with a reason, not fetched.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest import mime
from ingest.config import Limits
from ingest.model import ExtractedPart, Headers, ParsedMessage
from ingest.sizes import human_size
from ingest.sources.imap.connection import Op
from ingest.sources.imap.decode import decode_all
from ingest.sources.imap.errors import Stopped, mailbox_error
from ingest.sources.imap.skeleton import RawTrail
from ingest.sources.imap.spool_writer import SpoolWriter
from ingest.sources.imap.structure import Leaf, leaves

CHUNK_BYTES = 4 * 1024 * 1024  # partial FETCH size for streamed parts
WHOLE_PART_MAX = 1024 * 1024  # parts of a streamed message up to this are fetched whole
BATCH_BYTES = 8 * 1024 * 1024  # ... together with the MIME headers, this much per command
BATCH_SECTIONS = 50  # sections per command
TEXT_PART_MAX = 4 * 1024 * 1024  # a text body part bigger than this is kept as a file


class Streamer:
    """Fetch one big message per MIME part and build its ParsedMessage (see module docstring)."""

    def __init__(
        self, op: Op, limits: Limits, spool_dir: Path, uid: int, stop: threading.Event | None = None
    ):
        self.op = op
        self.spool_dir = spool_dir
        self.uid = uid
        self.stop = stop
        self.limits = limits
        self.parsed = ParsedMessage(headers=Headers())
        self.plain: list[str] = []
        self.html: list[str] = []
        self.digest = hashlib.sha256()
        self.count = 0
        self.spools: list[Path] = []
        self.header = b""  # the message's header block as served
        self.trail: RawTrail | None = None  # set to build the raw copy while the parts stream
        self.bodies: dict[str, bytes] = {}  # small leaves fetched with the MIME headers

    def fetch(self, items: list[str], what: str) -> dict:
        if self.stop is not None and self.stop.is_set():
            raise Stopped()
        data = self.op(lambda c: c.fetch([self.uid], items), what)
        if self.uid not in data:
            raise mailbox_error(f"message {self.uid} disappeared from the folder while it was fetched")
        return data[self.uid]

    def header_only(self) -> bytes | None:
        """Just the header block (for a message too big to fetch: whose is it?)."""
        try:
            d = self.fetch(["BODY.PEEK[HEADER]"], f"reading the header of message {self.uid}")
        except Stopped:
            return None
        return bytes(d.get(b"BODY[HEADER]") or b"")[: self.limits.max_header_bytes]

    def run(self) -> ParsedMessage:
        d = self.fetch(["BODY.PEEK[HEADER]", "BODYSTRUCTURE"], f"reading the structure of message {self.uid}")
        header = bytes(d.get(b"BODY[HEADER]") or b"")
        self.header = header
        self.digest.update(header)
        self.parsed.headers = mime.parse_headers(header, self.limits)
        self.walk(
            d[b"BODYSTRUCTURE"], prefix="", top_header=header, origin="attachment", parent=None, depth=0
        )
        self.finish()
        return self.parsed

    def walk(
        self,
        structure: Any,
        *,
        prefix: str,
        top_header: bytes | None,
        origin: str,
        parent: int | None,
        depth: int,
        loc: str = "",
    ) -> None:
        """Fetch the leaves under ``structure``; ``loc`` prefixes their locations
        ('forwarded message 1.eml/')."""
        found = list(leaves(structure, prefix, top=True))
        if len(found) + self.count > self.limits.max_parts:
            self.parsed.defects.append(
                f"the message has more than {self.limits.max_parts:,} MIME parts; the rest were not read"
            )
            found = found[: max(0, self.limits.max_parts - self.count)]
        self.count += len(found)
        # the MIME headers of every leaf (a single-part body's header is the message's) and the
        # content of the small ones, in as few commands as the batch limits allow
        headers: dict[str, bytes] = {}
        single = top_header is not None and not prefix and len(found) == 1
        if single and top_header is not None:
            headers[found[0].section] = top_header
        batch: list[str] = []
        size = 0
        for lf in found:
            items = [] if single else [f"BODY.PEEK[{lf.section}.MIME]"]
            # (a forwarded message that will be walked part by part is not fetched whole)
            small = lf.size <= WHOLE_PART_MAX and (
                lf.inner is None or lf.size <= self.limits.stream_threshold_bytes
            )
            if small:
                items.append(f"BODY.PEEK[{lf.section}]")
            content = lf.size if small else 0
            if batch and (len(batch) + len(items) > BATCH_SECTIONS or size + content > BATCH_BYTES):
                self.fetch_batch(batch, headers)
                batch, size = [], 0
            batch += items
            size += content
        if batch:
            self.fetch_batch(batch, headers)
        for lf in found:
            self.leaf(lf, headers.get(lf.section, b""), origin=origin, parent=parent, depth=depth, loc=loc)

    def fetch_batch(self, items: list[str], headers: dict[str, bytes]) -> None:
        """MIME headers into ``headers``, small leaves' content into ``self.bodies``."""
        d = self.fetch(items, f"reading the parts of message {self.uid}")
        for item in items:
            name = item.replace("BODY.PEEK[", "BODY[")
            value = bytes(response_item(d, name) or b"")
            section = name[len("BODY[") : -1]
            if section.endswith(".MIME"):
                headers[section[: -len(".MIME")]] = value
            else:
                self.bodies[section] = value

    def leaf(
        self, lf: Leaf, mime_header: bytes, *, origin: str, parent: int | None, depth: int, loc: str = ""
    ) -> None:
        info = mime.entity_info(mime_header)
        ctype = info["content_type"] or lf.ctype
        encoding = info["transfer_encoding"] or lf.encoding
        filename = info["filename"]
        self.digest.update(mime_header)
        if ctype in ("message/rfc822", "message/global"):
            self.forwarded(lf, mime_header, filename, origin=origin, parent=parent, depth=depth, loc=loc)
            return
        if ctype.startswith("message/") and ctype != "message/partial":  # delivery status etc.
            return
        is_body = (
            ctype in ("text/plain", "text/html") and info["disposition"] != "attachment" and not filename
        )
        if is_body and lf.size <= TEXT_PART_MAX:
            data = decode_all(self.whole(lf), encoding)
            text = mime.decode_text(data, info["charset"])[0]
            (self.plain if ctype == "text/plain" else self.html).append(text)
            return
        estimate = lf.size * 3 // 4 if encoding == "base64" else lf.size
        if estimate > self.limits.max_part_bytes:
            part = mime.part_from_entity(mime_header, origin=origin, parent=parent, size=estimate)
            part.location = loc + part.location
            part.error = (
                f"the attachment is about {human_size(estimate)}, over the limit of "
                f"{human_size(self.limits.max_part_bytes)}: not kept"
            )
            self.parsed.parts.append(part)
            return
        if lf.size <= WHOLE_PART_MAX:
            data = decode_all(self.whole(lf), encoding)
            part = mime.part_from_entity(mime_header, data=data, origin=origin, parent=parent)
            part.location = loc + part.location
            self.parsed.parts.append(part)
            return
        spool, size, damaged, digest = self.stream(lf, encoding, mime_header)
        part = mime.part_from_entity(mime_header, spool=spool, size=size, origin=origin, parent=parent)
        part.location = loc + part.location
        part.sha256 = digest
        if damaged:
            self.parsed.defects.append(f"{part.location}: the attachment's base64 encoding is damaged")
        self.parsed.parts.append(part)

    def whole(self, lf: Leaf) -> bytes:
        data = self.bodies.pop(lf.section, None)
        if data is None:
            d = self.fetch([f"BODY.PEEK[{lf.section}]"], f"fetching part {lf.section} of message {self.uid}")
            data = bytes(response_item(d, f"BODY[{lf.section}]") or b"")
        self.digest.update(data)
        return data

    # long: the chunk loop, with the raw copy's trail following the part
    def stream(self, lf: Leaf, encoding: str | None, mime_header: bytes = b"") -> tuple[Path, int, bool, str]:
        """Fetch a part in chunks; a SpoolWriter decodes, hashes and writes them meanwhile
        (and ``self.trail``, if set, sees each chunk as served, for the raw copy).

        Returns (path, decoded size, damaged, sha256): the pipeline neither reads the file again
        to hash it nor holds it in memory."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="imap-part-", dir=self.spool_dir)
        path = Path(name)
        self.spools.append(path)
        with os.fdopen(fd, "wb") as out:
            writer = SpoolWriter(out, encoding)
            trace = None
            try:
                offset = 0
                while True:
                    item = f"BODY.PEEK[{lf.section}]<{offset}.{CHUNK_BYTES}>"
                    d = self.fetch(
                        [item], f"fetching part {lf.section} of message {self.uid} at byte {offset:,}"
                    )
                    chunk = bytes(response_item(d, f"BODY[{lf.section}]<{offset}>") or b"")
                    del d
                    if not chunk:
                        break
                    if offset == 0 and self.trail is not None:
                        trace = self.trail.begin(lf.section, mime_header, _name(encoding), chunk, lf.boundary)
                        if trace is not None:
                            writer.observer = _both(trace.feed, self.trail.served)
                    got = len(chunk)
                    offset += got
                    writer.put(chunk)
                    del chunk
                    # a short piece at or past the announced size is the last one (a full piece: ask
                    # again even past the size, BODYSTRUCTURE sizes are not trusted; a short one
                    # before it: a server that caps partial fetches, go on)
                    if got < CHUNK_BYTES and offset >= lf.size:
                        break
            finally:
                written, damaged, digest = writer.close()
        if trace is not None and self.trail is not None:
            trace.spool, trace.decoded_sha256 = path, digest
            self.trail.end(trace)
        self.digest.update(digest.encode())
        return path, written, damaged, digest

    def drop_spools(self) -> None:
        for p in self.spools:
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass

    # long: a forwarded message streamed part by part; its headers and parts share the spool state
    def forwarded(
        self,
        lf: Leaf,
        mime_header: bytes,
        filename: str | None,
        *,
        origin: str,
        parent: int | None,
        depth: int,
        loc: str = "",
    ) -> None:
        """A message/rfc822 part: small ones go to the parser whole; big ones are walked too."""
        label = filename or f"forwarded message {len(self.parsed.forwarded) + 1}.eml"
        if lf.size <= self.limits.stream_threshold_bytes or lf.inner is None:
            raw = decode_all(self.whole(lf), lf.encoding)
            inner = mime.parse_message(raw, self.limits)
            index = len(self.parsed.parts)
            self.parsed.parts.append(
                ExtractedPart(
                    location=loc + label,
                    filename=filename,
                    declared_type=lf.ctype,
                    origin=origin,
                    parent=parent,
                    data=raw,
                    size=len(raw),
                )
            )
            self.parsed.forwarded.append(inner.headers)
            self.parsed.forwarded.extend(inner.forwarded)
            for p in inner.parts:
                p.location = f"{loc}{label}/{p.location}"
                p.origin = "forwarded"
                p.parent = index if p.parent is None else p.parent + index + 1
                self.parsed.parts.append(p)
            if inner.body_text.strip():
                self.plain.append(f"\n---------- forwarded message ({label}) ----------\n{inner.body_text}")
            self.parsed.defects.extend(f"{label}: {d}" for d in inner.defects)
            return
        # a big forwarded message: its header, then its parts, streamed like the outer ones (the
        # forwarded message itself is not kept as a file: only what it carries)
        index = len(self.parsed.parts)
        self.parsed.parts.append(
            ExtractedPart(
                location=loc + label,
                filename=filename,
                declared_type=lf.ctype,
                origin=origin,
                parent=parent,
                size=lf.size,
                error=None,
            )
        )
        if depth + 1 > self.limits.max_forward_depth:
            self.parsed.defects.append(
                f"{label}: forwarded messages nested deeper than "
                f"{self.limits.max_forward_depth} levels were not opened"
            )
            return
        d = self.fetch(
            [f"BODY.PEEK[{lf.section}.HEADER]"], f"reading a forwarded message in message {self.uid}"
        )
        inner_header = bytes(response_item(d, f"BODY[{lf.section}.HEADER]") or b"")
        self.parsed.forwarded.append(mime.parse_headers(inner_header, self.limits))
        before = (len(self.plain), len(self.html))
        self.walk(
            lf.inner,
            prefix=f"{lf.section}.",
            top_header=None,
            origin="forwarded",
            parent=index,
            depth=depth + 1,
            loc=f"{loc}{label}/",
        )
        # its text follows the main text, marked as parse_message marks it
        for texts, start in ((self.plain, before[0]), (self.html, before[1])):
            if len(texts) > start:
                texts[start] = f"\n---------- forwarded message ({label}) ----------\n" + texts[start]

    def finish(self) -> None:
        """Body text, HTML and links (big attachments, cloud drives) as ``parse_message`` fills them."""
        p = self.parsed
        problem = mime.finish_body(p, self.plain, self.html)
        if problem:
            p.defects.append(problem)
        p.content_sha256 = self.digest.hexdigest()


def _name(encoding: str | None) -> str:
    return (encoding or "7bit").strip().lower()


def _both(first: Callable[[bytes], None], second: Callable[[bytes], None]) -> Callable[[bytes], None]:
    def both(chunk: bytes) -> None:
        first(chunk)
        second(chunk)

    return both


def response_item(d: dict, name: str) -> Any:
    """A FETCH response item by name (servers differ in quoting and case: compare loosely)."""
    key = name.encode()
    if key in d:
        return d[key]
    want = re.sub(rb"\s+", b"", key).upper()
    for k, v in d.items():
        if isinstance(k, bytes) and re.sub(rb"\s+", b"", k).upper() == want:
            return v
    return None
