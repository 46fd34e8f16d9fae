"""product_images[batch]: make every item's image, store it, keep a receipt.

Each item is made the way source_photos decided: `photo` (the merchant's product on white, no
model), `scene` (Z-Image paints around the real product, whose pixels are composited back) or
`text` (text-to-image: the fallback, marked illustrative). Order of preference for each item: an
image this batch already stored for the same spec (a resumed or repeated run), then the result
cache, then making it. Items that share a spec (variants that differ only in size) are made once.
Every image is stored and receipted as soon as it exists (assets/image_writer.py), so a killed
run resumes where it stopped.

Gates (assets/image_judge.py): items whose prompt verdict is BLOCK never reach the generator.
Every image is scored (quality, marketplace compliance for its view, NSFW; for photo and scene
images the product-preservation gate) and gets a verdict per attempt; where whitening, padding or
cropping fixes a compliance failure of a text image, the fixed image is stored and recorded.
An image that fails quality or compliance is made again with the next seed,
`item_seed(content_hash, view, attempt)`, up to ZIMAGE_MAX_ATTEMPTS, before it lands in REVIEW
or BLOCK. Each attempt has its own receipt.
"""


from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from resources.generator import GeneratorError, ZImageGenerator
from resources.image_store import ImageStore, StoreError
from resources.metrics import priority_of
from resources.metrics_publisher import MetricsPublisher
from resources.quality_gates import QualityGates
from resources.result_cache import ResultCache
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.image_judge import Judge
from zimage_assets.assets.image_making import PhotoMaker
from zimage_assets.assets.image_writer import BatchWriter
from zimage_assets.assets.prompts import product_prompts, require_batch
from zimage_assets.assets.source_photos import source_photos
from zimage_assets.domain.cost import generated_images, generation_run
from zimage_assets.domain.specs import GenerationSpec, PhotoSpec
from zimage_assets.domain.verdicts import BLOCK
from zimage_assets.executors import gpu_step_tags
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions
from zimage_assets.run_workers import claim_batch_or_fail
from zimage_assets.settings import definition_settings


class ImagesConfig(dg.Config):
    force: bool = Field(default=False, description="Regenerate even when an image for the same spec is stored")


