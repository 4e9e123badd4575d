"""The video (影像资料): length, container and codecs, measured by ffprobe.

ffmpeg-python's ``ffmpeg.probe`` (0.2.0) has no timeout: it calls ``Popen.communicate()``
without one, so a file that makes ffprobe hang (a named pipe, a crafted stream) would hang the
whole poll. We run ffprobe ourselves with the same arguments ffmpeg.probe uses
(``-show_format -show_streams -of json``) through :func:`run_tool`, which kills the process
group after ``limits.probe_timeout_s``. ffprobe reads only the local file: the path is passed
as ``file:...`` and ``-protocol_whitelist file`` keeps a playlist from fetching URLs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ingest.checks.common import CheckError, extension_format, run_tool

NOT_A_VIDEO = "not a video file (the content is not a known media format)"
AUDIO_ONLY = "no video stream (audio only)"

# ffprobe format_name -> container, when the name alone decides
_FORMAT_CONTAINERS = {
    "avi": "avi",
    "asf": "wmv",
    "flv": "flv",
    "mpeg": "mpg",
    "mpegvideo": "mpg",
    "mpegts": "mpegts",
    "rm": "rm",
    "swf": "swf",
    "3gp": "3gp",
}
# 'ftyp' major brands of the ISO/QuickTime family
_BRANDS = {
    "qt": "mov",
    "m4v": "m4v",
    "m4vh": "m4v",
    "m4vp": "m4v",
    "3gp4": "3gp",
    "3gp5": "3gp",
    "3gp6": "3gp",
    "3gp7": "3gp",
    "3gs7": "3gp",
    "3g2a": "3gp",
    "3ge6": "3gp",
    "3gg6": "3gp",
}
_IMAGE_FORMATS = (
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "gif",
    "bmp_pipe",
    "webp_pipe",
    "tiff_pipe",
    "heif",
    "apng",
    "ico",
)


def ffprobe_json(path: Path, timeout: float) -> dict:
    """ffprobe's -show_format -show_streams output for a local file, within ``timeout`` s."""
    binary = shutil.which("ffprobe")
    if not binary:
        raise CheckError("the video cannot be checked: ffprobe (ffmpeg) is not installed")
    args = [
        binary,
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "file:" + str(Path(path).resolve()),
    ]
    result = run_tool(args, timeout, "the video could not be probed")
    if result.returncode != 0:
        raise CheckError(NOT_A_VIDEO)
    try:
        return json.loads(result.stdout.decode("utf-8", "replace"))
    except ValueError:
        raise CheckError(NOT_A_VIDEO) from None


def container_name(format_name: str, tags: dict, sniffed: str | None, filename: str | None) -> str:
    """One of mp4, mov, m4v, avi, wmv, flv, mkv, mpg, 3gp, webm, or ffprobe's raw name.

    ffprobe names the ISO family 'mov,mp4,m4a,3gp,3g2,mj2' and Matroska 'matroska,webm': the
    file's major brand, then the sniffed type, then the extension decide between them.
    """
    names = format_name.split(",")
    first = names[0]
    hint = sniffed if sniffed not in (None, "unknown") else None
    ext = extension_format(filename)
    if first == "mov":
        brand = str(tags.get("major_brand", "")).strip().lower()
        if brand in _BRANDS:
            return _BRANDS[brand]
        if brand:
            return "mp4"
        for candidate in (hint, ext):
            if candidate in ("mp4", "mov", "m4v", "3gp"):
                return candidate
        return "mov"
    if first == "matroska":
        for candidate in (hint, ext):
            if candidate in ("webm", "mkv"):
                return candidate
        return "mkv"
    return _FORMAT_CONTAINERS.get(first, first)


def _number(value, kind=float):
    try:
        return kind(value) if value not in (None, "N/A", "") else None
    except (TypeError, ValueError):
        return None


def read_video(path: Path, sniffed: str | None, filename: str | None, timeout: float) -> dict:
    """Facts of a video; raises CheckError for no video / not media / timeout."""
    info = ffprobe_json(path, timeout)
    fmt = info.get("format") or {}
    streams = info.get("streams") or []
    format_name = str(fmt.get("format_name") or "")
    if not fmt or not format_name:
        raise CheckError(NOT_A_VIDEO)
    if format_name.split(",")[0] in _IMAGE_FORMATS:
        raise CheckError("not a video file (the content is a still image)")
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video:
        if audio:
            raise CheckError(AUDIO_ONLY)
        raise CheckError(NOT_A_VIDEO)
    v = video[0]
    duration = _number(fmt.get("duration")) or _number(v.get("duration"))
    if duration is None:
        raise CheckError("the video's length cannot be read (the file may be damaged or incomplete)")
    return {
        "duration_s": round(duration, 3),
        "format_name": format_name,
        "container": container_name(format_name, fmt.get("tags") or {}, sniffed, filename),
        "video_codec": v.get("codec_name"),
        "audio_codec": audio[0].get("codec_name") if audio else None,
        "width": _number(v.get("width"), int),
        "height": _number(v.get("height"), int),
        "size": Path(path).stat().st_size,
        "bit_rate": _number(fmt.get("bit_rate"), int),
    }
