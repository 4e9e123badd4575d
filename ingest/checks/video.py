"""The video (影像资料): length, container and codecs, read by FFmpeg's own demuxers.

The demuxers are FFmpeg's libavformat, the code ffprobe runs, called in the worker process
through PyAV (``av``, loaded once by the forkserver): a probe costs a few milliseconds, where
starting an ffprobe process costs about 0.12 s of CPU (it loads some 200 shared libraries),
more than all the rest of a video's ingest. ``media_info`` returns what
``ffprobe -show_format -show_streams -of json`` prints (the fields used here, the same names),
so the facts do not depend on which of the two read the file (tests/test_video.py compares them
on every kind of test video).

Bounded as ffprobe was, and more: only a regular file is read (a named pipe would block the
open for ever), by FFmpeg itself through its descriptor, and only the ``fd`` protocol is allowed:
a playlist or concat list in the attachment can open no other file and no URL (ffprobe, with
``-protocol_whitelist file``, could still read other local files); and FFmpeg's
interrupt callback gives up after ``limits.probe_timeout_s`` (a live playlist that waits for a
segment that never comes); a crash in the C code ends only the worker process, and the part
gets the reason (the pipeline's worker tasks).
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from ingest.checks.common import CheckError, extension_format

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


def media_info(path: Path, timeout: float) -> dict:
    """What ``ffprobe -show_format -show_streams -of json`` says of a local file (the fields
    used by ``read_video``), read within ``timeout`` s; CheckError when it is not media."""
    import av

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # (a named pipe: not blocked)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckError(NOT_A_VIDEO)
        os.set_blocking(fd, True)
        started = time.monotonic()
        try:
            # read by FFmpeg itself from this descriptor, and from nothing else: a playlist or
            # concat list inside the file cannot open another file or a URL
            with av.open(
                "fd:",
                options={"protocol_whitelist": "fd", "fd": str(fd)},
                timeout=timeout,
                metadata_errors="replace",
            ) as container:
                return {"format": _format(container), "streams": [_stream(s) for s in container.streams]}
        except av.error.FFmpegError:
            if time.monotonic() - started >= timeout:
                raise CheckError(probe_timeout_reason(timeout)) from None
            raise CheckError(NOT_A_VIDEO) from None
    finally:
        os.close(fd)


def probe_timeout_reason(timeout: float) -> str:
    """Why a video has no facts when its probe ran out of time (in FFmpeg, or the worker
    process doing it was stopped: ``limits.probe_timeout_s``)."""
    return f"the video could not be probed within {timeout:g} s"


def _format(container) -> dict:
    fmt: dict = {"format_name": container.format.name, "tags": dict(container.metadata)}
    if container.duration is not None:
        fmt["duration"] = container.duration / 1_000_000  # AV_TIME_BASE
    if container.bit_rate:
        fmt["bit_rate"] = container.bit_rate
    return fmt


def _stream(stream) -> dict:
    import av

    out: dict = {
        "codec_type": stream.type,
        "disposition": {"attached_pic": int(bool(stream.disposition & av.stream.Disposition.attached_pic))},
    }
    if stream.duration is not None and stream.time_base:
        out["duration"] = float(stream.duration * stream.time_base)
    context = stream.codec_context
    if context is not None:
        try:
            out["codec_name"] = context.codec.canonical_name
        except Exception:  # noqa: BLE001 - a codec FFmpeg does not know: no name, as ffprobe
            pass
        if stream.type == "video":
            out["width"], out["height"] = context.width, context.height
    return out


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
    return video_facts(media_info(path, timeout), path, sniffed, filename)


def video_facts(info: dict, path: Path, sniffed: str | None, filename: str | None) -> dict:
    """The facts in ffprobe's JSON (or ``media_info``'s, the same)."""
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
