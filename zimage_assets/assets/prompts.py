"""product_prompts[batch]: one prompt per SKU x view, rendered from the category's template."""


from collections import Counter

import dagster as dg

from resources.prompt_templates import PromptTemplates
from resources.quality_gates import QualityGates
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.catalog import sku_catalog
from zimage_assets.domain.prompt_safety import TermListError
from zimage_assets.domain.templates import item_seed, render_prompt
from zimage_assets.domain.verdicts import BLOCK, summarise
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions
from zimage_assets.run_workers import claim_batch_or_fail


def require_batch(state_db: StateDB, batch_id: str) -> dict:
    batch = state_db.batch(batch_id)
    if batch is None:
        raise dg.Failure(
            description=f"batch {batch_id!r} is not in the project database ({state_db.url}); "
            "mint batches with the mint_batches job or `zimage mint`",
            allow_retries=False,
        )
    return batch


@dg.asset(partitions_def=batch_partitions, deps=[sku_catalog], group_name="generation")
def product_prompts(
    context: dg.AssetExecutionContext,
    state_db: StateDB,
    prompt_templates: PromptTemplates,
    quality_gates: QualityGates,
) -> dg.MaterializeResult:
    """Deterministic prompts, sizes and seeds for every item of the batch, each with a safety verdict."""
    batch_id = context.partition_key
    batch = require_batch(state_db, batch_id)
    claim_batch_or_fail(context, state_db, batch_id)  # one run per batch
    templates = prompt_templates.load_or_fail()
    try:
        quality_gates.terms()  # a broken term list fails here, before anything is written
    except TermListError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    state_db.set_batch_status(batch_id, "running")

    items = state_db.batch_items(batch_id)
    products = state_db.products(i["sku"] for i in items)
    rows, unusable = [], []
    for item in items:
        product = products.get(item["sku"])
        if product is None and item["prompt"] is not None:  # a request's item: it carries its own prompt, seed and size
            rows.append({k: item[k] for k in ("sku", "view", "prompt", "negative_prompt", "seed", "width", "height")})
            continue
        view = templates.views.get(item["view"])
        if product is None or view is None:
            reason = "unknown_sku" if product is None else "unknown_view"
            unusable.append({**item, "reason": reason})
            continue
        rows.append(
            {
                "sku": item["sku"],
                "view": item["view"],
                "prompt": render_prompt(templates, item["view"], product),
                "negative_prompt": templates.negative_prompt,
                "seed": item_seed(product["content_hash"], item["view"]),
                "width": view.width,
                "height": view.height,
            }
        )
    state_db.save_prompts(batch_id, rows)
    # Prompt safety, before any GPU work: catalog text is untrusted. BLOCKed prompts are kept
    # (with their reasons) for the audit, and product_images never sends them to the generator.
    prompt_verdicts = []
    for row in rows:
        product = products.get(row["sku"], {})
        source = [str(product.get(k) or "") for k in ("title", "product_name", "description")]
        source += [str(v) for v in (product.get("attributes") or {}).values()]
        outcome = quality_gates.assess_prompt(row["prompt"], source_text=source).as_row()
        prompt_verdicts.append(
            {"batch_id": batch_id, "sku": row["sku"], "view": row["view"], "stage": "prompt", "attempt": 0, **outcome, "created_at": utcnow()}
        )
        if outcome["verdict"] == BLOCK:
            context.log.warning(f"{row['sku']}/{row['view']}: prompt blocked ({', '.join(outcome['reasons'])})")
    state_db.save_verdicts(prompt_verdicts)
    # Items that cannot get a prompt are recorded, never dropped: a BLOCK verdict with the reason.
    state_db.save_verdicts(
        [
            {
                "batch_id": batch_id,
                "sku": u["sku"],
                "view": u["view"],
                "stage": "prompt",
                "attempt": 0,
                "verdict": "BLOCK",
                "reasons": [u["reason"]],
                "scores": {},
                "created_at": utcnow(),
            }
            for u in unusable
        ]
    )
    for u in unusable:
        context.log.warning(f"{u['sku']}/{u['view']}: no prompt ({u['reason']})")

    views = Counter(r["view"] for r in rows)
    safety = summarise(prompt_verdicts)
    return dg.MaterializeResult(
        metadata={
            "batch_kind": batch["kind"],
            "items": len(items),
            "prompts": len(rows),
            "without_prompt": len(unusable),
            "skus": len({r["sku"] for r in rows}),
            "views": dg.MetadataValue.json(dict(views)),
            "template_version": templates.version,
            "templates": templates.source,
            "longest_prompt_chars": max((len(r["prompt"]) for r in rows), default=0),
            "prompt_verdicts": dg.MetadataValue.json(safety["counts"]),
            "prompts_blocked": safety["counts"][BLOCK],
            "sample": dg.MetadataValue.md(markdown_table(rows[:10], ["sku", "view", "width", "height", "seed", "prompt"], 160)),
        }
    )
