"""Sign-in sessions, the sign-in limiter and the no-users mode, attacked as a stranger would: raw
HTTP requests to `mailroll web` run as a real process (waitress), docs/WEB.md "Sign-in and
safety"."""

from __future__ import annotations

import http.cookiejar
import re
import socket
import urllib.request

import psutil
import pytest
from test_web import PASSWORD, STAFF, NoRedirect, _password_hash, fetch, serving

HUGE_ID = "99999999999999999999"


class SentOverPlainHttp(http.cookiejar.DefaultCookiePolicy):
    """Sends ``Secure`` cookies over http too: the client stands where an HTTPS proxy would."""

    def return_ok_secure(self, cookie, request) -> bool:
        return True


def opener_with(cookie: str | None = None) -> urllib.request.OpenerDirector:
    """A client keeping its own cookies, or sending exactly ``cookie`` (a copied one)."""
    if cookie is not None:
        opener = urllib.request.build_opener(NoRedirect())
        opener.addheaders = [("Cookie", cookie)]
        return opener
    jar = http.cookiejar.CookieJar(SentOverPlainHttp())
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())


def token(opener, url: str) -> str:
    _, _, page = fetch(opener, url)
    return re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()


def sign_in(base: str, password: str = PASSWORD):
    """(opener, the session cookie as a browser would send it, Set-Cookie of the sign-in)."""
    opener = opener_with()
    form = {"csrf_token": token(opener, base + "/login"), "name": STAFF, "password": password}
    code, headers, _ = fetch(opener, base + "/login", form)
    assert code == 303
    set_cookie = headers["Set-Cookie"]
    return opener, set_cookie.split(";", 1)[0], set_cookie


@pytest.fixture
def staffed(campaign):
    campaign.configure(web={"users": [{"name": STAFF, "password_hash": _password_hash()}]})
    campaign.run("ingest", "--once")
    return campaign


def test_signing_out_ends_the_session_on_the_server(staffed):
    with serving(staffed) as base:
        opener, cookie, _ = sign_in(base)
        assert fetch(opener_with(cookie), base + "/api/status")[0] == 200
        code, _, _ = fetch(opener, base + "/logout", {"csrf_token": token(opener, base + "/")})
        assert code == 303
        # the cookie captured before signing out (a shared PC, a proxy log) reads nothing now
        assert fetch(opener_with(cookie), base + "/api/status")[0] == 401


def test_changing_or_removing_a_password_ends_that_users_sessions(staffed):
    with serving(staffed) as base:
        _, cookie, _ = sign_in(base)
        assert fetch(opener_with(cookie), base + "/api/status")[0] == 200
        staffed.configure(web={"users": [{"name": STAFF, "password_hash": _password_hash()}]})
        assert fetch(opener_with(cookie), base + "/api/status")[0] == 401, "a new hash: signed out"
        _, cookie, _ = sign_in(base)
        assert fetch(opener_with(cookie), base + "/api/status")[0] == 200
        other = {"name": "李明", "password_hash": _password_hash()}
        staffed.configure(web={"users": [other]})
        assert fetch(opener_with(cookie), base + "/api/status")[0] == 401, "removed: signed out"


def test_session_cookies_are_secure_unless_served_on_loopback(staffed):
    with serving(staffed) as base:
        assert "Secure" not in sign_in(base)[2]
    with serving(staffed, "--host", "0.0.0.0") as base:  # served to the network: behind HTTPS
        assert "Secure" in sign_in(base.replace("0.0.0.0", "127.0.0.1"))[2]
    staffed.configure(web={"secure_cookies": True})
    with serving(staffed) as base:
        assert "Secure" in sign_in(base)[2]


def test_the_sign_in_limiter_keeps_no_memory_for_hostile_names(staffed):
    """2,000 sign-ins with 60 KB names grew the page from 39 MB to 158 MB; now such a name is
    refused before anything is stored, and a sprayer's address is blocked after 20 names."""
    with serving(staffed) as base:
        (web,) = [p for p in psutil.Process().children() if "web" in p.cmdline()]
        opener = opener_with()
        csrf = token(opener, base + "/login")
        before = web.memory_info().rss
        for i in range(300):
            code, _, _ = fetch(
                opener, base + "/login", {"csrf_token": csrf, "name": f"{i}" + "n" * 60_000, "password": "x"}
            )
            assert code == 400
        grown = web.memory_info().rss - before
        assert grown < 20 * 2**20, f"grew by {grown / 2**20:.0f} MB"
        # the refused names counted for nothing: the staff member still signs in from here
        assert (
            fetch(opener, base + "/login", {"csrf_token": csrf, "name": STAFF, "password": PASSWORD})[0]
            == 303
        )
        sprayer = opener_with()  # the same address, a session of its own
        csrf = token(sprayer, base + "/login")
        codes = [
            fetch(sprayer, base + "/login", {"csrf_token": csrf, "name": f"user{i}", "password": "x"})[0]
            for i in range(25)
        ]
        assert codes == [401] * 20 + [429] * 5, "the address first: spraying names stops at 20"


def test_without_users_a_proxied_request_is_refused(campaign):
    with serving(campaign) as base:
        assert fetch(opener_with(), base + "/")[0] == 200
        for header in ({"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7;proto=https"}):
            code, _, body = fetch(opener_with(), base + "/api/status", headers=header)
            assert code == 403 and "代理" in body.decode(), header
        # what nginx sends upstream by default: HTTP/1.0, Host 127.0.0.1:<port>, no proxy headers
        host = base.removeprefix("http://")
        with socket.create_connection(tuple(host.rsplit(":", 1))) as s:
            s.sendall(f"GET /api/status HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            answer = b"".join(iter(lambda: s.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 403") or answer.startswith(b"HTTP/1.0 403"), answer[:80]


