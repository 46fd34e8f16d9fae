"""Catalog drops and new/changed SKUs: real sensor evaluations with cursors on a real instance,
real ingest and generation runs."""

from __future__ import annotations

import csv
import importlib
import json
import os
import time
from datetime import timedelta

import dagster as dg
import pytest

from daemon_harness import evaluate_sensor

from conftest import metadata_of


def write_catalog(path, rows, header=("sku", "title", "category", "color", "price")):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    settled = time.time() - 60  # dropped a minute ago: no longer being written
    os.utime(path, (settled, settled))
    return path


MUGS = [["MUG-1", "Mug One", "Gear/Misc", "Red", "5"], ["MUG-2", "Mug Two", "Gear/Misc", "Blue", "6"], ["MUG-3", "Mug Three", "Gear/Misc", "Green", "7"]]


@pytest.fixture
def drops(tmp_path, monkeypatch, project_env):
    """A watched folder as ZIMAGE_CATALOG_SOURCE, and resources built for it."""
    folder = tmp_path / "drops"
    folder.mkdir()
    monkeypatch.setenv("ZIMAGE_CATALOG_SOURCE", str(folder))
    return folder


@pytest.fixture
def watched(drops, instance):
    from conftest import Project
    from resources import build_resources
    from zimage_assets.settings import Settings

    return Project(build_resources(Settings.from_env()), instance)


def tick(sensor, project, cursor=None):
    return evaluate_sensor(sensor, project, cursor)


def run_ingest(project, request):
    from zimage_assets.assets.catalog import sku_catalog

    return dg.materialize([sku_catalog], resources=project.resources, instance=project.instance, run_config=request.run_config, tags=request.tags, raise_on_error=False)


def run_batch(project, request):
    from zimage_assets.assets.images import product_images
    from zimage_assets.assets.prompts import product_prompts
    from zimage_assets.assets.publish import published_images
    from zimage_assets.assets.source_photos import source_photos

    project.instance.add_dynamic_partitions("batches", [request.partition_key])
    return dg.materialize(
        [product_prompts, source_photos, product_images, published_images],
        partition_key=request.partition_key,
        resources=project.resources,
        instance=project.instance,
        tags=request.tags,
    )


def _rejects(project) -> list[dict]:
    import sqlalchemy as sa

    from resources.state_db import tables as t

    with project.state_db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t.catalog_rejects))]


def batch_skus(project, batch_id):
    return sorted({i["sku"] for i in project.state_db.batch_items(batch_id)})


# ---- catalog_drop_sensor ----


def test_a_dropped_file_is_ingested_once_per_version(watched, drops):
    from sensors.catalog_drops import catalog_drop_sensor

    catalog = write_catalog(drops / "catalog.csv", MUGS)
    (drop := drops / ".~lock.catalog.csv#").write_text("editor lock file")
    first = tick(catalog_drop_sensor, watched)
    (request,) = first.run_requests
    assert request.run_config == {"ops": {"sku_catalog": {"config": {"source": str(catalog)}}}}
    assert request.run_key.startswith(f"catalog:{catalog}@") and request.tags["dagster/priority"] == "10"
    assert metadata_of(run_ingest(watched, request), "sku_catalog")["new_skus"] == 3

    again = tick(catalog_drop_sensor, watched, first.cursor)
    assert not again.run_requests and "no new catalog file" in again.skip_message

    write_catalog(catalog, MUGS + [["MUG-4", "Mug Four", "Gear/Misc", "Black", "8"]])  # an updated version
    third = tick(catalog_drop_sensor, watched, again.cursor)
    (update,) = third.run_requests
    assert update.run_key != request.run_key
    assert metadata_of(run_ingest(watched, update), "sku_catalog")["new_skus"] == 1
    assert drop.exists()  # never touched, never ingested


def test_a_file_still_being_written_waits(watched, drops):
    from sensors.catalog_drops import catalog_drop_sensor

    catalog = write_catalog(drops / "catalog.csv", MUGS)
    os.utime(catalog)  # modified just now
    result = tick(catalog_drop_sensor, watched)
    assert not result.run_requests
    assert str(catalog) not in json.loads(result.cursor)
    settled = time.time() - 60
    os.utime(catalog, (settled, settled))
    assert len(tick(catalog_drop_sensor, watched, result.cursor).run_requests) == 1


