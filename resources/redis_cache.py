"""The result cache on Redis (`ZIMAGE_CACHE_URL=redis://host:6379/0`, `rediss://` for TLS).

One string key per generation spec (`<key_prefix><spec hash>` -> JSON of where the image is),
written with the cache's TTL. Timeouts are short: the cache must never slow generation down.
Any failure is a warning and a miss (the base class turns exceptions into misses); after one,
Redis is left alone for `retry_after_seconds`, so an outage costs one timeout, not one per item,
and lookups in that window count as misses and errors without a warning each.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from dagster import get_dagster_logger
from pydantic import Field, PrivateAttr

from resources.result_cache import ResultCache
from zimage_assets.settings import DEFAULTS


class RedisCache(ResultCache):
    """Spec hash -> stored image, in Redis, with a TTL."""

    url: str = Field(description="redis://[user:password@]host:port/db, rediss://... or unix://...")
    key_prefix: str = Field(default=DEFAULTS["cache_key_prefix"], description="Prefix of every key this cache writes")
    socket_timeout_seconds: float = Field(default=0.5, gt=0, description="Timeout of one Redis command")
    connect_timeout_seconds: float = Field(default=0.5, gt=0, description="Timeout of connecting to Redis")
    retry_after_seconds: float = Field(default=30.0, ge=0, description="After a failure, skip Redis this long")

    _client_obj: Any = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _down_until: float = PrivateAttr(default=0.0)

    def describe(self) -> str:
        return f"Redis cache {_redact(self.url)}"

    def key(self, spec_hash: str) -> str:
        return f"{self.key_prefix}{spec_hash}"

    def ping(self) -> None:
        """Raise when Redis cannot be reached (for preflight checks and the docs' smoke test)."""
        self._client().ping()

    def _get(self, spec_hash: str) -> dict[str, Any] | None:
        if self._skipping():
            return None
        raw = self._guard(lambda client: client.get(self.key(spec_hash)))
        return json.loads(raw) if raw is not None else None

    def _set(self, spec_hash: str, value: dict[str, Any]) -> None:
        if self._skipping():
            return
        payload = json.dumps(value, sort_keys=True)
        self._guard(lambda client: client.set(self.key(spec_hash), payload, ex=self.ttl_seconds))

    # ---- plumbing ----

    def _client(self):
        if self._client_obj is None:
            with self._client_lock:
                if self._client_obj is None:
                    import redis
                    from redis.backoff import NoBackoff
                    from redis.retry import Retry

                    self._client_obj = redis.Redis.from_url(
                        self.url,
                        socket_timeout=self.socket_timeout_seconds,
                        socket_connect_timeout=self.connect_timeout_seconds,
                        # One immediate retry reconnects a pooled connection that Redis closed;
                        # a real outage is not retried (the window below takes over).
                        retry=Retry(NoBackoff(), 1),
                        health_check_interval=30,
                    )
        return self._client_obj

    def _guard(self, command):
        try:
            return command(self._client())
        except Exception:
            if self.retry_after_seconds:
                self._down_until = time.monotonic() + self.retry_after_seconds
                get_dagster_logger().warning(
                    f"{self.describe()} failed; not asking it again for {self.retry_after_seconds:.0f}s"
                )
            raise

    def _skipping(self) -> bool:
        """Inside the window after a failure: a miss without a round trip (and without a warning each)."""
        if time.monotonic() < self._down_until:
            self._stats["errors"] += 1
            return True
        return False


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if user else ':***@'}{host}"
