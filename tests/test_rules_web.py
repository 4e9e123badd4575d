"""Web rules a person meets, each on every page or route it covers, found unguarded by generated
mutants (scripts/mutation.py) or only checked on one page: the safe headers and ``no-store`` on
every response, the CSRF token on every form's route (one route exempted among five is caught),
the read-only page without users, a sign-in that ends after ``[web] session_minutes`` even while
in use. Against `mailroll web` run as a real process (tests/test_web.py's ``serving``)."""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.request

import pytest
from fixtures.campaign import Campaign
from test_web import DT, LATER, PASSWORD, STAFF, STRANGER, TY, NoRedirect, fetch, send, serving

from reconcile.web.auth import hash_password

SAFE = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def fill(c: Campaign, media) -> None:
    send(c, TY, [(p.name, p.read_bytes()) for p in (media.sheet_xlsx, media.report_docx)])
    send(c, DT, [("总结报告.docx", media.report_docx.read_bytes())], when=LATER)
    send(c, STRANGER, [("report.docx", media.report_docx.read_bytes())], subject="材料", when=LATER)
    c.run("ingest", "--once")


def opener_with_jar():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect()), jar


def token_of(page: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()


def sign_in(opener, base: str) -> str:
    """Signs in; returns a CSRF token of the session."""
    _, _, page = fetch(opener, base + "/login")
    code, headers, _ = fetch(
        opener, base + "/login", {"csrf_token": token_of(page), "name": STAFF, "password": PASSWORD}
    )
    assert code == 303, code
    _, _, page = fetch(opener, base + "/unmatched")
    return token_of(page)


@pytest.fixture(scope="module")
def staff_site(tmp_path_factory, media):
    c = Campaign.create(tmp_path_factory.mktemp("web-rules"))
    c.configure(web={"users": [{"name": STAFF, "password_hash": hash_password(PASSWORD)}]})
    fill(c, media)
    with serving(c) as base:
        yield c, base


def test_every_page_and_file_sets_the_safe_headers_and_no_store(staff_site):
    c, base = staff_site
    opener, _ = opener_with_jar()
    signed_out = {
        "signed out " + path: fetch(opener, base + path)[:2]
        for path in ("/login", "/", "/api/status", "/nowhere")
    }
    sign_in(opener, base)
    _, _, unit_page = fetch(opener, base + "/units/taiyuan-kjj")
    file_ids = re.findall(rb"/files/(\d+)", unit_page)
    assert file_ids, "the unit page links its files"
    paths = [
        "/",
        "/units/taiyuan-kjj",
        "/unmatched",
        "/stats",
        "/report.xlsx",
        "/api/status",
        "/api/messages",
        f"/files/{file_ids[0].decode()}",
        "/units/no-such-unit",
    ]
    answers = {path: fetch(opener, base + path)[:2] for path in paths} | signed_out
    codes = {path: code for path, (code, _) in answers.items()}
    assert codes["/files/" + file_ids[0].decode()] == 200 and codes["/report.xlsx"] == 200
    assert codes["signed out /login"] == 200 and codes["signed out /"] == 302 and codes["/"] == 200
    assert codes["signed out /api/status"] == 401 and codes["/units/no-such-unit"] == 404
    for path, (_, headers) in answers.items():
        got = {k: headers.get(k) for k in SAFE}
        assert got == SAFE, path
        csp = headers.get("Content-Security-Policy") or ""
        assert "default-src 'none'" in csp, path
        # a page may not be framed; a file is shown sandboxed (no scripts, no origin)
        assert "frame-ancestors 'none'" in csp or csp.startswith("sandbox;"), path
        assert "script-src" not in csp, path


def test_every_form_route_refuses_a_post_without_the_csrf_token(staff_site):
    """Signed in, each of the POST routes is refused (400) without the token, and the same
    request with the token is not refused for it: one route left unprotected is caught."""
    c, base = staff_site
    opener, _ = opener_with_jar()
    token = sign_in(opener, base)
    stranger = next(m for m in c.run("unmatched", "--json").json if "someone@example.net" in str(m))
    routes = {
        "/decide/assign": {"message": str(stranger["id"]), "unit": "nowhere-unit"},
        "/decide/reject-message": {"message": "999999", "note": "x"},
        "/units/taiyuan-kjj/decide": {"action": "exempt", "note": ""},
        "/overrides/999999/revoke": {"note": "x"},
        "/logout": {},
    }
    without = {route: fetch(opener, base + route, form)[0] for route, form in routes.items()}
    assert without == dict.fromkeys(routes, 400)
    with_token = {
        route: fetch(opener, base + route, {**form, "csrf_token": token})[0] for route, form in routes.items()
    }
    # each form was refused for its token alone: with it, each is answered (a redirect to the
    # page that says what was done or why not)
    assert with_token == dict.fromkeys(routes, 303)
    assert c.run("overrides", "--all", "--json").json == []


def test_without_users_nothing_can_be_decided_and_no_decision_form_is_shown(campaign, media):
    fill(campaign, media)
    stranger = next(m for m in campaign.run("unmatched", "--json").json if "someone@example.net" in str(m))
    opener, _ = opener_with_jar()
    with serving(campaign) as base:
        code, _, page = fetch(opener, base + "/")
        assert code == 200 and 'data-unit="taiyuan-kjj"' in page.decode()
        code, _, unit_page = fetch(opener, base + "/units/taiyuan-kjj")
        assert code == 200 and b"decide-item" not in unit_page and b"decide-exempt" not in unit_page
        assert fetch(opener, base + "/login")[0] == 302  # no sign-in to offer
        _, _, unmatched = fetch(opener, base + "/unmatched")
        token = token_of(unmatched)  # the forms are there, disabled
        assign = {"csrf_token": token, "message": str(stranger["id"]), "unit": "taiyuan-kjj"}
        code, _, body = fetch(opener, base + "/decide/assign", assign)
        assert code == 403 and "登录" in body.decode()
        exempt = {"csrf_token": token, "action": "exempt", "note": "受灾"}
        assert fetch(opener, base + "/units/datong-kjj/decide", exempt)[0] == 403
    assert campaign.run("overrides", "--all", "--json").json == []
    assert stranger["id"] in [m["id"] for m in campaign.run("unmatched", "--json").json]


def test_a_sign_in_in_use_ends_after_its_lifetime(campaign, media):
    """session_minutes = 0.1 (6 s): the page answers while the sign-in is younger, then asks to
    sign in again even though it was used every second, also when the browser sends the old
    cookie anyway (a copied cookie does not outlive the sign-in)."""
    campaign.configure(
        web={"users": [{"name": STAFF, "password_hash": hash_password(PASSWORD)}], "session_minutes": 0.1}
    )
    opener, jar = opener_with_jar()
    with serving(campaign) as base:
        sign_in(opener, base)
        started = time.monotonic()
        cookie = "; ".join(f"{k.name}={k.value}" for k in jar)
        replay = urllib.request.build_opener(NoRedirect())
        replay.addheaders = [("Cookie", cookie)]
        seen = []
        while (age := time.monotonic() - started) < 9.0:
            seen.append((age, fetch(opener, base + "/")[0], fetch(replay, base + "/")[0]))
            time.sleep(0.5)
    young = [(a, c, r) for a, c, r in seen if a < 4.0]
    old = [(a, c, r) for a, c, r in seen if a > 7.0]
    assert young and all(c == 200 and r == 200 for _, c, r in young), seen
    assert old and all(c == 302 and r == 302 for _, c, r in old), seen
