"""End to end through real Dagster runs and the real (tiny) ZImagePipeline."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import metadata_of

HOODIES = ["MH01-XS-Black", "MH01-S-Black", "MH01-XS-Gray"]  # XS/S Black differ only in size
VIEW_SIZES = {"front": (64, 64), "back": (64, 64), "detail": (48, 48), "lifestyle": (64, 80)}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def hoodie_batch(project):
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)
    result = project.generate(batch_id)
    return batch_id, result


def test_batch_generates_real_pngs_of_the_requested_sizes(project, hoodie_batch):
    batch_id, result = hoodie_batch
    receipts = project.state_db.receipts(batch_id)
    assert len(receipts) == 12  # 3 SKUs x 4 views of Men/Tops
    for receipt in receipts:
        with Image.open(io.BytesIO(project.store.get(receipt["storage_key"]))) as image:
            assert image.format == "PNG"
            assert image.size == VIEW_SIZES[receipt["view"]]
        assert receipt["model_id"] == "tiny-random-zimage"
        assert receipt["diffusers_version"] and receipt["torch_version"] and receipt["device"] == "cpu"

    images = metadata_of(result, "product_images")
    # XS-Black and S-Black share a look, hence a spec: 8 images made for 12 items.
    assert (images["items"], images["generated"], images["shared_specs"], images["cache_hits"]) == (12, 8, 4, 0)
    assert images["images_per_second"] > 0
    assert "data:image/jpeg;base64," in images["contact_sheet"]

    black = {r["view"]: r["sha256"] for r in receipts if r["sku"] == "MH01-XS-Black"}
    also_black = {r["view"]: r["sha256"] for r in receipts if r["sku"] == "MH01-S-Black"}
    gray = {r["view"]: r["sha256"] for r in receipts if r["sku"] == "MH01-XS-Gray"}
    assert black == also_black and black["front"] != gray["front"]

    manifest = list(csv.DictReader(io.StringIO(project.store.get(f"manifests/{batch_id}/manifest.csv").decode())))
    assert len(manifest) == 12
    assert {(r["sku"], r["view"]) for r in manifest} == {(s, v) for s in HOODIES for v in VIEW_SIZES}
    for row in manifest:
        assert Path(row["url"]).is_file() and row["key"].startswith("public/")
        assert (int(row["width"]), int(row["height"])) == VIEW_SIZES[row["view"]]
    doc = json.loads(project.store.get(f"manifests/{batch_id}/manifest.json"))
    assert doc["batch_id"] == batch_id and doc["count"] == 12

    assert len(project.state_db.current_images(HOODIES)) == 12
    assert project.state_db.batch(batch_id)["status"] == "published"


def test_rerunning_a_batch_changes_nothing(project, hoodie_batch):
    batch_id, _ = hoodie_batch
    store_root = Path(project.store.location())
    files_before = {p: p.read_bytes() for p in _files(store_root)}
    counts_before = project.state_db.table_counts()

    result = project.generate(batch_id)

    images = metadata_of(result, "product_images")
    assert (images["generated"], images["already_stored"]) == (0, 12)
    assert project.state_db.table_counts() == counts_before
    assert {p: p.read_bytes() for p in _files(store_root)} == files_before  # same files, same manifest


def test_a_new_batch_of_the_same_skus_is_served_from_the_cache(project, hoodie_batch):
    (second,) = project.mint(skus=HOODIES)
    images = metadata_of(project.generate(second), "product_images")
    assert (images["generated"], images["cache_hits"], images["cache_hit_rate"]) == (0, 8, 1.0)


def test_forced_regeneration_is_deterministic(project, hoodie_batch):
    batch_id, _ = hoodie_batch
    before = {(r["sku"], r["view"]): r["sha256"] for r in project.state_db.receipts(batch_id)}
    images = metadata_of(project.generate(batch_id, force=True), "product_images")
    assert images["generated"] == 8
    assert {(r["sku"], r["view"]): r["sha256"] for r in project.state_db.receipts(batch_id)} == before


HOSTILE = ["../../etc/x", "a/b", "a_b", "with space", "ünïcödé-☃", "..", "x" * 250, "/abs/path", "C:\\win"]


def test_untrusted_skus_never_escape_or_collide(project, tmp_path):
    catalog = tmp_path / "hostile.csv"
    with catalog.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "category", "color"])
        for i, sku in enumerate(HOSTILE):
            writer.writerow([sku, f"Widget {i}", "Gear/Misc", ["Red", "Blue", "Green"][i % 3]])
    project.ingest(catalog, fmt="generic")
    batch_ids = project.mint(skus=HOSTILE)
    for batch_id in batch_ids:
        project.generate(batch_id)

    root = Path(project.store.location()).resolve()
    current = project.state_db.current_images(HOSTILE)
    assert {r["sku"] for r in current} == set(HOSTILE)  # the original SKUs, verbatim
    public_keys = [r["public_key"] for r in current]
    assert len(set(public_keys)) == len(public_keys)  # no two SKUs share a published key
    assert len({k.split("/")[1] for k in public_keys}) == len(HOSTILE)  # one folder per SKU
    for path in _files(root.parent):
        assert root in path.resolve().parents or not str(path).startswith(str(root.parent / "etc"))
    assert not (root.parent / "etc").exists() and not Path("/abs/path").exists()
    for path in _files(root):
        assert root in path.resolve().parents


def test_unknown_batch_fails_with_a_clear_message(project):
    result = project.generate("manual-20990101T0000-0001", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "is not in the project database" in failure.step_failure_data.error.message
