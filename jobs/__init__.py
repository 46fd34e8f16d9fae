"""Jobs the UI, the CLI, sensors and schedules launch."""

from jobs.batch_jobs import generate_batch_job, ingest_catalog_job, mint_batches_job

ALL_JOBS = [ingest_catalog_job, generate_batch_job, mint_batches_job]
