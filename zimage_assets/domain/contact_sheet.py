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


def product_sheet(rows: Sequence[Sequence[tuple[str, Image.Image]]], *, thumb: int = 128) -> Image.Image:
    """One row per product, e.g. source photo | main image | scene image | ..., each tile captioned."""
    columns = max([len(r) for r in rows] or [1])
    cell_h = thumb + LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * thumb, max(1, len(rows)) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for y_index, row in enumerate(rows):
        for x_index, (label, image) in enumerate(row):
            x, y = x_index * thumb, y_index * cell_h
            tile = ImageOps.contain(image.convert("RGB"), (thumb - 4, thumb - 4))
            sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
            draw.text((x + 2, y + thumb), label[: thumb // 6], fill="black")
    return sheet
