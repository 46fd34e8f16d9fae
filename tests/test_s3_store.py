"""The S3 image store against a real S3 service that checks signatures (SeaweedFS)."""

from __future__ import annotations

import csv
import io
import time
import urllib.error
import urllib.request

import dagster as dg
import pytest

from conftest import SAMPLE_CATALOG, metadata_of
from resources.image_store import StoreError
from servers import counting_project, generator_calls

HOODIES = ["MH01-XS-Black", "MH01-S-Black", "MH01-XS-Gray"]


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _store(s3_env, **env):
    from resources import build_resources
    from zimage_assets.settings import Settings

    s3_env(**env)
    return build_resources(Settings.from_env())["image_store"]


def _project(instance, tmp_path):
    return counting_project(instance, tmp_path / "calls.txt")


def _generator_calls(tmp_path) -> int:
    return generator_calls(tmp_path / "calls.txt")


def test_objects_round_trip_under_the_prefix(project_env, s3_env, seaweedfs):
    store = _store(s3_env, prefix="shop/images")
    bucket = store.bucket
    store.check_writable()
    key = "images/ab/" + "ab" * 32 + ".png"
    assert not store.exists(key)
    store.put(key, b"\x89PNG fake", "image/png")
    assert store.exists(key) and store.get(key) == b"\x89PNG fake"

    store.copy(key, "public/sku-1/front-abcdef.png")  # server-side
    head = seaweedfs.client().head_object(Bucket=bucket, Key="shop/images/public/sku-1/front-abcdef.png")
    assert head["ContentType"] == "image/png" and "immutable" in head["CacheControl"]
    assert store.get("public/sku-1/front-abcdef.png") == b"\x89PNG fake"

    # Every key lives under the prefix; the write probe cleaned up after itself.
    assert seaweedfs.keys(bucket) == ["shop/images/" + key, "shop/images/public/sku-1/front-abcdef.png"]
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(StoreError, match="no object"):
        store.get(key)
    for hostile in ("../escape.png", "/abs.png", "a//b.png", ".hidden/x.png"):
        with pytest.raises(ValueError, match="unsafe storage key"):
            store.put(hostile, b"x")


def test_presigned_urls_work_expire_and_cannot_be_tampered_with(project_env, s3_env):
    store = _store(s3_env, ZIMAGE_PRESIGN_EXPIRY_SECONDS="2")
    store.put("public/a/front-1.png", b"front")
    store.put("public/a/back-2.png", b"back")
    url = store.url("public/a/front-1.png")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=2" in url
    assert _fetch(url) == (200, b"front")
    assert _fetch(url.replace("front-1.png", "back-2.png"))[0] == 403  # signature covers the key
    time.sleep(3.1)
    assert _fetch(url)[0] == 403  # expired


def test_a_cdn_base_url_replaces_presigning(project_env, s3_env):
    store = _store(s3_env, ZIMAGE_PUBLIC_BASE_URL="https://cdn.example.com/catalog")
    assert store.url("public/a b/front.png") == "https://cdn.example.com/catalog/public/a%20b/front.png"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"ZIMAGE_S3_SECRET_ACCESS_KEY": "not-the-secret"}, "refused the credentials"),
        ({"ZIMAGE_S3_ACCESS_KEY_ID": "NOSUCHKEY"}, "refused the credentials"),
        ({"bucket": "no-such-bucket-zimage"}, "bucket 'no-such-bucket-zimage' does not exist"),
    ],
    ids=["wrong-secret", "unknown-key", "missing-bucket"],
)
def test_bad_credentials_or_bucket_fail_clearly_before_any_gpu_work(project_env, s3_env, instance, tmp_path, env, expected):
    s3_env(**env)
    project = _project(instance, tmp_path)
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES[:1])

    result = project.generate(batch_id, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "product_images"
    message = failure.step_failure_data.error.message
    assert expected in message and "image store not writable" in message
    assert "not-the-secret" not in message
    assert _generator_calls(tmp_path) == 0  # the model was never asked for an image
    assert project.state_db.receipts(batch_id) == []


def test_a_batch_end_to_end_on_s3_then_a_rerun_changes_nothing(project_env, s3_env, seaweedfs, instance, tmp_path):
    env = s3_env(prefix="prod")
    project = _project(instance, tmp_path)
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)

    result = project.generate(batch_id)

    images = metadata_of(result, "product_images")
    assert (images["items"], images["generated"]) == (12, 8)
    assert images["store"].startswith(f"s3://{env['bucket']}/prod at http://127.0.0.1:")
    receipts = project.state_db.receipts(batch_id)
    keys = set(seaweedfs.keys(env["bucket"], "prod/"))
    assert {f"prod/{r['storage_key']}" for r in receipts} <= keys
    manifest = list(csv.DictReader(io.StringIO(project.store.get(f"manifests/{batch_id}/manifest.csv").decode())))
    assert len(manifest) == 12
    status, body = _fetch(manifest[0]["url"])  # a presigned GET URL a shop can use
    assert status == 200 and body.startswith(b"\x89PNG")
    head = seaweedfs.client().head_object(Bucket=env["bucket"], Key=f"prod/{manifest[0]['key']}")
    assert head["ContentType"] == "image/png"

    calls = _generator_calls(tmp_path)
    etags = {o["Key"]: o["ETag"] for o in seaweedfs.client().list_objects_v2(Bucket=env["bucket"])["Contents"]}
    again = metadata_of(project.generate(batch_id), "product_images")
    assert (again["generated"], again["already_stored"]) == (0, 12)
    assert _generator_calls(tmp_path) == calls
    after = {o["Key"]: o["ETag"] for o in seaweedfs.client().list_objects_v2(Bucket=env["bucket"])["Contents"]}
    assert after.keys() == etags.keys()  # no object added or lost
    # Same contents, except the manifests: their presigned URLs are signed afresh on each publish.
    assert {k: v for k, v in after.items() if "/manifests/" not in k} == {k: v for k, v in etags.items() if "/manifests/" not in k}


