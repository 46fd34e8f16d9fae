"""Jobs: ingest a catalog, mint batches, generate one batch end to end."""


import dagster as dg
from pydantic import Field

from resources.prompt_templates import PromptTemplates
from resources.state_db import StateDB
from zimage_assets.assets.catalog import sku_catalog
from zimage_assets.assets.images import product_images
from zimage_assets.assets.prompts import product_prompts
from zimage_assets.assets.publish import published_images
from zimage_assets.assets.source_photos import source_photos
from zimage_assets.domain.batching import BATCH_KINDS, PRIORITY_TAG_VALUES
from zimage_assets.minting import mint_selection
from zimage_assets.partitions import batch_partitions

ingest_catalog_job = dg.define_asset_job("ingest_catalog", selection=[sku_catalog], description="Read a catalog export into the SKU table")

generate_batch_job = dg.define_asset_job(
    "generate_batch",
    selection=[product_prompts, source_photos, product_images, published_images],
    partitions_def=batch_partitions,
    description="Prompts -> source photos -> images -> publication for one batch partition",
)


class MintConfig(dg.Config):
    skus: list[str] = Field(default_factory=list, description="These SKUs (empty = no SKU filter)")
    category: str = Field(default="", description="Only SKUs under this category path, e.g. Men/Tops")
    categories: list[str] = Field(default_factory=list, description="Or under any of these category paths")
    without_current_image: bool = Field(default=False, description="Only SKUs that have no published image yet")
    limit: int = Field(default=0, ge=0, description="At most this many SKUs (0 = no limit)")
    max_items_per_batch: int = Field(default=0, ge=0, description="0 = ZIMAGE_MAX_ITEMS_PER_BATCH")
    priority: str = Field(default="normal", description=f"One of {sorted(PRIORITY_TAG_VALUES)}")
    kind: str = Field(default="manual", description=f"One of {BATCH_KINDS}")
    callback_url: str = Field(
        default="", description="Also post this batch's completion here (its host must be in ZIMAGE_WEBHOOK_ALLOWED_HOSTS)"
    )


@dg.op(out=dg.Out(list))
def mint_batches_op(context: dg.OpExecutionContext, config: MintConfig, state_db: StateDB, prompt_templates: PromptTemplates) -> list:
    """Mint batches for the chosen SKUs and register them as partitions (a sensor launches them)."""
    skus = [s.strip() for s in config.skus if s.strip()]  # stripped as the catalog strips them
    if not (skus or config.category or config.categories or config.without_current_image):
        raise dg.Failure(description="choose SKUs: give skus, a category, or without_current_image: true", allow_retries=False)
    prompt_templates.load_or_fail()  # a broken template file fails before the SKU table is read
    unknown = state_db.unknown_skus(skus)
    if unknown:
        raise dg.Failure(
            description=f"{len(unknown)} unknown SKU(s), not in the catalog: {', '.join(map(repr, unknown[:10]))}"
            + (" ..." if len(unknown) > 10 else "") + "; nothing minted (check the spelling, or ingest the catalog first)",
            allow_retries=False,
        )
    chosen = state_db.select_skus(
        skus=skus, category=config.category, categories=config.categories, without_current_image=config.without_current_image,
        limit=config.limit or None,
    )
    busy = sorted(set(skus) - {sku for sku, _ in chosen})
    if busy:
        context.log.warning(f"{len(busy)} requested SKU(s) not minted (already in an open batch, or outside the other filters): {busy[:10]}")
    if not chosen:
        context.log.info("no SKU matched the selection: nothing minted")
        context.add_output_metadata({"batches": dg.MetadataValue.json([]), "skus": 0, "in_open_batches": dg.MetadataValue.json(busy)})
        return []
    batch_ids = mint_selection(
        state_db,
        prompt_templates,
        chosen,
        kind=config.kind,
        priority=config.priority,
        max_items=config.max_items_per_batch,
        selection=config.model_dump(),
    )
    context.instance.add_dynamic_partitions(batch_partitions.name, batch_ids)
    context.add_output_metadata({"batches": dg.MetadataValue.json(batch_ids), "skus": len(chosen), "in_open_batches": dg.MetadataValue.json(busy)})
    context.log.info(f"minted {len(batch_ids)} batch(es) for {len(chosen)} SKUs: {', '.join(batch_ids)}")
    return batch_ids


@dg.job(description="Mint batches for chosen SKUs, a category, or every SKU without an image")
def mint_batches_job():
    mint_batches_op()
