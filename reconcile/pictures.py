"""Which recorded pictures are a unit's photos, for an ``images`` item (docs/RECONCILE.md).

Mail carries pictures that nobody sent as material: the logo in a signature, a banner, an
emoji, a tracking pixel. Ingest records each picture with its size in pixels and whether it
was placed in the text of an HTML mail (``facts.inline``: a ``Content-ID`` image, not sent as
an attachment); here those facts decide:

* a picture whose longer side is under ``MIN_PHOTO_SIDE`` pixels is never a photo (icons,
  emoji, 1x1 trackers), attached or not;
* a picture in the text of the mail counts only from ``MIN_INLINE_PHOTO_SIDE`` pixels on its
  longer side: signatures and logos are smaller, a photo pasted into the text is bigger.

Such a *decoration* is left out altogether: it is not a submission of the item, and it does not
make a message look like material for a campaign (``reconcile.scope``). A picture whose size
could not be read (HEIC from phones) counts. A picture of a format the item does not accept
(``formats``) is a submission, judged invalid with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIN_PHOTO_SIDE = 200
MIN_INLINE_PHOTO_SIDE = 640


def decoration(facts: Mapping[str, Any]) -> str | None:
    """Why a picture with these facts is not a photo (in words), or None when it may be one."""
    width, height = facts.get("width"), facts.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        return None
    side = max(width, height)
    if side < MIN_PHOTO_SIDE:
        return f"{width}x{height} pixels, too small for a photo"
    if facts.get("inline") and side < MIN_INLINE_PHOTO_SIDE:
        return f"a {width}x{height} picture in the text of the mail (a signature or a logo)"
    return None
