"""`mailroll web`: the office's own page, in Chinese, beside the CLI.

A server-rendered Flask application (Jinja2 templates, no JavaScript, no files from the
internet) that reads the same SQLite database and draws the same conclusions as the CLI:
status rows from ``reconcile.status_cache.refresh``, a unit from ``reconcile.unit_detail``,
figures from ``reconcile.stats``, staff decisions through ``reconcile.overrides``. It never
takes the ingest lock. Served by waitress (``reconcile.cli.web_cmd``).

Modules: app.py (the application factory, safe headers, CSRF), sources.py (config, roster and
database for a request), auth.py (staff sign-in), pages.py (the pages), decisions.py (the POST
forms), files.py (attachments, with HTTP Range for videos), chart.py (the progress chart, SVG),
warm.py (the status cache kept current in the background).
"""

from reconcile.web.app import create_app

__all__ = ["create_app"]
