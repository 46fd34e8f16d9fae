"""The result cache on a real Redis: keys, TTL, hit rate, and warm runs that never call the model."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
import redis

from conftest import metadata_of
from resources.redis_cache import RedisCache
from servers import SHARED_REDIS_URL, HINT, counting_project, free_port, generator_calls
from zimage_assets.domain.specs import ModelInfo, build_spec

HOODIES = ["MH01-XS-Black", "MH01-S-Black", "MH01-XS-Gray"]
MODEL = ModelInfo(model_id="Tongyi-MAI/Z-Image", revision="abc123", steps=28, guidance_scale=4.0, scheduler="FlowMatch(shift=3.0)", max_sequence_length=256)


@pytest.fixture
def prefix():
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {SHARED_REDIS_URL} is not reachable ({exc}): {HINT}", pytrace=False)
    value = f"zimage-test:{uuid.uuid4().hex[:10]}:"
    yield value
    keys = list(client.scan_iter(f"{value}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _spec(**change):
    base = dict(prompt="Studio photo of a black hoodie", negative_prompt="blurry", width=1024, height=1024, seed=7)
    spec = build_spec(MODEL, **base)
    return dataclasses.replace(spec, **change) if change else spec


def test_entries_round_trip_with_a_ttl(prefix):
    cache = RedisCache(url=SHARED_REDIS_URL, key_prefix=prefix, ttl_seconds=3600)
    spec = _spec()
    assert cache.lookup(spec.spec_hash) is None
    cache.remember(spec.spec_hash, {"storage_key": "images/ab/x.png", "sha256": "ab"})
    assert cache.lookup(spec.spec_hash) == {"storage_key": "images/ab/x.png", "sha256": "ab"}

    client = redis.Redis.from_url(SHARED_REDIS_URL)
    assert 3590 <= client.ttl(f"{prefix}{spec.spec_hash}") <= 3600
    assert cache.stats() == {"hits": 1, "misses": 1, "errors": 0, "hit_rate": 0.5}

    short = RedisCache(url=SHARED_REDIS_URL, key_prefix=prefix, ttl_seconds=1)
    short.remember("expiring", {"storage_key": "k"})
    assert short.lookup("expiring") == {"storage_key": "k"}
    time.sleep(1.2)
    assert short.lookup("expiring") is None  # Redis expired it


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "Tongyi-MAI/Z-Image-Turbo"},
        {"revision": "def456"},
        {"prompt": "Studio photo of a grey hoodie"},
        {"negative_prompt": "watermark"},
        {"width": 768},
        {"height": 1536},
        {"steps": 50},
        {"guidance_scale": 5.0},
        {"seed": 8},
        {"scheduler": "FlowMatch(shift=6.0)"},
        {"max_sequence_length": 512},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_part_of_the_spec_is_in_the_key(prefix, change):
    cache = RedisCache(url=SHARED_REDIS_URL, key_prefix=prefix)
    cache.remember(_spec().spec_hash, {"storage_key": "images/original.png"})
    assert cache.lookup(_spec().spec_hash) is not None
    assert cache.lookup(_spec(**change).spec_hash) is None


def test_an_unreachable_redis_is_a_quick_miss_not_an_error(caplog):
    cache = RedisCache(url=f"redis://127.0.0.1:{free_port()}/0", retry_after_seconds=60)
    started = time.monotonic()
    assert cache.lookup("a" * 64) is None
    cache.remember("a" * 64, {"storage_key": "k"})
    for _ in range(50):  # inside the window: no round trip, no warning each
        assert cache.lookup("b" * 64) is None
    assert time.monotonic() - started < 2
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["errors"], stats["hit_rate"]) == (0, 51, 52, 0.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("result cache unavailable" in w and "counting a miss" in w for w in warnings)
    assert len(warnings) <= 3


def test_the_url_password_never_appears_in_messages():
    cache = RedisCache(url="redis://app:s3cr3t@cache.internal:6379/2")
    assert cache.describe() == "Redis cache redis://app:***@cache.internal:6379/2"


def test_a_warm_batch_makes_zero_generator_calls(project_env, monkeypatch, prefix, instance, tmp_path):
    monkeypatch.setenv("ZIMAGE_CACHE_URL", SHARED_REDIS_URL)
    monkeypatch.setenv("ZIMAGE_CACHE_KEY_PREFIX", prefix)
    monkeypatch.setenv("ZIMAGE_CACHE_TTL_SECONDS", "600")
    calls = tmp_path / "calls.txt"
    project = counting_project(instance, calls)
    assert isinstance(project.resources["result_cache"], RedisCache)
    project.ingest()
    (cold_batch,) = project.mint(skus=HOODIES)
    cold = metadata_of(project.generate(cold_batch), "product_images")
    assert (cold["generated"], cold["cache_hits"], cold["cache_hit_rate"]) == (8, 0, 0.0)
    assert generator_calls(calls) == 8

    client = redis.Redis.from_url(SHARED_REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    assert len(keys) == 8 and all(0 < client.ttl(k) <= 600 for k in keys)

    (warm_batch,) = project.mint(skus=HOODIES)  # the same SKUs again: a new, unchanged batch
    warm = metadata_of(project.generate(warm_batch), "product_images")
    assert (warm["generated"], warm["cache_hits"], warm["cache_hit_rate"]) == (0, 8, 1.0)
    assert generator_calls(calls) == 8  # not one more image asked of the model
    assert len(project.state_db.receipts(warm_batch)) == 12
