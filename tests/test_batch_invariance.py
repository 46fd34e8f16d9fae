"""The batch_invariance check: a sample of each batch made again alone must equal the batched images."""

from __future__ import annotations

import numpy as np

from conftest import Project
from zimage_assets.domain.batch_invariance import compare_pixels, invariance_result, sample_receipts

HOODIES = ["MH01-XS-Black", "MH01-XS-Gray", "MH02-XS-Black"]


def _receipt(sku, view, spec, cache_hit=False, attempt=0):
    return {"sku": sku, "view": view, "spec_hash": spec, "cache_hit": cache_hit, "attempt": attempt}


def test_the_sample_is_spread_over_the_generated_images_one_per_spec():
    receipts = [_receipt(f"S{i:02d}", "front", f"h{i // 2}") for i in range(20)] + [_receipt("C", "front", "cached", cache_hit=True)]
    sample = sample_receipts(receipts, 3)
    assert [r["sku"] for r in sample] == ["S00", "S06", "S12"]  # 10 distinct specs, every third
    assert len(sample_receipts(receipts, 50)) == 10 and sample_receipts(receipts, 0) == []
    assert sample_receipts([_receipt("C", "front", "x", cache_hit=True)], 2) == []


def test_pixel_differences_and_the_verdict_state_the_tolerance():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = 12
    assert compare_pixels(a, b) == {"mean_abs": 0.25, "max_abs": 12.0, "over_8": round(1 / 48, 6)}
    assert compare_pixels(a, np.zeros((2, 2, 3), dtype=np.uint8))["mean_abs"] == 255.0
    rows = [{"sku": "A", "view": "front", **compare_pixels(a, b)}]
    assert invariance_result(rows, 1.0, 4) == (True, "1 image(s) made again alone vs in batches of up to 4: worst mean difference "
                                               "0.250 levels (max pixel 12) at A/front; tolerance 1")
    passed, description = invariance_result(rows, 0.1, 4)
    assert not passed and "batching changed 1 of 1 image(s)" in description and "ZIMAGE_BATCH_SIZE=1" in description
    assert invariance_result([], 1.0, 4)[0]


def _generate_with_check(project: Project, batch_id: str):
    from zimage_assets.assets.images import product_images
    from zimage_assets.assets.prompts import product_prompts
    from zimage_assets.assets.source_photos import source_photos
    from zimage_assets.checks.batch_invariance import batch_invariance

    result = project.generate(batch_id, assets=[product_prompts, source_photos, product_images, batch_invariance])
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "batch_invariance"]
    return evaluation, {k: v.value for k, v in evaluation.metadata.items()}


def test_batched_images_of_a_real_batch_equal_the_same_specs_made_alone(project, project_env):
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)
    evaluation, metadata = _generate_with_check(project, batch_id)
    assert evaluation.passed, evaluation.description
    assert metadata["compared"] == 2 and metadata["batch_size"] == 4 and metadata["tolerance_mean_abs"] == 1.0
    assert metadata["worst_mean_abs"] <= 0.05 and metadata["worst_max_abs"] <= 1  # fp32 on a CPU: rounding only
    assert "MH0" in metadata["compared_images"]


def test_an_image_that_differs_from_its_spec_made_alone_fails_with_error(project, project_env):
    import dagster as dg

    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)
    project.generate(batch_id, assets=None)
    receipts = project.state_db.receipts(batch_id, latest_only=False)
    first, other = sample_receipts(receipts, 2)
    # What the batch stored for `first` is not what its spec gives (as if batching had changed it).
    project.store.put(first["storage_key"], project.store.get(other["storage_key"]), "image/png")
    evaluation, metadata = _generate_with_check(project, batch_id)  # a re-run resumes every image, then checks
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "batching changed 1 of 2 image(s)" in evaluation.description and f"{first['sku']}/{first['view']}" in evaluation.description


def test_nothing_is_regenerated_when_the_check_is_off_or_batches_are_single(project_env, monkeypatch, instance):
    from resources import build_resources
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_INVARIANCE_SAMPLE", "0")
    project = Project(build_resources(Settings.from_env()), instance)
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES[:1])
    evaluation, metadata = _generate_with_check(project, batch_id)
    assert evaluation.passed and metadata["compared"] == 0 and "ZIMAGE_INVARIANCE_SAMPLE is 0" in evaluation.description
