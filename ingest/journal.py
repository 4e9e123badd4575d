"""The store's journal: which files are being written for messages not committed yet.

Before a message's files are written, their hashes are noted; once the message is committed
the note is done. A crash in between leaves files no message references, and the notes say
which: ``FileStore.recover`` (at the start of every poll) deletes those no message references.

A poll writes its notes as lines of one file, ``.tmp/pending-<uuid>.json``, opened for appending
(one ``write`` per message, not a file created and deleted per message). When every note
written so far is done, the file is emptied; the notes of messages that failed (their files may
be left unreferenced) are kept in it for the next ``recover``. ``close`` ends the poll's file:
removed when nothing is left in it. ``read_notes`` reads a note file (one JSON value per line:
a list of file hashes, or ``{"files": [...], "raw": [...]}``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


class Journal:
    """The notes of one poll (see module docstring). Used from one thread."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.path: Path | None = None
        self.file: BinaryIO | None = None
        self.open: dict[int, bytes] = {}  # notes written and not done yet
        self.kept: list[bytes] = []  # notes of messages that failed: left for recover()
        self.next_id = 0

    def note(self, files: Iterable[str], raws: Iterable[str] = ()) -> int:
        """Note these hashes before their files are written; returns the note's number."""
        files, raws = list(files), list(raws)
        line = (json.dumps({"files": files, "raw": raws} if raws else files) + "\n").encode()
        if self.file is None:
            self.path = self.tmp / f"pending-{uuid.uuid4().hex}.json"
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open for the poll
        self.file.write(line)
        self.next_id += 1
        self.open[self.next_id] = line
        return self.next_id

    def done(self, note: int) -> None:
        """The note's message is committed: its files are referenced."""
        self.open.pop(note, None)
        self._empty_when_all_done()

    def keep(self, note: int) -> None:
        """The note's message failed: keep the note for recover() (it deletes what is unreferenced)."""
        line = self.open.pop(note, None)
        if line is not None:
            self.kept.append(line)
        self._empty_when_all_done()

    def _empty_when_all_done(self) -> None:
        if self.open or self.file is None:
            return
        self.file.truncate(0)  # (appending: the next note goes at the start again)
        if self.kept:
            self.file.write(b"".join(self.kept))

    def close(self) -> None:
        """End of the poll: the file goes when nothing is left in it (else recover() reads it)."""
        if self.file is None:
            return
        self.kept.extend(self.open.values())
        self.open.clear()
        self.file.close()
        self.file = None
        if not self.kept and self.path is not None:
            self.path.unlink(missing_ok=True)


def read_notes(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """(file hashes, raw copy hashes) of each note in a note file; damaged lines are skipped."""
    try:
        text = path.read_text()
    except OSError:
        return
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield list(value.get("files", [])), list(value.get("raw", []))
        elif isinstance(value, list):
            yield value, []


__all__ = ["Journal", "read_notes"]
