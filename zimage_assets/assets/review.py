"""The review queue: REVIEW images waiting for a person, and the decisions people make.

- `review_decisions` applies a CSV file (sku, view, decision, reviewer, note[, batch_id]) and
  keeps every decision (the audit trail): `approve` publishes the image, `reject` blocks it,
  `regenerate` blocks it and mints a one-item batch that makes it again with new seeds (attempt
  numbers continue, so the seeds differ). The file is checked as a whole first: one bad row
  (unknown item, an item not waiting for review, a bad decision) fails the run naming the row,
  field and value, and nothing is applied. Applying the same file twice changes nothing.
- `review_queue` lists what is waiting, with reasons and thumbnails, and writes a CSV that
  reviewers fill in and hand back to the `apply_review_decisions` job.
"""

import csv
import hashlib
import io
from collections import Counter

import dagster as dg
from pydantic import Field

from resources.catalog_source import CatalogSource, CatalogSourceError
from resources.image_store import ImageStore
from resources.prompt_templates import PromptTemplates
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.images import product_images
from zimage_assets.assets.previews import load_tiles, sheet_markdown
from zimage_assets.assets.publish import publish_batch
from zimage_assets.domain.storage_keys import batch_file_key
from zimage_assets.domain.review import parse_review_csv
from zimage_assets.domain.spreadsheet import spreadsheet_cell
from zimage_assets.domain.verdicts import BLOCK, REVIEW
from zimage_assets.metadata import markdown_table
from zimage_assets.minting import mint_regenerations
from zimage_assets.partitions import batch_partitions

QUEUE_CSV_KEY = batch_file_key("reviews", "queue", "review_queue.csv")
QUEUE_THUMBNAILS = 48


class ReviewFileConfig(dg.Config):
    path: str = Field(description="CSV file (path or s3:// URI) with columns sku, view, decision, reviewer, note[, batch_id]")


def decision_id(batch_id: str, sku: str, view: str, attempt: int, decision: str, reviewer: str, note: str) -> str:
    canonical = "\x1f".join([batch_id, sku, view, str(attempt), decision, reviewer, note])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dg.asset(group_name="review")
def review_decisions(
    context: dg.AssetExecutionContext,
    config: ReviewFileConfig,
    state_db: StateDB,
    image_store: ImageStore,
    catalog_source: CatalogSource,
    prompt_templates: PromptTemplates,
) -> dg.MaterializeResult:
    """Apply a file of review decisions; every decision is kept."""
    try:
        raw = catalog_source.read(config.path)
    except CatalogSourceError as exc:
        raise dg.Failure(description=f"review file: {exc}", allow_retries=False) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise dg.Failure(description=f"review file {config.path}: not UTF-8 text ({exc})", allow_retries=False) from None
    rows, errors, undecided = parse_review_csv(text)

    # Resolve every row to the image it is about before anything is written.
    planned, already = [], []
    finals_cache: dict[str, dict] = {}
    for row in rows:
        batch_id = row.batch_id or state_db.latest_image_batch(row.sku, row.view)
        where = f"row {row.row} (sku={row.sku!r}, view={row.view!r}{f', batch_id={row.batch_id!r}' if row.batch_id else ''})"
        if not batch_id:
            errors.append(f"{where}: no image of this SKU x view was ever made")
            continue
        if batch_id not in finals_cache:
            finals_cache[batch_id] = {(f["sku"], f["view"]): f for f in state_db.final_verdicts(batch_id)}
        final = finals_cache[batch_id].get((row.sku, row.view))
        if final is None or final["stage"] != "image":
            errors.append(f"{where}: batch {batch_id} has no image of this SKU x view")
            continue
        ident = decision_id(batch_id, row.sku, row.view, final["attempt"], row.decision, row.reviewer, row.note)
        if final.get("decision") is not None:
            existing = {d["decision_id"] for d in state_db.review_decisions(batch_id=batch_id, sku=row.sku, view=row.view)}
            if ident in existing:
                already.append(row)  # the same decision applied before: nothing to do
            else:
                errors.append(f"{where}: already decided ({final['decision']}) for attempt {final['attempt']} of batch {batch_id}")
            continue
        allowed = (REVIEW,) if row.decision == "approve" else (REVIEW, BLOCK)
        if final["gate_verdict"] not in allowed:
            errors.append(
                f"{where}: decision={row.decision!r} needs an item in {' or '.join(allowed)}, "
                f"but batch {batch_id} has it as {final['gate_verdict']}"
                + (" (BLOCKed images cannot be approved)" if final["gate_verdict"] == BLOCK else "")
            )
            continue
        planned.append((row, batch_id, final, ident))
    if errors:
        listed = "\n  ".join(errors[:50])
        raise dg.Failure(
            description=f"review file {config.path}: {len(errors)} problem(s), nothing applied:\n  {listed}",
            allow_retries=False,
        )

    # Regenerations: one new manual batch for all of them (minted, launched by the sensor).
    regenerate = [(row, batch_id, final) for row, batch_id, final, _ in planned if row.decision == "regenerate"]
    new_batch = ""
    if regenerate:
        new_batch = mint_regenerations(state_db, prompt_templates, [(row.sku, row.view) for row, _, _ in regenerate], source=config.path)
        context.instance.add_dynamic_partitions(batch_partitions.name, [new_batch])

    now = utcnow()
    outcome = {"approve": "published", "reject": "blocked", "regenerate": f"regenerating in {new_batch}"}
    records = [
        {
            "decision_id": ident,
            "batch_id": batch_id,
            "sku": row.sku,
            "view": row.view,
            "attempt": final["attempt"],
            "decision": row.decision,
            "reviewer": row.reviewer,
            "note": row.note,
            "previous_verdict": final["gate_verdict"],
            "previous_reasons": final["reasons"],
            "source": f"{config.path}#row{row.row}",
            "outcome": outcome[row.decision],
            "decided_at": now,
        }
        for row, batch_id, final, ident in planned
    ]
    state_db.save_review_decisions(records)

    # Approvals are published now; the batch's manifest is rewritten (publishing is idempotent).
    published_batches = sorted({r["batch_id"] for r in records if r["decision"] == "approve"})
    for batch_id in published_batches:
        summary = publish_batch(state_db, image_store, batch_id)
        context.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="published_images",
                partition=batch_id,
                description=f"re-published after review decisions from {config.path}",
                metadata={"published": summary["published"], "not_published": summary["not_published"], "manifest_csv": summary["manifest_csv"]},
            )
        )
    counts = Counter(r["decision"] for r in records)
    context.log.info(
        f"review file {config.path}: {len(records)} decision(s) applied {dict(counts)}, {len(already)} already applied"
        + (f"; regenerating in {new_batch}" if new_batch else "")
    )
    return dg.MaterializeResult(
        metadata={
            "file": config.path,
            "applied": len(records),
            "already_applied": len(already),
            "left_undecided": undecided,
            "decisions": dg.MetadataValue.json(dict(counts)),
            "republished_batches": dg.MetadataValue.json(published_batches),
            "regeneration_batch": new_batch or "-",
            "applied_decisions": dg.MetadataValue.md(
                markdown_table(records[:50], ["batch_id", "sku", "view", "attempt", "decision", "reviewer", "note", "outcome"], 80)
            ),
        }
    )


