"""GPU capacity: the GPUs the arrival rate needs to hold the SLA, in the sla_report and the refresh quote."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest

from conftest import metadata_of
from daemon_harness import evaluate_sensor
from zimage_assets.domain.capacity import arrivals, gpus_for, seconds_per_image, sla_capacity

NOW = datetime(2026, 12, 10, 12, 0)
CUPS = "sku,title,category,color\n" + "".join(f"CUP-{i},Cup {i},Gear/Misc,Red\n" for i in range(3))


def test_seconds_per_image_come_from_receipts_else_from_the_setting():
    assert seconds_per_image(0.8, 120, 1.0).seconds == 0.8 and seconds_per_image(0.8, 120, 1.0).source == "measured over 120 images"
    assert seconds_per_image(None, 0, 1.5) == seconds_per_image(0.0, 0, 1.5)
    assert seconds_per_image(None, 0, 1.5).source == "configured (ZIMAGE_SECONDS_PER_IMAGE)"


def test_gpus_make_the_images_within_the_hours():
    assert gpus_for(0, 2, 1.0) == 0
    assert gpus_for(1, 2, 1.0) == 1
    assert gpus_for(7200, 2, 1.0) == 1  # exactly one GPU-2-hours
    assert gpus_for(7201, 2, 1.0) == 2
    assert gpus_for(36_000, 2, 0.9) == 5  # 36,000 images at 0.9 s within 2 h: 4.5 GPUs
    with pytest.raises(ValueError):
        gpus_for(1, 0, 1.0)


def test_the_sla_needs_the_larger_of_the_rate_and_the_peak():
    steady = [(NOW - timedelta(hours=h), 300) for h in range(24)]  # 300 images every hour
    capacity = sla_capacity(steady, now=NOW, sla_hours=2, seconds=seconds_per_image(20.0, 9, 1.0), gpus_available=1)
    assert (capacity.images, capacity.images_per_hour, capacity.peak_images) == (7200, 300.0, 600)
    assert (capacity.gpus_for_rate, capacity.gpus_for_peak, capacity.gpus_needed) == (2, 2, 2)  # 300/h x 20 s = 1.67 GPU
    assert not capacity.enough and "NOT ENOUGH" in capacity.describe()

    drop = [(NOW - timedelta(hours=5), 9000), (NOW - timedelta(days=2), 50_000)]  # a catalog drop; one outside the window
    capacity = sla_capacity(drop, now=NOW, sla_hours=2, seconds=seconds_per_image(1.0, 9, 1.0), gpus_available=2)
    assert (capacity.images, capacity.peak_images, capacity.gpus_for_rate, capacity.gpus_for_peak) == (9000, 9000, 1, 2)
    assert capacity.gpus_needed == 2 and capacity.enough
    assert sla_capacity([], now=NOW, sla_hours=2, seconds=seconds_per_image(None, 0, 1.0), gpus_available=1).gpus_needed == 0
    batches = [{"created_at": NOW, "item_count": 4, "deadline": NOW}, {"created_at": NOW, "item_count": 9, "deadline": None}]
    assert arrivals(batches) == [(NOW, 4)]


def test_the_quote_counts_gpus_for_the_refresh_beside_the_arrivals():
    from zimage_assets.domain.refresh import build_quote

    due = [{"category": "Gear/Misc"}] * 3600  # 3,600 images at 1 s: 1 GPU-hour
    common = dict(month="2026-12", due=due, views_for_category=lambda c: ("front",), measured_seconds=1.0, measured_images=10,
                  fallback_seconds=2.0, price_per_gpu_hour=2.5, gpus=1, now=datetime(2026, 12, 31, 22))  # 2 hours left
    assert build_quote(**common).gpus_needed == 1
    busy = build_quote(**common, arrival_images_per_hour=3600)  # new SKUs already fill one GPU
    assert (busy.gpus_needed, busy.arrival_images_per_hour) == (2, 3600) and "2 GPU(s) needed" in busy.summary()


def test_the_sla_report_and_the_quote_show_the_same_capacity_from_measured_seconds(project, tmp_path):
    from jobs.refresh import monthly_refresh
    from sensors.new_skus import new_sku_sensor
    from zimage_assets.assets.reports import catalog_coverage, sla_report

    catalog = tmp_path / "cups.csv"
    catalog.write_text(CUPS)
    project.ingest(catalog, fmt="generic")
    (request,) = evaluate_sensor(new_sku_sensor, project).run_requests  # a `new` batch with a deadline: 3 SKUs x 2 views
    project.generate(request.partition_key)

    result = dg.materialize([catalog_coverage, sla_report], resources=project.resources, instance=project.instance)
    report = metadata_of(result, "sla_report")
    revision = project.state_db.receipts(request.partition_key)[0]["revision"]
    measured, images = project.state_db.measured_seconds_per_image("tiny-random-zimage", revision)
    assert report["seconds_source"] == f"measured over {images} images" and report["seconds_per_image"] == pytest.approx(measured, rel=1e-3)
    assert report["arrival_images_per_hour_24h"] == pytest.approx(6 / 24)
    assert (report["gpus_needed"], report["gpus_available"], report["enough_gpus"]) == (1, 1, True)
    assert "the SLA needs 1 GPU(s)" in report["capacity"]

    quote_run = monthly_refresh.execute_in_process(
        resources=project.resources, instance=project.instance,
        run_config={"ops": {"quote_refresh": {"config": {"dry_run": True}}, "mint_refresh": {"config": {"dry_run": True}}}},
    )  # fmt: skip
    (quote,) = [
        {k: v.value for k, v in e.event_specific_data.metadata.items()}
        for e in quote_run.all_events
        if e.is_successful_output and e.step_key == "quote_refresh" and e.event_specific_data.output_name == "quote"
    ]
    assert quote["arrival_images_per_hour"] == pytest.approx(report["arrival_images_per_hour_24h"])
    assert quote["seconds_per_image"] == pytest.approx(report["seconds_per_image"], rel=1e-3)
    assert quote["gpus_needed"] == 1  # nothing due, the arrivals fit on one GPU
