"""catalog_coverage and sla_report: how much of the catalog has current images, and whether the SLA holds.

Both read the project's tables (never Dagster's partitions), so they stay cheap at 500k SKUs, and
both put their headline numbers in numeric metadata, which the Dagster UI plots over time. The
sla_report also says how many GPUs the observed arrival rate needs to hold the SLA
(`sla_capacity_now`, the figure the monthly refresh quote uses too).
"""


from collections import defaultdict
from datetime import datetime, timedelta

import dagster as dg

from resources.generator import ZImageGenerator
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.catalog import sku_catalog
from zimage_assets.assets.images import product_images
from zimage_assets.domain.capacity import Capacity, arrivals, sla_capacity, seconds_per_image
from zimage_assets.domain.sla import attainment_by_day, overall_attainment, sla_delta, sla_status
from zimage_assets.metadata import markdown_table

REPORT_DAYS = 30
TOP_CATEGORIES = 25


@dg.asset(group_name="reports", deps=[sku_catalog], kinds={"sql"})
def catalog_coverage(context: dg.AssetExecutionContext, state_db: StateDB) -> dg.MaterializeResult:
    """Per category: SKUs whose published image shows their current content, an older content, or none."""
    per_top: dict[str, dict[str, int]] = defaultdict(lambda: {"current": 0, "stale": 0, "missing": 0})
    for row in state_db.coverage_counts():
        top = (row["category"] or "").split("/")[0] or "(none)"
        per_top[top][row["state"]] += row["skus"]
    totals = {state: sum(c[state] for c in per_top.values()) for state in ("current", "stale", "missing")}
    skus = sum(totals.values())
    table = sorted(
        ({"category": cat, "skus": sum(c.values()), **c, "coverage_pct": _pct(c["current"], sum(c.values()))} for cat, c in per_top.items()),
        key=lambda r: -r["skus"],
    )
    context.log.info(f"{skus} SKUs: {totals['current']} current, {totals['stale']} stale, {totals['missing']} without image")
    return dg.MaterializeResult(
        metadata={
            "skus": skus,
            "current": totals["current"],
            "stale": totals["stale"],
            "missing": totals["missing"],
            "coverage_pct": dg.MetadataValue.float(_pct(totals["current"], skus)),
            "by_category": dg.MetadataValue.md(
                markdown_table(table[:TOP_CATEGORIES], ["category", "skus", "current", "stale", "missing", "coverage_pct"])
            ),
        }
    )


@dg.asset(group_name="reports", deps=[catalog_coverage], kinds={"sql"})
def sla_report(
    context: dg.AssetExecutionContext, state_db: StateDB, service_levels: ServiceLevels, generator: ZImageGenerator
) -> dg.MaterializeResult:
    """SLA attainment per day (batches with a deadline, last 30 days), the backlog now, throughput, cost
    and the GPUs the arrival rate needs."""
    now = utcnow()
    sla = service_levels.sla_hours
    batches = state_db.batches_with_deadlines(now - timedelta(days=REPORT_DAYS))
    days = attainment_by_day(batches, now)
    capacity = sla_capacity_now(context.instance, state_db, service_levels, generator, now, batches)
    status = sla_status(state_db.sla_backlog(now - sla_delta(sla)), now, sla)
    last_day = state_db.receipt_stats(now - timedelta(hours=24))
    generated = last_day["images"] - last_day["cache_hits"]
    gpu_hours = last_day["gpu_seconds"] / 3600
    cost = gpu_hours * service_levels.gpu_hour_price
    attainment = overall_attainment(days)
    context.log.info(f"SLA {sla:g} h: attainment {attainment}% over {REPORT_DAYS} days; now {status.describe()}; {capacity.describe()}")
    return dg.MaterializeResult(
        metadata={
            "sla_hours": dg.MetadataValue.float(sla),
            f"attainment_pct_{REPORT_DAYS}d": dg.MetadataValue.float(attainment if attainment is not None else 100.0),
            "attainment_today_pct": dg.MetadataValue.float(_today(days, now)),
            "overdue_now": status.overdue,
            "pending_now": status.pending,
            "oldest_pending_hours": dg.MetadataValue.float(status.oldest_pending_hours),
            "images_24h": last_day["images"],
            "generated_24h": generated,
            "cache_hits_24h": last_day["cache_hits"],
            "images_per_hour_24h": dg.MetadataValue.float(round(last_day["images"] / 24, 2)),
            "gpu_hours_24h": dg.MetadataValue.float(round(gpu_hours, 6)),
            "cost_24h": dg.MetadataValue.float(round(cost, 6)),
            "cost_per_1000_images": dg.MetadataValue.float(round(1000 * cost / last_day["images"], 6) if last_day["images"] else 0.0),
            "gpus_needed": capacity.gpus_needed,
            "gpus_available": capacity.gpus_available,
            "enough_gpus": capacity.enough,
            "arrival_images_per_hour_24h": dg.MetadataValue.float(capacity.images_per_hour),
            "peak_images_per_sla_window": capacity.peak_images,
            "seconds_per_image": dg.MetadataValue.float(capacity.seconds_per_image),
            "seconds_source": capacity.seconds_source,
            "capacity": capacity.describe(),
            "by_day": dg.MetadataValue.md(
                markdown_table(list(reversed(days)), ["day", "batches", "skus", "met", "late", "missed", "open", "attainment_pct"])
            ),
            "overdue_sample": dg.MetadataValue.md(markdown_table(status.sample, ["sku", "kind", "age_hours", "batch_id", "batch_status"])),
        }
    )


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 100.0


def _today(days: list[dict], now) -> float:
    today = now.strftime("%Y-%m-%d")
    row = next((d for d in days if d["day"] == today), None)
    return row["attainment_pct"] if row and row["attainment_pct"] is not None else 100.0


def gpu_count(instance: dg.DagsterInstance, pool: str) -> int:
    """GPUs of a pool = its concurrency limit (dagster.yaml default, or `dagster instance concurrency set`)."""
    limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
    return max(1, int(limits.get(pool) or instance.global_op_concurrency_default_limit or 1))


def sla_capacity_now(
    instance: dg.DagsterInstance, state_db: StateDB, service_levels: ServiceLevels, generator: ZImageGenerator, now: datetime,
    batches: list[dict] | None = None,
) -> Capacity:
    """GPUs the last 24 h of new-SKU arrivals need to hold the SLA, at the model's measured seconds per image."""
    model = generator.model_info()  # names the model; loads no weights
    measured, measured_images = state_db.measured_seconds_per_image(model.model_id, model.revision)
    if batches is None:
        batches = state_db.batches_with_deadlines(now - timedelta(days=REPORT_DAYS))
    return sla_capacity(
        arrivals(batches),
        now=now,
        sla_hours=service_levels.sla_hours,
        seconds=seconds_per_image(measured, measured_images, service_levels.seconds_per_image),
        gpus_available=gpu_count(instance, product_images.op.pool or ""),
    )
