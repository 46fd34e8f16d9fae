"""published_images[batch]: promote the batch's PASS images to the public prefix, with a manifest.

Only PASS is published: an item's final verdict is the verdict of its last attempt, or the
decision of a reviewer on it (approve publishes, reject and regenerate do not). Where a
compliance fix was applied, the fixed image is the one published. REVIEW and BLOCK items are
listed in the metadata with their reasons (the review_queue asset shows them to reviewers).
"""


import dagster as dg

from resources.image_store import ImageStore
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.images import product_images
from zimage_assets.assets.prompts import require_batch
from zimage_assets.domain.manifest import manifest_csv, manifest_json
from zimage_assets.domain.storage_keys import batch_file_key, public_image_key
from zimage_assets.domain.verdicts import PASS, summarise
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions


@dg.asset(partitions_def=batch_partitions, deps=[product_images], group_name="publishing")
def published_images(
    context: dg.AssetExecutionContext,
    state_db: StateDB,
    image_store: ImageStore,
) -> dg.MaterializeResult:
    """Public copies under immutable keys, the SKUs' current images, and the batch manifest."""
    batch_id = context.partition_key
    require_batch(state_db, batch_id)
    receipts = state_db.receipts(batch_id)
    if not receipts:
        raise dg.Failure(description=f"batch {batch_id} has no images: materialize product_images first", allow_retries=False)
    summary = publish_batch(state_db, image_store, batch_id)
    context.log.info(
        f"{batch_id}: published {summary['published']} images; not published {summary['not_published']}; "
        f"manifest {summary['manifest_csv']}"
    )
    return dg.MaterializeResult(
        metadata={
            "published": summary["published"],
            "skus": summary["skus"],
            "not_current": dg.MetadataValue.int(summary["not_current"]),
            "manifest_csv": summary["manifest_csv"],
            "manifest_json": summary["manifest_json"],
            "images": dg.MetadataValue.md(markdown_table(summary["rows"][:20], ["sku", "view", "width", "height", "url"], 120)),
            "verdicts": dg.MetadataValue.json(summary["verdicts"]),
            "not_published": summary["not_published"],
            "withheld": dg.MetadataValue.md(markdown_table(summary["withheld"][:20], ["sku", "view", "attempt", "verdict", "reasons"], 120)),
        }
    )


def publish_batch(state_db: StateDB, image_store: ImageStore, batch_id: str) -> dict:
    """Publish every PASS item of a batch (idempotent) and rewrite its manifest.

    Shared by the published_images asset and the review decisions job (an approval publishes).
    """
    batch = state_db.batch(batch_id)
    shown = state_db.shown_images(batch_id)  # per attempt: the compliance-fixed image where a fix was applied
    finals = state_db.final_verdicts(batch_id)
    items = {(i["sku"], i["view"]): i for i in state_db.batch_items(batch_id)}
    provenance = state_db.provenance(batch_id)  # how each attempt's image was made
    now = utcnow()
    manifest_rows, current_rows, withheld = [], [], []
    for final in finals:
        receipt = shown.get((final["sku"], final["view"], final["attempt"])) if final["stage"] == "image" else None
        if final["verdict"] != PASS or receipt is None:
            withheld.append({**final, "reasons": ", ".join(final["reasons"]) + (f" (reviewer: {final['decision']})" if final.get("decision") else "")})
            continue
        public_key = public_image_key(receipt["sku"], receipt["view"], receipt["sha256"])
        if not image_store.exists(public_key):
            image_store.copy(receipt["storage_key"], public_key)
        url = image_store.url(public_key)
        made = provenance.get((receipt["sku"], receipt["view"], receipt["attempt"])) or {}
        manifest_rows.append({**receipt, "key": public_key, "url": url, "mode": made.get("mode", "text"), "generated": made.get("generated", True),
                              "illustrative": made.get("illustrative", True), "source_photo": made.get("source_ref", ""),
                              "source_sha256": made.get("source_sha256", "")})
        current_rows.append(
            {
                "sku": receipt["sku"],
                "view": receipt["view"],
                "batch_id": batch_id,
                "attempt": receipt["attempt"],
                "storage_key": receipt["storage_key"],
                "public_key": public_key,
                "url": url,
                "sha256": receipt["sha256"],
                "spec_hash": receipt["spec_hash"],
                "content_hash": items[(receipt["sku"], receipt["view"])]["content_hash"],
                "template_version": batch["template_version"],
                "model_id": receipt["model_id"],
                "revision": receipt["revision"],
                "published_at": now,
            }
        )

    csv_key = batch_file_key("manifests", batch_id, "manifest.csv")
    json_key = batch_file_key("manifests", batch_id, "manifest.json")
    image_store.put(csv_key, manifest_csv(manifest_rows), "text/csv")
    image_store.put(json_key, manifest_json(batch_id, manifest_rows), "application/json")
    superseded = state_db.publish_current(current_rows, batch_created_at=batch["created_at"])
    state_db.set_batch_status(batch_id, "published")
    return {
        "published": len(manifest_rows),
        "skus": len({r["sku"] for r in manifest_rows}),
        "not_current": superseded,
        "not_published": len(withheld),
        "withheld": withheld,
        "verdicts": summarise(finals)["counts"],
        "rows": manifest_rows,
        "manifest_csv": image_store.url(csv_key),
        "manifest_json": image_store.url(json_key),
    }