def test_a_malformed_drop_is_rejected_with_reasons_and_the_sensor_keeps_working(watched, drops):
    from sensors.catalog_drops import catalog_drop_sensor

    write_catalog(drops / "a_broken.csv", [["", "No SKU", "Gear/Misc", "Red", "1"], ["BAD\x00SKU", "Nul", "Gear/Misc", "Red", "1"]])
    first = tick(catalog_drop_sensor, watched)
    (broken,) = first.run_requests
    failed = run_ingest(watched, broken)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    assert "none of its 2 rows is usable" in failure.step_failure_data.error.message
    reasons = {(r["row_number"], r["field"], r["reason"].split(":")[0]) for r in _rejects(watched)}
    assert reasons == {(1, "sku", "missing_sku"), (2, "sku", "invalid_sku")}  # every row, with its reason

    write_catalog(drops / "b_good.csv", MUGS)
    second = tick(catalog_drop_sensor, watched, first.cursor)
    (good,) = second.run_requests
    assert good.run_config["ops"]["sku_catalog"]["config"]["source"].endswith("b_good.csv")
    assert run_ingest(watched, good).success
    assert watched.state_db.count_skus() == 3


def test_an_s3_prefix_is_watched_the_same_way(s3_env, seaweedfs, project_env, monkeypatch, instance):
    from conftest import Project
    from resources import build_resources
    from sensors.catalog_drops import catalog_drop_sensor
    from zimage_assets.settings import Settings

    bucket = s3_env()["bucket"]
    monkeypatch.setenv("ZIMAGE_CATALOG_SOURCE", f"s3://{bucket}/drops/")
    project = Project(build_resources(Settings.from_env()), instance)
    s3 = seaweedfs.client()
    body = "sku,title,category,color\n" + "".join(f"{r[0]},{r[1]},{r[2]},{r[3]}\n" for r in MUGS)
    s3.put_object(Bucket=bucket, Key="drops/catalog.csv", Body=body.encode())
    s3.put_object(Bucket=bucket, Key="drops/README.txt", Body=b"not a catalog")
    s3.put_object(Bucket=bucket, Key="elsewhere/other.csv", Body=body.encode())

    first = tick(catalog_drop_sensor, project)
    (request,) = first.run_requests  # an S3 object is complete once listed: no settling wait
    assert request.run_config["ops"]["sku_catalog"]["config"]["source"] == f"s3://{bucket}/drops/catalog.csv"
    assert metadata_of(run_ingest(project, request), "sku_catalog")["new_skus"] == 3
    assert not tick(catalog_drop_sensor, project, first.cursor).run_requests

    s3.put_object(Bucket=bucket, Key="drops/catalog.csv", Body=(body + "MUG-9,Mug Nine,Gear/Misc,Gold\n").encode())
    (update,) = tick(catalog_drop_sensor, project, first.cursor).run_requests  # a new ETag
    assert update.run_key != request.run_key
    assert metadata_of(run_ingest(project, update), "sku_catalog")["new_skus"] == 1


def test_a_missing_watched_location_fails_the_tick_with_its_name(watched, drops):
    from dagster._core.errors import DagsterUserCodeExecutionError

    from resources.catalog_source import CatalogSourceError
    from sensors.catalog_drops import catalog_drop_sensor

    drops.rmdir()
    with pytest.raises((CatalogSourceError, DagsterUserCodeExecutionError), match="does not exist"):
        tick(catalog_drop_sensor, watched)


# ---- new_sku_sensor ----


def test_new_skus_are_minted_high_priority_with_their_deadline_and_launched(watched, drops):
    from resources.state_db import utcnow
    from sensors.new_skus import new_sku_sensor

    watched.ingest(write_catalog(drops / "catalog.csv", MUGS), fmt="generic")
    before = utcnow()
    result = tick(new_sku_sensor, watched)
    (request,) = result.run_requests  # 3 SKUs x 2 views fit one batch
    batch = watched.state_db.batch(request.partition_key)
    assert request.run_key == batch["batch_id"] and batch["batch_id"].startswith("new-")
    assert (batch["kind"], batch["priority"], batch["status"], batch["sku_count"], batch["item_count"]) == ("new", "high", "minted", 3, 6)
    first_seen = min(watched.state_db.products(["MUG-1", "MUG-2", "MUG-3"])[s]["first_seen"] for s in ("MUG-1", "MUG-2", "MUG-3"))
    assert batch["deadline"] == first_seen + timedelta(hours=2)
    assert before - timedelta(seconds=5) < first_seen <= before
    assert request.tags["dagster/priority"] == "10"
    assert request.tags["zimage/deadline"] == batch["deadline"].isoformat(timespec="seconds") + "Z"
    assert json.loads(batch["selection"]) == {"by": "new_sku_sensor", "new_skus": 3, "changed_skus": 0}
    assert [r.partitions_def_name for r in result.dynamic_partitions_requests] == ["batches"]
    assert list(result.dynamic_partitions_requests[0].partition_keys) == [batch["batch_id"]]


