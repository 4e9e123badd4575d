"""The status cache: one JSON row per unit in ``unit_status``, kept current by ``refresh``, and the
quick road for `mailroll status --json`, taken before click and the config module load (by
``reconcile.cli.main``).

Every write to messages, parts, links, attributions or overrides bumps
``reconcile_state['version:data']`` (SQLite triggers, ingest/db.py migration 2); together with the
roster's and config's mtime and size that makes a fingerprint. ``status --json`` with a fresh
cache is one look-up plus one SELECT; otherwise ``refresh`` recomputes (and re-attributes all
messages if the roster or config changed) and stores the rows.

Scripts poll `status --json`; with 2,000 units it must cost about what starting Python and one
SQLite query cost. When the cached status rows (table ``unit_status``) are current, this prints
them with nothing but the standard library: tomllib for two paths in the config, os.stat for
the roster's and config's mtime and size, sqlite3 for one look-up and one SELECT.

Whenever anything is unusual (other options, filters, no database yet, a stale cache, an odd
config) it returns False and the ordinary command runs, which recomputes and refreshes the
cache. So this module can only be faster, never different: the rows it prints are the ones the
ordinary command stored, under the same fingerprint (``fingerprint_parts``, shared with
reconcile.status).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3

from ingest.db import read_snapshot, transaction

log = logging.getLogger("mailroll.status")

# Bump when the shape or rules of a status row change: cached rows are then recomputed.
STATUS_CODE_VERSION = "8"  # 8: state exempt, missing = no item, a sheet of another unit


def file_fingerprint(path) -> str:
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}"


def inputs_fingerprint(roster_paths, config_path) -> str:
    """What attributions and status depend on besides the database: the rosters (of every
    campaign: a message's campaign depends on them all) and the config file."""
    rosters = ",".join(file_fingerprint(p) for p in dict.fromkeys(roster_paths))
    return f"roster={rosters};config={file_fingerprint(config_path)}"


def fingerprint_parts(data_version, roster_paths, config_path) -> str:
    return f"v{STATUS_CODE_VERSION};data={data_version};{inputs_fingerprint(roster_paths, config_path)}"


def status_key(campaign: str) -> str:
    return f"status_fingerprint:{campaign}"


def _global_options(argv: list[str]) -> tuple[str | None, str | None, list[str]]:
    """Split ``--config PATH`` and ``--campaign ID`` off the global options; path None if
    anything else is there."""
    path = os.environ.get("MAILROLL_CONFIG") or "config.toml"
    campaign = os.environ.get("MAILROLL_CAMPAIGN") or None
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt in ("--config", "--campaign") and rest:
            value = rest.pop(0)
        elif opt.startswith(("--config=", "--campaign=")):
            opt, value = opt.split("=", 1)
        else:
            return None, None, []
        if opt == "--config":
            path = value
        else:
            campaign = value
    return path, campaign, rest


def _campaign_and_rosters(data: dict, chosen: str | None, resolve) -> tuple[str, list[str]]:
    """The campaign `status` shows and every campaign's roster, from the TOML as read (as
    ingest.config reads it); raises on anything unusual (the ordinary command explains)."""
    listed = data.get("campaigns")
    if listed is None:
        if chosen not in (None, "default"):
            raise LookupError(chosen)
        return "default", [resolve(str(data["roster"]["path"]))]
    default = data.get("roster", {}).get("path")
    rosters = [resolve(str(c.get("roster", default))) for c in listed]
    ids = [str(c["id"]) for c in listed]
    if chosen is None:
        if len(ids) != 1:
            raise LookupError("several campaigns")
        chosen = ids[0]
    if chosen not in ids:
        raise LookupError(chosen)
    return chosen, rosters


def cached_status_json(argv: list[str]) -> str | None:
    """The `status --json` output from a current cache, or None (then run the real command)."""
    path, chosen, rest = _global_options(argv)
    if path is None or rest != ["status", "--json"]:
        return None
    try:
        import tomllib

        config_file = os.path.realpath(path)  # as ingest.config: paths relative to the real file
        with open(config_file, "rb") as f:
            data = tomllib.load(f)
        base = os.path.dirname(config_file)

        def resolve(p: str) -> str:
            p = os.path.expanduser(p)
            return os.path.realpath(p if os.path.isabs(p) else os.path.join(base, p))

        db = resolve(str(data.get("storage", {}).get("db", "mailroll.db")))
        campaign, rosters = _campaign_and_rosters(data, chosen, resolve)
        if not os.path.exists(db):
            return None
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)
        try:
            key = status_key(campaign)
            state = dict(
                conn.execute("SELECT key, value FROM reconcile_state WHERE key IN ('version:data', ?)", [key])
            )
            fp = fingerprint_parts(state.get("version:data", "-"), rosters, config_file)
            if state.get(key) != fp:
                return None
            rows = [
                r[0]
                for r in conn.execute(
                    "SELECT json FROM unit_status WHERE campaign = ? ORDER BY pos", [campaign]
                )
            ]
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - anything odd: the ordinary command handles it and says why
        return None
    return "[" + ", ".join(rows) + "]\n"


