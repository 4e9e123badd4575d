"""The search page (`/search?q=`): `mailroll search` in the browser, from the box on every page."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from reconcile.search import search
from reconcile.web.pages import local_text, sources

bp = Blueprint("search", __name__)

QUERY_MAX = 200  # characters of a query: more is no search a person types


@bp.route("/search")
def search_page():
    src = sources()
    query = request.args.get("q", "")[:QUERY_MAX]
    tz = src.config().campaign.timezone
    rows = search(src.connection(), query.split(), tz) if query.strip() else []
    names = {u.id: u.name for u in src.roster().units}
    for r in rows:
        r["when"] = local_text(r["received_at"], tz)
        r["unit_name"] = names.get(r["unit"] or "", r["unit"] or "")
    return render_template("search.html", query=query, rows=rows)
