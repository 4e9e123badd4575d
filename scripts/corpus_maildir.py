#!/usr/bin/env python3
"""Lay out the real-world corpus (../shared/corpus) as a Maildir, one message per file.

Usage: corpus_maildir.py CORPUS_DIR MAILDIR

Files under `_mbox/` folders are mbox files and are split into their messages; every other file
(except the licences, README and index) is one message, copied byte for byte. Delivery times are
fixed and increasing so arrival order is the corpus order.
"""

from __future__ import annotations

import mailbox
import sys
from pathlib import Path

SKIP_DIRS = {"_licenses"}
SKIP_FILES = {"README.md", "_index.tsv"}
START = 1655683200  # 2022-06-20T00:00:00Z


def corpus_messages(corpus: Path):
    for path in sorted(corpus.rglob("*")):
        if not path.is_file() or path.name in SKIP_FILES or SKIP_DIRS & set(path.relative_to(corpus).parts):
            continue
        if "_mbox" in path.parts:
            for i, msg in enumerate(mailbox.mbox(str(path), create=False)):
                yield f"{path.relative_to(corpus)}#{i}", msg.as_bytes()
        else:
            yield str(path.relative_to(corpus)), path.read_bytes()


def build_maildir(corpus: Path, maildir: Path) -> int:
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    n = 0
    for n, (_, raw) in enumerate(corpus_messages(corpus), start=1):
        (maildir / "new" / f"{START + n}.M{n}P1.corpus").write_bytes(raw)
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(build_maildir(Path(sys.argv[1]), Path(sys.argv[2])), "messages")
