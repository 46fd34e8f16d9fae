"""The project's own tables: per-SKU truth that outlives any Dagster partition.

SQLite by default, PostgreSQL in production (same SQLAlchemy Core schema). Times are naive UTC.
Every table has a natural primary key so that every write is an idempotent upsert.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

SKU_LEN = 255

# One row per SKU ever seen. content_hash covers what changes the picture; last_changed moves
# only when it does.
skus = Table(
    "skus",
    metadata,
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("title", Text, nullable=False),
    Column("product_name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON object of visual attributes
    Column("description", Text, nullable=False),
    Column("parent_sku", String(SKU_LEN), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("note", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),  # every stored field: detects non-visual edits
    Column("source", Text, nullable=False),
    Column("first_seen", DateTime, nullable=False),
    Column("last_changed", DateTime, nullable=False),
    Column("last_ingest_id", String(64), nullable=False),
)

catalog_ingests = Table(
    "catalog_ingests",
    metadata,
    Column("ingest_id", String(64), primary_key=True),  # sha256 of the source bytes + format
    Column("source", Text, nullable=False),
    Column("format", String(32), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected_rows", Integer, nullable=False),
    Column("new_skus", Integer, nullable=False),
    Column("changed_skus", Integer, nullable=False),
    Column("unchanged_skus", Integer, nullable=False),
    Column("ingested_at", DateTime, nullable=False),
)

catalog_rejects = Table(
    "catalog_rejects",
    metadata,
    Column("ingest_id", String(64), primary_key=True),
    Column("row_number", Integer, primary_key=True),  # 1-based data row (header excluded)
    Column("field", String(128), primary_key=True),
    Column("sku", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

# A batch is immutable once minted: its items never change; only its status moves.
batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # new | manual | refresh | request
    Column("priority", String(16), nullable=False),  # high | normal | low
    Column("status", String(16), nullable=False),  # minted | running | generated | published | failed
    Column("created_at", DateTime, nullable=False),
    Column("deadline", DateTime, nullable=True),
    Column("selection", Text, nullable=False),  # JSON: how the SKUs were chosen
    Column("template_version", String(64), nullable=False),
    Column("sku_count", Integer, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_batches_status", "status"),
)

# Which run is generating a batch now: one run per batch (a second concurrent run of the same
# batch stops; a claim whose run has ended or died is taken over by the next run).
batch_claims = Table(
    "batch_claims",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("claimed_at", DateTime, nullable=False),
)

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),  # the SKU's content when minted
    # Filled by product_prompts (deterministic, so re-running rewrites the same values).
    Column("prompt", Text, nullable=True),
    Column("negative_prompt", Text, nullable=True),
    Column("seed", Integer, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("steps", Integer, nullable=True),  # an item's own inference steps (a request's quality); NULL = the model's
    Index("ix_batch_items_sku", "sku"),
)

# One receipt per image attempt: everything needed to reproduce or audit it.
image_receipts = Table(
    "image_receipts",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("spec_hash", String(64), nullable=False),
    Column("model_id", Text, nullable=False),
    Column("revision", Text, nullable=False),
    Column("scheduler", Text, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("guidance_scale", Float, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("diffusers_version", String(32), nullable=False),
    Column("torch_version", String(64), nullable=False),
    Column("device", String(32), nullable=False),
    Column("dtype", String(16), nullable=False),
    Column("seconds", Float, nullable=False),  # generation time (0 for cache hits)
    Column("cache_hit", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_image_receipts_spec", "spec_hash"),
)

# PASS / REVIEW / BLOCK per prompt or image, with machine-readable reasons.
verdicts = Table(
    "verdicts",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("stage", String(16), primary_key=True),  # prompt | image
    Column("attempt", Integer, primary_key=True),
    Column("verdict", String(8), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of codes
    Column("scores", Text, nullable=False),  # JSON object
    Column("created_at", DateTime, nullable=False),
)

# The current published image of each SKU x view.
sku_images = Table(
    "sku_images",
    metadata,
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("batch_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("template_version", String(64), nullable=False),
    Column("model_id", Text, nullable=False),
    Column("revision", Text, nullable=False),
    Column("published_at", DateTime, nullable=False),
)


# ---- webhooks (run-failure alerts, batch-completion callbacks): an outbox, and every attempt ----

# One row per (event, target URL). The body is stored once and sent byte for byte on every attempt,
# so its signature never changes and receivers can drop duplicates by delivery id.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),  # sha256 of event id + URL
    Column("event_id", String(255), nullable=False),
    Column("event", String(32), nullable=False),  # run_failure | batch_completed
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed | refused
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=True),
    Column("last_status", Integer, nullable=True),  # HTTP status of the last attempt
    Column("last_error", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_event", "event_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=False),
    Column("seconds", Float, nullable=False),
)

# ---- retention: batch partitions deleted from Dagster (the batch, its items and receipts stay) ----

retired_batches = Table(
    "retired_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("retired_at", DateTime, nullable=False),
    Column("batch_status", String(16), nullable=False),
)

# ---- SLA history: when a batch's run first published it (later re-publishing, e.g. a reviewer's
# approval, moves batches.updated_at but not this) ----

batch_publications = Table(
    "batch_publications",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("first_published_at", DateTime, nullable=False),
    Column("run_id", String(64), nullable=False),
)

# ---- metrics and cost: one row per product_images run (what it made, what it cost) ----

generation_runs = Table(
    "generation_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("batch_id", String(64), nullable=False),
    Column("model_id", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("device", String(32), nullable=False),
    Column("finished_at", DateTime, nullable=False),
    Column("items", Integer, nullable=False),
    Column("generated", Integer, nullable=False),  # images the GPU made in this run
    Column("cache_hits", Integer, nullable=False),
    Column("cache_misses", Integer, nullable=False),
    Column("cache_errors", Integer, nullable=False),
    Column("already_stored", Integer, nullable=False),
    Column("gpu_seconds", Float, nullable=False),  # this run's generation time
    Column("gpu_hour_price_usd", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),  # this run's spend
    Column("batch_cost_per_1000_images_usd", Float, nullable=False),  # the batch's, from all its receipts
    Column("latency_counts", Text, nullable=False),  # JSON per-bucket counts of seconds per image
    Column("latency_sum", Float, nullable=False),
    Index("ix_generation_runs_finished", "finished_at"),
)

# ---- safety and quality gates: fixed images and review decisions ----

# An image changed by a compliance fix (background whitened, padded, cropped): the receipt keeps
# the generated image (reproducible from its spec), this row the one that is published.
image_fixes = Table(
    "image_fixes",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("fixes", Text, nullable=False),  # JSON list, e.g. ["whitened_background", "padded_to_square"]
    Column("source_key", Text, nullable=False),  # the generated image
    Column("storage_key", Text, nullable=False),  # the fixed image
    Column("sha256", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Every review decision ever applied, never updated: the audit trail. The id hashes the decision's
# content, so applying the same file twice adds nothing.
review_decisions = Table(
    "review_decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("batch_id", String(64), nullable=False),
    Column("sku", String(SKU_LEN), nullable=False),
    Column("view", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),  # the image attempt that was reviewed
    Column("decision", String(16), nullable=False),  # approve | reject | regenerate
    Column("reviewer", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("previous_verdict", String(8), nullable=False),
    Column("previous_reasons", Text, nullable=False),  # JSON list
    Column("source", Text, nullable=False),  # file and row the decision came from
    Column("outcome", Text, nullable=False),  # published | blocked | regenerating in BATCH
    Column("decided_at", DateTime, nullable=False),
    Index("ix_review_decisions_item", "sku", "view"),
    Index("ix_review_decisions_batch", "batch_id"),
)

