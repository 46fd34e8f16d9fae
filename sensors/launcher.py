"""Launches minted batches exactly once, with priority, deadline and GPU pool as run tags.

Whoever mints (the mint job, the CLI, the new-SKU sensor, the monthly refresh) only writes the
batch to the database. A sensor turns it into a partition and a queued run: `new_sku_sensor`
launches the batches it mints (kind `new`) in the same tick, `request_batches_sensor` those of kind
`request` (sensors/requests.py); `minted_batches_sensor` launches the rest (`manual`, `refresh`). Each batch kind has exactly one launcher, so a batch never gets two
runs. The run key is the batch id, and a batch that already has a run is not requested again, so
repeated ticks never launch a batch twice, and a batch minted just before a crash is launched on
the next tick.
"""


import dagster as dg

from jobs.batch_jobs import generate_batch_job
from resources.state_db import StateDB
from zimage_assets.assets.images import product_images
from zimage_assets.minting import run_tags
from zimage_assets.partitions import batch_partitions
from zimage_assets.settings import definition_settings

MAX_LAUNCHES_PER_TICK = 200
MAX_SCANNED_PER_TICK = 2000
LAUNCHED_BY_NEW_SKU_SENSOR = ("new",)
LAUNCHED_HERE = ("manual", "refresh")
GPU_POOL_TAG = "zimage/gpu_pool"
PARTITION_TAG = "dagster/partition"


def automatic_sensor_status() -> dg.DefaultSensorStatus:
    """Running on the team's own catalog; stopped on the bundled sample (see Settings.sensors_start_running)."""
    return dg.DefaultSensorStatus.RUNNING if definition_settings().sensors_start_running else dg.DefaultSensorStatus.STOPPED


def batch_run_tags(batch: dict) -> dict[str, str]:
    """The queue priority, deadline and kind of the batch, plus the GPU pool its images claim."""
    return {**run_tags(batch), GPU_POOL_TAG: product_images.op.pool or ""}


def ensure_gpu_pool_limit(instance: dg.DagsterInstance) -> None:
    """Give the GPU pool its dagster.yaml default limit now, if it has none yet.

    The run queue only enforces limits of pools it already knows; on its first pass after a pool
    first appears, it would start every queued GPU run at once. A limit set by
    `dagster instance concurrency set` is left alone.
    """
    pool = product_images.op.pool
    storage = instance.event_log_storage
    if pool and instance.global_op_concurrency_default_limit is not None and pool not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(pool)


def launch_minted(context: dg.SensorEvaluationContext, state_db: StateDB, kinds: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Partition and run requests for minted batches of these kinds that have no run yet.

    Returns (sensor result keyword arguments, the launched batch ids).
    """
    # Batches stay `minted` while their runs wait in the queue: look past those (most urgent first).
    minted = state_db.minted_batches(kinds, limit=MAX_SCANNED_PER_TICK)
    if not minted:
        return {}, []
    ids = [b["batch_id"] for b in minted]
    # Any run of the partition counts: launched by a sensor, backfilled from the UI, or `zimage run`.
    with_runs = {run.tags.get(PARTITION_TAG) for run in context.instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: ids}))}
    todo = [b for b in minted if b["batch_id"] not in with_runs][:MAX_LAUNCHES_PER_TICK]
    if not todo:
        return {}, []
    keys = [b["batch_id"] for b in todo]
    ensure_gpu_pool_limit(context.instance)
    return (
        {
            "dynamic_partitions_requests": [batch_partitions.build_add_request(keys)],
            "run_requests": [dg.RunRequest(run_key=b["batch_id"], partition_key=b["batch_id"], tags=batch_run_tags(b)) for b in todo],
        },
        keys,
    )


@dg.sensor(job=generate_batch_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def minted_batches_sensor(context: dg.SensorEvaluationContext, state_db: StateDB) -> dg.SensorResult:
    """Queues a run for every minted manual or refresh batch (new-SKU batches: new_sku_sensor)."""
    requests, launched = launch_minted(context, state_db, LAUNCHED_HERE)
    if not launched:
        return dg.SensorResult(skip_reason="no minted manual or refresh batch waiting")
    context.log.info(f"launching {len(launched)} batch(es): {', '.join(launched[:20])}{' ...' if len(launched) > 20 else ''}")
    return dg.SensorResult(**requests)
