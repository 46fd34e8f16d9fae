"""The result cache: generation spec hash -> where that image already is.

Keyed by the full spec (model + revision, prompt, size, steps, guidance, seed, scheduler), so a
new model or template never hits an old entry. The cache is an accelerator, never a source of
truth: every failure is a warning and a miss, and a hit is only used when the store still holds
the image. Backends: `resources/embedded_cache.py` (a SQLite file, the default) and
`resources/redis_cache.py`; the choice is made where the resources are built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field, PrivateAttr

from zimage_assets.settings import DEFAULTS


class ResultCache(ConfigurableResource, ABC):
    """Interface plus the fault handling every backend shares: backends implement `_get` / `_set`."""

    ttl_seconds: int = Field(default=DEFAULTS["cache_ttl_seconds"], ge=1, description="How long an entry lives")

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

    @abstractmethod
    def describe(self) -> str:
        """The backend and where it is, for messages."""

    @abstractmethod
    def _get(self, spec_hash: str) -> dict[str, Any] | None:
        """The entry, or None; may raise (counted as an error and a miss)."""

    @abstractmethod
    def _set(self, spec_hash: str, value: dict[str, Any]) -> None:
        """Store the entry with the cache's TTL; may raise (a warning, the entry is not saved)."""
