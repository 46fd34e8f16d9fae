"""Apply a file of review decisions, then refresh the review queue, in one run."""

import dagster as dg

from zimage_assets.assets.review import review_decisions, review_queue

apply_review_decisions_job = dg.define_asset_job(
    "apply_review_decisions",
    selection=[review_decisions, review_queue],
    description="Apply review decisions from a CSV (sku, view, decision approve|reject|regenerate, reviewer, note), then refresh the queue",
)
