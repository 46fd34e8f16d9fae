"""Judging product_images' images: the gates on each attempt, fixed images, verdicts, retries.

A text-to-image image goes through the gates of `domain/gates.py` (with compliance fixes) and is
marked `illustrative` (REVIEW by default; with the reason when a photo view fell back to text).
A photo or scene image goes through `domain/photo_gates.py`: quality on the product, compliance
without fixes, NSFW, and the product-preservation gate. Photo images are deterministic, so they are
never retried with another seed; scene and text images are, when every problem is one a new seed
may fix.
"""

from __future__ import annotations

import io

from PIL import Image

from resources.image_store import ImageStore
from resources.quality_gates import QualityGates
from resources.state_db import StateDB, utcnow
from zimage_assets.domain.gates import judge_attempt
from zimage_assets.domain.preservation import illustrative
from zimage_assets.domain.requests import REQUEST_VIEW
from zimage_assets.domain.specs import PhotoSpec, spec_mode
from zimage_assets.domain.verdicts import PASS, combine, rank, summarise


class Judge:
    """Runs the image gates on each attempt, stores fixed images, writes verdicts, decides retries."""

    def __init__(self, batch_id: str, state_db: StateDB, store: ImageStore, gates: QualityGates, prompt_verdicts: dict, maker):
        self.batch_id, self.state_db, self.store, self.gates = batch_id, state_db, store, gates
        self.prompt_verdicts = prompt_verdicts
        self.maker = maker  # cut-outs, placements and fallback reasons (assets/image_making.PhotoMaker)
        self.outcomes: dict[tuple[str, str, int], dict] = {}  # (sku, view, attempt) -> verdict row
        self.latest: dict[tuple[str, str], dict] = {}
        self.retry: dict[tuple[str, str], bool] = {}
        self.fixed = 0
        self._shown: dict | None = None  # the images an earlier run recorded as shown (read once, on resume)

    def _assess(self, view: str, data: bytes, spec, expected):
        if isinstance(spec, PhotoSpec):
            rgba, _, notes = self.maker.cutout(spec)
            return self.gates.assess_composite(data, view=view, mode=spec.mode, expected_size=expected, cutout_rgba=rgba,
                                               placement=self.maker.placement(spec), notes=notes)
        return self.gates.assess_image(data, view=view, expected_size=expected)

    def judge(self, keys, attempts, data: bytes, storage_key: str, spec, expected=None) -> Image.Image:
        view = keys[0][1]
        expected = expected or ((spec.width, spec.height) if spec is not None else None)
        result = self._assess(view, data, spec, expected)
        assessment = result.assessment
        shown_bytes = data
        if result.fixed_png is not None:
            shown_bytes = result.fixed_png
            fixed = self.store.put_content_addressed(result.fixed_png)
            height, width = result.thumbnail_source.shape[:2]
            self.state_db.save_fixes(
                [
                    {"batch_id": self.batch_id, "sku": sku, "view": v, "attempt": attempts[(sku, v)], "fixes": assessment.fixes,
                     "source_key": storage_key, "storage_key": fixed.key, "sha256": fixed.sha256, "width": width, "height": height,
                     "created_at": utcnow()}
                    for sku, v in keys
                ]
            )
            self.fixed += len(keys)
        mode = spec_mode(spec) if spec is not None else "text"
        rows = []
        for key in keys:
            item_assessment, retry = judge_attempt(assessment, self.prompt_verdicts.get(key))
            if mode == "text" and key[1] != REQUEST_VIEW:  # a catalog product drawn by the model (a free prompt asked for a drawing)
                item_assessment = combine([item_assessment, illustrative(self.gates.illustrative_review, self.maker.fallback_reason(key))])
            retry = retry and mode != "photo"  # a photo image is deterministic: another seed changes nothing
            row = {"batch_id": self.batch_id, "sku": key[0], "view": key[1], "stage": "image", "attempt": attempts[key],
                   **item_assessment.as_row(), "created_at": utcnow()}
            row["scores"]["mode"] = mode
            rows.append(row)
            self._keep(key, attempts[key], row, retry)
        self.state_db.save_verdicts(rows)
        return Image.open(io.BytesIO(shown_bytes))

    def remember(self, key, attempt: int, verdict: dict, data: bytes) -> Image.Image:
        """A verdict stored by an earlier run for the same image (the gates are deterministic)."""
        shown = None
        if verdict["scores"].get("fixes"):
            if self._shown is None:
                self._shown = self.state_db.shown_images(self.batch_id)
            shown = self._shown.get((*key, attempt))
        retry = verdict["verdict"] != PASS and bool(verdict["scores"].get("regenerable"))
        self._keep(key, attempt, verdict, retry)
        return Image.open(io.BytesIO(self.store.get(shown["storage_key"]) if shown and shown["fixed"] else data))

    def _keep(self, key, attempt: int, row: dict, retry: bool) -> None:
        row["scores"]["regenerable"] = retry
        self.outcomes[(*key, attempt)] = row
        self.latest[key] = row
        self.retry[key] = retry

    def should_retry(self, key) -> bool:
        return self.retry.get(key, False)

    def summary(self) -> dict:
        return summarise(list(self.latest.values()))

    def worst(self, limit: int) -> list[dict]:
        rows = sorted(self.latest.values(), key=lambda r: (-rank(r["verdict"]), r["sku"], r["view"]))
        return [{**r, "reasons": ", ".join(r["reasons"])} for r in rows if r["verdict"] != PASS][:limit]