def json_text(data) -> str:
    """How every ``--json`` output is written (the CLI's emit_json, the web's /api/*): one line."""
    return json.dumps(data, ensure_ascii=False, indent=None, default=str) + "\n"


def rows_text(rows: list[str]) -> str:
    """Cached status rows (JSON texts) as the `status --json` array: the same bytes as json_text."""
    return "[" + ", ".join(rows) + "]\n"


def status_json(conn: sqlite3.Connection, config, roster_loader) -> str:
    """`status --json` without filters, exactly: the cached rows when current, else refreshed
    (``roster_loader()`` gives the roster; it is only loaded when the cache is stale)."""
    cached = cached_rows(conn, config)
    if cached is not None:
        return rows_text(cached)
    return json_text(refresh(conn, roster_loader(), config))


# ---------------------------------------------------------------------------------- fingerprint


def _roster_paths(config) -> list:
    return [c.roster for c in config.campaigns] or [config.roster.path]


def config_inputs(config) -> str:
    """What attributions depend on besides facts: the rosters and the config file."""
    return inputs_fingerprint(_roster_paths(config), config.path)


def fingerprint(conn: sqlite3.Connection, config) -> str:
    """The fingerprint of the current data, inputs and code: the cache is current when it matches."""
    row = conn.execute("SELECT value FROM reconcile_state WHERE key = 'version:data'").fetchone()
    return fingerprint_parts(row[0] if row else "-", _roster_paths(config), config.path)


def _state(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM reconcile_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO reconcile_state (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def cached_rows(conn: sqlite3.Connection, config) -> list[str] | None:
    """The cached JSON rows if they are current, else None. Cheap: for `status --json`."""
    campaign = config.campaign.id
    if _state(conn, status_key(campaign)) != fingerprint(conn, config):
        return None
    return [
        r[0] for r in conn.execute("SELECT json FROM unit_status WHERE campaign = ? ORDER BY pos", [campaign])
    ]


# ---------------------------------------------------------------------------------- refresh


def ensure_attributed(conn: sqlite3.Connection, roster, config) -> None:
    """Attribute what is not yet attributed; everything again if the roster or config changed."""
    from reconcile.attribute import attribute

    inputs = config_inputs(config)
    if _state(conn, "attribution_inputs") != inputs:
        attribute(conn, roster, config, None)
        _set_state(conn, "attribution_inputs", inputs)
        return
    todo = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM messages WHERE status = 'recorded' AND id NOT IN (SELECT message FROM attributions)"
        )
    ]
    stale = [
        r[0]
        for r in conn.execute(
            "SELECT a.message FROM attributions a JOIN messages m ON m.id = a.message "
            "WHERE m.status != 'recorded' OR (a.unit IS NOT NULL AND a.trust IS NULL)"
        )
    ]
    if todo or stale:
        attribute(conn, roster, config, todo + stale)


def refresh(conn: sqlite3.Connection, roster, config, *, force: bool = False) -> list[dict]:
    """Bring attributions and the status cache up to date; returns the status rows."""
    from reconcile.status import unit_statuses

    fp = fingerprint(conn, config)
    campaign = config.campaign.id
    if not force and _state(conn, status_key(campaign)) == fp:
        return [
            json.loads(r[0])
            for r in conn.execute("SELECT json FROM unit_status WHERE campaign = ? ORDER BY pos", [campaign])
        ]
    ensure_attributed(conn, roster, config)
    # Compute from one snapshot and store the fingerprint of that snapshot: a write by ingest
    # meanwhile leaves the cache marked stale, never marked fresh with old rows.
    with read_snapshot(conn):
        fp = fingerprint(conn, config)
        rows = unit_statuses(conn, roster, config)
    try:
        _store(conn, rows, fp, campaign)
    except sqlite3.OperationalError as e:  # e.g. a read-only copy of the database: answer anyway
        log.info("status not cached: %s", e)
    return rows


def _store(conn: sqlite3.Connection, rows: list[dict], fp: str, campaign: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM unit_status WHERE campaign = ?", [campaign])
        conn.executemany(
            "INSERT INTO unit_status (campaign, pos, unit, state, json) VALUES (?, ?, ?, ?, ?)",
            [
                (campaign, i, r["id"], r["state"], json.dumps(r, ensure_ascii=False, default=str))
                for i, r in enumerate(rows)
            ],
        )
        _set_state(conn, status_key(campaign), fp)