def test_quiet_ticks_launch_nothing_and_skip_the_scan(watched, drops):
    from sensors.new_skus import new_sku_sensor

    empty = tick(new_sku_sensor, watched)
    assert not empty.run_requests and empty.skip_message == "no new or changed SKUs"

    watched.ingest(write_catalog(drops / "catalog.csv", MUGS), fmt="generic")
    first = tick(new_sku_sensor, watched, empty.cursor)
    run_batch(watched, first.run_requests[0])
    quiet = tick(new_sku_sensor, watched, first.cursor)
    assert not quiet.run_requests and quiet.skip_message == "no new or changed SKUs"
    assert json.loads(quiet.cursor) == {"fingerprint": watched.state_db.catalog_fingerprint(), "drained": True}


def test_repeated_ticks_and_lost_cursors_never_mint_a_sku_twice(watched, drops):
    from sensors.new_skus import new_sku_sensor

    watched.ingest(write_catalog(drops / "catalog.csv", MUGS), fmt="generic")
    first = tick(new_sku_sensor, watched)
    (request,) = first.run_requests

    # The daemon stored nothing (crashed before submitting): the next tick has the old cursor.
    replay = tick(new_sku_sensor, watched, None)
    assert [(r.run_key, r.partition_key) for r in replay.run_requests] == [(request.run_key, request.partition_key)]
    assert len(watched.state_db.batches()) == 1  # same batch, same run key: Dagster launches it once

    run_batch(watched, request)  # its run exists now
    for cursor in (first.cursor, replay.cursor, None):  # restarts, lost cursors
        again = tick(new_sku_sensor, watched, cursor)
        assert not again.run_requests
    assert len(watched.state_db.batches()) == 1
    assert len(watched.state_db.current_images(["MUG-1", "MUG-2", "MUG-3"])) == 6


def test_a_crash_between_minting_and_launching_is_repaired_by_the_next_tick(watched, drops):
    from sensors.new_skus import new_sku_sensor
    from zimage_assets.minting import mint_new_and_changed

    watched.ingest(write_catalog(drops / "catalog.csv", MUGS), fmt="generic")
    # The tick that crashed: it minted (database written) and never returned its run requests.
    crashed, _ = mint_new_and_changed(watched.state_db, watched.resources["prompt_templates"], 2.0)
    watched.ingest(write_catalog(drops / "catalog.csv", MUGS + [["MUG-4", "Mug Four", "Gear/Misc", "Black", "8"]]), fmt="generic")

    result = tick(new_sku_sensor, watched)
    launched = [r.run_key for r in result.run_requests]
    assert crashed[0] in launched and len(launched) == 2  # the orphan, and a batch for MUG-4 only
    (fresh,) = [b for b in launched if b not in crashed]
    assert batch_skus(watched, crashed[0]) == ["MUG-1", "MUG-2", "MUG-3"]
    assert batch_skus(watched, fresh) == ["MUG-4"]


def test_changed_skus_are_detected_by_content_hash(watched, drops):
    from sensors.new_skus import new_sku_sensor

    watched.ingest(write_catalog(drops / "catalog.csv", MUGS), fmt="generic")
    first = tick(new_sku_sensor, watched)
    run_batch(watched, first.run_requests[0])

    repriced = [row[:4] + ["99"] for row in MUGS]  # price is not in the picture
    watched.ingest(write_catalog(drops / "catalog.csv", repriced), fmt="generic")
    assert not tick(new_sku_sensor, watched, first.cursor).run_requests

    recoloured = [repriced[0], repriced[1][:3] + ["Purple", "99"], repriced[2]]
    watched.ingest(write_catalog(drops / "catalog.csv", recoloured), fmt="generic")
    result = tick(new_sku_sensor, watched, first.cursor)
    (request,) = result.run_requests
    assert batch_skus(watched, request.partition_key) == ["MUG-2"]
    assert json.loads(watched.state_db.batch(request.partition_key)["selection"])["changed_skus"] == 1
    run_batch(watched, request)
    current = {r["view"]: r for r in watched.state_db.current_images(["MUG-2"])}
    assert {r["batch_id"] for r in current.values()} == {request.partition_key}


def test_a_backlog_drains_over_several_ticks(watched, drops, monkeypatch):
    module = importlib.import_module("sensors.new_skus")  # the package exports the sensor under this name

    monkeypatch.setattr(module, "MAX_NEW_SKUS_PER_TICK", 2)
    watched.ingest(write_catalog(drops / "catalog.csv", MUGS), fmt="generic")
    first = tick(module.new_sku_sensor, watched)
    assert json.loads(first.cursor)["drained"] is False
    second = tick(module.new_sku_sensor, watched, first.cursor)
    minted = {s for b in watched.state_db.batches() for s in batch_skus(watched, b["batch_id"])}
    assert minted == {"MUG-1", "MUG-2", "MUG-3"} and len(watched.state_db.batches()) == 2
    assert json.loads(second.cursor)["drained"] is True
