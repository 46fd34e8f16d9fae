"""Where image bytes live: the `ImageStore` interface every asset sees.

Which backend a run gets is configuration (`ZIMAGE_STORAGE_URL`), chosen where the resources
are built (`resources/__init__.py`): `resources/local_image_store.py` (a folder) or
`resources/s3_image_store.py` (any S3-compatible service). This module knows neither. Keys are
produced by `zimage_assets.domain.storage_keys` and checked again by every backend, so no key
can leave the store's root.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import quote

from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain.storage_keys import image_key


class StoreError(RuntimeError):
    """The store cannot be reached or written; the message names the store and the key."""


@dataclass(frozen=True)
class StoredObject:
    """An object written under its content's address."""

    key: str
    sha256: str
    size: int


class ImageStore(ConfigurableResource, ABC):
    """Put, get, copy and publish objects under keys. Backends implement the byte operations."""

    public_base_url: str = Field(default="", description="CDN base URL that serves this store's keys")

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write `data` under `key`, atomically: readers see the old object or the new one."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; `StoreError` naming the key when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def url(self, key: str) -> str:
        """Where a person or a shop can fetch the object."""

    @abstractmethod
    def location(self) -> str:
        """Human-readable root of the store, for messages."""

    def copy(self, source_key: str, target_key: str) -> None:
        """Default: read and write. Backends override with a server-side copy."""
        self.put(target_key, self.get(source_key), content_type_for(target_key))

    def put_content_addressed(self, data: bytes, content_type: str = "image/png", extension: str = "png") -> StoredObject:
        """Write `data` under the key of its SHA-256 (once: same bytes, same key, no second write)."""
        sha = hashlib.sha256(data).hexdigest()
        key = image_key(sha, extension)
        if not self.exists(key):
            self.put(key, data, content_type)
        return StoredObject(key=key, sha256=sha, size=len(data))

    def check_writable(self) -> None:
        """Fail fast (before any GPU work) when the store cannot be written."""
        probe = "health/write-probe"  # a valid key: segments may not start with a dot
        self.put(probe, b"ok", "text/plain")
        if self.get(probe) != b"ok":
            raise StoreError(f"{self.location()}: wrote a probe object but read back something else")

    def _public_url(self, key: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/{quote(key)}"


def content_type_for(key: str) -> str:
    suffix = key.rsplit(".", 1)[-1].lower()
    return {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "json": "application/json",
        "csv": "text/csv",
    }.get(suffix, "application/octet-stream")
