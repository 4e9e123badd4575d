"""Browser-playable previews of videos a browser cannot play (an iPhone's QuickTime/HEVC, AVI,
WMV, FLV, 3GP, MPEG-2 ...): an H.264/AAC MP4 of at most 720 lines with its index first (plays
while it downloads), and a poster frame (JPEG). Made with ffmpeg-python (the ``ffmpeg`` program)
as a worker task (``ingest.workers``: the worker's memory limit is the program's too, and over
its time the worker's process group, the program with it, is killed). Kept in the file store
under ``previews/`` by the original's sha256; the original stays as it was sent (export and
downloads give it).

The file is a stranger's, and FFmpeg guesses formats by their content: a playlist (HLS, ffconcat)
dressed as a video would make it read other files of the server, or URLs. So FFmpeg is told the
demuxer the video check found (``demuxer``: only the few that read one file) and may open files
only (``protocol_whitelist``); anything else gets no preview."""

from __future__ import annotations

import os
from pathlib import Path

PLAYABLE_CONTAINERS = {"mp4", "m4v", "webm"}
PLAYABLE_VIDEO = {"h264", "vp8", "vp9", "av1"}
PLAYABLE_AUDIO = {None, "aac", "mp3", "opus", "vorbis"}
MAX_LINES = 720  # the preview's height at most (never enlarged)
POSTER_AT_S = 1.0  # the poster frame: this far in (or the first frame of a shorter video)
# FFmpeg's demuxers that read a single file, by the first name in the video check's format_name
DEMUXERS = {
    "mov": "mov",
    "avi": "avi",
    "asf": "asf",
    "flv": "flv",
    "mpegts": "mpegts",
    "mpeg": "mpeg",
    "matroska": "matroska",
}


def demuxer(facts: dict | None) -> str | None:
    """The demuxer to read the video with (from the format the check found), None if none of
    ``DEMUXERS``."""
    name = str((facts or {}).get("format_name") or "").split(",")[0]
    return DEMUXERS.get(name)


def needs_preview(facts: dict | None) -> bool:
    """Whether a browser cannot play the video as sent (container or codec), from its facts."""
    if not isinstance(facts, dict) or not facts.get("video_codec") or demuxer(facts) is None:
        return False
    return (
        facts.get("container") not in PLAYABLE_CONTAINERS
        or facts.get("video_codec") not in PLAYABLE_VIDEO
        or facts.get("audio_codec") not in PLAYABLE_AUDIO
    )


def preview_paths(files_root: Path, sha: str) -> tuple[Path, Path]:
    """(the MP4, the poster JPEG) of the video with content ``sha``."""
    folder = Path(files_root) / "previews" / sha[:2]
    return folder / f"{sha}.mp4", folder / f"{sha}.jpg"


def make_preview(source: str, mp4: str, jpg: str, facts: dict) -> None:
    """Worker task: write the preview and the poster of ``source`` (``facts``: the video check's),
    under temporary names, then renamed: a preview is there whole or not at all.
    Raises RuntimeError with FFmpeg's last words on a video it cannot convert."""
    import ffmpeg

    Path(mp4).parent.mkdir(parents=True, exist_ok=True)
    tmp_mp4, tmp_jpg = f"{mp4}.{os.getpid()}.tmp.mp4", f"{jpg}.{os.getpid()}.tmp.jpg"
    quiet = ("-nostdin", "-loglevel", "error", "-y")
    try:
        fmt = demuxer(facts)
        if fmt is None:
            raise RuntimeError(f"no preview of a {facts.get('format_name')!r} file")
        _convert(source, fmt, tmp_mp4, tmp_jpg, facts, quiet)
        os.replace(tmp_jpg, jpg)
        os.replace(tmp_mp4, mp4)
    except ffmpeg.Error as e:  # its words, for the page and the log: the last line FFmpeg wrote
        said = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(said[-1][:300] if said else "FFmpeg could not convert it") from None
    finally:
        for leftover in (tmp_mp4, tmp_jpg):
            Path(leftover).unlink(missing_ok=True)


def _convert(source: str, fmt: str, tmp_mp4: str, tmp_jpg: str, facts: dict, quiet) -> None:
    """The two FFmpeg runs: the MP4 (x264's fastest preset: a preview, not an archive copy), then
    the poster frame from it; each input with its demuxer named and files the only protocol."""
    import ffmpeg

    audio = bool(facts.get("audio_codec"))
    stream = ffmpeg.input(source, f=fmt, protocol_whitelist="file")
    tracks = [stream.video.filter("scale", -2, f"min({MAX_LINES},ih)")]
    sound = {"acodec": "aac", "audio_bitrate": "96k"} if audio else {}
    if audio:
        tracks.append(stream.audio)
    encode = {"vcodec": "libx264", "preset": "ultrafast", "crf": 30, "pix_fmt": "yuv420p", "threads": 1}
    ffmpeg.output(*tracks, tmp_mp4, movflags="+faststart", **encode, **sound).global_args(*quiet).run(
        capture_stdout=True, capture_stderr=True
    )
    at = POSTER_AT_S if (facts.get("duration_s") or 0) > POSTER_AT_S * 2 else 0
    poster = ffmpeg.input(tmp_mp4, ss=at, f="mp4", protocol_whitelist="file").output(
        tmp_jpg, vframes=1, format="image2", vcodec="mjpeg"
    )
    poster.global_args(*quiet).run(capture_stdout=True, capture_stderr=True)


def sweep(files_root: Path) -> None:
    """Remove what conversions killed over their time left behind (their temporary files)."""
    for leftover in (Path(files_root) / "previews").glob("*/*.tmp.*"):
        leftover.unlink(missing_ok=True)
