"""Videos a browser cannot play (``ingest.previews.needs_preview``) are shown in the page as their
browser-playable preview (H.264/AAC MP4, at most 720p) with a poster frame. A preview is made the
first time the page asks for it, in a worker process of the page's own (one at a time, under
``limits.worker_memory_bytes`` and ``limits.preview_timeout_s``), and kept in the file store:
later views, and other staff, get it at once. The download link gives the file as sent."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from flask import Blueprint, abort, current_app, send_file

from ingest.previews import make_preview, needs_preview, preview_paths
from ingest.workers import MessageBudget, WorkerPool
from reconcile.i18n import N_, zh
from reconcile.web.files import SHA256, part_path

log = logging.getLogger(__name__)
bp = Blueprint("previews", __name__)


class Previews:
    """Makes previews one at a time (a video being made is waited for, not made twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one preview at a time: each uses a core for minutes
        self._pool: WorkerPool | None = None
        self._failed: dict[str, str] = {}  # sha -> why (not tried again until a restart)

    def ensure(self, config, sha: str, facts: dict, wait: bool = True) -> tuple[Path, Path] | str:
        """The (mp4, jpg) of the video ``sha``, made now if need be; or why there is none.
        ``wait=False``: while another preview is being made, answer that at once (a poster
        request must not hold one of the server's threads for minutes)."""
        mp4, jpg = preview_paths(config.storage.files, sha)
        if mp4.is_file() and jpg.is_file():
            return mp4, jpg
        if not self._lock.acquire(blocking=wait):
            return zh(N_("Another video's playable copy is being made: reload the page in a minute"))
        try:
            if mp4.is_file() and jpg.is_file():  # made while this request waited
                return mp4, jpg
            if sha in self._failed:
                return self._failed[sha]
            limits = config.limits
            if self._pool is None:
                self._pool = WorkerPool(size=1, memory_bytes=limits.worker_memory_bytes)
            source = str(part_path(config.storage.files, sha))
            args = (source, str(mp4), str(jpg), facts.get("duration_s"), bool(facts.get("audio_codec")))
            try:
                self._pool.run(make_preview, *args, budget=MessageBudget(limits.preview_timeout_s))
            except Exception as e:  # noqa: BLE001 - a video FFmpeg cannot convert gets no preview, said so
                detail = getattr(e, "detail", "") or str(e) or type(e).__name__
                log.warning("no preview of %s: %s", sha, detail)
                self._failed[sha] = zh(N_("No playable copy could be made of this video ({error})")).format(
                    error=detail[-200:]
                )
                return self._failed[sha]
        finally:
            self._lock.release()
        return mp4, jpg

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def previews() -> Previews:
    return current_app.extensions.setdefault("mailroll.previews", Previews())


def video_facts(conn, part_id: int) -> tuple[str, dict] | None:
    """(sha256, facts) of a stored video part that needs a preview, else None."""
    row = conn.execute("SELECT sha256, facts, kind FROM parts WHERE id = ?", [part_id]).fetchone()
    if row is None or row[2] != "video" or not row[0] or not SHA256.match(row[0]):
        return None
    try:
        facts = json.loads(row[1]) if row[1] else {}
    except ValueError:
        return None
    return (row[0], facts) if needs_preview(facts) else None


def needing_preview(conn, part_ids: list[int]) -> set[int]:
    """The parts among ``part_ids`` that are videos a browser cannot play as sent."""
    return {p for p in part_ids if video_facts(conn, p) is not None}


def _send(part_id: int, which: int, mimetype: str, wait: bool):
    src = current_app.extensions["mailroll"]
    found = video_facts(src.connection(), part_id)
    if found is None:
        abort(404, zh(N_("This video plays as sent: it has no preview")))
    made = previews().ensure(src.config(), *found, wait=wait)
    if isinstance(made, str):
        abort(404, made)
    response = send_file(made[which], mimetype=mimetype, conditional=True, max_age=0)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; media-src 'self'"
    return response


@bp.route("/files/<int:part_id>/preview.mp4")
def preview(part_id: int):
    return _send(part_id, 0, "video/mp4", wait=True)


@bp.route("/files/<int:part_id>/poster.jpg")
def poster(part_id: int):
    return _send(part_id, 1, "image/jpeg", wait=False)
