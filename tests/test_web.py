"""The office's page, driven by a real headless Chromium (Debian's chromium + chromium-driver) against
`mailroll web` run as a real process (waitress) on the database `mailroll ingest` filled.

Screenshots of the overview and a unit page are written to $MAILROLL_SCREENSHOTS (default: the
test's tmp dir)."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.campaign import Campaign
from fixtures.mail import build_mail
from fixtures.two_campaigns import use_two_campaigns

STAFF, PASSWORD = "王芳", "correct horse battery"
TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
STRANGER = "某县科协 <someone@example.net>"
NAMED = "王老师 <wang.laoshi@qq.com>"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
LATER = datetime(2022, 6, 22, 3, 0, tzinfo=UTC)
STATE_ZH = {"complete": "齐全", "incomplete": "不齐全", "missing": "未报送"}


def _password_hash() -> str:
    from reconcile.web.auth import hash_password

    return hash_password(PASSWORD)


@pytest.fixture(scope="module")
def site(tmp_path_factory, media):
    """A campaign with one complete unit, one with a too-long video, one unmatched message from a
    stranger; `mailroll web` serving it with one staff user. Yields (campaign, base URL)."""
    root = tmp_path_factory.mktemp("web")
    c = Campaign.create(root)
    c.configure(
        web={"users": [{"name": STAFF, "password_hash": _password_hash()}]},
        attribution={"named_senders": "review"},
    )
    send(c, TY, [(p.name, p.read_bytes()) for p in (media.sheet_xlsx, media.report_docx, media.video(20))])
    send(c, DT, [(media.video(200).name, media.video(200).read_bytes())], when=LATER)
    send(c, STRANGER, [("report.docx", media.report_docx.read_bytes())], subject="材料", when=LATER)
    # only named (not a registered address): waits for review
    send(
        c,
        NAMED,
        [("总结报告.docx", media.report_docx.read_bytes())],
        "长治市科学技术局科技活动周总结报告",
        LATER,
    )
    c.run("ingest", "--once")
    with serving(c) as base:
        yield c, base


def send(c: Campaign, sender: str, attachments: list, subject: str | None = None, when=BEFORE) -> None:
    c.deliver(
        build_mail(from_=sender, attachments=attachments, **({"subject": subject} if subject else {})),
        when=when,
    )


@contextlib.contextmanager
def serving(c: Campaign, *options: str):
    """`mailroll web` on a free port for ``c`` (with ``options``, e.g. ``--host``); yields its base
    URL, stops it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconcile", "--config", str(c.config_path), "web", "--port", "0", *options],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        m = re.search(r"http://[\d.]+:\d+/", line)
        assert m, f"mailroll web did not start: {line}{proc.stderr.read() if proc.poll() is not None else ''}"
        yield m.group(0).rstrip("/")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(binary) and os.path.exists(driver_path)):
        pytest.fail("chromium and chromium-driver are not installed: run `make test`, which installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--lang=zh-CN"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("MAILROLL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def submit(driver, button) -> None:
    """Click a form's button and wait until the next page has replaced this one. Chromium
    answers a question about the old page's element either "stale" or, while the new page is
    being attached, "Node with given id does not belong to the document": both mean it is gone."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("tag name", "html")
    button.click()

    def replaced(_driver) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # StaleElementReferenceException is one
            return True
        return False

    WebDriverWait(driver, 60).until(replaced)


def sign_in(driver, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    driver.find_element(By.ID, "name").send_keys(STAFF)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    submit(driver, driver.find_element(By.ID, "sign-in"))


def session_opener(driver) -> urllib.request.OpenerDirector:
    """urllib with the browser's session cookie (to fetch what a page points at)."""
    opener = urllib.request.build_opener(NoRedirect())
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    opener.addheaders = [("Cookie", cookie)]
    return opener


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(opener, url: str, data: dict | None = None, headers: dict | None = None):
    """(status, headers, body) without following redirects or raising for 4xx."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def overrides_count(c: Campaign) -> int:
    return len(c.run("overrides", "--all", "--json").json)


def test_overview_lists_every_unit_with_its_state_and_a_filter_narrows_it(site, browser, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    c, base = site
    sign_in(browser, base)
    browser.get(base + "/")
    status = c.run("status", "--json").json
    rows = browser.find_elements(By.CSS_SELECTOR, "#units tbody tr[data-unit]")
    shown = {r.get_attribute("data-unit"): r for r in rows}
    assert list(shown) == [u["id"] for u in status]
    for u in status:
        assert STATE_ZH[u["state"]] in shown[u["id"]].find_element(By.CSS_SELECTOR, ".state").text
    assert STATE_ZH["complete"] in shown["taiyuan-kjj"].text
    sheet = status[0]["items"]["statistics"]  # the counted file and the sheet's own 填报单位
    assert sheet["filename"] in shown["taiyuan-kjj"].text
    cell = shown["taiyuan-kjj"].find_element(By.CSS_SELECTOR, ".unit-cell").text
    assert cell.startswith("填报单位") and cell.endswith(f"：{sheet['unit_cell']}")
    counts = {
        s: int(browser.find_element(By.CSS_SELECTOR, f"#counts .count-{s} b").text)
        for s in ("complete", "incomplete", "missing", "exempt")
    }
    assert counts == {s: sum(u["state"] == s for u in status) for s in counts}
    assert sum(counts.values()) == len(status)
    datong = shown["datong-kjj"].text
    assert "不齐全" in datong and status[1]["items"]["video"]["reason_zh"] in datong
    days = browser.find_elements(By.CSS_SELECTOR, "svg.chart g > title")  # the chart, one bar a day
    n = {s: sum(u["state"] == s for u in status) for s in STATE_ZH}  # its last day: today's status
    last = "齐全{complete}，不齐全{incomplete}，未报送{missing}".format(**n)
    assert last in days[-1].get_attribute("textContent")
    assert browser.save_screenshot(str(shots / "overview.png"))

    Select(browser.find_element(By.ID, "filter-state")).select_by_visible_text("齐全")
    submit(browser, browser.find_element(By.ID, "apply-filters"))
    after = [
        r.get_attribute("data-unit") for r in browser.find_elements(By.CSS_SELECTOR, "#units tr[data-unit]")
    ]
    assert after == [u["id"] for u in status if u["state"] == "complete"] == ["taiyuan-kjj"]


def test_unit_page_plays_the_video_from_the_server(site, browser, shots):
    from selenium.webdriver.common.by import By

    c, base = site
    sign_in(browser, base)
    browser.get(base + "/units/taiyuan-kjj")
    assert browser.find_element(By.ID, "unit-state").text == "齐全"
    src = browser.find_element(By.CSS_SELECTOR, "video source").get_attribute("src")
    assert src.startswith(base + "/files/")
    opener = session_opener(browser)
    code, headers, body = fetch(opener, src)
    assert code == 200 and headers["Content-Type"].startswith("video/")
    assert headers["Cache-Control"] == "no-store"  # not kept on a shared office PC's disk
    assert body[4:8] == b"ftyp"  # the stored mp4 itself
    code, headers, part = fetch(opener, src, headers={"Range": "bytes=0-99"})
    assert code == 206 and part == body[:100] and headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    assert browser.save_screenshot(str(shots / "unit.png"))


def test_staff_assigns_an_unmatched_message_and_the_unit_changes_state(site, browser):
    from selenium.webdriver.common.by import By

    c, base = site
    before = {r["id"]: r for r in c.run("status", "--json").json}["sxu"]
    assert before["state"] == "missing"
    sign_in(browser, base)
    browser.get(base + "/unmatched")
    row = browser.find_element(By.CSS_SELECTOR, "#unmatched tr[data-message]")
    message = row.get_attribute("data-message")
    said = row.find_element(By.CSS_SELECTOR, "details.text summary").text
    assert said.startswith("您好，附件是"), "what the sender wrote, to decide by"
    row.find_element(By.NAME, "unit").send_keys("山西大学")
    submit(browser, row.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert browser.current_url == base + "/units/sxu"
    assert browser.find_element(By.ID, "unit-state").text == "不齐全"
    assert "王芳" in browser.find_element(By.ID, "audit").text
    after = {r["id"]: r for r in c.run("status", "--json").json}["sxu"]
    assert after["state"] == "incomplete" and after["items"]["report"]["state"] == "ok"
    shown = c.run("show", "sxu", "--json").json
    assert [(a["actor"], a["action"], a["detail"]["message"]) for a in shown["audit"]] == [
        (STAFF, "assign", int(message))
    ]


def test_decisions_are_refused_without_sign_in_and_without_the_csrf_token(site, browser):
    c, base = site
    count = overrides_count(c)
    anonymous = urllib.request.build_opener(NoRedirect())
    code, _, body = fetch(anonymous, base + "/units/sxu/decide", {"action": "exempt", "note": "x"})
    assert code == 403 and "请先登录" in body.decode()
    code, headers, _ = fetch(anonymous, base + "/")
    assert code == 302 and "/login" in headers["Location"]
    sign_in(browser, base)
    code, _, body = fetch(
        session_opener(browser), base + "/units/sxu/decide", {"action": "exempt", "note": "x"}
    )
    assert code == 400 and "表单已失效" in body.decode()
    assert overrides_count(c) == count


def test_api_status_and_messages_are_the_cli_json_byte_for_byte(site, browser):
    c, base = site
    sign_in(browser, base)
    opener = session_opener(browser)
    for path, command in (("/api/status", "status"), ("/api/messages", "messages")):
        code, headers, body = fetch(opener, base + path)
        cli = subprocess.run(
            [sys.executable, "-m", "reconcile", "--config", str(c.config_path), command, "--json"],
            capture_output=True,
            check=True,
        ).stdout
        assert code == 200 and headers["Content-Type"].startswith("application/json")
        assert body == cli


def test_stats_page_and_workbook_download(site, browser):
    import io

    import openpyxl

    c, base = site
    sign_in(browser, base)
    opener = session_opener(browser)
    stats = c.run("stats", "--json").json
    code, _, page = fetch(opener, base + "/stats")
    assert code == 200 and stats["units"] == 1
    assert f"按 {stats['units']} 个统计表合格的单位合计" in page.decode()
    assert "太原市科学技术局" in page.decode()  # the unit counted
    code, headers, data = fetch(opener, base + "/report.xlsx")
    assert code == 200 and "spreadsheetml" in headers["Content-Type"]
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert "单位情况" in wb.sheetnames and "进度" in wb.sheetnames


def test_staff_drops_a_message_waiting_for_review(site, browser):
    from selenium.webdriver.common.by import By

    c, base = site
    waiting = c.run("review", "--json").json
    assert [(r["unit"], r["from"]) for r in waiting] == [("changzhi-kjj", "wang.laoshi@qq.com")]
    sign_in(browser, base)
    browser.get(base + "/unmatched")
    row = browser.find_element(By.CSS_SELECTOR, f"#review tr[data-message='{waiting[0]['id']}']")
    assert "长治市科学技术局" in row.text
    row.find_element(By.NAME, "note").send_keys("不是该单位的材料")
    submit(browser, row.find_element(By.CSS_SELECTOR, "button.drop"))
    assert "不予计入" in browser.find_element(By.CSS_SELECTOR, ".flash.ok").text
    assert c.run("review", "--json").json == []
    assert browser.find_elements(By.CSS_SELECTOR, "#review tr[data-message]") == []
    audit = c.run("show", "changzhi-kjj", "--json").json["audit"]
    assert [(a["actor"], a["action"], a["note"]) for a in audit] == [(STAFF, "reject", "不是该单位的材料")]


def test_staff_dismisses_an_advertisement_and_finds_it_under_dealt_with(site, browser, tmp_path):
    import io

    import openpyxl
    from selenium.webdriver.common.by import By

    c, base = site
    c.deliver(
        build_mail(
            from_="征订部 <dingyue@baokan-zd.com>",
            subject="2023年度报刊征订通知",
            body="尊敬的客户：2023年度报刊征订工作已经开始。",
        ),
        when=LATER,
    )
    c.run("ingest", "--once")
    (ad,) = [m for m in c.run("unmatched", "--json").json if m["subject"] == "2023年度报刊征订通知"]
    sign_in(browser, base)
    forged = {"message": str(ad["id"]), "note": "x"}  # signed in, but without the form's CSRF token
    code, _, _ = fetch(session_opener(browser), base + "/decide/dismiss", forged)
    assert code == 400 and ad["id"] in [m["id"] for m in c.run("unmatched", "--json").json]
    browser.get(base + "/unmatched")
    row = browser.find_element(By.CSS_SELECTOR, f"#unmatched tr[data-message='{ad['id']}']")
    row.find_element(By.CSS_SELECTOR, "form.dismiss input[name=note]").send_keys("报刊征订广告")
    submit(browser, row.find_element(By.CSS_SELECTOR, "button.dismiss"))
    assert "不相关" in browser.find_element(By.CSS_SELECTOR, ".flash.ok").text
    assert browser.find_elements(By.CSS_SELECTOR, f"#unmatched tr[data-message='{ad['id']}']") == []
    assert ad["id"] not in [m["id"] for m in c.run("unmatched", "--json").json]
    code, _, data = fetch(session_opener(browser), base + "/report.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(data))["未匹配邮件"]
    assert code == 200 and ad["id"] not in [r[0].value for r in sheet.iter_rows(min_row=2)]
    submit(browser, browser.find_element(By.ID, "show-decided"))
    done = browser.find_element(By.CSS_SELECTOR, f"#decided tr[data-message='{ad['id']}']")
    assert done.get_attribute("data-state") == "dismissed"
    assert "不相关" in done.text and STAFF in done.text and "报刊征订广告" in done.text
    (decided,) = [r for r in c.run("unmatched", "--all", "--json").json if r["id"] == ad["id"]]
    assert (decided["state"], decided["decided_by"], decided["note"]) == ("dismissed", STAFF, "报刊征订广告")
    submit(browser, done.find_element(By.CSS_SELECTOR, "button.revoke"))
    assert ad["id"] in [m["id"] for m in c.run("unmatched", "--json").json]
    browser.get(base + "/unmatched")
    assert browser.find_elements(By.CSS_SELECTOR, f"#unmatched tr[data-message='{ad['id']}']")


def test_a_sheet_of_another_unit_shows_on_the_overview_and_stays_out_of_the_totals(site, browser, tmp_path):
    from fixtures.files import make_sheet_xlsx
    from selenium.webdriver.common.by import By

    c, base = site
    sheet = make_sheet_xlsx(tmp_path / "sxas.xlsx", unit="山西省科学院")
    send(
        c, "运城市科学技术局 <yckjj@yuncheng.gov.cn>", [("运城市统计表.xlsx", sheet.read_bytes())], when=LATER
    )
    c.run("ingest", "--once")
    totals = c.run("stats", "--json").json
    assert "yuncheng-kjj" in [e["unit"] for e in totals["excluded"]]
    sign_in(browser, base)
    browser.get(base + "/")
    row = browser.find_element(By.CSS_SELECTOR, "#units tr[data-unit='yuncheng-kjj']")
    assert (
        "运城市统计表.xlsx" in row.text
        and "山西省科学院" in row.find_element(By.CSS_SELECTOR, ".unit-cell").text
    )
    assert "统计表的填报单位是山西省科学院，不是本单位" in row.text
    browser.get(base + "/stats")
    left_out = browser.find_element(By.ID, "left-out").text
    assert "运城市科学技术局" in left_out and "统计表的填报单位是山西省科学院，不是本单位" in left_out
    per_unit = browser.find_element(By.ID, "per-unit").text
    assert "运城市科学技术局" not in per_unit


def test_after_signing_in_the_page_goes_back_only_to_this_site(site):
    """A sign-in link anyone can send staff (``/login?next=...``) never leads off the site after a
    real sign-in: not to ``//host``, a full URL, ``/<TAB>/host`` (a browser drops the tab and reads
    ``//host``), nor a header broken by CR/LF."""
    c, base = site

    def sign_in_with(target: str) -> str:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
        _, _, page = fetch(opener, base + "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        form = {"csrf_token": token, "name": STAFF, "password": PASSWORD}
        code, headers, _ = fetch(opener, f"{base}/login?next={target}", form)
        assert code == 303, (target, code)
        return headers["Location"]

    hostile = [
        "/%09/evil.example",
        "//evil.example",
        "https://evil.example/",
        "/%5Cevil.example",
        "/x%0d%0aSet-Cookie:a=b",
    ]
    for target in hostile:
        location = urllib.parse.urlsplit(sign_in_with(target))
        assert location.netloc in ("", urllib.parse.urlsplit(base).netloc) and location.path == "/", target
    assert sign_in_with("/unmatched%3Fcampaign%3Ddefault").endswith("/unmatched?campaign=default")


def test_the_login_page_sets_safe_headers_and_wrong_passwords_are_rate_limited(site):
    """Last of the tests on ``site``: it locks the staff name out of signing in. (Every other page
    and file: tests/test_rules_web.py)"""
    c, base = site
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    code, headers, page = fetch(opener, base + "/login")
    assert code == 200
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none': no scripts
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    codes = [
        fetch(opener, base + "/login", {"csrf_token": token, "name": STAFF, "password": f"wrong{i}"})[0]
        for i in range(5)
    ]
    assert codes == [401] * 5
    code, _, body = fetch(opener, base + "/login", {"csrf_token": token, "name": STAFF, "password": PASSWORD})
    assert code == 429 and "次数过多" in body.decode()
    # only that name from this address: another name is told its password is wrong, not locked
    code, _, _ = fetch(opener, base + "/login", {"csrf_token": token, "name": "李明", "password": "wrong"})
    assert code == 401


def test_without_users_web_refuses_to_listen_beyond_loopback(campaign):
    """(the read-only half: tests/test_rules_web.py)"""
    res = campaign.run_process("web", "--host", "0.0.0.0", "--port", "0", expect=2)
    assert "loopback" in res.stderr


def test_passwd_prints_a_users_entry_the_config_accepts(campaign):
    proc = subprocess.run(
        [sys.executable, "-m", "reconcile", "web", "passwd", STAFF],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("users = "))
    (campaign.root / "config.toml").write_text(
        campaign.config_path.read_text(encoding="utf-8") + "\n[web]\n" + line + "\n", encoding="utf-8"
    )
    from argon2 import PasswordHasher

    users = campaign.config().web.users
    assert [u.name for u in users] == [STAFF]
    assert PasswordHasher().verify(users[0].password_hash, PASSWORD)


def test_several_campaigns_each_have_their_pages_and_api(tmp_path_factory, media):
    """With [[campaigns]]: the first campaign's overview with a switcher to the other; every link
    keeps ``?campaign=ID``; /api/* equal `mailroll --campaign ID ... --json`; without an id
    /api/status is refused like the CLI, an unknown id is 404."""
    c = Campaign.create(tmp_path_factory.mktemp("web-campaigns"))
    use_two_campaigns(c)
    files = [(p.name, p.read_bytes()) for p in (media.sheet_xlsx, media.report_docx, media.video(20))]
    send(c, TY, files, "科技活动周材料")
    send(c, DT, [("活动总结.docx", media.report_docx.read_bytes())], "科普日活动总结", LATER)
    c.run("ingest", "--once")
    opener = urllib.request.build_opener(NoRedirect())
    kjz, kpr = (c.run("--campaign", cid, "status", "--json").json for cid in ("kjz2022", "kpr2022"))
    assert len(kpr) < len(kjz)
    with serving(c) as base:
        code, _, page = fetch(opener, base + "/")
        html = page.decode()
        assert code == 200 and re.findall(r'data-unit="([^"]+)"', html) == [u["id"] for u in kjz]
        assert re.findall(r'<nav class="campaigns".*?</nav>', html, re.S)[0].count("<a ") == 2
        code, _, page = fetch(opener, base + "/?campaign=kpr2022")
        html = page.decode()
        assert re.findall(r'data-unit="([^"]+)"', html) == [u["id"] for u in kpr]
        assert 'href="/units/datong-kjj?campaign=kpr2022"' in html
        assert 'href="/stats?campaign=kpr2022"' in html and 'aria-current="page">2022年全国科普日' in html
        for cid in ("kjz2022", "kpr2022"):
            for path, command in (("/api/status", "status"), ("/api/messages", "messages")):
                code, _, body = fetch(opener, f"{base}{path}?campaign={cid}")
                cli = c.run_process("--campaign", cid, command, "--json").output
                assert code == 200 and body.decode() == cli, (cid, path)
        code, _, body = fetch(opener, base + "/api/status")
        assert code == 400 and "kjz2022, kpr2022" in body.decode()
        assert fetch(opener, base + "/?campaign=nope")[0] == 404
        # without users, for this machine only: another host name (DNS rebinding) is refused
        assert fetch(opener, base + "/api/messages", headers={"Host": "attacker.example"})[0] == 403
        assert fetch(opener, base + "/api/messages", headers={"Host": "127.0.0.2:8080"})[0] == 200  # loopback
        assert (
            fetch(opener, base.replace("127.0.0.1", "localhost") + "/api/status?campaign=kpr2022")[0] == 200
        )
        # a decision made on the CLI: the server refreshes the cached status by itself, so the
        # next page does not pay for it (reconcile/web/warm.py)
        c.run("--campaign", "kpr2022", "exempt", "jinzhong-kjj", "--note", "不参加")
        assert cached_soon(c, "kpr2022")


def cached_soon(c: Campaign, campaign: str, within_s: float = 60.0) -> bool:
    """Whether the campaign's status cache becomes current (without any request) within the time."""
    import time

    from ingest.db import open_connection
    from reconcile.status_cache import cached_rows

    config = c.config().for_campaign(campaign)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        conn = open_connection(config.storage.db)
        try:
            if cached_rows(conn, config) is not None:
                return True
        finally:
            conn.close()
        time.sleep(0.5)
    return False


def test_the_search_box_finds_mail_and_the_unit_page_shows_what_was_written(site, browser, shots):
    from selenium.webdriver.common.by import By

    c, base = site
    sign_in(browser, base)
    browser.get(base + "/units/taiyuan-kjj")
    (text,) = browser.find_elements(By.CSS_SELECTOR, "#message-1 blockquote.text") or [None]
    assert text is not None and text.text == "您好，附件是我单位的科技活动周材料，请查收。"

    box = browser.find_element(By.ID, "search-box")
    box.send_keys("长治 总结报告")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.search button"))
    assert urllib.parse.urlparse(browser.current_url).path == "/search"
    rows = browser.find_elements(By.CSS_SELECTOR, "#search-results tbody tr")
    expected = c.run("search", "长治", "总结报告", "--json").json
    assert [int(r.get_attribute("data-message")) for r in rows] == [m["id"] for m in expected] != []
    marked = [m.text for m in rows[0].find_elements(By.TAG_NAME, "mark")]
    assert set(marked) <= {"长治", "总结报告"} and marked
    assert browser.find_element(By.ID, "search-box").get_attribute("value") == "长治 总结报告"
    assert browser.save_screenshot(str(shots / "search.png"))

    browser.get(base + "/search?q=" + urllib.parse.quote("<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" in browser.find_element(By.ID, "search-count").text
    assert browser.find_elements(By.CSS_SELECTOR, "#search-results tbody tr") == []


def test_questions_page_lists_open_questions_and_staff_close_one(tmp_path_factory, browser, shots):
    from selenium.webdriver.common.by import By

    c = Campaign.create(tmp_path_factory.mktemp("questions"))
    c.configure(web={"users": [{"name": STAFF, "password_hash": _password_hash()}]})
    for when, sender, subject, body in (
        (BEFORE, DT, "关于视频时长的咨询", "请问视频超过3分钟可以吗？"),
        (LATER, TY, "视频时长", "视频超过3分钟可以吗？我们有两个4分钟的视频。"),
        (LATER, STRANGER, "材料", "附件是材料，请查收。"),
    ):
        c.deliver(build_mail(from_=sender, subject=subject, body=body), when=when)
    c.run("ingest", "--once")
    asked = c.run("questions", "--json").json
    with serving(c) as base:
        sign_in(browser, base)
        assert browser.find_element(By.CSS_SELECTOR, "#nav-questions .badge").text == "2"
        browser.find_element(By.ID, "nav-questions").click()
        rows = browser.find_elements(By.CSS_SELECTOR, "#questions tbody tr")
        assert [int(r.get_attribute("data-message")) for r in rows] == [q["id"] for q in asked]
        assert rows[1].get_attribute("class") == "alike", "the same question twice stands as one group"
        assert "请问视频超过3分钟可以吗？" in rows[0].find_element(By.CSS_SELECTOR, "blockquote.text").text
        assert browser.save_screenshot(str(shots / "questions.png"))
        rows[0].find_element(By.NAME, "note").send_keys("电话答复")
        submit(browser, rows[0].find_element(By.CSS_SELECTOR, "form.answered button"))
        assert [
            int(r.get_attribute("data-message"))
            for r in browser.find_elements(By.CSS_SELECTOR, "#questions tbody tr")
        ] == [asked[1]["id"]]
        assert browser.find_element(By.CSS_SELECTOR, "#nav-questions .badge").text == "1"
    (closed,) = [q for q in c.run("questions", "--all", "--json").json if q["id"] == asked[0]["id"]]
    assert closed["answered_by"] == STAFF


def test_unit_page_lists_every_version_and_what_changed(tmp_path_factory, browser):
    from fixtures.files import DEFAULT_FIGURES, make_sheet_xlsx
    from selenium.webdriver.common.by import By

    root = tmp_path_factory.mktemp("versions")
    c = Campaign.create(root)
    first = make_sheet_xlsx(root / "v1.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 20})
    second = make_sheet_xlsx(root / "v2.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 23})
    send(c, TY, [("统计表.xlsx", first.read_bytes())])
    send(c, TY, [("统计表（更正版）.xlsx", second.read_bytes())], when=LATER)
    c.run("ingest", "--once")
    with serving(c) as base:
        browser.get(base + "/units/taiyuan-kjj")
        rows = browser.find_elements(By.CSS_SELECTOR, "#versions tr[data-item='statistics']")
        assert [r.find_elements(By.TAG_NAME, "td")[2].text.split(" ")[0] for r in rows] == [
            "统计表.xlsx",
            "统计表（更正版）.xlsx",
        ]
        assert [r.get_attribute("class") for r in rows] == ["", "counts"]
        assert "计入：最新版本" in rows[1].text and "已被之后的版本替换" in rows[0].text
        assert "活动总数 20 → 23" in rows[1].text


def test_a_video_the_browser_cannot_play_is_shown_as_a_playable_copy(tmp_path_factory, browser, shots):
    from fixtures.files import make_video
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    root = tmp_path_factory.mktemp("preview")
    c = Campaign.create(root)
    iphone = make_video(root / "IMG_0412.MOV", 4, "iphone-mov", audio=True)
    send(c, TY, [(iphone.name, iphone.read_bytes(), "video/quicktime")])
    c.run("ingest", "--once")
    (part,) = [p for m in c.run("show", "taiyuan-kjj", "--json").json["messages"] for p in m["parts"]]
    with serving(c) as base:
        browser.get(base + "/units/taiyuan-kjj")  # asks for the playable copy; no request waits for it
        waiting = browser.find_element(By.ID, f"video-{part['id']}")
        assert waiting.tag_name == "div" and "正在生成" in waiting.text
        opener = urllib.request.build_opener()
        made = time.monotonic() + 120
        while fetch(opener, f"{base}/files/{part['id']}/preview.mp4")[0] != 200:
            assert time.monotonic() < made, "the playable copy was not made within 120 s"
            time.sleep(0.5)
        browser.get(base + "/units/taiyuan-kjj")
        video = browser.find_element(By.ID, f"video-{part['id']}")
        assert "preview" in video.get_attribute("class")
        # the browser plays the copy: its first frame decoded, 720 lines at most (here 48, as sent)
        browser.execute_script("arguments[0].preload = 'auto'; arguments[0].load();", video)
        WebDriverWait(browser, 120).until(
            lambda d: d.execute_script("return arguments[0].readyState >= 2", video)
        )
        assert browser.execute_script(
            "return [arguments[0].videoWidth, arguments[0].videoHeight]", video
        ) == [64, 48]
        assert browser.save_screenshot(str(shots / "preview.png"))
        code, headers, body = fetch(opener, f"{base}/files/{part['id']}/poster.jpg")
        assert code == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
        code, _, original = fetch(opener, f"{base}/files/{part['id']}")
        assert code == 200 and original == iphone.read_bytes(), "the file as sent stays as it was"
        code, _, _ = fetch(opener, f"{base}/files/{part['id'] + 1000}/preview.mp4")
        assert code == 404
    cached = list((root / "files" / "previews").rglob("*.mp4"))
    assert [p.name for p in cached] == [f"{part['sha256']}.mp4"]


def test_a_playlist_dressed_as_a_video_never_shows_another_file(tmp_path_factory, browser):
    """An HLS playlist in front of a real MPEG-TS video: FFmpeg left to guess would play the file
    the playlist names (any file of the server, or a URL) as this unit's video."""
    from fixtures.files import make_video

    root = tmp_path_factory.mktemp("playlist")
    victim = make_video(root / "victim.avi", 2, "avi", size="320x240")
    real = make_video(root / "real.ts", 2, "ts", size="160x120")
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{victim}\n#EXT-X-ENDLIST\n".encode()
    hostile = playlist + b" " * (376 - len(playlist) % 188) + real.read_bytes()
    c = Campaign.create(root / "campaign")
    send(c, TY, [("宣传片.ts", hostile, "video/mp2t")])
    c.run("ingest", "--once")
    (part,) = [p for m in c.run("show", "taiyuan-kjj", "--json").json["messages"] for p in m["parts"]]
    assert part["kind"] == "video"
    with serving(c) as base:
        browser.get(base + "/units/taiyuan-kjj")
        opener = urllib.request.build_opener()
        until = time.monotonic() + 120
        while (answer := fetch(opener, f"{base}/files/{part['id']}/preview.mp4"))[0] != 200:
            if "No playable copy" in answer[2].decode() or "无法" in answer[2].decode():
                return  # refused: fine, as long as it never shows the other file
            assert time.monotonic() < until, "no answer about the playable copy within 120 s"
            time.sleep(0.5)
    (made,) = list((root / "campaign" / "files" / "previews").rglob("*.mp4"))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(made)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["160,120"], (
        "the preview is this message's video, not the file its playlist names"
    )


def test_staff_answer_a_question_by_mail_from_the_page(tmp_path_factory, browser, smtp_server):
    from selenium.webdriver.common.by import By

    c = Campaign.create(tmp_path_factory.mktemp("reply"))
    c.configure(
        web={"users": [{"name": STAFF, "password_hash": _password_hash()}]}, smtp=smtp_server.config()
    )
    for when, sender, subject, body in (
        (BEFORE, DT, "关于视频时长的咨询", "请问视频超过3分钟可以吗？"),
        (LATER, TY, "视频时长", "视频超过3分钟可以吗？"),
    ):
        c.deliver(build_mail(from_=sender, subject=subject, body=body), when=when)
    c.run("ingest", "--once")
    first, second = c.run("questions", "--json").json
    with serving(c) as base:
        sign_in(browser, base)
        browser.get(base + "/questions")
        row = browser.find_element(By.CSS_SELECTOR, f"#questions tr[data-message='{first['id']}']")
        row.find_element(By.NAME, "text").send_keys("可以，请剪辑到3分钟以内。")
        row.find_element(By.NAME, "save_as").send_keys("视频时长")
        submit(browser, row.find_element(By.CSS_SELECTOR, "form.reply button"))
        (mail,) = smtp_server.wait_for(1)
        assert mail.rcpt_tos == ["dtkjj2022@163.com"] and mail["Subject"] == "Re: 关于视频时长的咨询"
        assert "可以，请剪辑到3分钟以内。" in mail.text
        assert "已发送" in browser.find_element(By.CSS_SELECTOR, ".flash.ok").text
        rows = browser.find_elements(By.CSS_SELECTOR, "#questions tbody tr[data-message]")
        assert [int(r.get_attribute("data-message")) for r in rows] == [second["id"]]
        # the saved answer is a pick for the next question
        from selenium.webdriver.support.ui import Select

        Select(rows[0].find_element(By.NAME, "saved")).select_by_value("视频时长")
        submit(browser, rows[0].find_element(By.CSS_SELECTOR, "form.reply button"))
        assert [m.rcpt_tos for m in smtp_server.wait_for(2)] == [
            ["dtkjj2022@163.com"],
            ["tykjj@taiyuan.gov.cn"],
        ]
    assert c.run("questions", "--json").json == []
