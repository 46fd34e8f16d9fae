"""Requests from other systems become batches, and their callers hear back.

- `request_batches_sensor`: mints the requests that the generations API and the RabbitMQ intake
  recorded into `request` batches (priority from the request, deadline from the priority;
  `zimage_assets/minting.py`) and launches every minted `request` batch that has no run yet
  (`sensors/launcher.py`), in the same tick. Minting claims its tasks in the batch's own
  transaction, so a task is never in two batches; a crash between minting and launching is
  repaired by the next tick (run key = batch id).
- `request_completion_sensor`: records how each task of a finished batch ended (succeeded,
  failed or blocked, and the seconds from request to published) and puts the task's result, the
  same document as GET /v1/tasks/{id}, in the webhook outbox for its callback URL;
  `webhook_delivery_sensor` signs and sends it (HMAC, allowed hosts, retries).
"""


import dagster as dg

from jobs.batch_jobs import generate_batch_job
from resources.generator import ZImageGenerator
from resources.image_store import ImageStore
from resources.prompt_templates import PromptTemplates
from resources.request_policy import RequestPolicy
from resources.state_db import StateDB, utcnow
from resources.webhooks import WebhookClient
from sensors.launcher import launch_minted
from zimage_assets.minting import mint_requests
from zimage_assets.requests import describe_task

LAUNCHED_BY_REQUEST_SENSOR = ("request",)
TASK_EVENT = "task_completed"


@dg.sensor(job=generate_batch_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def request_batches_sensor(
    context: dg.SensorEvaluationContext,
    state_db: StateDB,
    prompt_templates: PromptTemplates,
    request_policy: RequestPolicy,
    generator: ZImageGenerator,
) -> dg.SensorResult:
    """Mints recorded API and intake requests into request batches and launches them."""
    minted = mint_requests(state_db, prompt_templates, request_policy, model_steps=lambda: generator.model_info().steps, log=context.log)
    requests, launched = launch_minted(context, state_db, LAUNCHED_BY_REQUEST_SENSOR)
    if not launched:
        return dg.SensorResult(skip_reason="no request waiting" if not minted else f"minted {len(minted)} batch(es); all already have runs")
    context.log.info(f"launching {len(launched)} request batch(es): {', '.join(launched[:20])}{' ...' if len(launched) > 20 else ''}")
    return dg.SensorResult(**requests)


@dg.sensor(minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def request_completion_sensor(
    context: dg.SensorEvaluationContext, state_db: StateDB, image_store: ImageStore, webhooks: WebhookClient
) -> dg.SkipReason:
    """Records how finished requests ended and queues their signed callbacks."""
    finished = 0
    for task in state_db.tasks_to_finish():
        document = describe_task(state_db, image_store, task["task_id"])
        reason = None
        if document["status"] == "failed":
            reason = [f"batch {task['batch_id']} failed; its run's logs say why"]
        state_db.finish_task(
            task["task_id"],
            status=document["status"],
            reason=reason,
            finished_at=utcnow(),
            seconds_to_published=document["timings"]["seconds_to_published"],
        )
        finished += 1
    notified = []
    for task in state_db.tasks_to_notify():
        document = describe_task(state_db, image_store, task["task_id"])
        webhooks.enqueue(
            state_db, event=TASK_EVENT, event_id=f"{TASK_EVENT}:{task['task_id']}", data=document, urls=[task["callback_url"]],
            now=utcnow(), log=context.log,
        )  # fmt: skip
        notified.append(task["task_id"])
    state_db.mark_notified(notified, utcnow())
    if not finished and not notified:
        return dg.SkipReason("no request finished")
    summary = f"{finished} request(s) finished, {len(notified)} callback(s) queued"
    context.log.info(summary)
    return dg.SkipReason(summary)