def test_catalogs_can_be_read_from_s3(project_env, s3_env, seaweedfs, instance, tmp_path):
    env = s3_env()
    seaweedfs.client().put_object(Bucket=env["bucket"], Key="drops/2026-11-24/products.csv", Body=SAMPLE_CATALOG.read_bytes())
    project = _project(instance, tmp_path)

    result = project.ingest(f"s3://{env['bucket']}/drops/2026-11-24/products.csv")
    catalog = metadata_of(result, "sku_catalog")
    assert catalog["accepted"] > 1000 and catalog["source"].startswith("s3://")

    missing = project.ingest(f"s3://{env['bucket']}/drops/missing.csv", raise_on_error=False)
    assert not missing.success
    message = next(e for e in missing.all_events if e.is_step_failure).step_failure_data.error.message
    assert "drops/missing.csv does not exist" in message


def test_list_s3_objects_gives_key_etag_size_and_time(project_env, s3_env, seaweedfs):
    from datetime import datetime, timedelta

    from resources import build_resources
    from resources.s3 import last_modified_utc, list_s3_objects, read_s3_uri
    from zimage_assets.settings import Settings

    env = s3_env()
    s3 = build_resources(Settings.from_env())["catalog_source"].s3  # the project's S3 connection (ZIMAGE_S3_*)
    client = seaweedfs.client()
    for i in range(3):
        client.put_object(Bucket=env["bucket"], Key=f"drops/d{i}.csv", Body=b"x" * (i + 1))
    client.put_object(Bucket=env["bucket"], Key="elsewhere/e.csv", Body=b"e")

    objects = list_s3_objects(f"s3://{env['bucket']}/drops/", s3, addressing_style="path")
    assert [(o["key"], o["size"]) for o in objects] == [("drops/d0.csv", 1), ("drops/d1.csv", 2), ("drops/d2.csv", 3)]
    assert all(len(o["etag"]) == 32 and o["last_modified"].tzinfo is not None for o in objects)
    assert objects[0]["uri"] == f"s3://{env['bucket']}/drops/d0.csv"
    assert abs(last_modified_utc(objects[0]) - datetime.utcnow()) < timedelta(minutes=5)  # naive UTC, as the tables keep
    assert read_s3_uri(objects[2]["uri"], s3, addressing_style="path") == b"xxx"
    with pytest.raises(StoreError, match="does not exist"):
        list_s3_objects("s3://no-such-bucket-zimage/x", s3, addressing_style="path")
    with pytest.raises(ValueError, match="expected s3://bucket/prefix"):
        list_s3_objects("http://example.com/x", s3)


def test_secrets_reach_dagster_as_env_vars(project_env, s3_env):
    from resources import build_resources
    from zimage_assets.settings import Settings

    s3_env()
    store = build_resources(Settings.from_env())["image_store"]
    # The resource holds EnvVars: the UI and run config show variable names, not the keys.
    assert isinstance(store.s3.aws_secret_access_key, dg.EnvVar)
    assert store.s3.aws_secret_access_key.env_var_name == "ZIMAGE_S3_SECRET_ACCESS_KEY"
    assert Settings.from_env().describe()["s3_secret_access_key"] == "***"
    store.check_writable()  # and they resolve to the real keys when used
