"""Asset checks, one file per asset file they guard (mirroring zimage_assets/assets/).

prompts.py  prompt_safety on product_prompts[batch]
images.py   image_safety, image_quality, marketplace_compliance, product_preservation on product_images[batch]
reports.py  skus_within_sla on catalog_coverage
batch_invariance.py  batch_invariance on product_images[batch]
"""

from zimage_assets.checks.batch_invariance import batch_invariance
from zimage_assets.checks.images import IMAGE_CHECKS
from zimage_assets.checks.prompts import prompt_safety
from zimage_assets.checks.reports import skus_within_sla

QUALITY_CHECKS = [prompt_safety, *IMAGE_CHECKS]
ALL_CHECKS = [*QUALITY_CHECKS, batch_invariance, skus_within_sla]
