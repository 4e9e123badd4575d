"""Big-attachment and cloud-drive links (超大附件, 网盘) in a message, and fetching them safely.

Mail clients replace files over ~50 MB by a link: 网易 (163/126/yeah.net, 邮箱大师), QQ邮箱
超大附件/中转站, and people paste cloud-drive shares (百度网盘, 微云, 阿里云盘, 天翼云盘, 移动云盘,
360云盘, 夸克网盘). ``find_links`` recognises them in the plain text and the HTML (with the file
name shown next to the link when there is one); signature and advertising links of the same
providers (e.g. 网易邮箱大师's 'dlpro' download page) are not big attachments and are ignored.

``download`` fetches one link to a spool file, only when ``links.download`` is on and the host
is in ``links.allowed_hosts``; HTTPS only; every address the host resolves to must be public
(no loopback/private/link-local: a mail must not make us fetch from the office network), and
the connection goes to the address that was checked (no DNS rebinding); redirects (max 5) are
checked the same way; size (``links.max_bytes``) and time (``links.timeout_s``) are bounded.
Most providers answer with a web page rather than the file (they want a browser and a login):
that is reported as an error in plain words, not stored as the attachment.
``links.allow_insecure_local`` (tests only) allows plain HTTP and loopback addresses.
"""

# long: finding links and downloading them under one set of refusals

from __future__ import annotations

import email.message
import http.client
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import time
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

from ingest.model import ExtractedPart, Link

# (host suffix, path must match (None: any path), provider name as people call it)
PROVIDERS: list[tuple[str, re.Pattern | None, str]] = [
    ("dashi.163.com", re.compile(r"attachment|download", re.I), "网易邮箱大师超大附件"),
    (
        "mail.163.com",
        re.compile(r"large-attachment|attachment-download|cloud-attachment", re.I),
        "网易163邮箱超大附件",
    ),
    (
        "mail.126.com",
        re.compile(r"large-attachment|attachment-download|cloud-attachment", re.I),
        "网易126邮箱超大附件",
    ),
    (
        "mail.yeah.net",
        re.compile(r"large-attachment|attachment-download|cloud-attachment", re.I),
        "网易yeah.net邮箱超大附件",
    ),
    ("fs.163.com", None, "网易163邮箱超大附件"),
    ("fs.126.com", None, "网易126邮箱超大附件"),
    ("fs.mail.qq.com", None, "QQ邮箱超大附件"),
    ("wx.mail.qq.com", re.compile(r"ftn|download", re.I), "QQ邮箱超大附件"),
    ("mail.qq.com", re.compile(r"ftn", re.I), "QQ邮箱超大附件"),
    ("exmail.qq.com", re.compile(r"ftn", re.I), "腾讯企业邮箱超大附件"),
    ("pan.baidu.com", re.compile(r"^/(s/|share/)", re.I), "百度网盘"),
    ("share.weiyun.com", None, "腾讯微云"),
    ("aliyundrive.com", re.compile(r"^/s/", re.I), "阿里云盘"),
    ("alipan.com", re.compile(r"^/s/", re.I), "阿里云盘"),
    ("cloud.189.cn", re.compile(r"^/(t/|web/share)", re.I), "天翼云盘"),
    ("caiyun.139.com", re.compile(r"link|share|/m/i", re.I), "中国移动云盘"),
    ("yun.139.com", re.compile(r"link|share", re.I), "中国移动云盘"),
    ("yunpan.360.cn", re.compile(r"^/surl_|/link", re.I), "360安全云盘"),
    ("pan.quark.cn", re.compile(r"^/s/", re.I), "夸克网盘"),
    ("123pan.com", re.compile(r"^/s/", re.I), "123云盘"),
    ("lanzoui.com", None, "蓝奏云"),
    ("lanzoux.com", None, "蓝奏云"),
    ("lanzous.com", None, "蓝奏云"),
    ("wwi.lanzoup.com", None, "蓝奏云"),
]

