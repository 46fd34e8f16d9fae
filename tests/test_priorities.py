"""Dagster's run queue, driven by its own daemons on a real instance configured by dagster.yaml:
new-SKU batches start before manual ones, manual before refresh, the GPU pool limit holds, and
dropped catalog files are ingested one at a time, in order."""

from __future__ import annotations

import csv

import dagster as dg
import pytest

from conftest import Project
from daemon_harness import code_location, evaluate_sensor, project_instance, run_queue_iteration, sensor_daemon_iteration, start_sensor, stop_sensor


def write_catalog(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "category", "color"])
        writer.writerows(rows)
    return path


@pytest.fixture
def queued(project_env, tmp_path):
    """A project on an instance with the repository's run queue settings, and its code location."""
    from resources import build_resources
    from zimage_assets.settings import Settings

    with project_instance() as instance, code_location(instance) as workspace:
        yield Project(build_resources(Settings.from_env()), instance), workspace


def _sensors():
    from sensors import ALL_SENSORS

    return ALL_SENSORS


def _runs_by_batch(instance) -> dict[str, dg.DagsterRun]:
    return {r.tags["zimage/batch"]: r for r in instance.get_runs() if "zimage/batch" in r.tags}


def test_dagster_yaml_declares_the_queue_and_gpu_pools(queued, settings):
    from zimage_assets.assets.images import product_images

    project, _ = queued
    config = project.instance.get_concurrency_config()
    assert project.instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"
    assert config.pool_config.pool_granularity.value == "run"  # runs wait in the queue for a GPU
    assert config.pool_config.default_pool_limit == 1  # one GPU per pool on one box
    assert config.run_queue_config.max_concurrent_runs == 4
    assert {"key": "zimage/catalog_file", "limit": 1} in config.run_queue_config.tag_concurrency_limits  # one ingest at a time
    assert product_images.op.pool == settings.gpu_pool == "gpu-tiny"  # one pool per model variant


def test_high_priority_runs_start_first_and_the_pool_limit_holds(queued, tmp_path):
    from zimage_assets.minting import mint_batches

    project, workspace = queued
    catalog = write_catalog(
        tmp_path / "catalog.csv",
        [["REF-1", "Old Mug", "Gear/Misc", "Red"], ["MAN-1", "Chosen Mug", "Gear/Misc", "Blue"]],
    )
    project.ingest(catalog, fmt="generic")
    templates = project.resources["prompt_templates"].load()
    # Oldest first: a refresh batch, then a manual one; the new SKU arrives last.
    (refresh,) = mint_batches(project.state_db, templates, [("REF-1", "Gear/Misc")], kind="refresh", max_items=10, selection={})
    (manual,) = mint_batches(project.state_db, templates, [("MAN-1", "Gear/Misc")], kind="manual", max_items=10, selection={})
    for name in ("catalog_drop_sensor", "new_sku_sensor"):
        stop_sensor(workspace, name)
    sensor_daemon_iteration(workspace)  # minted_batches_sensor queues refresh, then manual

    write_catalog(catalog, [["REF-1", "Old Mug", "Gear/Misc", "Red"], ["MAN-1", "Chosen Mug", "Gear/Misc", "Blue"], ["NEW-1", "New Mug", "Gear/Misc", "Green"]])
    project.ingest(catalog, fmt="generic")
    start_sensor(workspace, "new_sku_sensor")
    sensor_daemon_iteration(workspace)  # new_sku_sensor mints NEW-1 and queues it last

    runs = _runs_by_batch(project.instance)
    (new,) = [b for b in runs if b.startswith("new-")]
    assert set(runs) == {refresh, manual, new}
    assert all(r.status == dg.DagsterRunStatus.QUEUED for r in runs.values())
    assert [runs[b].tags["dagster/priority"] for b in (refresh, manual, new)] == ["-10", "0", "10"]
    assert runs[new].tags["zimage/deadline"].endswith("Z") and runs[new].tags["zimage/gpu_pool"] == "gpu-tiny"
    assert runs[new].run_op_concurrency.all_pools == {"gpu-tiny"}
    created = sorted(runs.values(), key=lambda r: project.instance.get_run_record_by_id(r.run_id).create_timestamp)
    assert created[-1].tags["zimage/batch"] == new  # queued last: first in first out would start it last

    # Ticks while the runs wait in the queue (their batches still `minted`) launch nothing twice.
    for sensor in _sensors():
        if sensor.name in ("minted_batches_sensor", "new_sku_sensor"):
            assert not evaluate_sensor(sensor, project).run_requests

    # One pass of the queue: 4 run slots are free, but the GPU pool has one slot: only the
    # highest priority run starts (and, with this launcher, runs to completion).
    run_queue_iteration(workspace)
    runs = _runs_by_batch(project.instance)
    assert runs[new].status == dg.DagsterRunStatus.SUCCESS
    assert runs[manual].status == runs[refresh].status == dg.DagsterRunStatus.QUEUED
    assert project.state_db.batch(new)["status"] == "published"
    assert len(project.state_db.current_images(["NEW-1"])) == 2

    # A second GPU in the pool: the next pass starts both, normal before low.
    project.instance.event_log_storage.set_concurrency_slots("gpu-tiny", 2)
    run_queue_iteration(workspace)
    runs = _runs_by_batch(project.instance)
    assert runs[manual].status == runs[refresh].status == dg.DagsterRunStatus.SUCCESS
    started = {b: project.instance.get_run_record_by_id(r.run_id).start_time for b, r in runs.items()}
    assert started[new] < started[manual] < started[refresh]



@pytest.fixture
def drops(project_env, tmp_path, monkeypatch):
    folder = tmp_path / "drops"
    folder.mkdir()
    monkeypatch.setenv("ZIMAGE_CATALOG_SOURCE", str(folder))
    return folder


def test_dropped_files_are_ingested_one_at_a_time_in_order(drops, queued):
    import os
    import time

    project, workspace = queued
    for name, colour in (("a_monday.csv", "Red"), ("b_tuesday.csv", "Blue")):  # the same SKU, recoloured
        write_catalog(drops / name, [["MUG-1", "Mug", "Gear/Misc", colour]])
        os.utime(drops / name, (time.time() - 60, time.time() - 60))
    for name in ("new_sku_sensor", "minted_batches_sensor"):
        stop_sensor(workspace, name)
    start_sensor(workspace, "catalog_drop_sensor")
    sensor_daemon_iteration(workspace)
    ingests = sorted(project.instance.get_runs(), key=lambda r: r.tags["zimage/catalog_file"])
    assert [r.tags["zimage/catalog_file"].rsplit("/", 1)[1] for r in ingests] == ["a_monday.csv", "b_tuesday.csv"]
    assert all(r.status == dg.DagsterRunStatus.QUEUED and r.tags["dagster/priority"] == "10" for r in ingests)

    run_queue_iteration(workspace)  # run slots are free, but ingests go one at a time
    first, second = (project.instance.get_run_by_id(r.run_id) for r in ingests)
    assert (first.status, second.status) == (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.QUEUED)
    run_queue_iteration(workspace)
    assert project.instance.get_run_by_id(second.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert project.state_db.products(["MUG-1"])["MUG-1"]["attributes"]["color"] == "Blue"  # the later file wins
