"""The SLA check: fails when any SKU waits longer than ZIMAGE_SLA_HOURS for an image of its current content."""


import dagster as dg

from resources.service_levels import ServiceLevels
from resources.state_db import StateDB, utcnow
from zimage_assets.assets.reports import catalog_coverage
from zimage_assets.domain.sla import sla_delta, sla_status
from zimage_assets.metadata import markdown_table


@dg.asset_check(
    asset=catalog_coverage,
    name="skus_within_sla",
    description="Every new or changed SKU has a published image of its current content within the SLA",
)
def skus_within_sla(state_db: StateDB, service_levels: ServiceLevels) -> dg.AssetCheckResult:
    now = utcnow()
    sla = service_levels.sla_hours
    status = sla_status(state_db.sla_backlog(now - sla_delta(sla)), now, sla)
    return dg.AssetCheckResult(
        passed=status.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=status.describe(),
        metadata={
            "sla_hours": dg.MetadataValue.float(sla),
            "overdue": status.overdue,
            "overdue_new": status.overdue_new,
            "overdue_changed": status.overdue_changed,
            "oldest_overdue_hours": dg.MetadataValue.float(status.oldest_overdue_hours),
            "pending": status.pending,
            "oldest_pending_hours": dg.MetadataValue.float(status.oldest_pending_hours),
            "sample": dg.MetadataValue.md(markdown_table(status.sample, ["sku", "kind", "due_since", "age_hours", "batch_id", "batch_status"])),
        },
    )
