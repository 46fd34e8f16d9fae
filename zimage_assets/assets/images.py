"""product_images[batch]: generate every item's image on the GPU resource, store it, keep a receipt.

Order of preference for each item: an image this batch already stored for the same spec (a
resumed or repeated run), then the result cache, then the generator. Items that share a spec
(variants that differ only in size) are generated once. Every image is stored and receipted as
soon as it exists, so a killed run resumes where it stopped.

Gates: items whose prompt verdict is BLOCK never reach the generator. Every image is scored
(quality, marketplace compliance for its view, NSFW) and gets a verdict per attempt; where
whitening, padding or cropping fixes a compliance failure, the fixed image is stored and recorded.
An image that fails quality or compliance is made again with the next seed,
`item_seed(content_hash, view, attempt)`, up to ZIMAGE_MAX_ATTEMPTS, before it lands in REVIEW
or BLOCK. Each attempt has its own receipt.
"""


import io
from dataclasses import asdict
from datetime import datetime, timezone

import dagster as dg
from PIL import Image
from pydantic import Field

from resources.generator import GeneratorError, ZImageGenerator
from resources.image_store import ImageStore, StoreError
from resources.metrics import priority_of
from resources.metrics_publisher import MetricsPublisher
from resources.quality_gates import QualityGates
from resources.result_cache import ResultCache
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.prompts import product_prompts, require_batch
from zimage_assets.domain.contact_sheet import contact_sheet, markdown_image
from zimage_assets.domain.cost import generated_images, generation_run
from zimage_assets.domain.encoding import to_jpeg, to_png
from zimage_assets.domain.gates import judge_attempt
from zimage_assets.domain.specs import GenerationSpec, build_spec
from zimage_assets.domain.storage_keys import batch_file_key
from zimage_assets.domain.templates import item_seed
from zimage_assets.domain.verdicts import BLOCK, PASS, rank, summarise
from zimage_assets.executors import gpu_step_tags
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions
from zimage_assets.run_workers import claim_batch_or_fail
from zimage_assets.settings import definition_settings

CONTACT_SHEET_MAX = 64
THUMB = 128


class ImagesConfig(dg.Config):
    force: bool = Field(default=False, description="Regenerate even when an image for the same spec is stored")


