"""The monthly refresh: a quote first, then refresh batches of only what is due.

`quote_refresh` finds the SKUs whose current images are due (changed content, another template
version, another model or revision, older than ZIMAGE_REFRESH_MAX_AGE_DAYS) and prices them from
measured seconds per image. Its output metadata is the quote. `mint_refresh` then mints `refresh`
batches (priority low) unless this is a dry run or the quote is over the budget; the launcher
sensor queues them behind new-SKU work. SKUs already in this month's refresh batches, or in any
open batch, are never due again, so running the refresh twice in a month mints nothing new.
"""


from datetime import timedelta

import dagster as dg
from pydantic import Field

from resources.generator import ZImageGenerator
from resources.prompt_templates import PromptTemplates
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.images import product_images
from zimage_assets.assets.reports import gpu_count, sla_capacity_now
from zimage_assets.domain.refresh import build_quote, month_of, reasons_of, refresh_batch_prefix
from zimage_assets.metadata import markdown_table
from zimage_assets.minting import mint_refresh as mint_refresh_batches

SAMPLE_ROWS = 20


class RefreshConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Quote only; mint nothing")
    limit: int = Field(default=0, ge=0, description="At most this many SKUs (0 = every SKU that is due)")
    budget: float = Field(default=-1.0, description="Mint nothing if the quote costs more; negative = ZIMAGE_REFRESH_BUDGET_USD, 0 = no cap")


@dg.op(out={"quote": dg.Out(dict), "due": dg.Out(list)})
def quote_refresh(
    context: dg.OpExecutionContext,
    config: RefreshConfig,
    state_db: StateDB,
    prompt_templates: PromptTemplates,
    generator: ZImageGenerator,
    service_levels: ServiceLevels,
):
    """What is due this month and what it will cost, before any GPU work."""
    now = utcnow()
    month = month_of(now)
    templates = prompt_templates.load_or_fail()
    model = generator.model_info()  # names the model; loads no weights
    max_age = service_levels.refresh_max_age_days
    due = state_db.refresh_candidates(
        template_version=templates.version,
        model_id=model.model_id,
        revision=model.revision,
        published_before=now - timedelta(days=max_age) if max_age else None,
        skip_batch_prefix=refresh_batch_prefix(month),
    )
    if config.limit:
        due = due[: config.limit]
    measured, measured_images = state_db.measured_seconds_per_image(model.model_id, model.revision)
    pool = product_images.op.pool or ""
    capacity = sla_capacity_now(context.instance, state_db, service_levels, generator, now)  # the sla_report's figure
    quote = build_quote(
        month=month,
        due=due,
        views_for_category=templates.views_for_category,
        measured_seconds=measured,
        measured_images=measured_images,
        fallback_seconds=service_levels.seconds_per_image,
        price_per_gpu_hour=service_levels.gpu_hour_price,
        gpus=gpu_count(context.instance, pool),
        now=now,
        budget=service_levels.refresh_budget if config.budget < 0 else config.budget,
        arrival_images_per_hour=capacity.images_per_hour,
    )
    context.log.info(quote.summary())
    sample = [{"sku": r["sku"], "category": r["category"], "reasons": ", ".join(reasons_of(r))} for r in due[:SAMPLE_ROWS]]
    yield dg.Output(
        quote.as_dict(),
        "quote",
        metadata={
            "month": month,
            "skus_due": quote.skus_due,
            "images": quote.images,
            "gpu_hours": dg.MetadataValue.float(quote.gpu_hours),
            "cost": dg.MetadataValue.float(quote.cost),
            "price_per_gpu_hour": dg.MetadataValue.float(quote.price_per_gpu_hour),
            "seconds_per_image": dg.MetadataValue.float(quote.seconds_per_image),
            "seconds_source": quote.seconds_source,
            "gpus": quote.gpus,
            "gpus_needed": quote.gpus_needed,
            "arrival_images_per_hour": dg.MetadataValue.float(quote.arrival_images_per_hour),
            "gpu_pool": pool,
            "finishes_at": quote.as_dict()["finishes_at"],
            "fits_in_month": quote.fits_in_month,
            "share_of_month_gpu_time_pct": dg.MetadataValue.float(quote.share_of_month_gpu_time_pct),
            "budget": dg.MetadataValue.float(quote.budget),
            "within_budget": quote.within_budget,
            "reasons": dg.MetadataValue.json(quote.reasons),
            "model": f"{model.model_id}@{model.revision}",
            "template_version": templates.version,
            "summary": quote.summary(),
            "due_sample": dg.MetadataValue.md(markdown_table(sample, ["sku", "category", "reasons"])),
        },
    )
    yield dg.Output([{"sku": r["sku"], "category": r["category"], "reasons": reasons_of(r)} for r in due], "due")


@dg.op(out=dg.Out(list))
def mint_refresh(
    context: dg.OpExecutionContext, config: RefreshConfig, quote: dict, due: list, state_db: StateDB, prompt_templates: PromptTemplates
) -> list:
    """Refresh batches (kind refresh, priority low) of the quoted SKUs; the launcher queues them."""
    if config.dry_run:
        context.log.info("dry run: nothing minted")
        return []
    if not quote["within_budget"]:
        raise dg.Failure(
            description=f"the refresh quote costs {quote['cost']:,.2f}, over the budget of {quote['budget']:,.2f}: nothing minted. "
            "Raise ZIMAGE_REFRESH_BUDGET_USD, or launch monthly_refresh with a `budget` or `limit` in its config.",
            allow_retries=False,
        )
    if not due:
        context.log.info(f"{quote['month']}: nothing is due")
        return []
    minted = mint_refresh_batches(state_db, prompt_templates, due, month=quote["month"], run_id=context.run_id)
    context.add_output_metadata({"batches": dg.MetadataValue.json(minted), "skus": len(due), "images": sum(state_db.batch(b)["item_count"] for b in minted)})
    context.log.info(f"{quote['month']}: minted {len(minted)} refresh batch(es) for {len(due)} SKUs")
    return minted


@dg.job(description="Quote the monthly refresh (metadata), then mint low-priority refresh batches of what is due")
def monthly_refresh():
    quote, due = quote_refresh()
    mint_refresh(quote, due)
