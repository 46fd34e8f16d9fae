"""The SLA check and report over real runs: SKUs waiting longer than the SLA fail the check; the
report shows attainment per day, backlog, throughput and cost."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest

from conftest import metadata_of
from daemon_harness import evaluate_sensor

def write_catalog(path, rows):
    path.write_text("sku,title,category,color\n" + "".join(f"{s},{t},Gear/Misc,{c}\n" for s, t, c in rows))
    return path


CUPS = [("CUP-1", "Cup One", "Red"), ("CUP-2", "Cup Two", "Blue"), ("CUP-3", "Cup Three", "Green")]


def with_sla(project, hours):
    from resources.service_levels import ServiceLevels

    project.resources = {**project.resources, "service_levels": ServiceLevels(sla_hours=hours)}


def run_watch(project):
    from zimage_assets.assets.reports import catalog_coverage, sla_report
    from zimage_assets.checks.reports import skus_within_sla

    result = dg.materialize([catalog_coverage, sla_report, skus_within_sla], resources=project.resources, instance=project.instance)
    (check,) = result.get_asset_check_evaluations()
    return result, check


def ingest_at(project, rows, hours_ago: float) -> None:
    """Record a catalog ingest as the sku_catalog asset does, as if it ran `hours_ago` hours ago."""
    import hashlib

    from resources.state_db import utcnow
    from zimage_assets.domain.catalog import parse_catalog, read_catalog_table

    data = ("sku,title,category,color\n" + "".join(f"{s},{t},Gear/Misc,{c}\n" for s, t, c in rows)).encode()
    parsed = parse_catalog(read_catalog_table(data, name="catalog.csv"), "generic")
    project.state_db.record_ingest(
        ingest_id=hashlib.sha256(data).hexdigest(), source="catalog.csv", fmt=parsed.format, rows_read=parsed.rows_read,
        skus=parsed.skus.to_dict("records"), rejects=[], now=utcnow() - timedelta(hours=hours_ago),
    )  # fmt: skip


def test_the_check_fails_when_a_sku_waits_longer_than_the_sla(project):
    ingest_at(project, CUPS, hours_ago=3)  # arrived 3 h ago; the SLA is 2 h
    _, check = run_watch(project)
    md = {k: v.value for k, v in check.metadata.items()}
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert (md["overdue"], md["overdue_new"], md["overdue_changed"], md["pending"], md["sla_hours"]) == (3, 3, 0, 3, 2.0)
    assert md["oldest_overdue_hours"] == pytest.approx(3.0, abs=0.05)
    assert "| CUP-1 | new |" in md["sample"] and "not batched" in md["sample"]
    assert check.description.startswith("3 SKU(s) older than the 2 h SLA") and "e.g. CUP-1, CUP-2, CUP-3" in check.description

    (batch_id,) = project.mint(skus=["CUP-1", "CUP-2"])
    project.generate(batch_id)
    (waiting,) = project.mint(skus=["CUP-3"])
    _, check = run_watch(project)
    assert (check.metadata["overdue"].value, check.metadata["pending"].value) == (1, 1)
    assert "| CUP-3 | new |" in check.metadata["sample"].value and f"| {waiting} | minted |" in check.metadata["sample"].value

    # A changed SKU's clock starts at its change: 30 minutes ago is within the SLA, 150 is not.
    ingest_at(project, [CUPS[0][:2] + ("Purple",), CUPS[1], CUPS[2]], hours_ago=0.5)
    _, check = run_watch(project)
    assert (check.metadata["overdue"].value, check.metadata["pending"].value) == (1, 2)
    ingest_at(project, [CUPS[0][:2] + ("Purple",), CUPS[1][:2] + ("Black",), CUPS[2]], hours_ago=2.5)
    _, check = run_watch(project)
    md = {k: v.value for k, v in check.metadata.items()}
    assert (md["overdue"], md["overdue_new"], md["overdue_changed"], md["pending"]) == (2, 1, 1, 3)
    assert "| CUP-2 | changed |" in md["sample"]

    with_sla(project, 4)  # configurable: with a 4 h promise nothing is late yet
    _, check = run_watch(project)
    assert check.passed and check.description.startswith("every SKU is within the 4 h SLA (3 SKU(s) waiting, oldest 3.0")


def test_the_report_shows_attainment_throughput_and_cost(project, tmp_path):
    from sensors.new_skus import new_sku_sensor

    project.ingest(write_catalog(tmp_path / "cups.csv", CUPS[:2]), fmt="generic")
    (request,) = evaluate_sensor(new_sku_sensor, project).run_requests  # deadline = first seen + 2 h
    project.generate(request.partition_key)  # published in time
    project.ingest(write_catalog(tmp_path / "cups.csv", CUPS), fmt="generic")
    (late,) = evaluate_sensor(new_sku_sensor, project).run_requests
    project.state_db.mark_batch_failed(late.partition_key)  # its run failed: a miss

    result, check = run_watch(project)
    report = metadata_of(result, "sla_report")
    day = project.state_db.batch(late.partition_key)["deadline"].strftime("%Y-%m-%d")  # per day of the deadline
    assert report["attainment_pct_30d"] == pytest.approx(100 * 2 / 3, abs=0.1)  # SKU-weighted: 2 met, 1 missed
    assert f"| {day} | 2 | 3 | 2 | 0 | 1 | 0 | 66.7 |" in report["by_day"]
    assert (report["images_24h"], report["generated_24h"]) == (4, 4)
    assert report["gpu_hours_24h"] > 0 and report["cost_per_1000_images"] > 0
    assert (report["pending_now"], report["overdue_now"]) == (1, 0)

    coverage = metadata_of(result, "catalog_coverage")
    assert (coverage["skus"], coverage["current"], coverage["stale"], coverage["missing"]) == (3, 2, 0, 1)
    assert coverage["coverage_pct"] == pytest.approx(66.67) and "| Gear | 3 | 2 | 0 | 1 | 66.67 |" in coverage["by_category"]
    assert check.passed


def test_a_batch_counts_from_its_first_publication(project):
    from resources.state_db import utcnow
    from sensors.new_skus import new_sku_sensor
    from zimage_assets.domain.sla import attainment_by_day

    ingest_at(project, CUPS[:1], hours_ago=3)  # due an hour ago
    (request,) = evaluate_sensor(new_sku_sensor, project).run_requests
    project.generate(request.partition_key)  # published now: late
    outcome = lambda: attainment_by_day(project.state_db.batches_with_deadlines(utcnow() - timedelta(days=1)), utcnow())[0]  # noqa: E731
    assert (outcome()["met"], outcome()["late"]) == (0, 1)
    # Had its run published it in time (as batch_completion_sensor records), a later
    # re-publication (a reviewer's approval, a re-run) would not make it late.
    deadline = project.state_db.batch(request.partition_key)["deadline"]
    assert project.state_db.record_first_publication(request.partition_key, deadline - timedelta(minutes=5), "run-in-time")
    assert not project.state_db.record_first_publication(request.partition_key, utcnow(), "a-later-run")
    assert (outcome()["met"], outcome()["late"]) == (1, 0)


def test_attainment_is_decided_per_batch_and_weighted_by_skus():
    from zimage_assets.domain.sla import attainment_by_day, batch_deadline, overall_attainment

    day = datetime(2026, 11, 24, 10)
    deadline = batch_deadline([day, day - timedelta(minutes=30)], 2)
    assert deadline == day + timedelta(hours=1, minutes=30)
    batches = [
        {"deadline": deadline, "status": "published", "updated_at": deadline - timedelta(minutes=1), "sku_count": 10},  # met
        {"deadline": deadline, "status": "published", "updated_at": deadline + timedelta(minutes=1), "sku_count": 5},  # late
        {"deadline": deadline, "status": "failed", "updated_at": day, "sku_count": 3},  # missed
        {"deadline": deadline, "status": "running", "updated_at": day, "sku_count": 2},  # open: past the deadline -> missed
        {"deadline": deadline + timedelta(days=1), "status": "minted", "updated_at": day, "sku_count": 4},  # open, not yet due
    ]
    rows = attainment_by_day(batches, now=deadline + timedelta(hours=1))
    assert rows == [
        {"day": "2026-11-24", "batches": 4, "skus": 20, "met": 10, "late": 5, "missed": 5, "open": 0, "attainment_pct": 50.0},
        {"day": "2026-11-25", "batches": 1, "skus": 4, "met": 0, "late": 0, "missed": 0, "open": 4, "attainment_pct": None},
    ]
    assert overall_attainment(rows) == 50.0
