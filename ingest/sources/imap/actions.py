"""The post action on a stored message: flag it with a keyword, or move it to a folder.

Never deletes or expunges: without the MOVE capability a message is copied and flagged instead.
A server that refuses the action (keywords not allowed, say) gets a warning: the mail is safe
anyway. A broken connection (``MailboxError``) propagates, so the watermark stays and the next
poll runs the action again.
"""

from __future__ import annotations

import logging

from ingest.config import Mailbox
from ingest.sources.base import MailboxError
from ingest.sources.imap.connection import Op
from ingest.sources.imap.errors import server_text

log = logging.getLogger("ingest.sources.imap")  # one logger for the whole package


class PostAction:
    """``mailbox.post_action`` ('flag', 'move' or nothing) for one source."""

    def __init__(self, mailbox: Mailbox):
        self.mailbox = mailbox
        self.folder_ready = False  # the move target exists (checked once per source)

    @property
    def active(self) -> bool:
        """There is something to do on a stored message."""
        return self.mailbox.post_action in ("flag", "move")

    def run(self, op: Op, capabilities: set[str], uid: int) -> None:
        m = self.mailbox
        try:
            if m.post_action == "flag":
                op(lambda c: c.add_flags([uid], [m.post_flag]), f"flagging message {uid}")
            elif m.post_action == "move":
                if not self.folder_ready:

                    def ensure(c):
                        if not c.folder_exists(m.post_folder):
                            c.create_folder(m.post_folder)

                    op(ensure, f"creating folder {m.post_folder!r}")
                    self.folder_ready = True
                if "MOVE" in capabilities:
                    op(lambda c: c.move([uid], m.post_folder), f"moving message {uid}")
                else:  # no MOVE: copy and mark, never delete
                    op(lambda c: c.copy([uid], m.post_folder), f"copying message {uid}")
                    op(lambda c: c.add_flags([uid], [m.post_flag]), f"flagging message {uid}")
        except MailboxError:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. the server refuses keywords: the mail is safe anyway
            log.warning("post action %r on message %s failed: %s", m.post_action, uid, server_text(e))
