"""The cached status rows and the quick road for `mailroll status --json`, taken before click and
the config module load (by ``reconcile.cli.main``).

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

import os

# Bump when the shape or rules of a status row change: cached rows are then recomputed.
STATUS_CODE_VERSION = "6"


def file_fingerprint(path) -> str:
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}"


def inputs_fingerprint(roster_path, config_path) -> str:
    """What attributions and status depend on besides the database: the roster and config files."""
    return f"roster={file_fingerprint(roster_path)};config={file_fingerprint(config_path)}"


def fingerprint_parts(data_version, roster_path, config_path) -> str:
    return f"v{STATUS_CODE_VERSION};data={data_version};{inputs_fingerprint(roster_path, config_path)}"


def _config_path(argv: list[str]) -> tuple[str | None, list[str]]:
    """Split ``--config PATH`` off the global options; None if anything else is there."""
    path = os.environ.get("MAILROLL_CONFIG") or "config.toml"
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt == "--config" and rest:
            path = rest.pop(0)
        elif opt.startswith("--config="):
            path = opt.split("=", 1)[1]
        else:
            return None, []
    return path, rest


def cached_status_json(argv: list[str]) -> str | None:
    """The `status --json` output from a current cache, or None (then run the real command)."""
    path, rest = _config_path(argv)
    if path is None or rest != ["status", "--json"]:
        return None
    try:
        import sqlite3
        import tomllib

        config_file = os.path.realpath(path)  # as ingest.config: paths relative to the real file
        with open(config_file, "rb") as f:
            data = tomllib.load(f)
        base = os.path.dirname(config_file)

        def resolve(p: str) -> str:
            p = os.path.expanduser(p)
            return os.path.realpath(p if os.path.isabs(p) else os.path.join(base, p))

        db = resolve(str(data.get("storage", {}).get("db", "mailroll.db")))
        roster = resolve(str(data["roster"]["path"]))
        if not os.path.exists(db):
            return None
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)
        try:
            state = dict(
                conn.execute(
                    "SELECT key, value FROM reconcile_state WHERE key IN ('version:data', 'status_fingerprint')"
                )
            )
            fp = fingerprint_parts(state.get("version:data", "-"), roster, config_file)
            if state.get("status_fingerprint") != fp:
                return None
            rows = [r[0] for r in conn.execute("SELECT json FROM unit_status ORDER BY pos")]
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - anything odd: the ordinary command handles it and says why
        return None
    return "[" + ", ".join(rows) + "]\n"
