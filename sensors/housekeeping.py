"""Schedules that keep an eye on things: the SLA watch every 15 minutes, retention weekly (off by default)."""

import dagster as dg

from jobs.reports import sla_watch_job
from jobs.retention import retention_job

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
