"""Ingest bookkeeping, minting batches, and launching them through the sensor (real instance)."""

from __future__ import annotations

import csv

import dagster as dg
import pytest

from conftest import metadata_of
from jobs.batch_jobs import generate_batch_job
from sensors.launcher import minted_batches_sensor


def _write_catalog(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sku", "title", "category", "color", "size", "price"])
        writer.writeheader()
        writer.writerows(rows)
    return path


ROWS = [
    {"sku": "TEE-RED-S", "title": "Tee", "category": "Men/Tops/Tees", "color": "Red", "size": "S", "price": "10"},
    {"sku": "TEE-RED-M", "title": "Tee", "category": "Men/Tops/Tees", "color": "Red", "size": "M", "price": "10"},
    {"sku": "BAG-1", "title": "Bag", "category": "Gear/Bags", "color": "Black", "size": "", "price": "30"},
]


def test_ingest_counts_new_changed_unchanged_and_is_idempotent(project, tmp_path):
    source = _write_catalog(tmp_path / "c.csv", ROWS)
    first = metadata_of(project.ingest(source, "generic"), "sku_catalog")
    assert (first["rows_read"], first["accepted"], first["new_skus"], first["changed_skus"]) == (3, 3, 3, 0)
    counts = project.state_db.table_counts()

    again = metadata_of(project.ingest(source, "generic"), "sku_catalog")
    assert (again["new_skus"], again["changed_skus"], again["unchanged_skus"]) == (0, 0, 3)
    assert project.state_db.table_counts() == counts

    edited = [dict(ROWS[0], color="Blue"), dict(ROWS[1], price="12"), ROWS[2]]  # a visual and a non-visual edit
    third = metadata_of(project.ingest(_write_catalog(tmp_path / "c2.csv", edited), "generic"), "sku_catalog")
    assert (third["new_skus"], third["changed_skus"], third["unchanged_skus"]) == (0, 1, 2)


def test_rejected_rows_are_recorded_with_row_field_and_reason(project, tmp_path):
    rows = ROWS + [{"sku": "", "title": "No sku", "category": "X", "color": "", "size": "", "price": ""}]
    result = project.ingest(_write_catalog(tmp_path / "c.csv", rows), "generic")
    md = metadata_of(result, "sku_catalog")
    assert (md["rows_read"], md["accepted"], md["rejected_rows"]) == (4, 3, 1)
    (reject,) = project.state_db.rejects(md["ingest_id"])
    assert reject["row_number"] == 4 and reject["field"] == "sku" and "sku" in reject["reason"].lower()
    assert "| 4 |" in md["rejects"]


@pytest.mark.parametrize(
    "source, fmt, message",
    [
        ("/nonexistent/catalog.csv", "auto", "does not exist"),
        ("SAMPLE", "shopify", "Handle"),  # wrong format names the missing columns
        ("SAMPLE", "excel", "unknown"),
    ],
)
def test_bad_sources_fail_with_a_clear_message_and_write_nothing(project, source, fmt, message):
    from conftest import SAMPLE_CATALOG

    result = project.ingest(SAMPLE_CATALOG if source == "SAMPLE" else source, fmt, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert message.lower() in failure.step_failure_data.error.message.lower()
    assert project.state_db.count_skus() == 0


def test_a_catalog_of_only_rejects_fails_and_keeps_the_rejects(project, tmp_path):
    rows = [{"sku": "", "title": "x", "category": "", "color": "", "size": "", "price": ""}] * 2
    result = project.ingest(_write_catalog(tmp_path / "bad.csv", rows), "generic", raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "none of its 2 rows is usable" in message
    assert project.state_db.count_skus() == 0


def test_minting_respects_the_batch_size_and_keeps_a_skus_views_together(project):
    project.ingest()
    batch_ids = project.mint(category="Men/Tops/Jackets", limit=5, max_items_per_batch=9)
    items = [project.state_db.batch_items(b) for b in batch_ids]
    assert [len(i) for i in items] == [8, 8, 4]  # 4 views per SKU, at most 9 per batch
    for batch in items:
        assert all(sum(1 for i in batch if i["sku"] == sku) == 4 for sku in {i["sku"] for i in batch})
    # SKUs in an open batch are not minted again: the next mint takes the next SKUs.
    first_skus = {i["sku"] for batch in items for i in batch}
    second = project.mint(category="Men/Tops/Jackets", limit=5)
    second_skus = {i["sku"] for b in second for i in project.state_db.batch_items(b)}
    assert len(second_skus) == 5 and not first_skus & second_skus


def test_mint_without_a_selection_is_refused(project):
    project.ingest()
    with pytest.raises(dg.Failure, match="choose SKUs"):
        project.mint()


def test_the_launcher_sensor_launches_each_minted_batch_once_with_its_priority(project, resources):
    project.ingest()
    (batch_id,) = project.mint(skus=["MH01-XS-Black"], priority="high")
    project.instance.delete_dynamic_partition("batches", batch_id)  # as if the process died before adding it

    context = dg.build_sensor_context(instance=project.instance, resources={"state_db": resources["state_db"]})
    result = minted_batches_sensor(context)
    (request,) = result.run_requests
    assert request.run_key == batch_id and request.partition_key == batch_id
    assert request.tags["dagster/priority"] == "10" and request.tags["zimage/kind"] == "manual"
    assert result.dynamic_partitions_requests[0].partition_keys == [batch_id]

    # Once the run starts the batch leaves "minted": later ticks request nothing.
    project.generate(batch_id)
    assert minted_batches_sensor(context).run_requests == []


def test_generate_job_targets_the_batch_assets():
    assert generate_batch_job.partitions_def.name == "batches"


def test_a_batch_can_carry_its_own_callback_url(project):
    import json

    project.ingest()
    (batch_id,) = project.mint(skus=["MH01-XS-Black"], callback_url="https://shop.example.com/hooks/images")
    selection = json.loads(project.state_db.batch(batch_id)["selection"])
    assert selection["callback_url"] == "https://shop.example.com/hooks/images"