@dg.asset(group_name="review", deps=[review_decisions, product_images])
def review_queue(context: dg.AssetExecutionContext, state_db: StateDB, image_store: ImageStore) -> dg.MaterializeResult:
    """REVIEW images waiting for a person (newest batches first), and a CSV to fill in."""
    queue = state_db.review_queue()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sku", "view", "decision", "reviewer", "note", "batch_id", "attempt", "reasons", "image"])
    for item in queue:  # SKUs are untrusted text: no cell may run as a formula in a spreadsheet
        writer.writerow([spreadsheet_cell(v) for v in (item["sku"], item["view"], "", "", "", item["batch_id"], item["attempt"],
                         " ".join(item["reasons"]), image_store.url(item["storage_key"]) if item["storage_key"] else "")])
    image_store.put(QUEUE_CSV_KEY, buffer.getvalue().encode("utf-8"), "text/csv")

    tiles = load_tiles(image_store, ((f"{item['sku']}/{item['view']}", item["storage_key"]) for item in queue[:QUEUE_THUMBNAILS]))
    reasons = Counter(code for item in queue for code in item["reasons"])
    decided = state_db.review_decisions()
    metadata = {
        "waiting": len(queue),
        "batches": len({i["batch_id"] for i in queue}),
        "reasons": dg.MetadataValue.json(dict(reasons.most_common())),
        "queue": dg.MetadataValue.md(
            markdown_table([{**i, "reasons": ", ".join(i["reasons"])} for i in queue[:100]], ["batch_id", "sku", "view", "attempt", "reasons"], 100)
        ),
        "review_csv": image_store.url(QUEUE_CSV_KEY),
        "decisions_total": len(decided),
        "recent_decisions": dg.MetadataValue.md(
            markdown_table(list(reversed(decided))[:20], ["decided_at", "batch_id", "sku", "view", "decision", "reviewer", "note", "outcome"], 80)
        ),
    }
    if tiles:
        metadata["thumbnails"] = dg.MetadataValue.md(sheet_markdown(tiles, "review queue", thumb=96, columns=8))
    context.log.info(f"review queue: {len(queue)} item(s) waiting; fill in {image_store.url(QUEUE_CSV_KEY)} and run apply_review_decisions")
    return dg.MaterializeResult(metadata=metadata)
