"""Requests through the real uvicorn server that Dagster then makes: the request sensor mints
request batches on a real instance (the repository's run queue), real runs generate them with
the tiny Z-Image, and the answers come from the project's tables: a small request answered
synchronously with its images, an asynchronous one whose signed callback reaches a local HTTP
server, a regeneration of catalog SKUs, and the metrics of it all."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from api_harness import SECRET, ApiServer, api_environment, new_key, wait_for
from conftest import Project
from daemon_harness import code_location, evaluate_sensor, project_instance, run_queue_iteration, sensor_daemon_iteration
from test_webhooks import Receiver

from zimage_assets.domain.webhooks import EVENT_HEADER, SIGNATURE_HEADER, verify_signature

GEN = "/v1/images/generations"
SMALL = {"width": 64, "height": 64}


@pytest.fixture(scope="module")
def served(tmp_path_factory, models_dir):
    """The API server, and this process's environment set to the same project (for Dagster)."""
    env = api_environment(tmp_path_factory.mktemp("runs") / "home", models_dir, ZIMAGE_API_SYNC_WAIT_SECONDS="300")
    with pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("ZIMAGE_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        server = ApiServer(env)
        yield server
        server.stop()


@pytest.fixture
def dagster(served):
    from resources import build_resources
    from zimage_assets.settings import Settings

    with project_instance() as instance, code_location(instance) as workspace:
        yield Project(build_resources(Settings.from_env()), instance), workspace


def _sensor(name: str):
    from sensors import ALL_SENSORS

    return next(s for s in ALL_SENSORS if s.name == name)


def _request_runs(instance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if r.tags.get("zimage/kind") == "request"]


def test_a_small_request_waits_for_its_images(served, dagster):
    project, workspace = dagster
    key = new_key(project.state_db.url)
    body = {"prompt": "a red teapot on a white table", "num_images": 2, "seed": 7, **SMALL}
    answer = {}
    client = threading.Thread(target=lambda: answer.setdefault("response", served.post(GEN, body, key=key, timeout=300)))
    client.start()
    wait_for(lambda: project.state_db.waiting_tasks(10), 60, "the request to be recorded")
    assert client.is_alive()  # it waits: the API never generates, Dagster does

    sensor_daemon_iteration(workspace)  # request_batches_sensor mints the batch and queues its run
    (run,) = _request_runs(project.instance)
    assert run.status == dg.DagsterRunStatus.QUEUED and run.tags["dagster/priority"] == "0"
    run_queue_iteration(workspace)  # the run queue starts it (this launcher runs it to the end)
    client.join(60)
    response = answer["response"]
    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["status"], task["batch_id"], task["run_id"]) == ("succeeded", run.tags["zimage/batch"], run.run_id)
    assert [(i["seed"], i["width"], i["height"], i["verdict"]) for i in task["images"]] == [(7, 64, 64, "PASS"), (8, 64, 64, "PASS")]
    assert all(Path(i["url"]).is_file() for i in task["images"])
    assert task["progress"] == {"images": 2, "made": 2, "judged": 2, "published": 2, "stage": "published"}
    assert task["timings"]["seconds_to_published"] > 0 and task["timings"]["deadline"]

    # The client's retry (its connection broke just before the answer) gets the same task, at once.
    started = time.monotonic()
    retried = served.post(GEN, body, key=key)
    assert retried.status_code == 200 and retried.json()["task_id"] == task["task_id"] and time.monotonic() - started < 10
    assert retried.headers["idempotent-replayed"] == "true"


