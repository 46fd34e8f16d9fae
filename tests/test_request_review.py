"""A request's images go through the same review as catalog images: REVIEW items wait in the
queue, and a reviewer's `regenerate` makes the image again from the request's own prompt and
size with the next seed (real Dagster runs, the tiny model, strict gates)."""

from __future__ import annotations

import csv
import io

import dagster as dg

from conftest import Project, metadata_of


def test_a_reviewer_regenerates_a_request_image_from_its_own_prompt(project_env, monkeypatch, instance, tmp_path):
    from resources import build_resources
    from resources.state_db import utcnow
    from zimage_assets.assets.review import QUEUE_CSV_KEY, review_decisions, review_queue
    from zimage_assets.domain.templates import item_seed
    from zimage_assets.minting import mint_requests
    from zimage_assets.requests import Intake, describe_task
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_QUALITY_MODE", "strict")  # the tiny model's noise lands in REVIEW
    monkeypatch.setenv("ZIMAGE_MAX_ATTEMPTS", "1")
    project = Project(build_resources(Settings.from_env()), instance)
    resources = project.resources
    intake = Intake(resources["state_db"], resources["quality_gates"], resources["webhooks"], resources["request_policy"])
    key = {"key_id": "k1", "images_per_day": 100}
    body = {"prompt": "a striped wool scarf", "num_images": 2, "width": 64, "height": 64, "seed": 11}
    task = intake.submit_generation(body, key=key, idempotency_header=None, now=utcnow()).task
    (batch_id,) = mint_requests(project.state_db, resources["prompt_templates"], resources["request_policy"], model_steps=lambda: 8)
    project.generate(batch_id)
    document = describe_task(project.state_db, project.store, task["task_id"])
    assert document["status"] == "succeeded" and [i["verdict"] for i in document["images"]] == ["REVIEW", "REVIEW"]
    assert all(i["url"] is None for i in document["images"])  # nothing is published before a person decides

    queue = dg.materialize([review_queue], resources=resources, instance=instance)
    assert metadata_of(queue, "review_queue")["waiting"] == 2
    rows = list(csv.DictReader(io.StringIO(project.store.get(QUEUE_CSV_KEY).decode())))
    first = next(r for r in rows if r["sku"].endswith(":0001"))
    first.update(decision="regenerate", reviewer="ana", note="try again")
    path = tmp_path / "decisions.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    applied = dg.materialize(
        [review_decisions, review_queue], resources=resources, instance=instance,
        run_config={"ops": {"review_decisions": {"config": {"path": str(path)}}}},
    )  # fmt: skip
    new_batch = metadata_of(applied, "review_decisions")["regeneration_batch"]
    (item,) = project.state_db.batch_items(new_batch)
    original = next(i for i in project.state_db.batch_items(batch_id) if i["sku"] == first["sku"])
    assert {k: item[k] for k in ("sku", "prompt", "seed", "width", "height", "content_hash")} == {
        k: original[k] for k in ("sku", "prompt", "seed", "width", "height", "content_hash")
    }
    project.generate(new_batch)
    (receipt,) = project.state_db.receipts(new_batch, latest_only=False)
    assert (receipt["attempt"], receipt["seed"], receipt["width"]) == (1, item_seed(item["content_hash"], "request", 1), 64)
