"""Making photo and scene images for product_images: specs per item, the product placed, scenes painted.

`PhotoMaker` knows each item's source (what source_photos recorded), builds its spec for an
attempt (a `GenerationSpec` for text, a `PhotoSpec` for photo and scene), loads each cut-out once,
and makes images: `photos` (no model: the product on white) and `scenes` (the generator's inpaint
pipeline paints around the product, then the product's pixels are composited back). It also
answers what the judge and the receipts need: the cut-out and placement of a spec, and the
provenance row of an item's image.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from resources.generator import ZImageGenerator
from resources.image_store import ImageStore
from resources.scene_painter import SceneJob, paint
from zimage_assets.domain.compositing import COMPOSITOR_VERSION, Placement, PlacementRequest, photo_image, plan, scene_canvas, scene_composite
from zimage_assets.domain.specs import GenerationSpec, ModelInfo, PhotoSpec, build_spec, spec_mode
from zimage_assets.domain.templates import item_seed


@dataclass
class Made:
    """An image made for a spec (the same shape as the generator's GeneratedImage)."""

    spec: PhotoSpec
    image: Image.Image
    seconds: float


def text_spec(model: ModelInfo, item: dict, attempt: int) -> GenerationSpec:
    """The item's text-to-image spec at an attempt: attempt 0 uses the prompt's seed, later ones the next seeds."""
    seed = item["seed"] if attempt == 0 else item_seed(item["content_hash"], item["view"], attempt)
    return build_spec(
        model, prompt=item["prompt"], negative_prompt=item["negative_prompt"] or "", width=item["width"], height=item["height"], seed=seed,
        steps=item.get("steps"),  # a generation request's own steps (its quality); None = the model's
    )


class PhotoMaker:
    def __init__(self, store: ImageStore, sources: dict, cutouts: dict):
        self.store = store
        self.sources = sources  # (sku, view) -> item_sources row
        self.cutouts = cutouts  # (sha256, method, version) -> photo_cutouts row
        self._rgba: dict[str, np.ndarray] = {}

    # ---- specs ----

    def spec(self, model: ModelInfo, item: dict, attempt: int) -> GenerationSpec | PhotoSpec:
        text = text_spec(model, item, attempt)
        source = self.sources.get((item["sku"], item["view"]))
        if source is None or source["mode"] == "text":
            return text
        return PhotoSpec(
            mode=source["mode"], source_sha256=source["sha256"], mask_method=source["mask_method"], mask_version=source["mask_version"],
            placement=source["placement"], width=item["width"], height=item["height"], compositor_version=COMPOSITOR_VERSION,
            generation=text if source["mode"] == "scene" else None,
        )

    def fallback_reason(self, key: tuple[str, str]) -> str:
        source = self.sources.get(key)
        return source["reason"] if source else ""

    # ---- the product of a spec ----

    def cutout(self, spec: PhotoSpec) -> tuple[np.ndarray, list[str], list[str]]:
        """(RGBA cut-out, sides of the source it runs into, decoding notes) of a photo or scene spec."""
        record = self.cutouts[(spec.source_sha256, spec.mask_method, spec.mask_version)]
        key = record["cutout_key"]
        if key not in self._rgba:
            with Image.open(io.BytesIO(self.store.get(key))) as image:
                self._rgba[key] = np.asarray(image.convert("RGBA"))
        return self._rgba[key], list(record["touches"] or []), list(record["notes"] or [])

    def placement(self, spec: PhotoSpec) -> Placement:
        rgba, touches, _ = self.cutout(spec)
        return plan((rgba.shape[1], rgba.shape[0]), touches, (spec.width, spec.height), _request(spec))

    def provenance(self, spec: GenerationSpec | PhotoSpec, key: tuple[str, str]) -> dict:
        source = self.sources.get(key) or {}
        mode = spec_mode(spec)
        photo = isinstance(spec, PhotoSpec)
        return {
            "mode": mode, "generated": mode != "photo", "illustrative": mode == "text",
            "source_ref": source.get("ref", "") if photo else "", "source_sha256": spec.source_sha256 if photo else "",
            "mask_method": spec.mask_method if photo else "", "mask_version": spec.mask_version if photo else "",
            "placement": self.placement(spec).as_dict() if photo else {}, "reason": self.fallback_reason(key) if not photo else "",
        }

    def source_keys(self, photo_records: dict) -> dict[str, str]:
        """SKU -> storage key of the first source photo its items use (for the contact sheet)."""
        out = {}
        for (sku, _), source in sorted(self.sources.items(), key=lambda kv: (kv[0][0], kv[1]["role"] != "main", kv[0][1] != "front", kv[0][1])):
            if source["mode"] != "text" and sku not in out and (sku, source["ref"]) in photo_records:
                out[sku] = photo_records[(sku, source["ref"])]["storage_key"]
        return out

    # ---- making ----

    def photos(self, specs: Sequence[PhotoSpec]) -> Iterator[Made]:
        """Photo-mode images: the product on pure white. No model."""
        for spec in specs:
            started = time.perf_counter()
            rgba, touches, _ = self.cutout(spec)
            rgb, _ = photo_image(rgba, touches, (spec.width, spec.height), _request(spec))
            yield Made(spec, Image.fromarray(rgb), time.perf_counter() - started)

    def scenes(self, generator: ZImageGenerator, specs: Sequence[PhotoSpec]) -> Iterator[Made]:
        """Scene images: painted around the product by the inpaint pipeline, the product composited back."""
        prepared = {}
        for spec in specs:
            rgba, touches, _ = self.cutout(spec)
            start, mask, layer, placement = scene_canvas(rgba, touches, (spec.width, spec.height), _request(spec))
            prepared[spec.spec_hash] = (spec, layer, placement, SceneJob(spec.spec_hash, spec.generation, start, mask))
        for painted in paint(generator, [p[3] for p in prepared.values()]):
            spec, layer, placement, _ = prepared[painted.job.key]
            rgb = scene_composite(painted.image, layer, placement, shadow=_request(spec).shadow)
            yield Made(spec, Image.fromarray(rgb), painted.seconds)


def _request(spec: PhotoSpec) -> PlacementRequest:
    data = json.loads(spec.placement)
    return PlacementRequest(fill=float(data["fill"]), position=tuple(data["position"]), shadow=bool(data.get("shadow")))
