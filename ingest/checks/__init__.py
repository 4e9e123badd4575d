"""Checks: measure facts about each attachment (ingest records facts; reconcile judges them).

``probe(part, path, config) -> (facts, error)`` dispatches by ``part.kind``:

==============  ====================  ==========================================
kind            module                facts (docs/FACTS.md)
==============  ====================  ==========================================
statistics      sheet.py              figures by row label, header cells, text
report          report.py             format, pages, text_chars, encrypted, scanned
video           video.py              duration_s, container, codecs, size (FFmpeg via PyAV)
image           image.py              format, width, height
==============  ====================  ==========================================

Helpers: ``workbook.py`` (files -> grids of cells), ``labels.py`` (label normalising, figures
typed as text), ``common.py`` (CheckError, formats, LibreOffice, timeouts), ``sheet_template.py``
(the blank form). Other kinds give ``(None, None)``. ``probe`` never raises: a file that cannot be read gives
``(None, reason)`` with the reason in plain words; every external tool runs with
``config.limits.probe_timeout_s``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ingest.checks.common import CheckError, file_format
from ingest.model import IMAGE, REPORT, STATISTICS, VIDEO

log = logging.getLogger(__name__)

__all__ = ["probe", "CheckError"]


def probe(part, path: Path, config) -> tuple[dict | None, str | None]:
    """Facts about one stored part, or the reason it could not be read."""
    kind = part.kind
    if kind not in (STATISTICS, REPORT, VIDEO, IMAGE):
        return None, None
    path = Path(path)
    limits = config.limits
    timeout = float(limits.probe_timeout_s)
    fmt = file_format(part.sniffed_type, part.filename)
    try:
        if not path.is_file():
            return None, "the file is missing from storage"
        if path.stat().st_size == 0:
            return None, "the file is empty (0 bytes)"
        if kind == STATISTICS:
            from ingest.checks.sheet import read_sheet

            return read_sheet(path, fmt, config.ingest_sheet, limits, timeout), None
        if kind == REPORT:
            from ingest.checks.report import read_report

            return read_report(path, fmt, limits, timeout), None
        if kind == VIDEO:
            from ingest.checks.video import read_video

            return read_video(path, part.sniffed_type, part.filename, timeout), None
        from ingest.checks.image import read_image

        facts = read_image(path, limits.max_image_pixels)
        if getattr(part, "inline", False):  # placed in the text of an HTML mail (Content-ID)
            facts["inline"] = True
        return facts, None
    except CheckError as e:
        return None, str(e)
    except MemoryError:
        return None, "the file could not be checked: it needs too much memory"
    except RecursionError:
        return None, "the file could not be checked: its structure is nested too deeply"
    except Exception as e:  # a library failing on odd input must not stop the poll
        log.warning("check of %s (%s) failed", part.location, kind, exc_info=True)
        return None, f"the file could not be checked ({type(e).__name__}: {str(e)[:150]})"
