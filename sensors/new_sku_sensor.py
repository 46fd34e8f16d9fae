"""New catalog files in; new and changed SKUs minted and launched as high-priority batches.

Two cheap sensors instead of one expensive one:

- `catalog_drop_sensor` lists the watched location (ZIMAGE_CATALOG_SOURCE: a file, a folder or an
  s3:// prefix) and starts an `ingest_catalog` run for each catalog file it has not seen in this
  version (size + modification time, or ETag). It never reads a file: parsing 500k rows belongs
  in a run, not in a tick. The run key is the file's identity, so a file is ingested once per
  version even if the cursor is lost.
- `new_sku_sensor` asks the SKU table (indexed) for SKUs whose current content has neither a
  published image nor a batch item, mints them into `new` batches (priority high, deadline = the
  earliest SKU's change + the SLA) and launches every minted `new` batch that has no run yet.
  Minting writes the batches to the database first; launching uses run key = batch id. A crash
  between the two leaves minted batches that the next tick launches, and never mints a SKU
  version twice (its batch item exists). Its cursor remembers the catalog's ingest fingerprint,
  so a quiet tick does not scan the SKU table at all.
"""


import json
import time

import dagster as dg

from jobs.batch_jobs import generate_batch_job, ingest_catalog_job
from resources.catalog_drops import list_catalog_files
from resources.catalog_source import CatalogSource
from resources.prompt_templates import PromptTemplates
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB
from sensors.batch_launcher import LAUNCHED_BY_NEW_SKU_SENSOR, launch_minted
from zimage_assets.domain.batching import PRIORITY_TAG_VALUES
from zimage_assets.domain.sla import batch_deadline
from zimage_assets.minting import mint_batches
from zimage_assets.settings import SAMPLE_CATALOG, Settings

MAX_NEW_SKUS_PER_TICK = 5000  # a backlog (a whole new catalog) drains over several ticks
MAX_FILES_PER_TICK = 20
SETTLE_SECONDS = 10  # a file modified more recently may still be being written


def _default_status() -> dg.DefaultSensorStatus:
    """Running when ZIMAGE_CATALOG_SOURCE names the team's own catalog; stopped on the bundled sample
    (so a first `dagster dev` does not start generating the whole sample catalog)."""
    own = Settings.from_env().catalog_source != str(SAMPLE_CATALOG)
    return dg.DefaultSensorStatus.RUNNING if own else dg.DefaultSensorStatus.STOPPED


@dg.sensor(job=ingest_catalog_job, minimum_interval_seconds=30, default_status=_default_status())
def catalog_drop_sensor(context: dg.SensorEvaluationContext, catalog_source: CatalogSource) -> dg.SensorResult:
    """Ingests each new or updated catalog file in ZIMAGE_CATALOG_SOURCE (a file, folder or s3:// prefix)."""
    location = catalog_source.default_source
    files = list_catalog_files(location)  # a missing location fails the tick with its name
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


def mint_new_and_changed(
    state_db: StateDB, prompt_templates: PromptTemplates, sla_hours: float, *, limit: int = MAX_NEW_SKUS_PER_TICK, log=None
) -> tuple[list[str], bool]:
    """Mint `new` batches for SKU versions that have no image and no batch; (batch ids, drained).

    Only the database is written; launching is a separate step, so that a crash in between is
    repaired by the next launch.
    """
    rows = state_db.skus_needing_images(limit)
    if not rows:
        return [], True
    by_sku = {r["sku"]: r for r in rows}

    def describe(skus: list[str]) -> dict:
        changed = sum(1 for s in skus if by_sku[s]["has_image"])
        return {"by": "new_sku_sensor", "new_skus": len(skus) - changed, "changed_skus": changed}

    minted = mint_batches(
        state_db,
        prompt_templates.load(),
        ((r["sku"], r["category"]) for r in rows),
        kind="new",
        priority="high",
        max_items=prompt_templates.max_items_per_batch,
        selection=describe,
        deadline=lambda skus: batch_deadline((by_sku[s]["last_changed"] for s in skus), sla_hours),
    )
    if log is not None:
        changed = sum(1 for r in rows if r["has_image"])
        log.info(
            f"minted {len(minted)} batch(es) for {len(rows)} SKU(s) ({len(rows) - changed} new, {changed} changed), "
            f"oldest change {rows[0]['last_changed'].isoformat(timespec='seconds')}Z"
        )
    return minted, len(rows) < limit


@dg.sensor(job=generate_batch_job, minimum_interval_seconds=15, default_status=_default_status())
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