def test_an_async_request_completes_through_a_run_and_calls_back(served, dagster):
    from resources.metrics import exposition
    from resources.state_db import StateDB

    project, workspace = dagster
    receiver = Receiver()
    try:
        key, other = new_key(project.state_db.url), new_key(project.state_db.url)
        body = {"prompt": "a green ceramic mug", "num_images": 5, "priority": "high", **SMALL}
        accepted = served.post(GEN, {**body, "callback_url": f"{receiver.url}/done"}, key=key)
        assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
        task_id = accepted.json()["task_id"]
        twin = served.post(GEN, body, key=other, headers={"Prefer": "respond-async"}).json()["task_id"]  # the same request, another caller
        ultra = served.post(GEN, {**body, "num_images": 1, "quality": "ultra"}, key=other, headers={"Prefer": "respond-async"}).json()["task_id"]
        project.ingest()
        regen = served.post("/v1/skus/regenerate", {"skus": ["MH01-XS-Black"], "views": ["front", "back"], "priority": "high"}, key=key).json()

        sensor_daemon_iteration(workspace)
        runs = {r.tags["zimage/batch"]: r for r in _request_runs(project.instance)}
        assert len(runs) == 2 and {r.tags["dagster/priority"] for r in runs.values()} == {"10"}
        state = StateDB(url=project.state_db.url)
        batch_id = state.task(task_id)["batch_id"]
        assert state.task(twin)["batch_id"] == batch_id  # requests of one priority share a batch
        batch = state.batch(batch_id)
        assert (batch["kind"], batch["item_count"]) == ("request", 11)
        assert (batch["deadline"] - state.task(task_id)["requested_at"]).total_seconds() == 1800  # high: half an hour
        assert served.get(f"/v1/tasks/{task_id}", key=key).json()["status"] == "queued"

        run_queue_iteration(workspace)
        run_queue_iteration(workspace)  # one GPU in the pool: one run per pass
        assert all(project.instance.get_run_by_id(r.run_id).status == dg.DagsterRunStatus.SUCCESS for r in runs.values())
        task = served.get(f"/v1/tasks/{task_id}", key=key).json()
        assert task["status"] == "succeeded" and task["run_id"] == runs[batch_id].run_id
        assert [i["verdict"] for i in task["images"]] == ["PASS"] * 5 and all(i["url"] for i in task["images"])
        # Seeds derived from the request: the other caller's identical request made the same images.
        twin_task = served.get(f"/v1/tasks/{twin}", key=other).json()
        assert [i["sha256"] for i in twin_task["images"]] == [i["sha256"] for i in task["images"]]
        assert len({i["sha256"] for i in task["images"]}) == 5
        (ultra_image,) = [r for r in state.receipts(batch_id) if r["sku"].startswith(f"task:{ultra}:")]
        assert ultra_image["steps"] == 16 and {r["steps"] for r in state.receipts(batch_id)} == {8, 16}  # quality: the tiny model's 8 steps x 2

        regenerated = served.get(f"/v1/tasks/{regen['task_id']}", key=key).json()
        assert regenerated["status"] == "succeeded" and [(i["sku"], i["view"]) for i in regenerated["images"]] == [
            ("MH01-XS-Black", "back"), ("MH01-XS-Black", "front")
        ]  # fmt: skip
        current = served.get("/v1/skus/MH01-XS-Black/images", key=key).json()["images"]
        assert sorted(i["view"] for i in current) == ["back", "front"] and all(Path(i["url"]).is_file() for i in current)

        # The completion sensor records the outcome and queues the callback; delivery signs and sends it.
        evaluate_sensor(_sensor("request_completion_sensor"), project)
        assert state.task(task_id)["status"] == "succeeded" and state.task(task_id)["seconds_to_published"] > 0
        evaluate_sensor(_sensor("webhook_delivery_sensor"), project)
        (callback,) = [r for r in receiver.requests if r["path"] == "/done"]
        assert verify_signature(callback["body"], SECRET, callback["headers"][SIGNATURE_HEADER])
        assert callback["headers"][EVENT_HEADER] == "task_completed"
        event = json.loads(callback["body"])
        assert event["id"] == f"task_completed:{task_id}" and event["data"]["status"] == "succeeded"
        assert [i["url"] for i in event["data"]["images"]] == [i["url"] for i in task["images"]]
        evaluate_sensor(_sensor("request_completion_sensor"), project)
        evaluate_sensor(_sensor("webhook_delivery_sensor"), project)
        assert len([r for r in receiver.requests if r["path"] == "/done"]) == 1  # called back once

        text = exposition(project.state_db, project.instance).decode()
        assert 'zimage_generation_tasks{priority="high",source="api",status="succeeded"} 4.0' in text
        assert 'zimage_request_to_published_seconds_count{priority="high"} 4.0' in text
        assert 'zimage_queue_length{priority="high"} 0.0' in text
    finally:
        receiver.close()


def test_waiting_requests_count_in_the_queue_length(served, dagster):
    from resources.metrics import exposition

    project, _ = dagster
    key = new_key(project.state_db.url)
    for n in range(3):
        assert served.post(GEN, {"prompt": f"a lamp {n}", "priority": "low", **SMALL}, key=key, headers={"Prefer": "respond-async"}).status_code == 202
    text = exposition(project.state_db, project.instance).decode()
    assert 'zimage_queue_length{priority="low"} 3.0' in text and 'zimage_requests_waiting{priority="low"} 3.0' in text
    assert 'zimage_generation_tasks{priority="low",source="api",status="queued"} 3.0' in text
