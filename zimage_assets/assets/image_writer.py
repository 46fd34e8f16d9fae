"""Storing product_images' images: the PNG, one receipt and one provenance row per item attempt, previews.

Every image is stored and receipted as soon as it exists, so a killed run resumes where it
stopped. The receipt says what made it (spec hash, model or `none`, seed, library versions,
timings, storage key); the provenance row how (mode, generated or not, illustrative or not,
source photo and its sha256, mask method and version, placement, why a photo view fell back).
"""

from __future__ import annotations

import io
from typing import Callable

from PIL import Image

from resources.image_store import ImageStore, StoreError
from resources.state_db import StateDB, utcnow
from zimage_assets.domain.contact_sheet import markdown_image, product_sheet
from zimage_assets.domain.encoding import to_jpeg, to_png
from zimage_assets.domain.specs import receipt_fields, spec_mode
from zimage_assets.domain.storage_keys import batch_file_key

CONTACT_SHEET_MAX = 64
THUMB = 128
_MODE_ORDER = {"photo": 0, "scene": 1, "text": 2}  # a row: source | main image | other photos | scenes | text images


class BatchWriter:
    """Stores images and writes receipts for one batch; collects thumbnails for the preview."""

    def __init__(self, batch_id: str, state_db: StateDB, store: ImageStore, runtime: dict[str, str], judge, provenance: Callable):
        self.batch_id, self.state_db, self.store, self.runtime = batch_id, state_db, store, runtime
        self.judge = judge
        self.provenance = provenance  # (spec, (sku, view)) -> provenance row
        self.generated = 0
        self.thumbnails: dict[tuple[str, str], Image.Image] = {}
        self.modes: dict[tuple[str, str], str] = {}

    def store_image(self, image, seconds: float) -> dict:
        stored = self.store.put_content_addressed(to_png(image))
        self.generated += 1
        width, height = image.size
        return {"storage_key": stored.key, "sha256": stored.sha256, "width": width, "height": height, "seconds": round(seconds, 4)}

    def record(self, spec, keys: list[tuple[str, str]], stored: dict, *, cache_hit: bool, attempts: dict[tuple[str, str], int], image=None) -> None:
        now = utcnow()
        model = receipt_fields(spec)
        self.state_db.save_receipts(
            [
                {
                    "batch_id": self.batch_id, "sku": sku, "view": view, "attempt": attempts[(sku, view)], "spec_hash": spec.spec_hash, **model,
                    "width": stored["width"], "height": stored["height"], "storage_key": stored["storage_key"], "sha256": stored["sha256"],
                    "diffusers_version": self.runtime["diffusers"], "torch_version": self.runtime["torch"], "device": self.runtime["device"],
                    "dtype": self.runtime["dtype"], "seconds": 0.0 if cache_hit else stored["seconds"], "cache_hit": cache_hit, "created_at": now,
                }
                for sku, view in keys
            ]
        )
        self.state_db.save_provenance(
            [{"batch_id": self.batch_id, "sku": key[0], "view": key[1], "attempt": attempts[key], **self.provenance(spec, key)} for key in keys]
        )
        # Items of one spec share the image, hence its verdict: judge it once.
        data = to_png(image) if image is not None else self.store.get(stored["storage_key"])
        shown = self.judge.judge(keys, {key: attempts[key] for key in keys}, data, stored["storage_key"], spec)
        for key in keys:
            self.modes[key] = spec_mode(spec)
            self._keep_thumbnail(key, shown)

    def resume(self, key: tuple[str, str], attempt: int, receipt: dict, verdict: dict | None, spec) -> None:
        """An image this batch already stored: reuse its verdict (or judge it when there is none)."""
        data = self.store.get(receipt["storage_key"])
        if verdict is None:
            shown = self.judge.judge([key], {key: attempt}, data, receipt["storage_key"], spec, expected=(receipt["width"], receipt["height"]))
        else:
            shown = self.judge.remember(key, attempt, verdict, data)
        self.modes[key] = spec_mode(spec) if spec is not None else "text"
        self._keep_thumbnail(key, shown)

    def _keep_thumbnail(self, key: tuple[str, str], image: Image.Image) -> None:
        if len(self.thumbnails) < CONTACT_SHEET_MAX or key in self.thumbnails:  # a later attempt replaces its own
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
            self.thumbnails[key] = thumb

    def contact_sheet(self, source_keys: dict[str, str]) -> tuple[str, str]:
        """One row per SKU: its source photo (when it has one) | its images, view by view."""
        rows: dict[str, list] = {}
        order = lambda item: (item[0][0], item[0][1] != "front", _MODE_ORDER.get(self.modes.get(item[0], "text"), 2), item[0][1])  # noqa: E731
        for (sku, view), image in sorted(self.thumbnails.items(), key=order):
            if sku not in rows:
                rows[sku] = []
                source = _load(self.store, source_keys.get(sku, ""))
                if source is not None:
                    rows[sku].append((f"{sku} source", source))
            rows[sku].append((f"{sku}/{view}", image))
        jpeg = to_jpeg(product_sheet(list(rows.values()), thumb=THUMB))
        key = batch_file_key("previews", self.batch_id, "contact_sheet.jpg")
        self.store.put(key, jpeg, "image/jpeg")
        return key, markdown_image(jpeg, f"{self.batch_id}: {len(self.thumbnails)} images of {len(rows)} SKUs (source photo first)")


def _load(store: ImageStore, key: str) -> Image.Image | None:
    if not key:
        return None
    try:
        image = Image.open(io.BytesIO(store.get(key)))
        image.load()
        return image
    except (StoreError, OSError, ValueError):
        return None
