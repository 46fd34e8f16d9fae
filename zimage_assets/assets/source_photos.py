"""source_photos[batch]: the merchant's photos of the batch's SKUs, fetched, stored by content, cut out.

For every item whose view is a `photo` or `scene` view, the first usable photo with one of the
view's roles (`domain/view_modes.py`) is its source; an item without one falls back to text with
the reason recorded (the photo's: not found, refused host, not an image, unsure cut-out...).
Each reference is fetched once per run, and not again in later runs while it is unchanged (the
fetcher asks with the last good fetch's identity); each photo content is decoded and cut out once
per segmentation method. Everything lands in the project's tables: `source_photos` (per SKU x
photo), `photo_cutouts` (per photo content x method) and `item_sources` (per item: the mode it
gets and the photo it uses), which product_images reads.
"""


import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg
from PIL import Image

from resources.image_store import ImageStore, StoreError
from resources.photo_source import PhotoSource, content_extension
from resources.prompt_templates import PromptTemplates
from resources.segmenter import Segmenter, SegmenterError
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.prompts import product_prompts, require_batch
from zimage_assets.domain.cutout import CutoutError
from zimage_assets.domain.encoding import to_png
from zimage_assets.domain.compositing import PlacementRequest
from zimage_assets.domain.source_decoding import PhotoRefused, decode_photo
from zimage_assets.domain.storage_keys import cutout_key, source_photo_key
from zimage_assets.domain.view_modes import ViewMode, choose_photo
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions


@dataclass
class PhotoOutcome:
    """What one reference gave in this run."""

    ref: str
    status: str = "unusable"  # ok | converted | unusable
    reason: str = ""  # "code: detail" when not plainly ok
    sha256: str = ""
    storage_key: str = ""
    width: int = 0
    height: int = 0
    identity: str = ""
    location: str = ""
    fetched: str = ""  # downloaded | not_modified | failed
    cutout: dict | None = None
    notes: list = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status != "unusable"


@dg.asset(partitions_def=batch_partitions, deps=[product_prompts], group_name="generation", kinds={"opencv"})
def source_photos(
    context: dg.AssetExecutionContext,
    state_db: StateDB,
    image_store: ImageStore,
    photo_source: PhotoSource,
    segmenter: Segmenter,
    prompt_templates: PromptTemplates,
) -> dg.MaterializeResult:
    """Per item: its mode (photo, scene, or text when no usable photo) and its source photo's cut-out."""
    batch_id = context.partition_key
    require_batch(state_db, batch_id)
    templates = prompt_templates.load_or_fail()
    try:  # a missing ONNX model is a configuration error: fail before anything is written
        segmenter.method()
    except SegmenterError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    # 1. The batch's items and each SKU's photo references.
    items = state_db.batch_items(batch_id)
    refs = state_db.sku_photos(i["sku"] for i in items)
    work = _PhotoWork(state_db, image_store, photo_source, segmenter)
    # 2. Each item: the first usable photo with one of its view's roles, fetched and cut out once.
    rows = []
    for item in items:
        view = templates.views.get(item["view"])
        mode = view.photo if view is not None else None
        row = {"sku": item["sku"], "view": item["view"], "requested_mode": mode.mode if mode else "text", "mode": "text", "role": "",
               "ref": "", "sha256": "", "mask_method": "", "mask_version": "", "placement": "{}", "reason": ""}
        if mode is not None and mode.mode != "text":
            photos = refs.get(item["sku"], [])
            chosen, role = choose_photo(mode, photos, templates.photo_roles, usable=lambda p: work.outcome(item["sku"], p["ref"]).usable)
            if chosen is not None:
                got = work.outcome(item["sku"], chosen["ref"])
                row.update(mode=mode.mode, role=role, ref=chosen["ref"], sha256=got.sha256, mask_method=got.cutout["method"],
                           mask_version=got.cutout["version"],
                           placement=PlacementRequest(mode.fill, mode.position, mode.shadow).canonical())
            else:
                row["reason"] = work.fallback_reason(item["sku"], photos, mode.photos, templates.photo_roles)
        rows.append(row)
    # 3. Record every SKU x photo tried, and every item's source.
    state_db.save_source_photos(work.records())
    state_db.save_item_sources(batch_id, rows)
    return _result(context, batch_id, rows, work)


