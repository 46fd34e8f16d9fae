"""New catalog files in: each new or updated file in the watched location starts one ingest run.

`catalog_drop_sensor` lists the watched location (ZIMAGE_CATALOG_SOURCE: a file, a folder or an
s3:// prefix) and starts an `ingest_catalog` run for each catalog file it has not seen in this
version (size + modification time, or ETag). It never reads a file: parsing 500k rows belongs
in a run, not in a tick. The run key is the file's identity, so a file is ingested once per
version even if the cursor is lost. Files modified in the last SETTLE_SECONDS may still be being
written and wait for a later tick.
"""


import json
import time

import dagster as dg

from jobs.batch_jobs import ingest_catalog_job
from resources.catalog_source import CatalogSource
from sensors.launcher import automatic_sensor_status
from zimage_assets.domain.batching import PRIORITY_TAG_VALUES

MAX_FILES_PER_TICK = 20
SETTLE_SECONDS = 10  # a file modified more recently may still be being written


@dg.sensor(job=ingest_catalog_job, minimum_interval_seconds=30, default_status=automatic_sensor_status())
def catalog_drop_sensor(context: dg.SensorEvaluationContext, catalog_source: CatalogSource) -> dg.SensorResult:
    """Ingests each new or updated catalog file in ZIMAGE_CATALOG_SOURCE (a file, folder or s3:// prefix)."""
    location = catalog_source.default_source
    files = catalog_source.list_files()  # a missing location fails the tick with its name
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    fresh = [f for f in files if seen.get(f.uri) != f.identity]
    settled = [f for f in fresh if f.atomic or now - f.modified >= SETTLE_SECONDS]
    chosen = settled[:MAX_FILES_PER_TICK]
    # Forget files that are gone; remember only what this tick actually requested.
    present = {f.uri for f in files}
    cursor = {uri: identity for uri, identity in seen.items() if uri in present}
    cursor.update({f.uri: f.identity for f in chosen})
    for f in chosen:
        context.log.info(f"ingesting {f.uri} ({f.size:,} bytes, version {f.identity})")
    waiting = len(fresh) - len(chosen)
    if waiting:
        context.log.info(f"{waiting} file(s) wait for a later tick (still being written, or over {MAX_FILES_PER_TICK} per tick)")
    if not chosen:
        return dg.SensorResult(skip_reason=f"no new catalog file in {location} ({len(files)} known)", cursor=json.dumps(cursor, sort_keys=True))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"catalog:{f.uri}@{f.identity}",
                run_config={"ops": {"sku_catalog": {"config": {"source": f.uri}}}},
                tags={"zimage/catalog_file": f.uri, "dagster/priority": str(PRIORITY_TAG_VALUES["high"])},
            )
            for f in chosen
        ],
        cursor=json.dumps(cursor, sort_keys=True),
    )

