"""Big-attachment links: found in real-looking bodies, and downloaded from a real local server."""

from __future__ import annotations

import http.server
import threading
import time
from urllib.parse import quote

import pytest
from fixtures.files import check_config

from ingest.links import download, filename_from_disposition, find_links, provider_for
from ingest.model import Link

NETEASE_HTML = """
<div style="padding:10px">从网易163邮箱发来的超大附件</div>
<table><tr><td><img src="https://mimg.127.net/xm/all/fj/ico-bfile-6.gif"></td>
<td><div>太原市科技活动周宣传片.mp4</div><div>(156.32M, 2022年7月10日 23:59 到期)</div>
<a href="https://mail.163.com/large-attachment-download/index.html?p=X1Y2Z3&amp;file=QUJD" target="_blank">下载</a>
</td></tr></table>
<p>发自<a href="https://mail.163.com/dashi/dlpro.html?from=mail81">网易邮箱大师</a></p>
"""

QQ_HTML = """
<div>从QQ邮箱发来的超大附件</div>
<div><a href="https://wx.mail.qq.com/ftn/download?func=3&amp;k=abc&amp;key=def&amp;fweb=1">
科技周活动视频（终版）.mov</a> (210.5M, 2022年07月13日 10:26 到期)</div>
"""

TEXT_BODY = """各位好：
视频文件较大，已上传百度网盘。
链接：https://pan.baidu.com/s/1AbCdEfGh 提取码：k7q2
另：活动照片.zip 见 https://share.weiyun.com/Xy12AbC
https://www.aliyundrive.com/s/abcDEF123 阿里云盘备份
"""


def test_netease_big_attachment_with_name_and_signature_ignored():
    links = find_links("", NETEASE_HTML)
    assert [(link.host, link.provider, link.filename) for link in links] == [
        ("mail.163.com", "网易163邮箱超大附件", "太原市科技活动周宣传片.mp4")
    ]
    assert links[0].url == "https://mail.163.com/large-attachment-download/index.html?p=X1Y2Z3&file=QUJD"


def test_qq_big_attachment_name_in_the_anchor():
    (link,) = find_links(None, QQ_HTML)
    assert link.provider == "QQ邮箱超大附件" and link.host == "wx.mail.qq.com"
    assert link.filename == "科技周活动视频（终版）.mov"


def test_cloud_drives_in_plain_text():
    links = find_links(TEXT_BODY, None)
    assert [(link.provider, link.filename) for link in links] == [
        ("百度网盘", None),
        ("腾讯微云", "活动照片.zip"),
        ("阿里云盘", None),
    ]
    assert links[0].url == "https://pan.baidu.com/s/1AbCdEfGh"


def test_same_link_in_text_and_html_counts_once():
    html = '<a href="https://pan.quark.cn/s/abc123">夸克</a>'
    assert len(find_links("见 https://pan.quark.cn/s/abc123", html)) == 1


@pytest.mark.parametrize(
    "url, provider",
    [
        ("https://dashi.163.com/html/cloud-attachment-download/index.html?key=1", "网易邮箱大师超大附件"),
        ("https://cloud.189.cn/t/abcdEF", "天翼云盘"),
        ("https://caiyun.139.com/m/i?0a5CBHfQ", "中国移动云盘"),
        ("https://www.alipan.com/s/xyz", "阿里云盘"),
        ("https://fs.mail.qq.com/cgi-bin/ftnDownload?k=1", "QQ邮箱超大附件"),
    ],
)
def test_providers(url, provider):
    assert provider_for(url)[1] == provider


@pytest.mark.parametrize(
    "url",
    [
        "https://mail.163.com/dashi/dlpro.html?from=mail81",  # 网易邮箱大师 signature
        "https://www.baidu.com/s?wd=科技活动周",
        "https://pan.baidu.com/disk/home",
        "https://mail.qq.com/",
        "https://example.com/video.mp4",
    ],
)
def test_not_big_attachments(url):
    assert provider_for(url) is None and find_links(url, None) == []


