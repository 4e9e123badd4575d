"""Videos a browser cannot play (``ingest.previews.needs_preview``) are shown in the page as their
browser-playable preview (H.264/AAC MP4, at most 720p) with a poster frame. The unit page asks
for the previews its videos lack; one thread of the page's own makes them one after the other in
a worker process (under ``limits.worker_memory_bytes`` and ``limits.preview_timeout_s``) and
keeps them in the file store: later views, and other staff, get them at once. No request waits
for a conversion: until it is done the page says so, and the preview's address answers 404.
The download link gives the file as sent."""

from __future__ import annotations

import json
import logging
import queue
import threading

from flask import Blueprint, abort, current_app, send_file

from ingest.previews import make_preview, needs_preview, preview_paths, sweep
from ingest.workers import MessageBudget, WorkerPool
from reconcile.i18n import N_, zh
from reconcile.web.files import SHA256, part_path

log = logging.getLogger(__name__)
bp = Blueprint("previews", __name__)


class Previews:
    """The previews being made: a queue and one thread that works through it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._asked: set[str] = set()  # sha256 queued or being made
        self._failed: dict[str, str] = {}  # sha256 -> why there is none (until a restart)
        self._pool: WorkerPool | None = None
        self._thread: threading.Thread | None = None
        self._swept = False

    def state(self, config, sha: str, facts: dict, ask: bool = True) -> str:
        """'ready', 'failed' or 'making' (asked for now when ``ask`` and not yet asked)."""
        mp4, jpg = preview_paths(config.storage.files, sha)
        if mp4.is_file() and jpg.is_file():
            return "ready"
        with self._lock:
            if sha in self._failed:
                return "failed"
            if ask and sha not in self._asked:
                self._asked.add(sha)
                self._queue.put((config, sha, facts))
                self._start(config)
        return "making"

    def why_not(self, sha: str) -> str | None:
        return self._failed.get(sha)

    def _start(self, config) -> None:
        if self._thread is None:
            if not self._swept:
                sweep(config.storage.files)
                self._swept = True
            self._pool = WorkerPool(size=1, memory_bytes=config.limits.worker_memory_bytes)
            self._thread = threading.Thread(target=self._work, name="previews", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            config, sha, facts = self._queue.get()
            mp4, jpg = preview_paths(config.storage.files, sha)
            source = str(part_path(config.storage.files, sha))
            assert self._pool is not None
            try:
                budget = MessageBudget(config.limits.preview_timeout_s)
                self._pool.run(make_preview, source, str(mp4), str(jpg), facts, budget=budget)
            except Exception as e:  # noqa: BLE001 - a video FFmpeg cannot convert gets no preview, said so
                detail = getattr(e, "detail", "") or str(e) or type(e).__name__
                log.warning("no preview of %s: %s", sha, detail)
                why = zh(N_("No playable copy could be made of this video ({error})")).format(
                    error=detail[-200:]
                )
                with self._lock:
                    self._failed[sha] = why
            finally:
                with self._lock:
                    self._asked.discard(sha)


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


def preview_states(conn, config, part_ids: list[int]) -> dict[int, str]:
    """For the unit page: each part among ``part_ids`` that is a video a browser cannot play as
    sent, with its preview's state ('ready', 'making', 'failed'); those not made yet are asked for."""
    out = {}
    for part in part_ids:
        found = video_facts(conn, part)
        if found is not None:
            out[part] = previews().state(config, *found)
    return out


def _send(part_id: int, which: int, mimetype: str):
    src = current_app.extensions["mailroll"]
    found = video_facts(src.connection(), part_id)
    if found is None:
        abort(404, zh(N_("This video plays as sent: it has no preview")))
    state = previews().state(src.config(), *found)
    if state != "ready":
        why = previews().why_not(found[0]) if state == "failed" else None
        abort(
            404, why or zh(N_("The playable copy of this video is being made: reload the page in a minute"))
        )
    response = send_file(
        preview_paths(src.config().storage.files, found[0])[which],
        mimetype=mimetype,
        conditional=True,
        max_age=0,
    )
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; media-src 'self'"
    return response


@bp.route("/files/<int:part_id>/preview.mp4")
def preview(part_id: int):
    return _send(part_id, 0, "video/mp4")


@bp.route("/files/<int:part_id>/poster.jpg")
def poster(part_id: int):
    return _send(part_id, 1, "image/jpeg")
