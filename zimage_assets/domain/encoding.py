"""Image files out: the one PNG encoder (stored images) and the JPEG encoder (previews)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def to_png(image: Image.Image | np.ndarray) -> bytes:
    """Lossless PNG bytes of a PIL image or an HxWx3 uint8 array."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_jpeg(image: Image.Image, quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
