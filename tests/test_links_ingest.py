"""A video sent as a QQ 超大附件 link: recorded as a link, or fetched and checked like an attachment.

The download server is a real HTTP server on loopback. The only stand-in is the name lookup:
fs.mail.qq.com is made to resolve to 127.0.0.1 for the ingest running in this process
(links.allow_insecure_local permits plain HTTP and a local address; production never sets it).
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fixtures.mail import build_mail

JUNE_20 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def video_server(tmp_path, media):
    root = tmp_path / "www"
    root.mkdir()
    (root / "ftn").mkdir()
    (root / "ftn" / "video.mp4").write_bytes(media.video(170).read_bytes())
    (root / "ftn" / "long.mp4").write_bytes(media.video(181).read_bytes())
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def qq_resolves_locally(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        return real("127.0.0.1" if host == "fs.mail.qq.com" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def _link_mail(port: int, name: str) -> bytes:
    body = (
        f"您好，视频较大，以超大附件发送：\n{name}（30 MB，30天内有效）\n"
        f"http://fs.mail.qq.com:{port}/ftn/{name}\n"
    )
    return build_mail(subject="太原市科技局 科技活动周视频", body=body).as_bytes()


def _video_item(campaign):
    unit = campaign.unit("taiyuan-kjj")
    return unit["items"]["video"]


def test_link_not_fetched_is_shown_against_the_unit(campaign, video_server):
    campaign.deliver(_link_mail(video_server, "video.mp4"), when=JUNE_20)
    campaign.run("ingest", "--once")
    video = _video_item(campaign)
    assert video["state"] == "invalid"
    assert "download link" in video["reason"] and "video.mp4" in video["reason"]


def test_allowed_link_is_downloaded_and_checked(campaign, video_server, qq_resolves_locally):
    campaign.configure(
        links={"download": True, "allowed_hosts": ["fs.mail.qq.com"], "allow_insecure_local": True}
    )
    campaign.deliver(_link_mail(video_server, "video.mp4"), when=JUNE_20)
    campaign.run("ingest", "--once")
    video = _video_item(campaign)
    assert video["state"] == "ok", video
    assert "2:50" in (video.get("details") or "")


def test_downloaded_video_over_the_limit_is_invalid(campaign, video_server, qq_resolves_locally):
    campaign.configure(
        links={"download": True, "allowed_hosts": ["fs.mail.qq.com"], "allow_insecure_local": True}
    )
    campaign.deliver(_link_mail(video_server, "long.mp4"), when=JUNE_20)
    campaign.run("ingest", "--once")
    assert _video_item(campaign)["reason"] == "video lasts 3:01, over the 3:00 limit"


def test_host_not_allowed_is_not_fetched_and_says_why(campaign, video_server, qq_resolves_locally):
    campaign.configure(
        links={"download": True, "allowed_hosts": ["mail.163.com"], "allow_insecure_local": True}
    )
    campaign.deliver(_link_mail(video_server, "video.mp4"), when=JUNE_20)
    campaign.run("ingest", "--once")
    assert _video_item(campaign)["state"] == "invalid"
    import sqlite3

    ((status, error),) = (
        sqlite3.connect(campaign.db_path).execute("SELECT status, error FROM links").fetchall()
    )
    assert status == "failed" and "allowed_hosts" in error