@pytest.mark.parametrize(
    "header, name",
    [
        ("attachment; filename*=UTF-8''%E5%AE%A3%E4%BC%A0%E7%89%87.mp4", "宣传片.mp4"),
        ("attachment; filename=\"video.mp4\"; filename*=UTF-8''%E8%A7%86%E9%A2%91.mp4", "视频.mp4"),
        ('attachment; filename="report.pdf"', "report.pdf"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="' + "宣传片.mp4".encode().decode("latin-1") + '"', "宣传片.mp4"),
        ('attachment; filename="' + "宣传片.mp4".encode("gbk").decode("latin-1") + '"', "宣传片.mp4"),
        (None, None),
    ],
)
def test_content_disposition(header, name):
    assert filename_from_disposition(header) == name


# ------------------------------------------------------------------------------ downloading


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # http.server's name
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_error(404)
            return
        status, headers, body = route
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if callable(body):
            self.end_headers()
            body(self.wfile)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.routes = {}
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def local_config(**links):
    values = {"download": True, "allowed_hosts": ["127.0.0.1"], "allow_insecure_local": True}
    values.update(links)
    return check_config(links=values)


def url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def link(server, path, name=None):
    return Link(url=url(server, path), host="127.0.0.1", provider="网易163邮箱超大附件", filename=name)


def test_download_streams_to_the_spool_with_the_servers_file_name(server, tmp_path):
    body = b"\x00\x00\x00\x18ftypmp42" + b"v" * 100_000
    _Handler.routes["/f"] = (
        200,
        {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": "attachment; filename*=UTF-8''" + quote("宣传片.mp4"),
        },
        body,
    )
    part = download(link(server, "/f?token=1"), local_config(), tmp_path / "spool")
    assert part.error is None
    assert part.origin == "link" and part.filename == "宣传片.mp4" and part.size == len(body)
    assert part.spool.read_bytes() == body and part.spool.parent == tmp_path / "spool"


def test_redirect_and_name_from_the_url(server, tmp_path):
    _Handler.routes["/go"] = (302, {"Location": "/files/%E8%A7%86%E9%A2%91.mp4"}, b"")
    _Handler.routes["/files/%E8%A7%86%E9%A2%91.mp4"] = (200, {"Content-Type": "video/mp4"}, b"data")
    part = download(link(server, "/go"), local_config(), tmp_path)
    assert part.error is None and part.filename == "视频.mp4" and part.spool.read_bytes() == b"data"


def test_too_large_by_header_and_by_stream(server, tmp_path):
    _Handler.routes["/big"] = (200, {"Content-Type": "video/mp4"}, b"x" * 5000)

    def endless(w):
        for _ in range(100):
            w.write(b"y" * 1000)

    _Handler.routes["/stream"] = (200, {"Content-Type": "video/mp4"}, endless)
    part = download(link(server, "/big"), local_config(max_bytes=1000), tmp_path)
    assert part.error.startswith("the linked file is too large")
    part = download(link(server, "/stream"), local_config(max_bytes=10_000), tmp_path)
    assert part.error.startswith("the linked file is larger than the limit")
    assert list(tmp_path.iterdir()) == []  # nothing left in the spool


def test_slow_download_is_cut_off(server, tmp_path):
    written: list[int] = []
    finished = threading.Event()

    def slow(w):  # 20 x 10 bytes over 4 s, unless the client hangs up first
        try:
            for _ in range(20):
                w.write(b"z" * 10)
                w.flush()
                written.append(10)
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            finished.set()

    _Handler.routes["/slow"] = (200, {"Content-Type": "video/mp4"}, slow)
    part = download(link(server, "/slow"), local_config(timeout_s=1.0), tmp_path)
    assert part.error == "the download took longer than 1 s; not fetched"
    assert finished.wait(30)
    assert len(written) < 20, "the client hung up before the server was done"


def test_a_web_page_is_not_the_file(server, tmp_path):
    _Handler.routes["/page"] = (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        "<html>请登录</html>".encode(),
    )
    part = download(link(server, "/page"), local_config(), tmp_path)
    assert part.error.startswith("the link leads to a web page of 网易163邮箱超大附件")


def test_expired_link(server, tmp_path):
    part = download(link(server, "/gone"), local_config(), tmp_path)
    assert part.error.startswith("the link answered HTTP 404")


def test_refusals(server, tmp_path):
    to_server = link(server, "/f")
    assert (
        download(to_server, check_config(links={"download": False}), tmp_path).error
        == "downloading links is turned off (links.download = false)"
    )
    assert (
        download(to_server, local_config(allowed_hosts=["mail.163.com"]), tmp_path).error
        == "the link's host 127.0.0.1 is not in links.allowed_hosts; not fetched"
    )
    strict = local_config(allow_insecure_local=False)
    assert download(to_server, strict, tmp_path).error == "only https links are downloaded; not fetched"
    https_local = Link(url=f"https://127.0.0.1:{server.server_address[1]}/f", host="127.0.0.1", provider="x")
    assert (
        download(https_local, strict, tmp_path).error
        == "the link's host 127.0.0.1 resolves to a private or local address (127.0.0.1); not fetched"
    )
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_a_private_address_is_refused(server, tmp_path):
    """An allowed host that redirects into the office network (or to a cloud's metadata address)
    is not followed: the real server's redirect is read, and the next hop refused before any
    connection. links.allow_insecure_local lets in loopback only, as the first hop here."""
    seen = []
    for target in ("10.1.2.3", "169.254.169.254"):
        path = f"/to-{target}"
        _Handler.routes[path] = (302, {"Location": f"http://{target}/internal/file.mp4"}, b"")
        part = download(link(server, path), local_config(allowed_hosts=["127.0.0.1", target]), tmp_path)
        seen.append(part.error)
    assert seen == [
        "the link's host 10.1.2.3 resolves to a private or local address (10.1.2.3); not fetched",
        "the link's host 169.254.169.254 resolves to a private or local address (169.254.169.254); not fetched",
    ]
    assert list(tmp_path.iterdir()) == []


def test_url_followed_by_chinese_without_a_space():
    (found,) = find_links("视频链接https://pan.baidu.com/s/1AbC提取码：abcd", None)
    assert found.url == "https://pan.baidu.com/s/1AbC"


def test_redirects_are_checked_like_the_link_itself(server, tmp_path):
    """Every hop must be an allowed host (and HTTPS, and a public address, as above)."""
    _Handler.routes["/away"] = (302, {"Location": "http://localhost:1/elsewhere"}, b"")
    part = download(link(server, "/away"), local_config(), tmp_path)
    assert part.error == "the link redirects to localhost, which is not in links.allowed_hosts; not fetched"
    _Handler.routes["/plain"] = (302, {"Location": url(server, "/f")}, b"")
    strict = check_config(links={"download": True, "allowed_hosts": ["127.0.0.1"]})
    assert download(link(server, "/plain"), strict, tmp_path).error == (
        "only https links are downloaded; not fetched"
    )


def test_the_message_budget_stops_an_endless_download(server, tmp_path):
    def endless(w):  # claims nothing, sends until the reader stops
        try:
            while True:
                w.write(b"z" * 65536)
        except OSError:
            pass

    _Handler.routes["/endless"] = (200, {"Content-Type": "video/mp4"}, endless)
    part = download(link(server, "/endless"), local_config(), tmp_path, budget=3 * 1024 * 1024)
    assert part.error == (
        "the message's files would be larger than the limit of 3 MB still free for it "
        "(limits.max_extracted_bytes); not fetched"
    )
    assert list(tmp_path.iterdir()) == []
