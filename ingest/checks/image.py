"""Photos (现场照片): format and size from the image header, without decoding the pixels.

Pillow reads only the header on open; an image claiming more than ``limits.max_image_pixels``
is refused before anything is decoded (a decompression bomb). Formats Pillow does not know
(HEIC from phones) fall back to ``filetype`` for the format, with unknown size.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ingest.checks.common import CheckError


def read_image(path: Path, max_pixels: int) -> dict:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                width, height = img.size
                fmt = (img.format or "").lower()
    except Image.DecompressionBombError:
        raise CheckError("the image is too large to check (too many pixels)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        import filetype

        kind = filetype.guess(str(path))
        if kind is not None and kind.extension in ("heic", "heif", "avif", "jxl", "cr2", "dcm"):
            return {"format": kind.extension, "width": None, "height": None}
        if kind is not None and kind.mime.startswith("image/"):
            raise CheckError(f"the image cannot be opened: the {kind.extension} file is damaged") from None
        raise CheckError("not an image file (the content is not a known picture format)") from None
    if width * height > max_pixels:
        raise CheckError(f"the image is too large to check ({width}x{height} pixels)")
    return {"format": {"jpg": "jpeg", "mpo": "jpeg"}.get(fmt, fmt), "width": width, "height": height}
