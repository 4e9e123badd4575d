"""The Flask application: blueprints, sign-in gate, CSRF protection, safe headers, error pages.

Why Flask (and not Starlette): the pages are plain server-rendered forms with no JavaScript and
no long-lived connections, which Flask + Jinja2 (already used for the mail templates) do with the
least code; Flask-WTF's CSRFProtect guards every POST; werkzeug serves files with HTTP Range;
waitress, a pure-Python production WSGI server, runs it beside `serve` without a proxy.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect

from reconcile.i18n import N_, zh
from reconcile.web import auth, decisions, files, pages, previews, questions_page, replies_page, search_page
from reconcile.web.sources import Sources, choose_campaign, close_connection, keep_campaign
from reconcile.web.words import ACTION_ZH, DISPOSITION_ZH, EXEMPT_ZH, ITEM_STATE_ZH, LATE_ZH, UNIT_STATE_ZH

SECURITY_HEADERS = {
    # no scripts at all; styles, pictures and media only from this server; no framing
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def create_app(config_path, default_campaign: str | None = None, host: str | None = None) -> Flask:
    """The page for the config at ``config_path``; ``host`` is the address served on: cookies
    are ``Secure`` unless it is loopback (``[web] secure_cookies`` says otherwise)."""
    from reconcile import i18n

    i18n.activate("zh")  # the page is Chinese, whatever the server's locale (shared words: show's)
    sources = Sources(config_path, default_campaign)
    config = sources.config()  # a config error stops here, before serving
    app = Flask(__name__)
    # the templates' words: the message catalog's Chinese (_("...") as in the mail templates)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_translations(i18n.translations("zh"), newstyle=True)  # type: ignore[attr-defined]
    app.config.update(
        SECRET_KEY=os.urandom(32),  # a restart signs everyone out
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="mailroll_session",
        SESSION_COOKIE_SECURE=secure_cookies(config, host),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config.web.session_minutes),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the sign-in
        MAX_CONTENT_LENGTH=64 * 1024,  # forms are small
        DUMMY_HASH=auth.hash_password(os.urandom(16).hex()),
    )
    app.extensions["mailroll"] = sources
    # [web] trusted_proxy: the client's address is read per request (auth.client_address)
    app.extensions["mailroll.throttle"] = auth.Throttle()
    app.extensions["mailroll.sessions"] = auth.Sessions()
    app.before_request(auth.gate)  # first: without a sign-in, refused as such
    app.before_request(choose_campaign)
    app.url_defaults(keep_campaign)
    CSRFProtect(app)
    blueprints = (pages, decisions, files, auth, search_page, questions_page, replies_page, previews)
    for bp in (m.bp for m in blueprints):
        app.register_blueprint(bp)
    app.teardown_appcontext(close_connection)

    _errors_and_headers(app)

    app.context_processor(lambda: page_context(sources))
    _filters(app, sources)
    return app


def page_context(sources: Sources) -> dict:
    """What every template may use: the campaign, who is signed in, the words of states."""
    cfg = sources.config()
    staff = auth.signed_in()
    return {
        "campaign": cfg.campaign,
        "campaigns": sources.all_config().campaigns if sources.several() else (),
        "staff": staff,
        "sign_in_required": bool(cfg.web.users),
        "can_decide": staff is not None,
        "UNIT_STATE_ZH": UNIT_STATE_ZH,
        "ITEM_STATE_ZH": ITEM_STATE_ZH,
        "LATE_ZH": LATE_ZH,
        "EXEMPT_ZH": EXEMPT_ZH,
        "ITEMS": cfg.campaign.item_ids,
        "ITEM_ZH": cfg.campaign.labels,
        "DISPOSITION_ZH": DISPOSITION_ZH,
        "ACTION_ZH": ACTION_ZH,
        "content_type": files.content_type,
        # for staff only (and the read-only page on this machine): one count, never the list
        "open_questions": questions_page.open_count() if staff or not cfg.web.users else 0,
    }


def secure_cookies(config, host: str | None) -> bool:
    """``[web] secure_cookies``; unset: true unless the page is served on loopback only."""
    if config.web.secure_cookies is not None:
        return bool(config.web.secure_cookies)
    return not auth.is_loopback((host or "127.0.0.1").strip("[]"))


def _errors_and_headers(app: Flask) -> None:
    @app.after_request
    def safe_headers(response):
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        # files and the workbook too (send_file says no-cache: kept on a shared office PC's disk)
        response.headers["Cache-Control"] = SECURITY_HEADERS["Cache-Control"]
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(e):
        return render_template(
            "error.html",
            code=400,
            message=zh(N_("The form has expired or comes from elsewhere: reload the page and try again")),
        ), 400

    for code in (400, 401, 403, 404, 405, 413, 429):

        @app.errorhandler(code)
        def refused(e, code=code):
            return render_template("error.html", code=code, message=e.description), code


def _filters(app: Flask, sources: Sources) -> None:
    """Times in the campaign's zone, sizes in KB/MB."""

    @app.template_filter("localtime")
    def localtime(iso: str | None) -> str:
        if not iso:
            return ""
        try:
            value = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
        except ValueError:
            return str(iso)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(sources.config().campaign.timezone).strftime("%Y-%m-%d %H:%M")

    @app.template_filter("size")
    def size(n) -> str:
        if not n:
            return ""
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1024 or unit == "GB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1024
        return str(n)
