"""Jobs the UI, the CLI, sensors and schedules launch."""

from jobs.batch_jobs import generate_batch_job, ingest_catalog_job, mint_batches_job

ALL_JOBS = [ingest_catalog_job, generate_batch_job, mint_batches_job]

# ---- new SKUs, SLA, monthly refresh, alerts, retention ----
from jobs.refresh import monthly_refresh  # noqa: E402
from jobs.reports import sla_watch_job  # noqa: E402
from jobs.retention import retention_job  # noqa: E402

ALL_JOBS += [monthly_refresh, sla_watch_job, retention_job]

# ---- safety and quality gates: review decisions ----
from jobs.review_jobs import apply_review_decisions_job  # noqa: E402

ALL_JOBS += [apply_review_decisions_job]
