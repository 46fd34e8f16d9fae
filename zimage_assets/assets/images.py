"""product_images[batch]: generate every item's image on the GPU resource, store it, keep a receipt.

Order of preference for each item: an image this batch already stored for the same spec (a
resumed or repeated run), then the result cache, then the generator. Items that share a spec
(variants that differ only in size) are generated once. Every image is stored and receipted as
soon as it exists, so a killed run resumes where it stopped.
"""


import hashlib
import io
from dataclasses import asdict

import dagster as dg
from PIL import Image
from pydantic import Field

from resources.generator import GeneratorError, ZImageGenerator
from resources.image_store import ImageStore, StoreError
from resources.metrics import MetricsRecorder
from resources.result_cache import ResultCache
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.prompts import product_prompts, require_batch
from zimage_assets.domain.contact_sheet import contact_sheet, markdown_image, to_jpeg
from zimage_assets.domain.specs import GenerationSpec, build_spec
from zimage_assets.domain.storage_keys import batch_file_key, image_key
from zimage_assets.partitions import batch_partitions
from zimage_assets.settings import Settings

CONTACT_SHEET_MAX = 64
THUMB = 128


class ImagesConfig(dg.Config):
    force: bool = Field(default=False, description="Regenerate even when an image for the same spec is stored")


@dg.asset(
    partitions_def=batch_partitions,
    deps=[product_prompts],
    group_name="generation",
    pool=Settings.from_env().gpu_pool,
    kinds={"pytorch"},
)
def product_images(
    context: dg.AssetExecutionContext,
    config: ImagesConfig,
    state_db: StateDB,
    image_store: ImageStore,
    result_cache: ResultCache,
    generator: ZImageGenerator,
    metrics: MetricsRecorder,
) -> dg.MaterializeResult:
    """One stored PNG and one receipt per SKU x view of the batch."""
    batch_id = context.partition_key
    require_batch(state_db, batch_id)
    items = [i for i in state_db.batch_items(batch_id) if i["prompt"] is not None]
    if not items:
        raise dg.Failure(description=f"batch {batch_id} has no prompts: materialize product_prompts first", allow_retries=False)

    try:  # wrong credentials or a missing bucket fail here, before any GPU work
        image_store.check_writable()
    except StoreError as exc:
        raise dg.Failure(description=f"image store not writable: {exc}") from None

    model = generator.model_info()
    runtime = generator.runtime_info()
    specs = {
        (i["sku"], i["view"]): build_spec(
            model, prompt=i["prompt"], negative_prompt=i["negative_prompt"] or "", width=i["width"], height=i["height"], seed=i["seed"]
        )
        for i in items
    }
    run = _BatchWriter(batch_id, state_db, image_store, runtime)

    # 1. Resume: images this batch already stored for exactly these specs.
    resumed = set()
    if not config.force:
        for receipt in state_db.receipts(batch_id):
            key = (receipt["sku"], receipt["view"])
            if key in specs and receipt["spec_hash"] == specs[key].spec_hash and image_store.exists(receipt["storage_key"]):
                resumed.add(key)
                run.add_thumbnail(key, receipt["storage_key"])

    # 2. Deduplicate what is left by spec; 3. ask the cache.
    pending: dict[str, list[tuple[str, str]]] = {}
    for key, spec in specs.items():
        if key not in resumed:
            pending.setdefault(spec.spec_hash, []).append(key)
    unique_specs = {specs[keys[0]].spec_hash: specs[keys[0]] for keys in pending.values()}
    to_generate: list[GenerationSpec] = []
    cache_hits = 0
    for spec_hash, spec in unique_specs.items():
        cached = None if config.force else result_cache.lookup(spec_hash)
        if cached and image_store.exists(cached["storage_key"]):
            cache_hits += 1
            run.record(spec, pending[spec_hash], cached, cache_hit=True)
        else:
            to_generate.append(spec)

    # 4. Generate the rest, storing each image as soon as it exists.
    generation_seconds = 0.0
    try:
        for made in generator.generate(to_generate):
            stored = run.store_image(made.image, made.seconds)
            result_cache.remember(made.spec.spec_hash, stored)
            run.record(made.spec, pending[made.spec.spec_hash], stored, cache_hit=False, image=made.image)
            generation_seconds += made.seconds
    except GeneratorError as exc:
        raise dg.Failure(description=f"{exc} ({run.generated} images of this batch were stored first)") from None
    except StoreError as exc:
        raise dg.Failure(description=f"{exc} ({run.generated} images of this batch were stored first; a re-run completes it)") from None

    state_db.set_batch_status(batch_id, "generated")
    generated = run.generated
    preview_key, preview_md = run.contact_sheet()
    context.log.info(
        f"{batch_id}: {len(items)} items, {len(unique_specs)} distinct specs to make, {generated} generated, "
        f"{cache_hits} from cache, {len(resumed)} already stored"
    )
    cost = metrics.record_batch(  # GPU seconds and cost from the receipts; this run's row for Prometheus
        context, state_db, batch_id=batch_id, model_id=model.model_id, device=runtime["device"], items=len(items),
        generated=generated, cache_hits=cache_hits, already_stored=len(resumed), cache_stats=result_cache.stats(),
        generation_seconds=generation_seconds,
    )
    return dg.MaterializeResult(
        metadata={
            "items": len(items),
            "generated": generated,
            "cache_hits": cache_hits,
            "already_stored": len(resumed),
            "shared_specs": len(specs) - len(resumed) - len(unique_specs),
            "generation_seconds": round(generation_seconds, 3),
            "seconds_per_image": round(generation_seconds / generated, 4) if generated else 0.0,
            "images_per_second": round(generated / generation_seconds, 4) if generation_seconds else 0.0,
            "cache_hit_rate": result_cache.stats()["hit_rate"],
            "model": f"{model.model_id}@{model.revision}",
            "steps": model.steps,
            "guidance_scale": model.guidance_scale,
            "device": runtime["device"],
            "dtype": runtime["dtype"],
            "store": image_store.location(),
            "contact_sheet": dg.MetadataValue.md(preview_md),
            "contact_sheet_url": image_store.url(preview_key),
            **cost,
        }
    )