@dg.asset(
    partitions_def=batch_partitions,
    deps=[product_prompts, source_photos],
    group_name="generation",
    pool=definition_settings().gpu_pool,
    op_tags=gpu_step_tags(definition_settings()),  # its Celery queue or its GPU pod (ZIMAGE_EXECUTOR)
    kinds={"pytorch"},
)
def product_images(
    context: dg.AssetExecutionContext,
    config: ImagesConfig,
    state_db: StateDB,
    image_store: ImageStore,
    result_cache: ResultCache,
    generator: ZImageGenerator,
    metrics: MetricsPublisher,
    quality_gates: QualityGates,
    service_levels: ServiceLevels,
) -> dg.MaterializeResult:
    """One stored PNG, one receipt and one verdict per SKU x view x attempt of the batch."""
    batch_id = context.partition_key
    require_batch(state_db, batch_id)
    claim_batch_or_fail(context, state_db, batch_id)  # also when re-executed without product_prompts
    # 1. The batch's items; BLOCKed prompts never reach the generator (their verdicts say why).
    items = [i for i in state_db.batch_items(batch_id) if i["prompt"] is not None]
    if not items:
        raise dg.Failure(description=f"batch {batch_id} has no prompts: materialize product_prompts first", allow_retries=False)
    prompt_verdicts = {(v["sku"], v["view"]): v for v in state_db.verdicts(batch_id, stage="prompt")}
    blocked_prompts = {key for key, v in prompt_verdicts.items() if v["verdict"] == BLOCK}
    items = [i for i in items if (i["sku"], i["view"]) not in blocked_prompts]

    # 2. Each item's source photo and mode, as source_photos recorded them.
    maker = _photo_maker(state_db, image_store, batch_id, items)

    # 3. The store must be writable: wrong credentials or a missing bucket fail here, before any GPU work.
    try:
        image_store.check_writable()
    except StoreError as exc:
        raise dg.Failure(description=f"image store not writable: {exc}") from None
    try:  # so does a device that is not there, or an unusable dtype
        generator.preflight()
    except GeneratorError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None

    model = generator.model_info()
    runtime = generator.runtime_info()
    by_key = {(i["sku"], i["view"]): i for i in items}
    # Attempt numbers continue past images a reviewer sent back for regeneration (new seeds).
    first_attempt = state_db.regeneration_start_attempts(by_key)
    attempt = dict(first_attempt)
    judge = Judge(batch_id, state_db, image_store, quality_gates, prompt_verdicts, maker)
    run = BatchWriter(batch_id, state_db, image_store, runtime, judge, maker.provenance)
    stored_receipts = {} if config.force else {(r["sku"], r["view"], r["attempt"]): r for r in state_db.receipts(batch_id, latest_only=False)}
    stored_verdicts = {} if config.force else {(v["sku"], v["view"], v["attempt"]): v for v in state_db.verdicts(batch_id, stage="image")}

    resumed: set[tuple[str, str]] = set()
    cache_hits = shared_specs = distinct_specs = 0
    generation_seconds = 0.0
    todo = sorted(by_key)
    while todo:  # 4. One round per attempt number: the regeneration loop.
        specs = {key: maker.spec(model, by_key[key], attempt[key]) for key in todo}

        # 4a. Resume: images this batch already stored for exactly these specs.
        resumed_now = set()
        for key, spec in specs.items():
            receipt = stored_receipts.get((*key, attempt[key]))
            if receipt is not None and receipt["spec_hash"] == spec.spec_hash and image_store.exists(receipt["storage_key"]):
                resumed_now.add(key)
                run.resume(key, attempt[key], receipt, stored_verdicts.get((*key, attempt[key])), spec)
        resumed |= resumed_now

        # 4b. Deduplicate what is left by spec; 4c. ask the cache.
        pending: dict[str, list[tuple[str, str]]] = {}
        for key, spec in specs.items():
            if key not in resumed_now:
                pending.setdefault(spec.spec_hash, []).append(key)
        unique_specs = {specs[keys[0]].spec_hash: specs[keys[0]] for keys in pending.values()}
        shared_specs += len(specs) - len(resumed_now) - len(unique_specs)
        distinct_specs += len(unique_specs)
        to_generate: list[GenerationSpec | PhotoSpec] = []
        for spec_hash, spec in unique_specs.items():
            cached = None if config.force else result_cache.lookup(spec_hash)
            if cached and image_store.exists(cached["storage_key"]):
                cache_hits += 1
                run.record(spec, pending[spec_hash], cached, cache_hit=True, attempts=attempt)
            else:
                to_generate.append(spec)

        # 4d. Make the rest (photos, scenes, text), storing (and judging) each image as soon as it exists.
        try:
            for made in _make(maker, generator, to_generate):
                stored = run.store_image(made.image, made.seconds)
                result_cache.remember(made.spec.spec_hash, stored)
                run.record(made.spec, pending[made.spec.spec_hash], stored, cache_hit=False, image=made.image, attempts=attempt)
                generation_seconds += made.seconds
        except GeneratorError as exc:
            raise dg.Failure(description=f"{exc} ({run.generated} images of this batch were stored first)") from None
        except StoreError as exc:
            raise dg.Failure(description=f"{exc} ({run.generated} images of this batch were stored first; a re-run completes it)") from None

        # 4e. Regenerate, with the next seed, what failed quality or compliance and has attempts left.
        todo = [key for key in specs if judge.should_retry(key) and attempt[key] + 1 < first_attempt[key] + quality_gates.max_attempts]
        for key in todo:
            attempt[key] += 1
        if todo:
            context.log.info(f"{batch_id}: regenerating {len(todo)} item(s) with new seeds: {', '.join(f'{s}/{v}' for s, v in todo[:10])}")

    # 5. Status, preview, cost, metrics.
    state_db.set_batch_status(batch_id, "generated")
    generated = run.generated
    preview_key, preview_md = _preview(state_db, maker, run, by_key)
    verdicts = judge.summary()
    context.log.info(
        f"{batch_id}: {len(items)} items, {distinct_specs} distinct specs to make, {generated} generated, "
        f"{cache_hits} from cache, {len(resumed)} already stored; verdicts {verdicts['counts']}"
        + (f"; {len(blocked_prompts)} blocked prompt(s) not generated" if blocked_prompts else "")
    )
    cost = _account_run(  # GPU seconds and cost from the receipts; this run's row for Prometheus
        context, state_db, service_levels.gpu_hour_price, batch_id=batch_id, model_id=model.model_id, device=runtime["device"],
        items=len(items), generated=generated, cache_hits=cache_hits, already_stored=len(resumed), cache_stats=result_cache.stats(),
        generation_seconds=generation_seconds,
    )
    metrics.publish(state_db, context.instance)
    return dg.MaterializeResult(
        metadata={
            "items": len(items),
            "generated": generated,
            "cache_hits": cache_hits,
            "already_stored": len(resumed),
            "shared_specs": shared_specs,
            "generation_seconds": round(generation_seconds, 3),
            "seconds_per_image": round(generation_seconds / generated, 4) if generated else 0.0,
            "images_per_second": round(generated / generation_seconds, 4) if generation_seconds else 0.0,
            "cache_hit_rate": result_cache.stats()["hit_rate"],
            "model": f"{model.model_id}@{model.revision}",
            "modes": dg.MetadataValue.json(_modes(maker, by_key)),
            "steps": model.steps,
            "guidance_scale": model.guidance_scale,
            "device": runtime["device"],
            "dtype": runtime["dtype"],
            "store": image_store.location(),
            "contact_sheet": dg.MetadataValue.md(preview_md),
            "contact_sheet_url": image_store.url(preview_key),
            **cost,
            "verdicts": dg.MetadataValue.json(verdicts["counts"]),
            "reasons": dg.MetadataValue.json(verdicts["reasons"]),
            "regenerated_items": sum(1 for key in by_key if attempt[key] > first_attempt[key]),
            "attempts_made": len(judge.outcomes),
            "fixed_images": judge.fixed,
            "blocked_prompts": len(blocked_prompts),
            "quality_mode": quality_gates.quality_mode,
            "worst_items": dg.MetadataValue.md(markdown_table(judge.worst(10), ["sku", "view", "attempt", "verdict", "reasons"], 120)),
        }
    )


