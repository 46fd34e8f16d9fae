"""New and changed SKUs minted and launched as high-priority batches with their SLA deadline.

`new_sku_sensor` asks the SKU table (indexed) for SKUs whose current content has neither a
published image nor a batch item, mints them into `new` batches (priority high, deadline = the
earliest SKU's change + the SLA; `zimage_assets/minting.py`) and launches every minted `new`
batch that has no run yet (`sensors/launcher.py`). Minting writes the batches to the database
first; launching uses run key = batch id. A crash between the two leaves minted batches that the
next tick launches, and never mints a SKU version twice (its batch item exists). Its cursor
remembers the catalog's ingest fingerprint, so a quiet tick does not scan the SKU table at all.
"""


import json

import dagster as dg

from jobs.batch_jobs import generate_batch_job
from resources.prompt_templates import PromptTemplates
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB
from sensors.launcher import LAUNCHED_BY_NEW_SKU_SENSOR, automatic_sensor_status, launch_minted
from zimage_assets.minting import mint_new_and_changed

MAX_NEW_SKUS_PER_TICK = 5000  # a backlog (a whole new catalog) drains over several ticks


@dg.sensor(job=generate_batch_job, minimum_interval_seconds=15, default_status=automatic_sensor_status())
def new_sku_sensor(
    context: dg.SensorEvaluationContext,
    state_db: StateDB,
    prompt_templates: PromptTemplates,
    service_levels: ServiceLevels,
) -> dg.SensorResult:
    """Mints new and changed SKUs into high-priority batches with their SLA deadline, and launches them."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    fingerprint = state_db.catalog_fingerprint()  # read before scanning: a later ingest moves it
    minted: list[str] = []
    drained = True
    if cursor.get("fingerprint") != fingerprint or not cursor.get("drained", False):
        minted, drained = mint_new_and_changed(
            state_db, prompt_templates, service_levels.sla_hours, limit=MAX_NEW_SKUS_PER_TICK, log=context.log
        )
        if not drained:
            context.log.info(f"more than {MAX_NEW_SKUS_PER_TICK} SKUs wait: the next tick mints more")
    requests, launched = launch_minted(context, state_db, LAUNCHED_BY_NEW_SKU_SENSOR)
    next_cursor = json.dumps({"fingerprint": fingerprint, "drained": drained})
    if not launched:
        reason = "no new or changed SKUs" if not minted else f"minted {len(minted)} batch(es); all already have runs"
        return dg.SensorResult(skip_reason=reason, cursor=next_cursor)
    earlier = [b for b in launched if b not in minted]
    context.log.info(
        f"launching {len(launched)} batch(es) at priority high"
        + (f", {len(earlier)} minted by an earlier tick: {', '.join(earlier[:10])}" if earlier else "")
    )
    return dg.SensorResult(**requests, cursor=next_cursor)
