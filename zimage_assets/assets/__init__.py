"""The asset graph, in data-flow order: catalog -> prompts -> source photos -> images -> publication."""

from zimage_assets.assets.catalog import sku_catalog
from zimage_assets.assets.images import product_images
from zimage_assets.assets.prompts import product_prompts
from zimage_assets.assets.publish import published_images
from zimage_assets.assets.source_photos import source_photos

ALL_ASSETS = [sku_catalog, product_prompts, source_photos, product_images, published_images]

# ---- new SKUs, SLA, monthly refresh, alerts, retention ----
from zimage_assets.assets.reports import catalog_coverage, sla_report  # noqa: E402

ALL_ASSETS += [catalog_coverage, sla_report]

# ---- safety and quality gates: the review queue ----
from zimage_assets.assets.review import review_decisions, review_queue  # noqa: E402

ALL_ASSETS += [review_decisions, review_queue]