@dg.asset(
    partitions_def=batch_partitions,
    deps=[product_prompts],
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
    items = [i for i in state_db.batch_items(batch_id) if i["prompt"] is not None]
    if not items:
        raise dg.Failure(description=f"batch {batch_id} has no prompts: materialize product_prompts first", allow_retries=False)
    # Prompt safety gate: BLOCKed prompts never reach the generator (their verdicts say why).
    prompt_verdicts = {(v["sku"], v["view"]): v for v in state_db.verdicts(batch_id, stage="prompt")}
    blocked_prompts = {key for key, v in prompt_verdicts.items() if v["verdict"] == BLOCK}
    items = [i for i in items if (i["sku"], i["view"]) not in blocked_prompts]

    try:  # wrong credentials or a missing bucket fail here, before any GPU work
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
    judge = _Judge(batch_id, state_db, image_store, quality_gates, prompt_verdicts)
    run = _BatchWriter(batch_id, state_db, image_store, runtime, judge)
    stored_receipts = {} if config.force else {(r["sku"], r["view"], r["attempt"]): r for r in state_db.receipts(batch_id, latest_only=False)}
    stored_verdicts = {} if config.force else {(v["sku"], v["view"], v["attempt"]): v for v in state_db.verdicts(batch_id, stage="image")}

    resumed: set[tuple[str, str]] = set()
    cache_hits = shared_specs = distinct_specs = 0
    generation_seconds = 0.0
    todo = sorted(by_key)
    while todo:  # one round per attempt number: the regeneration loop
        specs = {key: _spec(model, by_key[key], attempt[key]) for key in todo}

        # 1. Resume: images this batch already stored for exactly these specs.
        resumed_now = set()
        for key, spec in specs.items():
            receipt = stored_receipts.get((*key, attempt[key]))
            if receipt is not None and receipt["spec_hash"] == spec.spec_hash and image_store.exists(receipt["storage_key"]):
                resumed_now.add(key)
                run.resume(key, attempt[key], receipt, stored_verdicts.get((*key, attempt[key])))
        resumed |= resumed_now

        # 2. Deduplicate what is left by spec; 3. ask the cache.
        pending: dict[str, list[tuple[str, str]]] = {}
        for key, spec in specs.items():
            if key not in resumed_now:
                pending.setdefault(spec.spec_hash, []).append(key)
        unique_specs = {specs[keys[0]].spec_hash: specs[keys[0]] for keys in pending.values()}
        shared_specs += len(specs) - len(resumed_now) - len(unique_specs)
        distinct_specs += len(unique_specs)
        to_generate: list[GenerationSpec] = []
        for spec_hash, spec in unique_specs.items():
            cached = None if config.force else result_cache.lookup(spec_hash)
            if cached and image_store.exists(cached["storage_key"]):
                cache_hits += 1
                run.record(spec, pending[spec_hash], cached, cache_hit=True, attempts=attempt)
            else:
                to_generate.append(spec)

        # 4. Generate the rest, storing (and judging) each image as soon as it exists.
        try:
            for made in generator.generate(to_generate):
                stored = run.store_image(made.image, made.seconds)
                result_cache.remember(made.spec.spec_hash, stored)
                run.record(made.spec, pending[made.spec.spec_hash], stored, cache_hit=False, image=made.image, attempts=attempt)
                generation_seconds += made.seconds
        except GeneratorError as exc:
            raise dg.Failure(description=f"{exc} ({run.generated} images of this batch were stored first)") from None
        except StoreError as exc:
            raise dg.Failure(description=f"{exc} ({run.generated} images of this batch were stored first; a re-run completes it)") from None

        # 5. Regenerate, with the next seed, what failed quality or compliance and has attempts left.
        todo = [key for key in specs if judge.should_retry(key) and attempt[key] + 1 < first_attempt[key] + quality_gates.max_attempts]
        for key in todo:
            attempt[key] += 1
        if todo:
            context.log.info(f"{batch_id}: regenerating {len(todo)} item(s) with new seeds: {', '.join(f'{s}/{v}' for s, v in todo[:10])}")

    state_db.set_batch_status(batch_id, "generated")
    generated = run.generated
    preview_key, preview_md = run.contact_sheet()
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


class _BatchWriter:
    """Stores images and writes receipts for one batch; collects thumbnails for the preview."""

    def __init__(self, batch_id: str, state_db: StateDB, store: ImageStore, runtime: dict[str, str], judge: "_Judge"):
        self.batch_id, self.state_db, self.store, self.runtime = batch_id, state_db, store, runtime
        self.judge = judge
        self.generated = 0
        self.thumbnails: dict[tuple[str, str], Image.Image] = {}

    def store_image(self, image: Image.Image, seconds: float) -> dict:
        stored = self.store.put_content_addressed(to_png(image))
        self.generated += 1
        return {"storage_key": stored.key, "sha256": stored.sha256, "width": image.width, "height": image.height, "seconds": round(seconds, 4)}

    def record(
        self,
        spec: GenerationSpec,
        keys: list[tuple[str, str]],
        stored: dict,
        *,
        cache_hit: bool,
        attempts: dict[tuple[str, str], int],
        image: Image.Image | None = None,
    ) -> None:
        now = utcnow()
        spec_fields = asdict(spec)
        self.state_db.save_receipts(
            [
                {
                    "batch_id": self.batch_id,
                    "sku": sku,
                    "view": view,
                    "attempt": attempts[(sku, view)],
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
        # Items of one spec share the image, hence its verdict: judge it once.
        data = to_png(image) if image is not None else self.store.get(stored["storage_key"])
        shown = self.judge.judge(keys, {key: attempts[key] for key in keys}, data, stored["storage_key"], spec)
        for key in keys:
            self._keep_thumbnail(key, shown)

    def resume(self, key: tuple[str, str], attempt: int, receipt: dict, verdict: dict | None) -> None:
        """An image this batch already stored: reuse its verdict (or judge it when there is none)."""
        data = self.store.get(receipt["storage_key"])
        if verdict is None:
            shown = self.judge.judge([key], {key: attempt}, data, receipt["storage_key"], None, expected=(receipt["width"], receipt["height"]))
        else:
            shown = self.judge.remember(key, attempt, verdict, data)
        self._keep_thumbnail(key, shown)

    def _keep_thumbnail(self, key: tuple[str, str], image: Image.Image) -> None:
        if len(self.thumbnails) < CONTACT_SHEET_MAX or key in self.thumbnails:  # a later attempt replaces its own
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
            self.thumbnails[key] = thumb

    def contact_sheet(self) -> tuple[str, str]:
        ordered = sorted(self.thumbnails.items())
        jpeg = to_jpeg(contact_sheet([(f"{sku}/{view}", img) for (sku, view), img in ordered], thumb=THUMB))
        key = batch_file_key("previews", self.batch_id, "contact_sheet.jpg")
        self.store.put(key, jpeg, "image/jpeg")
        return key, markdown_image(jpeg, f"{self.batch_id}: {len(ordered)} images")


def _spec(model, item: dict, attempt: int) -> GenerationSpec:
    """The item's spec at an attempt: attempt 0 uses the prompt's seed, later ones the next seeds."""
    seed = item["seed"] if attempt == 0 else item_seed(item["content_hash"], item["view"], attempt)
    return build_spec(
        model, prompt=item["prompt"], negative_prompt=item["negative_prompt"] or "", width=item["width"], height=item["height"], seed=seed,
        steps=item.get("steps"),
    )


class _Judge:
    """Runs the image gates on each attempt, stores fixed images, writes verdicts, decides retries."""

    def __init__(self, batch_id: str, state_db: StateDB, store: ImageStore, gates: QualityGates, prompt_verdicts: dict):
        self.batch_id, self.state_db, self.store, self.gates = batch_id, state_db, store, gates
        self.prompt_verdicts = prompt_verdicts
        self.outcomes: dict[tuple[str, str, int], dict] = {}  # (sku, view, attempt) -> verdict row
        self.latest: dict[tuple[str, str], dict] = {}
        self.retry: dict[tuple[str, str], bool] = {}
        self.fixed = 0
        self._shown: dict | None = None  # the images an earlier run recorded as shown (read once, on resume)

    def judge(self, keys, attempts, data: bytes, storage_key: str, spec: GenerationSpec | None, expected=None) -> Image.Image:
        view = keys[0][1]
        expected = expected or ((spec.width, spec.height) if spec is not None else None)
        result = self.gates.assess_image(data, view=view, expected_size=expected)
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
        rows = []
        for key in keys:
            item_assessment, retry = judge_attempt(assessment, self.prompt_verdicts.get(key))
            row = {"batch_id": self.batch_id, "sku": key[0], "view": key[1], "stage": "image", "attempt": attempts[key],
                   **item_assessment.as_row(), "created_at": utcnow()}
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
