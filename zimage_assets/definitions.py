"""The code location: assembles assets, jobs, sensors and resources. It computes nothing."""


import dagster as dg

from jobs.batch_jobs import generate_batch_job, ingest_catalog_job, mint_batches_job
from resources import build_resources
from sensors.batch_launcher import minted_batches_sensor
from zimage_assets.assets.catalog import sku_catalog
from zimage_assets.assets.images import product_images
from zimage_assets.assets.prompts import product_prompts
from zimage_assets.assets.publish import published_images
from zimage_assets.settings import Settings

defs = dg.Definitions(
    assets=[sku_catalog, product_prompts, product_images, published_images],
    jobs=[ingest_catalog_job, generate_batch_job, mint_batches_job],
    sensors=[minted_batches_sensor],
    resources=build_resources(Settings.from_env()),
    # GPU work runs in the run's own process: one model load per run, not one per step.
    executor=dg.in_process_executor,
)
