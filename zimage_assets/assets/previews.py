"""Pictures for the Dagster UI: stored images loaded as contact-sheet tiles, and the sheet as Markdown."""

from __future__ import annotations

import io
from typing import Iterable, Sequence

from PIL import Image

from resources.image_store import ImageStore, StoreError
from zimage_assets.domain.contact_sheet import contact_sheet, markdown_image
from zimage_assets.domain.encoding import to_jpeg


def load_tiles(store: ImageStore, labelled_keys: Iterable[tuple[str, str]]) -> list[tuple[str, Image.Image]]:
    """(label, image) for each (label, storage key) whose image can be read; the rest are skipped
    (a preview must never fail a run)."""
    tiles = []
    for label, key in labelled_keys:
        if not key:
            continue
        try:
            image = Image.open(io.BytesIO(store.get(key)))
            image.load()
        except (StoreError, OSError, ValueError):
            continue
        tiles.append((label, image))
    return tiles


def sheet_markdown(tiles: Sequence[tuple[str, Image.Image]], alt: str, *, thumb: int, columns: int) -> str:
    """A contact sheet of the tiles, inline in `MetadataValue.md`."""
    return markdown_image(to_jpeg(contact_sheet(tiles, thumb=thumb, columns=columns)), alt)
