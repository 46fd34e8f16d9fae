"""A SKU whose content goes back to an earlier version (Red -> Crimson -> Red): its current
image follows its current content again, reusing the earlier image, and nothing stays overdue."""

from __future__ import annotations

from datetime import timedelta

from test_new_sku_sensor import drops, run_batch, tick, watched, write_catalog  # noqa: F401 - fixtures

from conftest import metadata_of

RED = [["MUG-1", "Mug One", "Gear/Misc", "Red", "5"]]
CRIMSON = [["MUG-1", "Mug One", "Gear/Misc", "Crimson", "5"]]


def _current(project) -> dict[str, dict]:
    return {r["view"]: r for r in project.state_db.current_images(["MUG-1"])}


def test_reverting_a_skus_content_makes_its_image_follow_again(watched, drops):
    from resources.state_db import utcnow
    from sensors.new_skus import new_sku_sensor

    catalog = drops / "catalog.csv"
    watched.ingest(write_catalog(catalog, RED), fmt="generic")
    red_hash = watched.state_db.products(["MUG-1"])["MUG-1"]["content_hash"]
    first = tick(new_sku_sensor, watched)
    run_batch(watched, first.run_requests[0])
    red_images = {view: r["sha256"] for view, r in _current(watched).items()}

    watched.ingest(write_catalog(catalog, CRIMSON), fmt="generic")
    second = tick(new_sku_sensor, watched, first.cursor)
    run_batch(watched, second.run_requests[0])
    assert {r["content_hash"] for r in _current(watched).values()} != {red_hash}

    watched.ingest(write_catalog(catalog, RED), fmt="generic")  # back to red
    third = tick(new_sku_sensor, watched, second.cursor)
    (request,) = third.run_requests
    result = run_batch(watched, request)
    images = metadata_of(result, "product_images")
    assert images["generated"] == 0 and images["cache_hits"] >= 1  # the stored red images, reused

    current = _current(watched)
    assert {r["content_hash"] for r in current.values()} == {red_hash}
    assert {view: r["sha256"] for view, r in current.items()} == red_images
    backlog = watched.state_db.sla_backlog(utcnow() + timedelta(hours=3))
    assert backlog["pending"] == 0 and backlog["overdue"] == 0
    assert not tick(new_sku_sensor, watched, third.cursor).run_requests
