"""batch_invariance on product_images[batch]: batching must never silently change an image.

Regenerates ZIMAGE_INVARIANCE_SAMPLE of the batch's generated images at batch size 1 and compares
each with the batched image stored for it (tolerance and measures: `domain/batch_invariance.py`).
It fails with ERROR (it does not block publication: the images are still images of their
prompts, but the spec hash no longer names one image) and records per batch what it compared.
"""

import io
import time

import dagster as dg
import numpy as np
from PIL import Image

from resources.generator import GeneratorError, ZImageGenerator
from resources.image_store import ImageStore, StoreError
from resources.state_db import StateDB
from zimage_assets.assets.images import product_images
from zimage_assets.checks.gate_results import partitioned_check
from zimage_assets.domain.batch_invariance import compare_pixels, invariance_result, sample_receipts
from zimage_assets.domain.specs import build_spec
from zimage_assets.metadata import markdown_table


@partitioned_check(
    asset=product_images,
    name="batch_invariance",
    blocking=False,
    description="A sample of the batch's images made again one per pipeline call equals the batched images (within the tolerance)",
)
def batch_invariance(
    context: dg.AssetCheckExecutionContext, state_db: StateDB, image_store: ImageStore, generator: ZImageGenerator
) -> dg.AssetCheckResult:
    batch_id = context.partition_key
    tolerance = generator.invariance_tolerance
    base = {"batch_size": generator.batch_size, "tolerance_mean_abs": dg.MetadataValue.float(tolerance), "sample_size": generator.invariance_sample}
    if generator.invariance_sample == 0 or generator.batch_size == 1:
        why = "ZIMAGE_INVARIANCE_SAMPLE is 0" if generator.invariance_sample == 0 else "the batch size is 1: every image was made alone"
        return dg.AssetCheckResult(passed=True, description=f"not compared: {why}", metadata={**base, "compared": 0})

    model = generator.model_info()
    items = {(i["sku"], i["view"]): i for i in state_db.batch_items(batch_id)}
    pairs = []  # (receipt, spec) whose spec can be rebuilt exactly from today's model and the item's prompt
    for receipt in sample_receipts(state_db.receipts(batch_id, latest_only=False), generator.invariance_sample):
        item = items.get((receipt["sku"], receipt["view"]))
        if item is None or item["prompt"] is None:
            continue
        spec = build_spec(model, prompt=item["prompt"], negative_prompt=item["negative_prompt"] or "",
                          width=receipt["width"], height=receipt["height"], seed=receipt["seed"], steps=item.get("steps"))
        if spec.spec_hash == receipt["spec_hash"]:  # not made by another model, revision or step count
            pairs.append((receipt, spec))

    started = time.perf_counter()
    rows = []
    try:
        for (receipt, _), made in zip(pairs, generator.generate_unbatched([spec for _, spec in pairs])):
            batched = np.asarray(Image.open(io.BytesIO(image_store.get(receipt["storage_key"]))).convert("RGB"))
            single = np.asarray(made.image.convert("RGB"))
            rows.append({"sku": receipt["sku"], "view": receipt["view"], "attempt": receipt["attempt"], **compare_pixels(batched, single)})
    except (GeneratorError, StoreError) as exc:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, description=f"could not compare: {exc}", metadata={**base, "compared": len(rows)}
        )
    passed, description = invariance_result(rows, tolerance, generator.batch_size)
    worst = max((r["mean_abs"] for r in rows), default=0.0)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            **base,
            "compared": len(rows),
            "worst_mean_abs": dg.MetadataValue.float(worst),
            "worst_max_abs": dg.MetadataValue.float(max((r["max_abs"] for r in rows), default=0.0)),
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "compared_images": dg.MetadataValue.md(markdown_table(rows, ["sku", "view", "attempt", "mean_abs", "max_abs", "over_8"])),
        },
    )
