"""Staff sign-in: names and argon2 password hashes from ``[web] users`` in the config.

* Without users the page is read-only (and ``mailroll web`` binds to loopback only).
* With users, every page asks for a sign-in; decisions are recorded under the signed-in name.
* A sign-in lasts ``[web] session_minutes`` (default 8 hours), then the page asks again.
* Wrong passwords are rate-limited: after ``MAX_FAILURES`` for one name from one client address
  within ``WINDOW_S`` seconds, that pair is refused until the window has passed; one address is
  refused after ``ADDRESS_FAILURES`` whatever the names (spraying). A name alone is never
  locked: a stranger elsewhere cannot keep a staff member out by guessing at her name.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import defaultdict, deque
from functools import wraps
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from reconcile.i18n import N_, zh

MAX_FAILURES = 5  # one name from one address
ADDRESS_FAILURES = 20  # one address, any names
WINDOW_S = 600.0

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Throttle:
    """Failed sign-ins per key (client address, user name) in a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S):
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, key: str, limit: int | None = None) -> bool:
        now = time.monotonic()
        with self._lock:
            return len(self._recent(key, now)) >= (limit or self.max_failures)

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)


def users(config) -> dict[str, str]:
    return {u.name: u.password_hash for u in config.web.users}


def check_password(config, name: str, password: str) -> bool:
    stored = users(config).get(name)
    if stored is None:
        # as slow as a real check, so a wrong name cannot be told from a wrong password
        stored = current_app.config["DUMMY_HASH"]
        name = ""
    try:
        return _hasher.verify(stored, password) and bool(name)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def signed_in() -> str | None:
    """The signed-in staff name, if the sign-in is still valid (user still configured, not expired)."""
    if "staff" in g:
        return g.staff
    name = session.get("staff")
    since = session.get("since")
    config = current_app.extensions["mailroll"].config()
    lifetime = config.web.session_minutes * 60
    ok = (
        isinstance(name, str)
        and name in users(config)
        and isinstance(since, (int, float))
        and 0 <= time.time() - since < lifetime
    )
    if not ok and name:
        session.clear()
    g.staff = name if ok else None
    return g.staff


def sign_in_required() -> bool:
    return bool(current_app.extensions["mailroll"].config().web.users)


def staff_only(view):
    """For the POST forms: refused (403) unless a staff member is signed in."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if signed_in() is None:
            abort(403, zh(N_("Please sign in first: only signed-in staff can decide")))
        return view(*args, **kwargs)

    return wrapped


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1, also IPv4-mapped)."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _loopback_only() -> None:
    """Without users the page is this machine's only: a client elsewhere (users removed from the
    config while bound to the network) is refused, and so is a request naming another host,
    which is what a web page in a staff member's browser does when its own name is made to point
    at 127.0.0.1 (DNS rebinding) to read the roll call."""
    host = request.host
    host = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    if not (is_loopback(request.remote_addr) and is_loopback(host)):
        abort(403, zh(N_("Without staff sign-in this page is for this machine only (localhost)")))


def gate():
    """Before every request: with users configured, pages need a sign-in (not /login itself);
    without users, only this machine may read them."""
    if not sign_in_required():
        _loopback_only()
        return None
    if request.endpoint in ("auth.login", "static"):
        return None
    if signed_in() is None:
        if request.method != "GET":
            abort(403, zh(N_("Please sign in first: only signed-in staff can decide")))
        if request.path.startswith("/api/") or request.path.endswith(".xlsx"):
            abort(401, zh(N_("Please sign in first")))
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return None


# ---------------------------------------------------------------------------------- pages

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site to go back to after signing in: never another host (``//host``,
    a full URL, ``/\thost`` that a browser reads as ``//host`` once it drops the tab, a
    backslash), never a control character (a header cannot carry CR/LF)."""
    if not target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return url_for("pages.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return url_for("pages.overview")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    config = current_app.extensions["mailroll"].config()
    if not config.web.users:
        return redirect(url_for("pages.overview"))
    error = None
    status = 200
    name = ""
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        password = request.form.get("password") or ""
        throttle: Throttle = current_app.extensions["mailroll.throttle"]
        address, pair = f"addr:{request.remote_addr}", f"pair:{request.remote_addr}:{name}"
        if throttle.blocked(pair) or throttle.blocked(address, ADDRESS_FAILURES):
            error, status = (
                zh(N_("Too many wrong passwords: try again in {minutes} minutes")).format(
                    minutes=int(WINDOW_S // 60)
                ),
                429,
            )
        elif check_password(config, name, password):
            session.clear()
            session.permanent = True
            session["staff"] = name
            session["since"] = time.time()
            return redirect(_safe_next(request.args.get("next")), code=303)
        else:
            throttle.fail(address, pair)
            error, status = zh(N_("Wrong name or password")), 401
    return render_template("login.html", error=error, name=name), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"), code=303)