class _BatchWriter:
    """Stores images and writes receipts for one batch; collects thumbnails for the preview."""

    def __init__(self, batch_id: str, state_db: StateDB, store: ImageStore, runtime: dict[str, str]):
        self.batch_id, self.state_db, self.store, self.runtime = batch_id, state_db, store, runtime
        self.generated = 0
        self.thumbnails: dict[tuple[str, str], Image.Image] = {}

    def store_image(self, image: Image.Image, seconds: float) -> dict:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        key = image_key(sha)
        if not self.store.exists(key):
            self.store.put(key, data, "image/png")
        self.generated += 1
        return {"storage_key": key, "sha256": sha, "width": image.width, "height": image.height, "seconds": round(seconds, 4)}

    def record(self, spec: GenerationSpec, keys: list[tuple[str, str]], stored: dict, *, cache_hit: bool, image: Image.Image | None = None) -> None:
        now = utcnow()
        spec_fields = asdict(spec)
        self.state_db.save_receipts(
            [
                {
                    "batch_id": self.batch_id,
                    "sku": sku,
                    "view": view,
                    "attempt": 0,
                    "spec_hash": spec.spec_hash,
                    "model_id": spec.model_id,
                    "revision": spec.revision,
                    "scheduler": spec.scheduler,
                    "steps": spec.steps,
                    "guidance_scale": spec.guidance_scale,
                    "seed": spec_fields["seed"],
                    "width": stored["width"],
                    "height": stored["height"],
                    "storage_key": stored["storage_key"],
                    "sha256": stored["sha256"],
                    "diffusers_version": self.runtime["diffusers"],
                    "torch_version": self.runtime["torch"],
                    "device": self.runtime["device"],
                    "dtype": self.runtime["dtype"],
                    "seconds": 0.0 if cache_hit else stored["seconds"],
                    "cache_hit": cache_hit,
                    "created_at": now,
                }
                for sku, view in keys
            ]
        )
        for key in keys:
            if image is not None:
                self._keep_thumbnail(key, image)
            else:
                self.add_thumbnail(key, stored["storage_key"])

    def add_thumbnail(self, key: tuple[str, str], storage_key: str) -> None:
        if len(self.thumbnails) < CONTACT_SHEET_MAX:
            self._keep_thumbnail(key, Image.open(io.BytesIO(self.store.get(storage_key))))

    def _keep_thumbnail(self, key: tuple[str, str], image: Image.Image) -> None:
        if len(self.thumbnails) < CONTACT_SHEET_MAX:
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
            self.thumbnails[key] = thumb

    def contact_sheet(self) -> tuple[str, str]:
        ordered = sorted(self.thumbnails.items())
        jpeg = to_jpeg(contact_sheet([(f"{sku}/{view}", img) for (sku, view), img in ordered], thumb=THUMB))
        key = batch_file_key("previews", self.batch_id, "contact_sheet.jpg")
        self.store.put(key, jpeg, "image/jpeg")
        return key, markdown_image(jpeg, f"{self.batch_id}: {len(ordered)} images")
