"""Untrusted SKUs never escape the store root or collide (no Dagster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.image_store import StoreError
from resources.local_image_store import LocalImageStore
from zimage_assets.domain.storage_keys import public_image_key, safe_segment, sku_key, validate_key

HOSTILE = ["../../etc/x", "a/b", "a_b", "a b", "with space", "ünïcödé-☃", "..", ".", "", "x" * 10_000, "/abs", "C:\\x", "a\x00b", "%2e%2e"]


def test_sku_keys_are_safe_and_distinct():
    keys = [sku_key(s) for s in HOSTILE]
    assert len(set(keys)) == len(HOSTILE)
    for key in keys:
        validate_key(key)
        assert len(key) <= 64 and "/" not in key and not key.startswith(".")


def test_public_keys_stay_under_public():
    for sku in HOSTILE:
        key = public_image_key(sku, "front", "ab" * 32)
        assert validate_key(key).startswith("public/") and key.count("/") == 2


def test_unsafe_view_names_are_hashed_not_trusted():
    assert safe_segment("front") == "front"
    assert "/" not in safe_segment("../x") and ".." not in safe_segment("../x")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "", "a/b\x00", "images/..hidden"])
def test_store_refuses_unsafe_keys(tmp_path, key):
    store = LocalImageStore(root=str(tmp_path / "store"))
    with pytest.raises((ValueError, StoreError)):
        store.put(key, b"x")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_local_store_writes_atomically_and_reads_back(tmp_path):
    store = LocalImageStore(root=str(tmp_path / "store"))
    store.put("images/ab/abc.png", b"one")
    store.put("images/ab/abc.png", b"two")
    assert store.get("images/ab/abc.png") == b"two" and store.exists("images/ab/abc.png")
    assert [p.name for p in (tmp_path / "store" / "images" / "ab").iterdir()] == ["abc.png"]  # no temp files left
    store.copy("images/ab/abc.png", "public/x-1/front-abc.png")
    assert store.get("public/x-1/front-abc.png") == b"two"
    assert Path(store.url("public/x-1/front-abc.png")).is_file()
    with pytest.raises(StoreError, match="no object"):
        store.get("images/missing.png")


def test_public_base_url_makes_cdn_urls(tmp_path):
    store = LocalImageStore(root=str(tmp_path), public_base_url="https://cdn.example.com/img/")
    assert store.url("public/a-1/front-x.png") == "https://cdn.example.com/img/public/a-1/front-x.png"
