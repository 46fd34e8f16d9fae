"""Getting told: run-failure alerts and batch-completion callbacks, posted as signed JSON webhooks.

- `run_failure_alert_sensor`: every failed run (any job, including runs started from the CLI)
  becomes a `run_failure` event for ZIMAGE_ALERT_WEBHOOK_URLS; a failed batch run also marks its
  batch `failed` in the project's tables.
- `batch_completion_sensor`: every successful run that published a batch records when the batch
  was first published (the SLA report's history) and becomes a `batch_completed` event for
  ZIMAGE_CALLBACK_URLS (and the batch's own `callback_url`, if its selection names one and its
  host is allowed).
- `webhook_delivery_sensor`: sends what is due from the outbox, signed, with retries and
  backoff; every attempt is logged (tick log and table `webhook_attempts`).

The two event sensors only write to the outbox (fast, never blocked by a slow receiver); the
delivery sensor does the network work.
"""


import json
from datetime import datetime, timezone
from functools import partial

import dagster as dg

from resources.image_store import ImageStore
from resources.state_db import StateDB, utcnow
from resources.webhooks import WebhookClient
from zimage_assets.domain.storage_keys import batch_file_key
from zimage_assets.domain.timestamps import iso_z
from zimage_assets.run_workers import run_is_live

_ERROR_CHARS = 2000


def _batch_of(run: dg.DagsterRun, state_db: StateDB) -> dict | None:
    batch_id = run.tags.get("zimage/batch") or run.tags.get("dagster/partition")
    return state_db.batch(batch_id) if batch_id else None


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=30,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, state_db: StateDB, webhooks: WebhookClient) -> None:
    """A failed run: mark its batch failed and enqueue a `run_failure` alert."""
    run = context.dagster_run
    batch = _batch_of(run, state_db)
    if batch is not None and state_db.mark_batch_failed(batch["batch_id"], run.run_id, partial(run_is_live, context.instance)):
        context.log.info(f"batch {batch['batch_id']} marked failed (run {run.run_id})")
    steps = context.get_step_failure_events()
    errors = [
        f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
        for e in steps
        if e.step_failure_data is not None and e.step_failure_data.error is not None
    ]
    data = {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "batch_id": batch["batch_id"] if batch else None,
        "batch_kind": batch["kind"] if batch else None,
        "deadline": iso_z(batch["deadline"]) if batch else None,
        "retry_number": int(run.tags.get("dagster/retry_number", "0")),
        "message": (context.failure_event.message or "")[:_ERROR_CHARS],
        "errors": [e[:_ERROR_CHARS] for e in errors[:5]],
    }
    added = webhooks.enqueue(
        state_db, event="run_failure", event_id=f"run_failure:{run.run_id}", data=data, urls=webhooks.alert_urls, now=utcnow(), log=context.log
    )
    context.log.info(f"run {run.run_id} ({run.job_name}) failed: {added} alert(s) queued")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="batch_completion_sensor",
    minimum_interval_seconds=30,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def batch_completion_sensor(
    context: dg.RunStatusSensorContext, state_db: StateDB, webhooks: WebhookClient, image_store: ImageStore
) -> None:
    """A run that published a batch: record when (SLA history) and enqueue a `batch_completed` callback."""
    run = context.dagster_run
    batch = _batch_of(run, state_db)
    if batch is None or batch["status"] != "published":
        return  # not a batch run, or one that stopped before publishing
    batch_id = batch["batch_id"]
    record = context.instance.get_run_record_by_id(run.run_id)
    published_at = datetime.fromtimestamp(record.end_time, timezone.utc).replace(tzinfo=None) if record and record.end_time else batch["updated_at"]
    state_db.record_first_publication(batch_id, published_at, run.run_id)
    selection = json.loads(batch["selection"] or "{}")
    urls = list(webhooks.callback_urls)
    if isinstance(selection.get("callback_url"), str) and selection["callback_url"]:
        urls.append(selection["callback_url"])
    if not urls:
        return
    data = {
        "batch_id": batch_id,
        "run_id": run.run_id,
        "kind": batch["kind"],
        "priority": batch["priority"],
        "status": batch["status"],
        "created_at": iso_z(batch["created_at"]),
        "published_at": iso_z(published_at),
        "deadline": iso_z(batch["deadline"]),
        "sla_met": (published_at <= batch["deadline"]) if batch["deadline"] else None,
        "skus": batch["sku_count"],
        "items": batch["item_count"],
        "images": len(state_db.receipts(batch_id)),
        "manifest_json": image_store.url(batch_file_key("manifests", batch_id, "manifest.json")),
        "manifest_csv": image_store.url(batch_file_key("manifests", batch_id, "manifest.csv")),
    }
    added = webhooks.enqueue(
        state_db, event="batch_completed", event_id=f"batch_completed:{batch_id}:{run.run_id}", data=data, urls=urls, now=utcnow(), log=context.log
    )
    context.log.info(f"batch {batch_id} published: {added} callback(s) queued")


@dg.sensor(minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def webhook_delivery_sensor(context: dg.SensorEvaluationContext, state_db: StateDB, webhooks: WebhookClient) -> dg.SkipReason:
    """Sends due webhooks (signed, retried with backoff); every attempt is in this tick's log."""
    counts = webhooks.deliver_due(state_db, now=utcnow, log=context.log)
    if not counts["attempts"]:
        return dg.SkipReason("no webhook due")
    summary = (
        f"{counts['attempts']} attempt(s): {counts['delivered']} delivered, {counts['retry_later']} to retry later, "
        f"{counts['failed']} given up"
    )
    context.log.info(summary)
    return dg.SkipReason(summary)
