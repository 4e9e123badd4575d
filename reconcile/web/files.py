"""Attachment files as stored (content-addressed under ``storage.files``): download, and videos
played in the page. werkzeug's ``send_file(conditional=True)`` answers HTTP Range requests
(206 Partial Content), which browsers need to seek in a video.

Every file came from an untrusted sender: only videos, pictures and PDF are shown inline, with
their own content type; anything else is sent as a download. Both the type and the download's
name follow what the content is (reconcile/export_names.py), not the name the sender gave it.
The response's CSP sandboxes it."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from flask import Blueprint, abort, current_app, send_file

from reconcile.export_names import name_by_type
from reconcile.i18n import N_, zh

bp = Blueprint("files", __name__)

INLINE = ("video/", "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def content_type(filename: str | None, kind: str | None) -> str:
    name = (filename or "").lower()
    suffix = Path(name).suffix
    if suffix in VIDEO_TYPES:
        return VIDEO_TYPES[suffix]
    guessed = mimetypes.guess_type(name)[0]
    if guessed:
        return guessed
    return "video/mp4" if kind == "video" else "application/octet-stream"


def part_path(files_root: Path, sha: str) -> Path:
    return Path(files_root) / sha[:2] / sha[2:4] / sha


MAX_ID = 2**63 - 1  # SQLite's largest integer: a bigger id is no file (404), never an error


@bp.route(f"/files/<int(max={MAX_ID}):part_id>")
def download(part_id: int):
    sources = current_app.extensions["mailroll"]
    row = (
        sources.connection()
        .execute("SELECT sha256, filename, kind, sniffed_type FROM parts WHERE id = ?", [part_id])
        .fetchone()
    )
    if row is None or not row[0] or not SHA256.match(row[0]):
        abort(404, zh(N_("No such file")))
    sha, filename, kind, sniffed = row
    name = name_by_type(filename, sniffed, f"part-{part_id}")  # a docx sent as .hta: ….docx
    path = part_path(sources.config().storage.files, sha)
    if not path.is_file():
        abort(404, zh(N_("The file is no longer in the store")))
    mimetype = content_type(name, kind)
    inline = mimetype.startswith(INLINE)
    response = send_file(
        path,
        mimetype=mimetype if inline else (mimetype or "application/octet-stream"),
        as_attachment=not inline,
        download_name=name,
        conditional=True,
        max_age=0,
    )
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; media-src 'self'"
    return response
