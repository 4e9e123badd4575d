"""Tables as CSV files staff open in Excel or WPS: UTF-8 with a BOM, written whole or not at all,
and a sender's text that would start a formula kept as text."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

# what Excel and WPS read as the start of a formula in a CSV cell (OWASP's list)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_value(value: Any) -> Any:
    """A cell for a CSV file staff open in Excel or WPS: text a sender wrote that would start a
    formula (``=HYPERLINK("http://…")``, ``@SUM``, ``-1+1``) gets a leading apostrophe, so it
    is shown, not run; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv_file(path: Path, rows: list[list]) -> Path:
    """``rows`` as a UTF-8 CSV file with a BOM (Excel's way to know it is UTF-8), written to a
    temporary name and renamed, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        for row in rows:
            writer.writerow([csv_value(v) for v in row])
    tmp.replace(path)
    return path


def write_csv(tables: list, directory: Path) -> list[Path]:
    """Each ``reconcile.report.Table`` as ``DIRECTORY/<its name>.csv``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_csv_file(directory / f"{table.name}.csv", table.rows) for table in tables]
