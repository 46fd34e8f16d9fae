"""The monthly refresh: what is due, the quote before any GPU work, idempotent minting, the schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest

from conftest import SMALL_TEMPLATES
from daemon_harness import evaluate_sensor

SKUS = ["CUP-1", "CUP-2"]  # Gear/Misc: 2 small views each


@pytest.fixture
def published(project, tmp_path):
    catalog = tmp_path / "cups.csv"
    catalog.write_text("sku,title,category,color\nCUP-1,Cup One,Gear/Misc,Red\nCUP-2,Cup Two,Gear/Misc,Blue\n")
    project.ingest(catalog, fmt="generic")
    (batch_id,) = project.mint(skus=SKUS)
    project.generate(batch_id)
    return batch_id


def run_refresh(project, **config):
    from jobs.refresh import monthly_refresh

    result = monthly_refresh.execute_in_process(
        resources=project.resources,
        instance=project.instance,
        run_config={"ops": {"quote_refresh": {"config": config}, "mint_refresh": {"config": config}}},
        raise_on_error=False,
    )
    quote = {}
    for event in result.all_events:
        if event.is_successful_output and event.step_key == "quote_refresh" and event.event_specific_data.output_name == "quote":
            quote = {k: v.value for k, v in event.event_specific_data.metadata.items()}
    minted = result.output_for_node("mint_refresh") if result.success else None
    return result, quote, minted


def with_templates_version(project, tmp_path, version: str):
    from resources.prompt_templates import PromptTemplates

    path = tmp_path / "templates.yaml"
    path.write_text(SMALL_TEMPLATES.read_text().replace('version: "test-1"', f'version: "{version}"'))
    project.resources = {**project.resources, "prompt_templates": PromptTemplates(path=str(path))}


def test_a_new_template_version_is_quoted_from_measured_seconds_then_minted_once_per_month(project, published, tmp_path):
    fresh, quote, minted = run_refresh(project)
    assert fresh.success and minted == [] and (quote["skus_due"], quote["images"], quote["cost"]) == (0, 0, 0.0)

    with_templates_version(project, tmp_path, "test-2")
    measured, measured_images = project.state_db.measured_seconds_per_image("tiny-random-zimage", batch_rev(project, published))
    assert measured and measured_images == 4

    dry, quote, minted = run_refresh(project, dry_run=True)
    assert dry.success and minted == [] and not any(b["kind"] == "refresh" for b in project.state_db.batches())
    assert (quote["skus_due"], quote["images"]) == (2, 4)
    assert quote["reasons"] == {"content_changed": 0, "template_changed": 2, "model_changed": 0, "too_old": 0}
    assert quote["seconds_source"] == f"measured over {measured_images} images"
    assert quote["gpu_hours"] == pytest.approx(4 * measured / 3600, rel=1e-2, abs=1e-3)
    assert quote["cost"] == pytest.approx(quote["gpu_hours"] * 2.5, abs=0.01)
    assert quote["gpus"] == 1 and quote["gpu_pool"] == "gpu-tiny" and quote["fits_in_month"] is True
    assert quote["month"] == datetime.utcnow().strftime("%Y-%m")

    result, quote, minted = run_refresh(project)
    (batch_id,) = minted
    batch = project.state_db.batch(batch_id)
    assert batch_id.startswith(f"refresh-{quote['month']}-")
    assert (batch["kind"], batch["priority"], batch["sku_count"], batch["item_count"], batch["template_version"]) == ("refresh", "low", 2, 4, "test-2")

    again, quote, minted = run_refresh(project)  # the same month: nothing new
    assert again.success and minted == [] and quote["skus_due"] == 0
    assert [b["batch_id"] for b in project.state_db.batches() if b["kind"] == "refresh"] == [batch_id]

    # The launcher queues it behind new-SKU work.
    launch = evaluate_sensor(_sensor("minted_batches_sensor"), project)
    (request,) = launch.run_requests
    assert (request.run_key, request.tags["dagster/priority"], request.tags["zimage/kind"]) == (batch_id, "-10", "refresh")

    # Once generated, the refreshed SKUs are current again.
    project.generate(batch_id)
    assert {r["template_version"] for r in project.state_db.current_images(SKUS)} == {"test-2"}
    assert project.state_db.refresh_candidates(
        template_version="test-2", model_id="tiny-random-zimage", revision=batch_rev(project, batch_id), published_before=None, skip_batch_prefix="refresh-1999-01"
    ) == []


def batch_rev(project, batch_id):
    return project.state_db.receipts(batch_id)[0]["revision"]


def _sensor(name):
    from sensors import ALL_SENSORS

    return next(s for s in ALL_SENSORS if s.name == name)


def test_due_reasons_content_model_and_age(project, published, tmp_path):
    from resources.state_db import utcnow

    revision = batch_rev(project, published)
    due = lambda **kw: {r["sku"]: r for r in project.state_db.refresh_candidates(**{  # noqa: E731
        "template_version": "test-1", "model_id": "tiny-random-zimage", "revision": revision,
        "published_before": None, "skip_batch_prefix": "refresh-1999-01", **kw})}  # fmt: skip
    assert due() == {}
    assert set(due(model_id="Tongyi-MAI/Z-Image-Turbo")) == set(SKUS)
    assert due(revision="another")["CUP-1"]["model_changed"] == 1
    assert set(due(published_before=utcnow() + timedelta(minutes=1))) == set(SKUS)
    assert due(published_before=utcnow() - timedelta(days=1)) == {}

    catalog = tmp_path / "changed.csv"
    catalog.write_text("sku,title,category,color\nCUP-1,Cup One,Gear/Misc,Red\nCUP-2,Cup Two,Gear/Misc,Orange\n")
    project.ingest(catalog, fmt="generic")
    changed = due()
    assert set(changed) == {"CUP-2"} and changed["CUP-2"]["content_changed"] == 1


def test_a_quote_over_budget_mints_nothing(project, published, tmp_path):
    with_templates_version(project, tmp_path, "test-2")
    result, quote, _ = run_refresh(project, budget=0.000001)
    assert not result.success and quote["within_budget"] is False
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "over the budget" in failure.step_failure_data.error.message
    assert not [b for b in project.state_db.batches() if b["kind"] == "refresh"]
    result, _, minted = run_refresh(project, budget=0.000001, limit=0, dry_run=True)
    assert result.success and minted == []


def test_the_schedule_runs_once_a_month_on_the_first():
    from sensors.schedules import monthly_refresh_schedule

    assert monthly_refresh_schedule.cron_schedule == "0 2 1 * *"
    assert monthly_refresh_schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 1, 2, 0))
    request = monthly_refresh_schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == "monthly-refresh-2026-12" and request.tags["zimage/refresh_month"] == "2026-12"


def test_quote_arithmetic_and_the_month():
    from zimage_assets.domain.refresh import build_quote, month_bounds, parse_month

    due = [{"category": "Men/Tops", "template_changed": 1}] * 3 + [{"category": "Gear", "too_old": 1}]
    views = {"Men/Tops": ["front", "back", "detail", "lifestyle"], "Gear": ["front"]}
    quote = build_quote(
        month="2026-12", due=due, views_for_category=views.__getitem__, measured_seconds=None, measured_images=0,
        fallback_seconds=1.5, price_per_gpu_hour=3.0, gpus=2, now=datetime(2026, 12, 1, 2), budget=10.0,
    )  # fmt: skip
    assert (quote.skus_due, quote.images, quote.seconds_source) == (4, 13, "configured (ZIMAGE_SECONDS_PER_IMAGE)")
    assert quote.gpu_hours == pytest.approx(13 * 1.5 / 3600, abs=1e-3) and quote.cost == pytest.approx(quote.gpu_hours * 3, abs=0.01)
    assert quote.finishes_at == datetime(2026, 12, 1, 2) + timedelta(hours=13 * 1.5 / 3600 / 2)
    assert quote.fits_in_month and quote.within_budget and quote.month_end == datetime(2027, 1, 1)
    big = build_quote(
        month="2026-12", due=due * 100_000, views_for_category=views.__getitem__, measured_seconds=2.0, measured_images=50,
        fallback_seconds=1.0, price_per_gpu_hour=3.0, gpus=1, now=datetime(2026, 12, 20), budget=10.0,
    )  # fmt: skip
    assert not big.fits_in_month and not big.within_budget and big.seconds_source == "measured over 50 images"
    assert month_bounds("2026-02") == (datetime(2026, 2, 1), datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("2026-13")
