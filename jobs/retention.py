"""Retention: delete batch partitions older than ZIMAGE_RETENTION_DAYS from Dagster.

Only the Dagster partition key goes (so the UI stays fast as batches accumulate). The batch, its
items, receipts, verdicts, images, manifests and every SKU's current image stay in the project's
tables and store, so no SKU loses its history. Only closed batches (published or failed) are
retired, never one with a queued or running run. Each retired batch is recorded in table
`retired_batches`; re-running retires nothing twice.
"""


from datetime import timedelta

import dagster as dg
from pydantic import Field

from resources.service_levels import ServiceLevels
from resources.state_db import StateDB, utcnow
from zimage_assets.domain.timestamps import iso_z
from zimage_assets.partitions import batch_partitions

CLOSED_STATUSES = ("published", "failed")
_ACTIVE_RUNS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class RetentionConfig(dg.Config):
    older_than_days: int = Field(default=0, ge=0, description="0 = ZIMAGE_RETENTION_DAYS")
    dry_run: bool = Field(default=False, description="List what would be deleted; delete nothing")


@dg.op
def retire_old_batch_partitions(
    context: dg.OpExecutionContext, config: RetentionConfig, state_db: StateDB, service_levels: ServiceLevels
) -> None:
    days = config.older_than_days or service_levels.retention_days
    cutoff = utcnow() - timedelta(days=days)
    candidates = state_db.retention_candidates(cutoff, CLOSED_STATUSES)
    ids = [b["batch_id"] for b in candidates]
    busy = set()
    if ids:
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": ids}, statuses=_ACTIVE_RUNS))
        busy = {r.tags.get("dagster/partition") for r in runs}
    retire = [b for b in candidates if b["batch_id"] not in busy]
    if not config.dry_run:
        for batch in retire:
            if context.instance.has_dynamic_partition(batch_partitions.name, batch["batch_id"]):
                context.instance.delete_dynamic_partition(batch_partitions.name, batch["batch_id"])
        state_db.record_retired(retire)
    verb = "would retire" if config.dry_run else "retired"
    context.log.info(f"{verb} {len(retire)} batch partition(s) created before {cutoff:%Y-%m-%d} ({len(busy)} skipped: a run is active)")
    context.add_output_metadata(
        {
            "cutoff": iso_z(cutoff),
            "retired": 0 if config.dry_run else len(retire),
            "would_retire": len(retire),
            "skipped_active_runs": len(busy),
            "dry_run": config.dry_run,
            "batches": dg.MetadataValue.json([b["batch_id"] for b in retire[:200]]),
        }
    )


@dg.job(description="Delete batch partitions older than ZIMAGE_RETENTION_DAYS (history stays in the project's tables)")
def retention_job():
    retire_old_batch_partitions()
