"""Launches every minted batch exactly once, with its priority and deadline as run tags.

Whoever mints (the mint job, the CLI, the new-SKU sensor, the monthly refresh) only writes
the batch to the database. This sensor turns it into a partition and a queued run. The run key
is the batch id, so repeated ticks never launch a batch twice, and a batch minted just before a
crash is still launched on the next tick.
"""


import dagster as dg

from jobs.batch_jobs import generate_batch_job
from resources.state_db import StateDB
from zimage_assets.minting import run_tags
from zimage_assets.partitions import batch_partitions

MAX_LAUNCHES_PER_TICK = 200


@dg.sensor(job=generate_batch_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def minted_batches_sensor(context: dg.SensorEvaluationContext, state_db: StateDB) -> dg.SensorResult:
    minted = state_db.batches(statuses=["minted"], limit=MAX_LAUNCHES_PER_TICK)
    if not minted:
        return dg.SensorResult(skip_reason="no minted batch waiting")
    known = set(context.instance.get_dynamic_partitions(batch_partitions.name))
    missing = [b["batch_id"] for b in minted if b["batch_id"] not in known]
    return dg.SensorResult(
        dynamic_partitions_requests=[batch_partitions.build_add_request(missing)] if missing else [],
        run_requests=[dg.RunRequest(run_key=b["batch_id"], partition_key=b["batch_id"], tags=run_tags(b)) for b in minted],
    )
