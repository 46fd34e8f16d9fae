"""The generations API as a real uvicorn server on 127.0.0.1, asked with real HTTP requests:
keys and scopes, validation errors that name the field, limits, idempotent retries, the
OpenAPI document, regeneration requests and a SKU's images. (Requests that run through Dagster:
test_api_runs.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import requests

from api_harness import ApiServer, api_environment, new_key

GEN = "/v1/images/generations"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def api(tmp_path_factory, models_dir):
    home = tmp_path_factory.mktemp("api") / "home"
    env = api_environment(home, models_dir, ZIMAGE_API_MAX_BODY_BYTES="4096", ZIMAGE_PROMPT_MAX_CHARS="300")
    server = ApiServer(env)
    server.env = env
    server.db_url = f"sqlite:///{home / 'zimage.sqlite'}"
    yield server
    server.stop()


@pytest.fixture
def key(api):
    return new_key(api.db_url)


def error_of(response: requests.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["error"]


def test_the_api_serves_its_openapi_document(api):
    document = api.get("/openapi.json").json()
    assert {"/v1/images/generations", "/v1/tasks/{task_id}", "/v1/skus/regenerate", "/v1/skus/{sku}/images"} <= set(document["paths"])
    schema = document["components"]["schemas"]["GenerationRequest"]
    fields = schema["properties"]
    assert list(fields) == ["prompt", "negative_prompt", "model", "quality", "width", "height", "seed", "num_images", "priority", "callback_url"]
    assert (fields["width"]["default"], fields["width"]["multipleOf"], fields["model"]["default"]) == (1024, 16, "z-image-turbo")
    assert fields["quality"]["enum"] == ["standard", "high", "ultra"] and fields["priority"]["enum"] == ["high", "normal", "low"]
    assert fields["prompt"]["maxLength"] == 300
    post = document["paths"]["/v1/images/generations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/GenerationRequest"}
    assert {"401", "422", "429"} <= set(post["responses"]) and document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert api.get("/docs").status_code == 200
    assert error_of(api.get("/v1/nowhere"))["code"] == "not_found"


def test_keys_are_created_shown_once_stored_hashed_and_revoked_with_the_cli(api):
    def zimage(*args):
        return subprocess.run([sys.executable, "-m", "zimage_assets.cli", *args], env=api.env, capture_output=True, text=True, timeout=120)

    created = zimage("api-key", "create", "--name", "pim", "--scopes", "generate,read", "--requests-per-minute", "30")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    from resources.state_db import StateDB

    stored = StateDB(url=api.db_url).api_key(key_id)
    assert token.split("_", 2)[2] not in json.dumps(stored, default=str)  # only the digest is kept
    assert stored["requests_per_minute"] == 30 and stored["scopes"] == ("generate", "read")
    assert api.post(GEN, {"prompt": "a mug", "width": 64, "height": 64}, key=token, headers=ASYNC).status_code == 202
    listing = zimage("api-key", "list")
    assert key_id in listing.stdout and token not in listing.stdout

    assert zimage("api-key", "revoke", key_id).returncode == 0
    refused = api.post(GEN, {"prompt": "a mug"}, key=token)
    assert refused.status_code == 401 and error_of(refused)["code"] == "revoked_key"
    again = zimage("api-key", "revoke", key_id)
    assert again.returncode == 1 and "no active API key" in again.stderr
    bad = zimage("api-key", "create", "--name", "x", "--scopes", "admin")
    assert bad.returncode == 1 and "scopes" in bad.stderr


def test_auth_failures_are_401_or_403_with_the_reason(api, key):
    body = {"prompt": "a mug"}
    missing = api.post(GEN, body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert error_of(missing) == {"code": "missing_key", "field": "Authorization", "message": error_of(missing)["message"]}
    assert error_of(api.post(GEN, body, headers={"Authorization": "Basic Zm9vOmJhcg=="}))["code"] == "malformed_key"
    forged = key[: key.rindex("_") + 1] + "A" * 43  # the right id, a wrong secret
    assert api.post(GEN, body, key=forged).status_code == 401 and error_of(api.post(GEN, body, key=forged))["code"] == "invalid_key"
    assert error_of(api.post(GEN, body, key="zk_000000000000_" + "B" * 43))["code"] == "invalid_key"
    reader = new_key(api.db_url, scopes=("read",))
    forbidden = api.post(GEN, body, key=reader)
    assert forbidden.status_code == 403 and error_of(forbidden)["code"] == "missing_scope" and "generate" in error_of(forbidden)["message"]
    writer = new_key(api.db_url, scopes=("generate",))
    assert api.get("/v1/tasks/anything", key=writer).status_code == 403


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"prompt": "a mug", "width": 1000}, "width", "not_multiple_of_16"),
        ({"prompt": "a mug", "height": 4096}, "height", "out_of_range"),
        ({"prompt": "a mug", "num_images": 0}, "num_images", "out_of_range"),
        ({"prompt": "a mug", "num_images": 101}, "num_images", "out_of_range"),
        ({"prompt": "a mug", "width": "1024"}, "width", "invalid_type"),
        ({"prompt": "a mug", "seed": -1}, "seed", "out_of_range"),
        ({"prompt": "a mug", "seed": True}, "seed", "invalid_type"),
        ({"prompt": "a mug", "model": "z-image-omni"}, "model", "model_not_served"),
        ({"prompt": "a mug", "model": "dall-e"}, "model", "invalid_choice"),
        ({"prompt": "a mug", "quality": "best"}, "quality", "invalid_choice"),
        ({"prompt": "a mug", "priority": "urgent"}, "priority", "invalid_choice"),
        ({"prompt": "a mug", "num_image": 2}, "num_image", "unknown_field"),
        ({"prompt": "x" * 301}, "prompt", "too_long"),
        ({"prompt": "a mug", "callback_url": "https://evil.example.com/hook"}, "callback_url", "callback_not_allowed"),
        ({"prompt": "a mug", "callback_url": "http://169.254.169.254/latest"}, "callback_url", "callback_not_allowed"),
        (["a mug"], None, "invalid_body"),
        ({}, "prompt", "prompt_blocked"),  # every field has a default; the empty prompt is blocked
    ],
)
def test_validation_errors_name_the_field(api, key, body, field, code):
    response = api.post(GEN, body, key=key)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["field"], error["code"]) == (field, code), error
    assert error["message"]


def test_the_omni_message_says_which_models_are_served(api, key):
    message = error_of(api.post(GEN, {"prompt": "a mug", "model": "z-image-omni"}, key=key))["message"]
    assert message == "model 'z-image-omni' is not served by this deployment (it serves: z-image-turbo)"
    assert "use 992 or 1008" in error_of(api.post(GEN, {"prompt": "a mug", "width": 1000}, key=key))["message"]


def test_bodies_are_bounded_and_must_be_json(api, key):
    big = api.post(GEN, {"prompt": "a mug", "negative_prompt": "n" * 5000}, key=key)
    assert big.status_code == 413 and error_of(big)["code"] == "body_too_large"
    auth = {"Authorization": f"Bearer {key}"}
    chunked = requests.post(f"{api.url}{GEN}", data=iter([b'{"prompt": "', b"y" * 5000, b'"}']), headers={**auth, "Content-Type": "application/json"})
    assert chunked.status_code == 413  # no Content-Length to trust: counted while reading
    broken = requests.post(f"{api.url}{GEN}", data=b'{"prompt": ', headers={**auth, "Content-Type": "application/json"})
    assert broken.status_code == 400 and error_of(broken)["code"] == "invalid_json"
    form = requests.post(f"{api.url}{GEN}", data={"prompt": "a mug"}, headers=auth)
    assert form.status_code == 415 and error_of(form)["field"] == "Content-Type"


def test_a_blocked_prompt_is_refused_with_its_reasons_and_recorded(api, key):
    refused = api.post(GEN, {"prompt": "a naked woman in lingerie"}, key=key)
    assert refused.status_code == 422
    error = error_of(refused)
    assert error["code"] == "prompt_blocked" and error["field"] == "prompt" and "unsafe_sexual" in error["reasons"]
    task = api.get(f"/v1/tasks/{error['task_id']}", key=key).json()  # kept for the audit, never generated
    assert task["status"] == "blocked" and task["reason"] == error["reasons"] and task["batch_id"] is None


def test_requests_per_minute_answer_429_with_retry_after(api):
    limited = new_key(api.db_url, requests_per_minute=3)
    codes = [api.get("/v1/tasks/none", key=limited).status_code for _ in range(3)]
    assert codes == [404, 404, 404]
    refused = api.post(GEN, {"prompt": "a mug"}, key=limited)
    assert refused.status_code == 429 and error_of(refused)["code"] == "requests_per_minute"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    other = new_key(api.db_url, requests_per_minute=3)  # limits are per key
    assert api.get("/v1/tasks/none", key=other).status_code == 404


def test_images_per_day_answer_429_and_refused_requests_use_nothing(api):
    limited = new_key(api.db_url, images_per_day=5)
    assert api.post(GEN, {"prompt": "a mug", "num_images": 4, "width": 64, "height": 64}, key=limited, headers=ASYNC).status_code == 202
    refused = api.post(GEN, {"prompt": "a cup", "num_images": 2, "width": 64, "height": 64}, key=limited, headers=ASYNC)
    assert refused.status_code == 429 and error_of(refused)["code"] == "images_per_day"
    assert 1 <= int(refused.headers["retry-after"]) <= 86400
    assert api.post(GEN, {"prompt": "a cup", "num_images": 1, "width": 64, "height": 64}, key=limited, headers=ASYNC).status_code == 202


def test_a_retried_post_is_the_same_task(api, key):
    body = {"prompt": "a blue teapot", "num_images": 5, "width": 64, "height": 64}
    first = api.post(GEN, body, key=key)
    assert first.status_code == 202 and first.headers["location"] == f"/v1/tasks/{first.json()['task_id']}"
    task_id = first.json()["task_id"]
    # The same request again, with its fields in another order and a default spelled out.
    retried = api.post(GEN, {"height": 64, "width": 64, "num_images": 5, "prompt": "a blue teapot", "quality": "standard"}, key=key)
    assert retried.json()["task_id"] == task_id and retried.headers["idempotent-replayed"] == "true"
    assert [i["seed"] for i in retried.json()["images"]] == [i["seed"] for i in first.json()["images"]]
    assert api.post(GEN, {**body, "num_images": 6}, key=key).json()["task_id"] != task_id  # another body, another task
    assert api.post(GEN, body, key=new_key(api.db_url)).json()["task_id"] != task_id  # another key, another task

    # Idempotency-Key: the key decides, and reusing it for another body is refused.
    header = {"Idempotency-Key": "order-4711"}
    keyed = api.post(GEN, body, key=key, headers=header).json()["task_id"]
    assert keyed != task_id
    assert api.post(GEN, body, key=key, headers=header).json()["task_id"] == keyed
    reused = api.post(GEN, {**body, "prompt": "a green teapot"}, key=key, headers=header)
    assert reused.status_code == 422 and error_of(reused)["code"] == "idempotency_key_reused" and error_of(reused)["task_id"] == keyed
    assert error_of(api.post(GEN, body, key=key, headers={"Idempotency-Key": "has space"}))["field"] == "Idempotency-Key"


def test_concurrent_retries_record_one_task(api, key):
    body = {"prompt": "a concurrent vase", "num_images": 5, "width": 64, "height": 64}
    answers: list[str] = []

    def post():
        answers.append(api.post(GEN, body, key=key).json()["task_id"])

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 12 and len(set(answers)) == 1
    from resources.state_db import StateDB

    tasks = [t for t in StateDB(url=api.db_url).waiting_tasks(10000) if json.loads(t["request"])["prompt"] == body["prompt"]]
    assert len(tasks) == 1


def test_a_key_sees_only_its_own_tasks(api, key):
    task_id = api.post(GEN, {"prompt": "a private lamp", "num_images": 5, "width": 64, "height": 64}, key=key).json()["task_id"]
    mine = api.get(f"/v1/tasks/{task_id}", key=key)
    assert mine.status_code == 200 and mine.json()["status"] == "queued" and len(mine.json()["images"]) == 5
    theirs = api.get(f"/v1/tasks/{task_id}", key=new_key(api.db_url))
    assert theirs.status_code == 404 and error_of(theirs)["code"] == "unknown_task"


def test_regeneration_requests_name_unknown_skus_and_views(api, key):
    import dagster as dg

    from resources import build_resources
    from zimage_assets.assets.catalog import sku_catalog
    from zimage_assets.settings import Settings

    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], resources=build_resources(Settings.from_env(api.env)), instance=instance)
    unknown = api.post("/v1/skus/regenerate", {"skus": ["NOPE-1"]}, key=key)
    assert unknown.status_code == 422 and (error_of(unknown)["field"], error_of(unknown)["code"]) == ("skus", "unknown_sku")
    view = api.post("/v1/skus/regenerate", {"skus": ["MH01-XS-Black"], "views": ["underside"]}, key=key)
    assert (error_of(view)["field"], error_of(view)["code"]) == ("views", "unknown_view")
    assert error_of(api.post("/v1/skus/regenerate", {"skus": []}, key=key))["code"] == "missing"
    accepted = api.post("/v1/skus/regenerate", {"skus": ["MH01-XS-Black"], "views": ["front", "back"], "priority": "high"}, key=key)
    assert accepted.status_code == 202, accepted.text
    task = accepted.json()
    assert (task["kind"], task["priority"], task["status"], task["progress"]["images"]) == ("regenerate", "high", "queued", 2)
    images = api.get("/v1/skus/MH01-XS-Black/images", key=key)
    assert images.status_code == 200 and images.json() == {"sku": "MH01-XS-Black", "images": []}  # none published yet
    assert error_of(api.get("/v1/skus/NOPE-1/images", key=key))["code"] == "unknown_sku"
    assert error_of(api.get("/v1/skus/task:x:0001/images", key=key))["code"] == "unknown_sku"  # request items are no SKUs
