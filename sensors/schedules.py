"""Schedules: the monthly refresh, the SLA watch, retention.

- `monthly_refresh_schedule`, on the 1st at 02:00 UTC: a quote (run metadata), then
  low-priority refresh batches. One run per month (run key = the month). A person can also
  launch `monthly_refresh` from the Launchpad with `dry_run: true` for a quote only, a `limit`,
  or a `budget`; or backfill chosen batch partitions of `generate_batch` from the asset graph.
- `sla_watch_schedule`, every 15 minutes: catalog coverage, the SLA report and the SLA check.
- `retention_schedule`, weekly (off by default): old batch partitions deleted, history kept.
"""


import dagster as dg

from jobs.refresh import monthly_refresh
from jobs.reports import sla_watch_job
from jobs.retention import retention_job

REFRESH_CRON = "0 2 1 * *"


@dg.schedule(
    job=monthly_refresh,
    cron_schedule=REFRESH_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Quote, then mint refresh batches of what is due (changed content, new template or model, too old)",
)
def monthly_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = context.scheduled_execution_time.strftime("%Y-%m")
    return dg.RunRequest(run_key=f"monthly-refresh-{month}", tags={"zimage/refresh_month": month})


sla_watch_schedule = dg.ScheduleDefinition(
    name="sla_watch_schedule",
    job=sla_watch_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Catalog coverage, SLA report and the SLA check",
)

retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Delete batch partitions older than ZIMAGE_RETENTION_DAYS (history stays in the project's tables)",
)
