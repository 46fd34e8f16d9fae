"""A contact sheet: one picture of a whole batch for the Dagster UI."""

from __future__ import annotations

import base64
from typing import Sequence

from PIL import Image, ImageDraw, ImageOps

LABEL_HEIGHT = 14


def contact_sheet(images: Sequence[tuple[str, Image.Image]], *, thumb: int = 128, columns: int = 8) -> Image.Image:
    """Thumbnails in a grid, each captioned (e.g. "SKU/view"); `images` may be empty."""
    columns = max(1, min(columns, len(images) or 1))
    rows = max(1, -(-len(images) // columns))
    cell_h = thumb + LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * thumb, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, image) in enumerate(images):
        x, y = (i % columns) * thumb, (i // columns) * cell_h
        tile = ImageOps.contain(image.convert("RGB"), (thumb - 4, thumb - 4))
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
        draw.text((x + 2, y + thumb), label[: thumb // 6], fill="black")
    return sheet


def markdown_image(jpeg: bytes, alt: str) -> str:
    """Inline image for `MetadataValue.md`: the Dagster UI renders data-URI images."""
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(jpeg).decode('ascii')})"
