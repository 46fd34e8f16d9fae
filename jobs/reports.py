"""The SLA watch: catalog coverage, the SLA report and the SLA check, every 15 minutes."""

import dagster as dg

from zimage_assets.assets.reports import catalog_coverage, sla_report

sla_watch_job = dg.define_asset_job(
    "sla_watch",
    selection=dg.AssetSelection.assets(catalog_coverage, sla_report),
    description="Coverage, SLA attainment and the SLA check over the SKU table",
)
