"""Request state in the project's tables, on SQLite and the shared PostgreSQL: concurrent
retries record one task, the idempotency window expires, usage counters hold under
concurrency, minting claims a task once, and databases made before the `steps` column get it."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from resources.state_db import StateDB, utcnow
from resources.state_db.requests import IdempotencyConflict, ImagesPerDayExceeded
from zimage_assets.domain import api_keys


def task_row(task_id: str, *, prompt: str = "a mug", key_id: str = "k1", num_images: int = 2, now=None) -> dict:
    now = now or utcnow()
    request = {"prompt": prompt, "num_images": num_images}
    return {
        "task_id": task_id, "key_id": key_id, "source": "api", "kind": "generate", "priority": "normal", "status": "queued",
        "reason": None, "request": json.dumps(request), "request_hash": f"hash-of-{prompt}-{num_images}", "num_images": num_images,
        "callback_url": None, "batch_id": None, "requested_at": now, "created_at": now, "finished_at": None,
        "seconds_to_published": None, "notified_at": None,
    }  # fmt: skip


def record(state_db: StateDB, task: dict, idem: str = "idem-1", *, window_hours: float = 24, images_per_day=1000):
    now = task["created_at"]
    return state_db.record_task(
        task, idempotency_key=idem, window_start=now - timedelta(hours=window_hours), images_per_day=images_per_day, day_start=api_keys.day_window(now)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request, tmp_path):
    if request.param == "sqlite":
        yield StateDB(url=f"sqlite:///{tmp_path / 'state.sqlite'}")
    else:
        yield StateDB(url=request.getfixturevalue("shared_postgres_database"))


def test_concurrent_retries_of_one_request_record_one_task(state_db):
    state_db.engine  # noqa: B018
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def post(n: int) -> None:
        try:
            task, created = record(state_db, task_row(f"t{n}"))
            results.append((task["task_id"], created))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({task_id for task_id, _ in results}) == 1 and sum(created for _, created in results) == 1
    assert state_db.table_counts()["request_tasks"] == 1
    assert state_db.usage("k1", "day", api_keys.day_window(utcnow())) == 2  # the retries used no images


def test_the_idempotency_window_expires_and_a_reused_key_is_refused(state_db):
    old = utcnow() - timedelta(hours=30)
    first, _ = record(state_db, task_row("t-old", now=old))
    again, created = record(state_db, task_row("t-new"))
    assert created and again["task_id"] == "t-new" != first["task_id"]  # older than the window: a new task
    replay, created = record(state_db, task_row("t-newer"))
    assert not created and replay["task_id"] == "t-new"
    with pytest.raises(IdempotencyConflict) as caught:
        record(state_db, task_row("t-other", prompt="a cup"))
    assert caught.value.task_id == "t-new"


def test_images_per_day_hold_under_concurrency_and_refusals_write_nothing(state_db):
    state_db.engine  # noqa: B018
    outcomes: list[str] = []

    def post(n: int) -> None:
        try:
            record(state_db, task_row(f"t{n}", prompt=f"p{n}"), idem=f"idem-{n}", images_per_day=10)
            outcomes.append("recorded")
        except ImagesPerDayExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=post, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("recorded") == 5  # 2 images each, 10 a day
    assert state_db.table_counts()["request_tasks"] == 5 and state_db.table_counts()["request_idempotency"] == 5
    assert state_db.usage("k1", "day", api_keys.day_window(utcnow())) == 10


def test_requests_per_minute_count_once_per_request(state_db):
    window = api_keys.minute_window(utcnow())
    assert [state_db.take_request("k9", window, 3) for _ in range(5)] == [True, True, True, False, False]
    assert state_db.usage("k9", "minute", window) == 3
    assert state_db.take_request("k9", window + timedelta(minutes=1), 3)


def test_minting_claims_each_task_once(state_db):
    record(state_db, task_row("t1"), idem="a")
    record(state_db, task_row("t2", prompt="a cup"), idem="b")
    item = {"view": "request", "content_hash": "c", "prompt": "a mug", "negative_prompt": "", "seed": 1, "width": 64, "height": 64, "steps": None}
    options = {"priority": "normal", "deadline": None, "template_version": "request", "selection": {}, "now": utcnow()}
    batch = state_db.mint_request_batch(task_ids=["t1"], items=[{**item, "sku": "task:t1:0001"}], **options)
    assert batch and state_db.task("t1")["batch_id"] == batch and state_db.task("t1")["status"] == "minted"
    lost = state_db.mint_request_batch(task_ids=["t1", "t2"], items=[{**item, "sku": "task:t2:0001"}], **options)
    assert lost is None and state_db.task("t2")["batch_id"] is None  # t1 was taken: nothing was written
    assert state_db.table_counts()["batches"] == 1 and [t["task_id"] for t in state_db.waiting_tasks(10)] == ["t2"]


def test_a_database_from_before_item_steps_gets_the_column(tmp_path):
    from resources.state_db import dispose_engines

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # batch_items as it was created by an earlier version
        conn.exec_driver_sql(
            "CREATE TABLE batch_items (batch_id VARCHAR(64), sku VARCHAR(255), view VARCHAR(64), content_hash VARCHAR(64) NOT NULL, "
            "prompt TEXT, negative_prompt TEXT, seed INTEGER, width INTEGER, height INTEGER, PRIMARY KEY (batch_id, sku, view))"
        )
        conn.exec_driver_sql("INSERT INTO batch_items (batch_id, sku, view, content_hash) VALUES ('b1', 'S', 'front', 'h')")
    engine.dispose()
    dispose_engines()
    state_db = StateDB(url=url)
    (item,) = state_db.batch_items("b1")
    assert item["steps"] is None and item["content_hash"] == "h"
    StateDB(url=url).engine  # noqa: B018 - a second look adds nothing twice
    assert len([c for c in sa.inspect(state_db.engine).get_columns("batch_items") if c["name"] == "steps"]) == 1


def test_regeneration_requests_share_batches_unless_they_ask_for_the_same_item(project):
    from zimage_assets.minting import mint_requests
    from zimage_assets.requests import Intake, describe_task

    project.ingest()
    resources = project.resources
    intake = Intake(resources["state_db"], resources["quality_gates"], resources["webhooks"], resources["request_policy"])
    templates = resources["prompt_templates"].load()
    key = {"key_id": "k1", "images_per_day": 1000}

    def ask(body):
        return intake.submit_regeneration(body, templates, key=key, idempotency_header=None, now=utcnow()).task["task_id"]

    black = ask({"skus": ["MH01-XS-Black"], "views": ["front"]})
    gray = ask({"skus": ["MH01-XS-Gray"]})
    again = ask({"skus": ["MH01-XS-Black"], "views": ["front", "back"]})  # overlaps the first: another batch
    minted = mint_requests(project.state_db, resources["prompt_templates"], resources["request_policy"], model_steps=lambda: 8)
    batches = {t: project.state_db.task(t)["batch_id"] for t in (black, gray, again)}
    assert len(minted) == 2 and batches[black] == batches[gray] != batches[again]
    assert {(i["sku"], i["view"]) for i in project.state_db.batch_items(batches[black])} == {
        ("MH01-XS-Black", "front"), *(("MH01-XS-Gray", v) for v in ("front", "back", "detail", "lifestyle"))
    }  # fmt: skip
    images = describe_task(project.state_db, project.store, black)["images"]  # only its own items of the shared batch
    assert [(i["sku"], i["view"]) for i in images] == [("MH01-XS-Black", "front")]
    assert mint_requests(project.state_db, resources["prompt_templates"], resources["request_policy"], model_steps=lambda: 8) == []
