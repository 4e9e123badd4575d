"""The video check on real ffmpeg-made files, and images."""

from __future__ import annotations

import json
import os
import subprocess
from functools import partial

import pytest
from fixtures.files import check_config, in_child, make_jpeg, probe_file, probed

from ingest.checks.video import AUDIO_ONLY, NOT_A_VIDEO


@pytest.fixture(autouse=True)
def _ffmpeg(ffmpeg_available):
    return ffmpeg_available


read = partial(probed, kind="video")


@pytest.mark.parametrize("seconds", [179, 180, 181])
def test_durations_around_the_three_minute_limit(media, seconds):
    facts = read(media.video(seconds))
    assert facts["duration_s"] == pytest.approx(seconds, abs=0.01)
    assert facts["container"] == "mp4"
    assert facts["format_name"] == "mov,mp4,m4a,3gp,3g2,mj2"
    assert facts["video_codec"] == "h264" and facts["audio_codec"] is None
    assert (facts["width"], facts["height"]) == (64, 48)
    assert facts["size"] == os.path.getsize(media.video(seconds))


def test_mov_with_audio(media):
    facts = read(media.video(5, "mov", audio=True))
    assert facts["container"] == "mov" and facts["audio_codec"] == "aac"
    assert facts["duration_s"] == pytest.approx(5, abs=0.1)


def test_mov_renamed_mp4_is_still_mov(tmp_path, media):
    path = tmp_path / "宣传片.mp4"
    path.write_bytes(media.video(5, "mov").read_bytes())
    assert read(path)["container"] == "mov"


@pytest.mark.parametrize(
    "container, expected_format",
    [
        ("avi", "avi"),
        ("mkv", "matroska,webm"),
        ("webm", "matroska,webm"),
        ("wmv", "asf"),
        ("flv", "flv"),
        ("3gp", None),
        ("mpg", "mpeg"),
        ("m4v", None),
    ],
)
def test_other_containers(media, container, expected_format):
    facts = read(media.video(3, container))
    assert facts["container"] == container
    if expected_format:
        assert facts["format_name"] == expected_format


def test_fake_mp4(media):
    facts, error = probe_file(media.fake_mp4, "video")
    assert facts is None and error == NOT_A_VIDEO


def test_audio_only(media):
    facts, error = probe_file(media.audio, "video", filename="视频.mp4")
    assert facts is None and error == AUDIO_ONLY


def test_a_photo_sent_as_the_video(tmp_path):
    path = make_jpeg(tmp_path / "视频.mp4")
    facts, error = probe_file(path, "video")
    assert facts is None and error == "not a video file (the content is a still image)"


def test_truncated_video(tmp_path, media):
    data = media.video(10).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 3])
    facts, error = probe_file(path, "video")
    assert facts is None
    assert error in (NOT_A_VIDEO, "the video's length cannot be read (the file may be damaged or incomplete)")


def test_a_named_pipe_is_refused_without_waiting(tmp_path):
    """Opening a named pipe nobody writes to blocks for ever: only regular files are probed."""
    from ingest.checks.common import CheckError
    from ingest.checks.video import read_video

    fifo = tmp_path / "hang.mp4"
    os.mkfifo(fifo)
    with pytest.raises(CheckError) as e:
        in_child(read_video, fifo, "mp4", "hang.mp4", timeout=30)
    assert str(e.value) == NOT_A_VIDEO


def test_image_facts(tmp_path):
    facts, error = probe_file(make_jpeg(tmp_path / "现场.jpg", 120, 80), "image")
    assert error is None and facts == {"format": "jpeg", "width": 120, "height": 80}


def test_image_over_the_pixel_limit(tmp_path):
    path = make_jpeg(tmp_path / "大图.jpg", 400, 300)
    facts, error = probe_file(path, "image", config=check_config(limits={"max_image_pixels": 10_000}))
    assert facts is None and error == "the image is too large to check (400x300 pixels)"


def test_other_kinds_have_no_facts(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    assert probe_file(path, "other") == (None, None)


def test_webm_renamed_mkv_by_sniffed_type(tmp_path, media):
    """Matroska and WebM share ffprobe's name: the sniffed type decides, then the extension."""
    path = tmp_path / "video.mkv"
    path.write_bytes(media.video(3, "webm").read_bytes())
    assert read(path, sniffed="webm")["container"] == "webm"
    assert read(path, sniffed="unknown")["container"] == "mkv"


def _ffprobe(path) -> dict:
    """What ffprobe itself says (the tool the facts were defined by)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def _facts_or_reason(info_of, path, sniffed="mp4"):
    from ingest.checks.common import CheckError
    from ingest.checks.video import video_facts

    try:
        return video_facts(info_of(path), path, sniffed, path.name)
    except CheckError as e:
        return str(e)


@pytest.mark.parametrize(
    "made",
    [
        ("video", 7, "mp4", False),
        ("video", 5, "mov", True),
        *[("video", 3, c, False) for c in ("avi", "mkv", "webm", "wmv", "flv", "3gp", "mpg", "m4v")],
        ("audio",),
        ("photo",),
    ],
    ids=lambda m: "-".join(map(str, m)),
)
def test_the_facts_are_ffprobes(media, tmp_path, made):
    """The probe in the worker (FFmpeg's demuxers through PyAV) finds what ffprobe finds."""
    from ingest.checks.video import media_info

    if made[0] == "video":
        path = media.video(*made[1:])
    elif made[0] == "audio":
        path = media.audio
    else:
        path = make_jpeg(tmp_path / "photo.jpg")
    ours = _facts_or_reason(partial(in_child, media_info, timeout=30), path)
    assert ours == _facts_or_reason(_ffprobe, path)
    assert made[0] == "video" or isinstance(ours, str)  # the audio and the photo are refused


def test_a_title_that_is_not_utf8_does_not_spoil_the_facts(media, tmp_path):
    """Metadata in GBK or Latin-1 (here one byte that is not UTF-8 in a Matroska title) is read
    with replacement characters, as ffprobe prints it: the video's facts are found."""
    from ingest.checks.video import media_info

    made = tmp_path / "titled.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(media.video(3, "mkv")), "-c", "copy"]
        + ["-metadata", "title=mailroll-title", str(made)],
        check=True,
        timeout=60,
    )
    path = tmp_path / "宣传片.mkv"
    data = made.read_bytes()
    assert data.count(b"mailroll-title") == 1
    path.write_bytes(data.replace(b"mailroll-title", b"\xffailroll-title"))
    ours = _facts_or_reason(partial(in_child, media_info, timeout=30), path, sniffed="mkv")
    assert isinstance(ours, dict) and ours["duration_s"] == pytest.approx(3, abs=0.1)
    assert ours == _facts_or_reason(_ffprobe, path, sniffed="mkv")


def test_a_concat_list_sent_as_the_video_opens_no_other_file(media, tmp_path):
    """An attachment that is an ffconcat list naming a file beside it (a stored video, or any
    local file): FFmpeg may read only the attachment itself, so it is not a video, and the other
    file's facts are not taken for its own."""
    from ingest.checks.common import CheckError
    from ingest.checks.video import read_video

    (tmp_path / "secret_file").write_bytes(media.video(3).read_bytes())
    path = tmp_path / "视频.mp4"
    path.write_bytes(b"ffconcat version 1.0\nfile secret_file\n")
    with pytest.raises(CheckError) as e:
        in_child(read_video, path, "mp4", path.name, timeout=30)
    assert str(e.value) == NOT_A_VIDEO
