"""Mailbox sources: where messages come from (an IMAP folder or a local Maildir).

``open_source(config)`` returns the configured one; see ``base.Source`` for what every source
offers the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest.sources.base import FetchedMessage, MailboxError, Source

if TYPE_CHECKING:
    from ingest.config import Config

__all__ = ["FetchedMessage", "MailboxError", "Source", "open_source"]


def open_source(config: Config, spool_dir: Path | None = None) -> Source:
    """The source for ``config.mailbox`` (not yet connected: use it as a context manager).

    ``spool_dir`` is where big IMAP parts are written while streamed (default: the file
    store's ``.tmp``, on the same file system as the store so spooled files are renamed in)."""
    mailbox = config.mailbox
    if mailbox.kind == "maildir":
        from ingest.sources.maildir import MaildirSource

        return MaildirSource(
            mailbox,
            config.limits,
            keep_raw=config.storage.keep_raw,
            spool_dir=spool_dir or Path(config.storage.files) / ".tmp",
        )
    if mailbox.kind == "imap":
        from ingest.sources.imap import ImapSource

        return ImapSource(
            mailbox,
            config.limits,
            spool_dir or Path(config.storage.files) / ".tmp",
            keep_raw=config.storage.keep_raw,
        )
    raise ValueError(f"unknown mailbox.kind {mailbox.kind!r}")
