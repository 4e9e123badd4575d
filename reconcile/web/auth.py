"""Staff sign-in: names and argon2 password hashes from ``[web] users`` in the config.

* Without users the page is read-only (and ``mailroll web`` binds to loopback only); a request
  that came through a proxy (``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``, or HTTP/1.0 as
  nginx speaks to its upstream by default) is refused: a reverse proxy on the same machine would
  otherwise publish the roll call. With ``[web] trusted_proxy`` every request is (the config
  says one comes through a proxy); with users, the client's address is then the proxy's last
  ``X-Forwarded-For`` entry (``client_address``), the limiter's key, but only for a connection
  from loopback (the proxy on this machine; ``mailroll web`` refuses another ``--host`` with
  it): a client reaching the page directly writes its own X-Forwarded-For. The setting is read
  on every request. An IPv6 client is keyed by its /64 (one host holds all of it).
* With users, every page asks for a sign-in; decisions are recorded under the signed-in name.
* A sign-in is a session kept in this process (``Sessions``): the cookie only names it. It
  lasts ``[web] session_minutes`` (default 8 hours); signing out ends it, and so does changing
  or removing the user's password in the config (checked on every request).
* Wrong passwords are rate-limited: one address is refused after ``ADDRESS_FAILURES`` whatever
  the names (spraying), checked first; after ``MAX_FAILURES`` for one name from one address
  within ``WINDOW_S`` seconds that pair is refused until the window has passed. A name alone is
  never locked: a stranger elsewhere cannot keep a staff member out by guessing at her name.
  The limiter's memory is bounded: entries expire with the window, at most ``MAX_KEYS`` are
  kept (the oldest go first), and a name longer than ``MAX_NAME_CHARS`` is refused before
  anything is stored.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from reconcile.i18n import N_, zh

MAX_FAILURES = 5  # one name from one address
ADDRESS_FAILURES = 20  # one address, any names
WINDOW_S = 600.0
MAX_KEYS = 10_000  # limiter entries kept (addresses and address+name pairs together)
MAX_NAME_CHARS = 200  # a longer sign-in name is refused before anything is stored
MAX_SESSIONS = 10_000  # sessions kept; the oldest go first
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Throttle:
    """Failed sign-ins per key (client address, address + user name) in a sliding window; at
    most ``max_keys`` keys, each forgotten once its last failure left the window."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, max_keys: int = MAX_KEYS
    ):
        self.max_failures, self.window_s, self.max_keys = max_failures, window_s, max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def _expire(self, now: float) -> None:
        """Drop keys whose newest failure left the window (oldest-updated first, so this stops early)."""
        while self._failures:
            key, q = next(iter(self._failures.items()))
            if q and q[-1] > now - self.window_s:
                break
            del self._failures[key]

    def _count(self, key: str, now: float) -> int:
        q = self._failures.get(key)
        if q is None:
            return 0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return len(q)

    def blocked(self, key: str, limit: int | None = None) -> bool:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            return self._count(key, now) >= (limit or self.max_failures)

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            for k in keys:
                self._count(k, now)
                # never more remembered than a limit needs; the key moves to the end (newest)
                q = self._failures.pop(k, None) or deque(maxlen=max(self.max_failures, ADDRESS_FAILURES))
                q.append(now)
                self._failures[k] = q
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)


@dataclass
class _Session:
    name: str
    password_hash: str
    since: float


class Sessions:
    """Sign-ins kept in this process, by a random id the session cookie carries."""

    def __init__(self, max_sessions: int = MAX_SESSIONS):
        self.max_sessions = max_sessions
        self._by_id: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, name: str, password_hash: str) -> tuple[str, float]:
        sid, since = secrets.token_urlsafe(32), time.time()
        with self._lock:
            self._by_id[sid] = _Session(name, password_hash, since)
            while len(self._by_id) > self.max_sessions:
                self._by_id.popitem(last=False)
        return sid, since

    def end(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._by_id.pop(sid, None)

    def valid(self, sid: object, name: object, config, lifetime_s: float) -> bool:
        """The session is still on record, younger than ``lifetime_s``, for a user whose password
        in the config is the one she signed in with; otherwise it is ended."""
        if not isinstance(sid, str):
            return False
        with self._lock:
            s = self._by_id.get(sid)
            ok = (
                s is not None
                and s.name == name
                and users(config).get(s.name) == s.password_hash
                and 0 <= time.time() - s.since < lifetime_s
            )
            if s is not None and not ok:
                del self._by_id[sid]
        return ok


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
    config = current_app.extensions["mailroll"].config()
    sessions: Sessions = current_app.extensions["mailroll.sessions"]
    ok = isinstance(name, str) and sessions.valid(
        session.get("sid"), name, config, config.web.session_minutes * 60
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


def client_address() -> str:
    """The client's address: with ``[web] trusted_proxy`` and a connection from loopback (the
    proxy on this machine), the last ``X-Forwarded-For`` entry, which that proxy appended;
    otherwise the connection's own address, whatever the request says."""
    direct = request.remote_addr or ""
    if not (is_loopback(direct) and current_app.extensions["mailroll"].config().web.trusted_proxy):
        return direct
    forwarded = request.headers.getlist("X-Forwarded-For")
    last = forwarded[-1].rsplit(",", 1)[-1].strip() if forwarded else ""
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return direct


def limiter_key(address: str) -> str:
    """The limiter's key of an address: an IPv6 address by its /64, which one client holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    if isinstance(ip, ipaddress.IPv6Address) and mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(mapped or ip)


def _loopback_only() -> None:
    """Without users the page is this machine's only: a client elsewhere (users removed from the
    config while bound to the network) is refused, and so is a request naming another host,
    which is what a web page in a staff member's browser does when its own name is made to point
    at 127.0.0.1 (DNS rebinding) to read the roll call."""
    # nginx adds none of those headers unless told to, but speaks HTTP/1.0 to its upstream; with
    # [web] trusted_proxy the config says every request comes through one
    if (
        any(h in request.headers for h in PROXY_HEADERS)
        or request.environ.get("SERVER_PROTOCOL") == "HTTP/1.0"
        or current_app.extensions["mailroll"].config().web.trusted_proxy
    ):
        abort(
            403,
            zh(
                N_(
                    "Without staff sign-in this page is not served through a proxy: add [web] users (docs/WEB.md)"
                )
            ),
        )
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
        if len(name) > MAX_NAME_CHARS:  # refused before anything is stored or checked
            abort(400, zh(N_("This name is too long")))
        throttle: Throttle = current_app.extensions["mailroll.throttle"]
        client = limiter_key(client_address())
        address, pair = f"addr:{client}", f"pair:{client}:{name}"
        if throttle.blocked(address, ADDRESS_FAILURES) or throttle.blocked(pair):
            error, status = (
                zh(N_("Too many wrong passwords: try again in {minutes} minutes")).format(
                    minutes=int(WINDOW_S // 60)
                ),
                429,
            )
        elif check_password(config, name, password):
            session.clear()
            session.permanent = True
            sessions: Sessions = current_app.extensions["mailroll.sessions"]
            session["sid"], session["since"] = sessions.start(name, users(config)[name])
            session["staff"] = name
            return redirect(_safe_next(request.args.get("next")), code=303)
        else:
            throttle.fail(address, pair)
            error, status = zh(N_("Wrong name or password")), 401
    return render_template("login.html", error=error, name=name), status


@bp.route("/logout", methods=["POST"])
def logout():
    current_app.extensions["mailroll.sessions"].end(session.get("sid"))  # a copied cookie ends too
    session.clear()
    return redirect(url_for("auth.login"), code=303)
