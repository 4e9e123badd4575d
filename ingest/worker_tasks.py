"""What runs in a worker process (``ingest.workers``): each function reads sender-made bytes.

Module-level functions with picklable arguments and results, so ``WorkerPool.submit`` can send
them: paths for big files (spool files, stored files), small objects otherwise.

* ``read_message(source, limits, spool_dir, template, expand)``: parse a raw message (bytes, or
  the path of a Maildir file) or finish one already parsed part by part (IMAP streaming), open
  its archives (unless ``expand`` is False), hash and classify every part. Returns the
  ParsedMessage.
* ``classify_parts(parts, template)``: sniff and classify files downloaded from links.
* ``check_part(part, path, config)``: the facts of one stored file (``checks.probe``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ingest import archives, checks, classify, mime
from ingest.model import ExtractedPart, ParsedMessage
from ingest.store import sha256_file


def read_message(
    source: bytes | Path | ParsedMessage, limits: Any, spool_dir: Path, template: Any, expand: bool = True
) -> ParsedMessage:
    if isinstance(source, ParsedMessage):
        parsed = source
    else:
        raw = Path(source).read_bytes() if isinstance(source, Path) else source
        parsed = mime.parse_message(raw, limits, spool_dir=spool_dir)
        del raw
    if expand:
        archives.expand(parsed, limits, spool_dir)
    else:
        for part in parsed.parts:
            if part.sniffed_type is None and (part.data is not None or part.spool is not None):
                part.sniffed_type = classify.sniff(part.data, part.spool)
    hash_parts(parsed.parts)
    for part in parsed.parts:
        classify_part(part, template)
    return parsed


def hash_parts(parts: list[ExtractedPart]) -> None:
    for part in parts:
        if part.sha256:
            continue
        if part.data is not None:
            part.sha256 = hashlib.sha256(part.data).hexdigest()
            part.size = len(part.data)
        elif part.spool is not None and part.spool.exists():
            part.sha256, part.size = sha256_file(part.spool)


def classify_part(part: ExtractedPart, template: Any) -> None:
    if part.data is None and part.spool is None:
        return
    if part.sniffed_type is None:
        part.sniffed_type = classify.sniff(part.data, part.spool)
    part.kind = classify.classify(part, template)


def classify_parts(parts: list[ExtractedPart], template: Any) -> list[tuple[str | None, str]]:
    """(sniffed type, kind) of each part."""
    out = []
    for part in parts:
        classify_part(part, template)
        out.append((part.sniffed_type, part.kind))
    return out


def check_part(part: ExtractedPart, path: Path, config: Any) -> tuple[dict | None, str | None]:
    return checks.probe(part, path, config)