def test_behind_a_trusted_proxy_the_limiter_keys_on_the_client_not_the_proxy(staffed):
    """Behind nginx every client comes from 127.0.0.1: 20 wrong passwords from one stranger locked
    out every staff member. With [web] trusted_proxy the address is the one nginx forwards."""
    staffed.configure(web={"trusted_proxy": True})
    with serving(staffed) as base:
        sprayer = opener_with()
        csrf = token(sprayer, base + "/login")
        stranger = {"X-Forwarded-For": "203.0.113.7"}
        codes = [
            fetch(sprayer, base + "/login", {"csrf_token": csrf, "name": f"u{i}", "password": "x"}, stranger)[
                0
            ]
            for i in range(21)
        ]
        assert codes == [401] * 20 + [429]
        staff = opener_with()
        form = {"csrf_token": token(staff, base + "/login"), "name": STAFF, "password": PASSWORD}
        assert fetch(staff, base + "/login", form, {"X-Forwarded-For": "198.51.100.4"})[0] == 303
    # without users the page is never served through the proxy, forwarding headers or not
    staffed.configure(web={"users": []})
    with serving(staffed) as base:
        assert fetch(opener_with(), base + "/api/status")[0] == 403


def test_out_of_range_ids_are_not_found_not_a_server_error(staffed):
    with serving(staffed) as base:
        opener, _, _ = sign_in(base)
        for path in (f"/files/{HUGE_ID}", "/files/9223372036854775808", "/files/9223372036854775807"):
            assert fetch(opener, base + path)[0] == 404, path
        for path in (f"/files/{HUGE_ID}/preview.mp4", f"/files/{HUGE_ID}/poster.jpg"):
            assert fetch(opener, base + path)[0] == 404, path
        csrf = token(opener, base + "/unmatched")
        for path in (f"/overrides/{HUGE_ID}/revoke", f"/questions/{HUGE_ID}/answered"):
            assert fetch(opener, base + path, {"csrf_token": csrf, "note": "x"})[0] == 404, path
        code, headers, _ = fetch(
            opener, base + "/decide/reject-message", {"csrf_token": csrf, "message": HUGE_ID, "note": "x"}
        )
        assert code == 303, "an unknown message is said so on the page, not a 500"


def test_out_of_range_ids_on_the_command_line_are_usage_errors(campaign):
    campaign.run("ingest", "--once")
    for args in (
        ("revoke", HUGE_ID),
        ("show", "--raw", HUGE_ID),
        ("reprocess", HUGE_ID),
        ("reject", HUGE_ID, "--note", "x"),
    ):
        res = campaign.run(*args, expect=2)
        assert "OverflowError" not in res.output + res.stderr, args


def test_limiter_entries_expire_and_the_oldest_go_first():
    import time

    from reconcile.web.auth import Throttle

    throttle = Throttle(window_s=0.2, max_keys=100)
    for i in range(1_000):
        throttle.fail("addr:203.0.113.7", f"pair:203.0.113.7:name{i}")
    assert len(throttle) == 100, "at most max_keys entries, the oldest dropped"
    assert throttle.blocked("addr:203.0.113.7", 20), "the address, updated last, is kept and blocked"
    time.sleep(0.3)
    assert not throttle.blocked("addr:203.0.113.7", 20) and len(throttle) == 0, "all expired"


def _spray(base: str, forwarded) -> list[int]:
    """Wrong passwords under 30 names, each request naming the client ``forwarded(i)``."""
    sprayer = opener_with()
    csrf = token(sprayer, base + "/login")
    form = {"csrf_token": csrf, "password": "x"}
    return [
        fetch(sprayer, base + "/login", form | {"name": f"u{i}"}, {"X-Forwarded-For": forwarded(i)})[0]
        for i in range(30)
    ]


def test_trusted_proxy_is_for_a_proxy_on_this_machine_only(staffed):
    """F7: with [web] trusted_proxy on a network address a client reaching the page directly
    writes its own X-Forwarded-For and escapes the limiter: refused, saying why."""
    staffed.configure(web={"trusted_proxy": True})
    res = staffed.run_process("web", "--host", "0.0.0.0", "--port", "0", expect=2, timeout=60)
    assert "trusted_proxy" in res.stderr and "X-Forwarded-For" in res.stderr
    with serving(staffed) as base:
        # one IPv6 client holds its whole /64: rotating inside it is one client
        assert _spray(base, lambda i: f"2001:db8:1:2::{i:x}")[20:] == [429] * 10
        # the setting is read on every request: turned off, a forwarded address is not believed
        staffed.configure(web={"trusted_proxy": False})
        assert _spray(base, lambda i: f"203.0.113.{i}")[20:] == [429] * 10


def test_a_client_not_on_loopback_is_keyed_by_its_own_address(staffed):
    """F7: only the proxy on this machine (a loopback connection) names the client."""
    from reconcile.web import create_app

    staffed.configure(web={"trusted_proxy": True})
    app = create_app(staffed.config_path, host="0.0.0.0")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    page = client.get("/login").data
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    codes = [
        client.post(
            "/login",
            data={"csrf_token": csrf, "name": f"u{i}", "password": "x"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(25)
    ]
    assert codes[20:] == [429] * 5, codes