def _photo_maker(state_db: StateDB, image_store: ImageStore, batch_id: str, items: list[dict]) -> PhotoMaker:
    """Every item's source (mode, photo, cut-out); a batch whose photos were never looked at fails."""
    sources = state_db.item_sources(batch_id)
    missing = [(i["sku"], i["view"]) for i in items if (i["sku"], i["view"]) not in sources]
    if missing:
        raise dg.Failure(
            description=f"batch {batch_id}: {len(missing)} item(s) have no source record (e.g. {missing[0][0]}/{missing[0][1]}): "
            "materialize source_photos first", allow_retries=False)
    keys = {(s["sha256"], s["mask_method"], s["mask_version"]) for s in sources.values() if s["mode"] != "text"}
    return PhotoMaker(image_store, sources, state_db.cutouts(keys))


def _make(maker: PhotoMaker, generator: ZImageGenerator, specs: list):
    """Photo images (no model), scene images (inpainting), then text-to-image, as each is made."""
    yield from maker.photos([s for s in specs if isinstance(s, PhotoSpec) and s.mode == "photo"])
    yield from maker.scenes(generator, [s for s in specs if isinstance(s, PhotoSpec) and s.mode == "scene"])
    yield from generator.generate([s for s in specs if isinstance(s, GenerationSpec)])


def _modes(maker: PhotoMaker, by_key: dict) -> dict:
    counts: dict[str, int] = {}
    for key in by_key:
        source = maker.sources.get(key)
        mode = source["mode"] if source else "text"
        counts[mode] = counts.get(mode, 0) + 1
    return counts


def _preview(state_db: StateDB, maker: PhotoMaker, run: BatchWriter, by_key: dict) -> tuple[str, str]:
    """The contact sheet: one row per SKU, its source photo first."""
    records = state_db.source_photo_records(sorted({sku for sku, _ in by_key}))
    return run.contact_sheet(maker.source_keys({(r["sku"], r["ref"]): r for r in records}))


def _account_run(context, state_db: StateDB, gpu_hour_price: float, *, batch_id: str, model_id: str, device: str, items: int,
                 already_stored: int, **counts) -> dict:
    """This run's `generation_runs` row (for Prometheus) and the batch's cost figures (metadata)."""
    receipts = state_db.receipts(batch_id, latest_only=False)
    record = context.instance.get_run_record_by_id(context.run_id)
    if record is not None and record.start_time is not None:  # the images this run made, not earlier runs'
        started = datetime.fromtimestamp(record.start_time, timezone.utc).replace(tzinfo=None)
        latencies = list(generated_images(r for r in receipts if r["created_at"] >= started).values())
    else:
        latencies = list(generated_images(receipts).values())
    row, cost = generation_run(receipts, run_latencies=latencies, gpu_hour_price_usd=gpu_hour_price, **counts)
    if row is not None:
        batch = state_db.batch(batch_id) or {}
        state_db.save_generation_run(
            {
                **row,
                "run_id": context.run_id,
                "batch_id": batch_id,
                "model_id": model_id,
                "priority": batch.get("priority") or priority_of(context.run.tags),
                "device": device,
                "finished_at": utcnow(),
                "items": items,
                "already_stored": already_stored,
            }
        )
    return cost