_URL = re.compile(
    r"""(?:https?://|www\.)[^\s<>"'\u3000-\u303f\u4e00-\u9fff\uff01-\uff0f\uff1a-\uff20（）【】《》，。；：！？、]+""",
    re.I,
)
_FILE_NAME = re.compile(
    r"((?:[^\s/\\:*?\"<>|，。；：()（）【】]|[(（][^()（）\s]{1,30}[)）]|【[^【】\s]{1,30}】){1,120}\.(?:mp4|mov|m4v|avi|wmv|flv|mkv|mpg|mpeg|3gp|webm|rmvb|"
    r"zip|rar|7z|xlsx?|docx?|et|wps|pdf|jpe?g|png))(?![A-Za-z0-9])",
    re.I,
)
_NAME_PARAMS = ("file", "filename", "name", "fileName", "fname", "title")


def provider_for(url: str) -> tuple[str, str] | None:
    """(host, provider name) when the URL is a big attachment or cloud-drive share."""
    try:
        parts = urlsplit(url if "://" in url else "https://" + url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    for suffix, path_re, name in PROVIDERS:
        if host == suffix or host.endswith("." + suffix):
            target = (
                parts.path
                if path_re is not None and path_re.pattern.startswith("^")
                else parts.path + ("?" + parts.query if parts.query else "")
            )
            if path_re is None or path_re.search(target):
                return host, name
            return None
    return None


def _name_from_url(url: str) -> str | None:
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return None
    for key in _NAME_PARAMS:
        for value in query.get(key, []):
            value = value.strip()
            if _FILE_NAME.fullmatch(value):
                return value
    return None


def _name_near(text: str) -> str | None:
    matches = _FILE_NAME.findall(text or "")
    return matches[-1].strip() if matches else None


_BLOCK_TAGS = frozenset(("br", "p", "div", "tr", "li", "td"))
NAME_BEFORE = 300  # characters before a link searched for the file name it stands for
NAME_AFTER = 200  # ... and after it
MAX_URLS = 200  # URLs looked at per message (text and HTML): a body full of URLs costs no more


def _anchors(html: str) -> tuple[str, list[tuple[str, int, str]]]:
    """The visible text of ``html`` and its anchors as (href, position in the text, anchor text).

    lxml (libxml2) parses in linear time whatever the markup; the tree is walked without
    recursion, so deep nesting costs nothing either."""
    import lxml.etree
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return "", []
    text: list[str] = []
    length = 0
    spans: list[tuple[str, int, int]] = []
    open_: list[tuple[str, int]] = []
    for event, el in lxml.etree.iterwalk(doc, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else None  # comments, processing instructions
        if event == "start":
            if tag in ("script", "style", "head"):
                continue
            if tag == "a":
                open_.append((el.get("href") or "", length))
            elif tag in _BLOCK_TAGS:
                text.append("\n")
                length += 1
            if tag is not None and el.text:
                text.append(el.text)
                length += len(el.text)
        else:
            if tag == "a" and open_:
                href, pos = open_.pop()
                spans.append((href, pos, length))
            if el.tail and el.getparent() is not None:
                text.append(el.tail)
                length += len(el.tail)
    full = "".join(text)
    return full, [(href, pos, full[pos:end][:NAME_BEFORE]) for href, pos, end in spans[:MAX_URLS]]


def find_links(text: str | None, html: str | None) -> list[Link]:
    """Big-attachment and cloud-drive links in a message body (HTML first, then text), once each.

    Linear in the size of the body: at most ``MAX_URLS`` URLs are looked at, and a file name
    is searched for only in a window of ``NAME_BEFORE``/``NAME_AFTER`` characters around each."""
    found: dict[str, Link] = {}
    budget = [MAX_URLS]

    def add(url: str, name: str | None):
        budget[0] -= 1
        url = url.strip().rstrip(".,;)]>")
        if url.lower().startswith("www."):
            url = "https://" + url
        hit = provider_for(url)
        if not hit:
            return
        if url in found:
            if name and not found[url].filename:
                found[url].filename = name
            return
        found[url] = Link(url=url, host=hit[0], provider=hit[1], filename=name or _name_from_url(url))

    if html:
        full, anchors = _anchors(html[:2_000_000])
        for href, pos, anchor_text in anchors[:MAX_URLS]:
            end = pos + len(anchor_text)  # (the anchor text is cut to NAME_BEFORE)
            before = full[max(0, pos - NAME_BEFORE) : pos]
            after = full[end : end + NAME_AFTER]
            name = (
                _name_near(anchor_text[:NAME_BEFORE])
                or _name_near(before.split("\n\n")[-1])
                or _name_near(after.split("\n")[0])
            )
            add(href, name)
        for m in _URL.finditer(full):
            if budget[0] <= 0:
                break
            add(m.group(0), None)
    if text:
        previous_has_url = True
        previous = ""
        for line in text.splitlines():
            if budget[0] <= 0:
                break
            has_url = False
            for m in _URL.finditer(line):
                has_url = True
                if budget[0] <= 0:
                    break
                context = (
                    line[max(0, m.start() - NAME_BEFORE) : m.start()]
                    + " "
                    + line[m.end() : m.end() + NAME_AFTER]
                )
                name = _name_near(context) or (
                    _name_near(previous[-NAME_BEFORE:]) if not previous_has_url else None
                )
                add(m.group(0), name)
            previous, previous_has_url = line, has_url
    return list(found.values())


# ------------------------------------------------------------------------------- download


class LinkError(Exception):
    pass


def _host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == h or host.endswith("." + h) for h in allowed)


def _public_address(host: str, port: int, allow_local: bool) -> str:
    """The address to connect to; refuses hosts that resolve to non-public addresses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise LinkError(f"the link's host {host} cannot be found (DNS)") from None
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        # links.allow_insecure_local (tests only) lets in loopback, never the office network
        if not (allow_local and ip.is_loopback) and (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_reserved
            or ip.is_multicast
            or ip.is_unspecified
            or not ip.is_global
        ):
            raise LinkError(
                f"the link's host {host} resolves to a private or local address ({ip}); not fetched"
            )
        addresses.append(str(ip))
    if not addresses:
        raise LinkError(f"the link's host {host} cannot be found (DNS)")
    return addresses[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a pre-checked address, certificate checked against the host name."""

    def __init__(self, host, address, port, timeout, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, address, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def filename_from_disposition(value: str | None) -> str | None:
    """File name from a Content-Disposition header (RFC 6266 / RFC 2231 ``filename*=UTF-8''...``,
    quoted ``filename="..."``, and raw UTF-8 or GBK bytes as Chinese servers send them)."""
    if not value:
        return None
    extended = re.search(r"filename\*\s*=\s*([\w-]*)'[^']*'([^;\s]+)", value, re.I)
    if extended:  # RFC 6266: filename* wins over filename
        try:
            return _safe_name(
                unquote(extended.group(2).strip('"'), encoding=extended.group(1) or "utf-8", errors="strict")
            )
        except (LookupError, UnicodeDecodeError):
            pass
    msg = email.message.Message()
    msg["content-disposition"] = value
    name = msg.get_filename()
    if not name:
        return None
    if any(ord(c) > 127 for c in name) and all(ord(c) < 256 for c in name):
        raw = name.encode("latin-1")
        for enc in ("utf-8", "gb18030"):
            try:
                name = raw.decode(enc)
                break
            except UnicodeDecodeError:
                continue
    if "%" in name:
        name = unquote(name)
    return _safe_name(name)


def _safe_name(name: str | None) -> str | None:
    if not name:
        return None
    name = name.replace("\\", "/").split("/")[-1].strip().strip(".")
    name = "".join(c for c in name if c >= " " and c != "\x7f")
    return name[:200] or None


def _fail(link: Link, reason: str) -> ExtractedPart:
    return ExtractedPart(
        location=f"link:{link.filename or link.url}",
        filename=link.filename,
        declared_type=None,
        origin="link",
        error=reason,
    )


def cfg_mb(n: int | None) -> int:
    return max(n or 0, 0) // (1024 * 1024)


def download(link: Link, config, spool_dir: Path, budget: int | None = None) -> ExtractedPart:
    """Fetch one link into a spool file (origin 'link'). Never raises: a refusal or failure
    is the part's ``error``. ``budget``: bytes this message may still write (the message's
    ``limits.max_extracted_bytes`` less what its archives and earlier links took)."""
    cfg = config.links
    if not cfg.download:
        return _fail(link, "downloading links is turned off (links.download = false)")
    try:
        return _download(link, cfg, Path(spool_dir), budget)
    except LinkError as e:
        return _fail(link, str(e))
    except ValueError as e:  # a bad port, a host name that is not valid IDNA, ...
        return _fail(link, f"the link is not a valid address ({str(e)[:150]}); not fetched")
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        return _fail(link, f"the link could not be downloaded ({type(e).__name__}: {str(e)[:150]})")


# long: one HTTP exchange with every refusal (host, address, size, time) in the order it happens
def _download(link: Link, cfg, spool_dir: Path, budget: int | None = None) -> ExtractedPart:
    url = link.url
    deadline = time.monotonic() + cfg.timeout_s
    context = ssl.create_default_context()
    max_bytes = cfg.max_bytes if budget is None else min(cfg.max_bytes, budget)
    if max_bytes < cfg.max_bytes:
        too_big = (
            f"the message's files would be larger than the limit of {cfg_mb(budget)} MB still free "
            "for it (limits.max_extracted_bytes); not fetched"
        )
    else:
        too_big = f"the linked file is larger than the limit of {cfg_mb(cfg.max_bytes)} MB; not fetched"
    for _redirect in range(6):
        # every hop is checked alike: allowed host, HTTPS, public address
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if not _host_allowed(host, cfg.allowed_hosts):
            if url == link.url:
                raise LinkError(f"the link's host {host} is not in links.allowed_hosts; not fetched")
            raise LinkError(f"the link redirects to {host}, which is not in links.allowed_hosts; not fetched")
        if scheme != "https" and not (scheme == "http" and cfg.allow_insecure_local):
            raise LinkError("only https links are downloaded; not fetched")
        port = parts.port or (443 if scheme == "https" else 80)
        address = _public_address(host, port, cfg.allow_insecure_local)
        remaining = max(1.0, deadline - time.monotonic())
        timeout = min(60.0, remaining)
        conn = (
            _PinnedHTTPS(host, address, port, timeout, context)
            if scheme == "https"
            else _PinnedHTTP(host, address, port, timeout)
        )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            conn.request(
                "GET",
                target,
                headers={"User-Agent": "mailroll/0.1", "Accept": "*/*", "Accept-Encoding": "identity"},
            )
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urljoin(url, resp.getheader("Location"))
                continue
            if resp.status != 200:
                raise LinkError(f"the link answered HTTP {resp.status} {resp.reason} (expired or removed?)")
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            disposition = resp.getheader("Content-Disposition")
            if ctype in ("text/html", "application/xhtml+xml") and not disposition:
                raise LinkError(
                    f"the link leads to a web page of {link.provider}, not to the file: "
                    f"download it in a browser"
                )
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                if max_bytes < cfg.max_bytes:
                    raise LinkError(f"{too_big} (the file is {cfg_mb(int(length))} MB)")
                raise LinkError(
                    f"the linked file is too large ({cfg_mb(int(length))} MB, "
                    f"limit {cfg_mb(cfg.max_bytes)} MB); not fetched"
                )
            name = (
                filename_from_disposition(disposition)
                or link.filename
                or _safe_name(unquote(PurePosixPath(parts.path).name))
                or None
            )
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="link-", dir=spool_dir)
            size = 0
            try:
                with os.fdopen(fd, "wb") as out:
                    while True:
                        if time.monotonic() > deadline:
                            raise LinkError(f"the download took longer than {cfg.timeout_s:g} s; not fetched")
                        chunk = resp.read1(256 * 1024)  # what has arrived: the deadline is checked often
                        if not chunk:
                            break
                        size += len(chunk)
                        if size > max_bytes:
                            raise LinkError(too_big)
                        out.write(chunk)
                if length and length.isdigit() and size < int(length):
                    raise LinkError(f"the download was cut off ({size} of {length} bytes)")
            except BaseException:
                os.unlink(tmp)
                raise
            return ExtractedPart(
                location=f"link:{name or host}",
                filename=name,
                declared_type=ctype or None,
                origin="link",
                spool=Path(tmp),
                size=size,
            )
        finally:
            conn.close()
    raise LinkError("the link redirects too many times; not fetched")
