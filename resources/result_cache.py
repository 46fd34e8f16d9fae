"""The result cache: generation spec hash -> where that image already is.

Keyed by the full spec (model + revision, prompt, size, steps, guidance, seed, scheduler), so a
new model or template never hits an old entry. The cache is an accelerator, never a source of
truth: every failure is a warning and a miss, and a hit is only used when the store still holds
the image.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field, PrivateAttr


class ResultCache(ConfigurableResource):
    """Interface plus the fault handling every backend shares."""

    ttl_seconds: int = Field(default=90 * 24 * 3600, ge=1, description="How long an entry lives")

    _stats: dict = PrivateAttr(default_factory=lambda: {"hits": 0, "misses": 0, "errors": 0})

    def lookup(self, spec_hash: str) -> dict[str, Any] | None:
        try:
            value = self._get(spec_hash)
        except Exception as exc:  # noqa: BLE001 - an outage must not fail the run
            self._stats["errors"] += 1
            self._stats["misses"] += 1
            get_dagster_logger().warning(f"result cache unavailable ({self.describe()}): {exc}; counting a miss")
            return None
        self._stats["hits" if value is not None else "misses"] += 1
        return value

    def remember(self, spec_hash: str, value: dict[str, Any]) -> None:
        try:
            self._set(spec_hash, value)
        except Exception as exc:  # noqa: BLE001
            self._stats["errors"] += 1
            get_dagster_logger().warning(f"result cache unavailable ({self.describe()}): {exc}; entry not saved")

    def stats(self) -> dict[str, float]:
        hits, misses = self._stats["hits"], self._stats["misses"]
        total = hits + misses
        return {**self._stats, "hit_rate": round(hits / total, 4) if total else 0.0}

    def describe(self) -> str:
        raise NotImplementedError

    def _get(self, spec_hash: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _set(self, spec_hash: str, value: dict[str, Any]) -> None:
        raise NotImplementedError


class EmbeddedCache(ResultCache):
    """A SQLite file: no server, survives restarts, shared by runs on one machine."""

    path: str = Field(description="SQLite file of the cache")

    _local: threading.local = PrivateAttr(default_factory=threading.local)

    def describe(self) -> str:
        return f"embedded cache {self.path}"

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(Path(self.path).expanduser(), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS results (spec_hash TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)")
            self._local.conn = conn
        return conn

    def _get(self, spec_hash: str) -> dict[str, Any] | None:
        row = self._connection().execute(
            "SELECT value FROM results WHERE spec_hash = ? AND expires > ?", (spec_hash, time.time())
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _set(self, spec_hash: str, value: dict[str, Any]) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO results (spec_hash, value, expires) VALUES (?, ?, ?)",
            (spec_hash, json.dumps(value), time.time() + self.ttl_seconds),
        )


def result_cache_from_url(url: str, embedded_path: str, **options) -> ResultCache:
    """`embedded` -> SQLite file; `redis://...` / `rediss://...` -> Redis. `options`: e.g. ttl_seconds."""
    if url in ("", "embedded"):
        return EmbeddedCache(path=embedded_path, **options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from resources.redis_cache import RedisCache

        return RedisCache(url=url, **options)
    raise ValueError(f"ZIMAGE_CACHE_URL={url!r}: use 'embedded' or a redis:// URL")