class _PhotoWork:
    """Fetches, stores, decodes and cuts out each reference once; remembers every outcome."""

    def __init__(self, state_db: StateDB, store: ImageStore, source: PhotoSource, segmenter: Segmenter):
        self.state_db, self.store, self.source, self.segmenter = state_db, store, source, segmenter
        self.by_ref: dict[str, PhotoOutcome] = {}
        self.tried: dict[tuple[str, str], PhotoOutcome] = {}  # (sku, ref) -> outcome
        self.cutouts_made = self.cutouts_reused = 0

    def outcome(self, sku: str, ref: str) -> PhotoOutcome:
        if ref not in self.by_ref:
            self.by_ref[ref] = self._process(ref)
        self.tried[(sku, ref)] = self.by_ref[ref]
        return self.by_ref[ref]

    def fallback_reason(self, sku: str, photos: list, roles: tuple, conventions) -> str:
        if not photos:
            return "no_photo: the SKU has no photo reference"
        first, _ = choose_photo_any(photos, roles, conventions)
        if first is None:
            return f"no_photo_for_view: none of the SKU's {len(photos)} photo(s) has the role {' or '.join(roles)}"
        return f"{self.outcome(sku, first['ref']).reason} ({first['ref'][:200]})"

    def _process(self, ref: str) -> PhotoOutcome:
        out = PhotoOutcome(ref=ref)
        previous = self.state_db.latest_good_fetches([ref]).get(ref)
        known = previous is not None and previous["storage_key"] and self.store.exists(previous["storage_key"])
        fetched = self.source.fetch(ref, previous["identity"] if known else "")
        out.location = fetched.location
        if not fetched.usable:
            out.reason, out.fetched = f"{fetched.reason}: {fetched.detail}", "failed"
            return out
        try:
            if fetched.status == "not_modified":
                out.fetched, out.sha256, out.storage_key = "not_modified", previous["sha256"], previous["storage_key"]
                data = None
            else:
                out.fetched, data = "downloaded", fetched.data
                out.sha256 = hashlib.sha256(data).hexdigest()
                out.storage_key = source_photo_key(out.sha256, content_extension(data))
                if not self.store.exists(out.storage_key):
                    self.store.put(out.storage_key, data, "application/octet-stream")
            out.identity = fetched.identity
            self._cut(out, data, previous)
        except StoreError as exc:
            raise dg.Failure(description=f"image store: {exc}") from None
        return out

    def _cut(self, out: PhotoOutcome, data: bytes | None, previous: dict | None) -> None:
        data = data if data is not None else self.store.get(out.storage_key)
        try:
            photo = decode_photo(data)
        except PhotoRefused as exc:
            out.status, out.reason = "unusable", f"{exc.code}: {exc.detail}"
            return
        out.width, out.height, out.notes = photo.size[0], photo.size[1], list(photo.notes)
        method, version = self.segmenter.method_for(photo)
        record = self.state_db.cutouts([(out.sha256, method, version)]).get((out.sha256, method, version))
        if record is not None and (record["status"] != "ok" or self.store.exists(record["cutout_key"])):
            self.cutouts_reused += 1
        else:
            record = self._new_cutout(out, photo, method, version)
            self.cutouts_made += 1
        out.cutout = record
        if record["status"] != "ok":
            out.status, out.reason = "unusable", record["reason"]
        else:
            out.status = "converted" if out.notes else "ok"
            out.reason = f"converted: {', '.join(out.notes)}" if out.notes else ""

    def _new_cutout(self, out: PhotoOutcome, photo, method: str, version: str) -> dict:
        started = time.perf_counter()
        record = {"sha256": out.sha256, "method": method, "version": version, "cutout_key": "", "box": [], "touches": [],
                  "notes": list(photo.notes), "confidence": 0.0, "created_at": utcnow()}
        try:
            cut = self.segmenter.cut(photo)
        except CutoutError as exc:
            record.update(status="unusable", reason=f"{exc.code}: {exc}")
        else:
            png = to_png(Image.fromarray(cut.rgba, mode="RGBA"))
            key = cutout_key(hashlib.sha256(png).hexdigest())
            if not self.store.exists(key):
                self.store.put(key, png, "image/png")
            unsure = cut.confidence < self.segmenter.min_confidence
            record.update(
                status="unsure" if unsure else "ok", confidence=cut.confidence, cutout_key=key,
                box=list(cut.box), touches=list(cut.touches),
                reason=(f"mask_unsure: confidence {cut.confidence:.2f} < {self.segmenter.min_confidence:.2f} ({'; '.join(cut.reasons)})" if unsure else ""),
            )
        record["seconds"] = round(time.perf_counter() - started, 4)
        self.state_db.save_cutout(record)
        return record

    def records(self) -> list[dict]:
        now = utcnow()
        return [
            {"sku": sku, "ref": ref[:2048], "status": o.status, "reason": o.reason[:2000], "sha256": o.sha256, "storage_key": o.storage_key,
             "width": o.width, "height": o.height, "identity": o.identity, "location": o.location[:2000], "fetched_at": now}
            for (sku, ref), o in sorted(self.tried.items())
        ]


def choose_photo_any(photos: list, roles: tuple, conventions):
    """The photo a view would take if every photo were usable (to name why it was not)."""
    return choose_photo(ViewMode(mode="photo", photos=roles), photos, conventions)


def _result(context, batch_id: str, rows: list[dict], work: _PhotoWork) -> dg.MaterializeResult:
    modes = Counter(r["mode"] for r in rows)
    fallbacks = Counter(r["reason"].split(":", 1)[0] for r in rows if r["reason"])
    photos = list(work.by_ref.values())
    fetches = Counter(o.fetched for o in photos)
    unusable = [{"ref": o.ref, "reason": o.reason} for o in photos if not o.usable]
    confidences = sorted(o.cutout["confidence"] for o in photos if o.cutout)
    context.log.info(
        f"{batch_id}: {len(rows)} items -> {dict(modes)}; {len(photos)} photos ({dict(fetches)}), {len(unusable)} unusable; "
        f"{work.cutouts_made} cut out, {work.cutouts_reused} cut-outs reused"
    )
    for row in rows:
        if row["reason"]:
            context.log.warning(f"{row['sku']}/{row['view']}: {row['requested_mode']} view falls back to text: {row['reason'][:300]}")
    return dg.MaterializeResult(
        metadata={
            "items": len(rows),
            "modes": dg.MetadataValue.json(dict(modes)),
            "fallbacks_to_text": sum(1 for r in rows if r["reason"]),
            "fallback_reasons": dg.MetadataValue.json(dict(fallbacks)),
            "photos": len(photos),
            "downloaded": fetches.get("downloaded", 0),
            "not_modified": fetches.get("not_modified", 0),
            "unusable_photos": len(unusable),
            "cutouts_made": work.cutouts_made,
            "cutouts_reused": work.cutouts_reused,
            "median_mask_confidence": confidences[len(confidences) // 2] if confidences else 0.0,
            "media_root": work.source.describe(),
            "unusable": dg.MetadataValue.md(markdown_table(unusable[:20], ["ref", "reason"], 160)),
        }
    )
