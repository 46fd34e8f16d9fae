"""Where image bytes live: one small interface, a local-folder and an S3-compatible backend.

Assets only ever see `ImageStore`; which backend they get is configuration
(`ZIMAGE_STORAGE_URL`). Keys are produced by `zimage_assets.domain.storage_keys` and checked
again here, so no key can leave the store's root.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import quote

from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain.storage_keys import validate_key


class StoreError(RuntimeError):
    """The store cannot be reached or written; the message names the store and the key."""


class ImageStore(ConfigurableResource):
    """Interface. Subclasses implement the byte operations."""

    public_base_url: str = Field(default="", description="CDN base URL that serves this store's keys")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def copy(self, source_key: str, target_key: str) -> None:
        """Default: read and write. Backends override with a server-side copy."""
        self.put(target_key, self.get(source_key), content_type_for(target_key))

    def url(self, key: str) -> str:
        """Where a person or a shop can fetch the object."""
        raise NotImplementedError

    def location(self) -> str:
        """Human-readable root of the store, for messages."""
        raise NotImplementedError

    def check_writable(self) -> None:
        """Fail fast (before any GPU work) when the store cannot be written."""
        probe = "health/write-probe"  # a valid key: segments may not start with a dot
        self.put(probe, b"ok", "text/plain")
        if self.get(probe) != b"ok":
            raise StoreError(f"{self.location()}: wrote a probe object but read back something else")

    def _public_url(self, key: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/{quote(key)}"


class LocalImageStore(ImageStore):
    """A folder on local disk. Writes are atomic (temp file + rename in the same folder)."""

    root: str = Field(description="Folder that holds every key")

    def _path(self, key: str) -> Path:
        root = Path(self.root).expanduser().resolve()
        path = (root / validate_key(key)).resolve()
        if root not in path.parents:
            raise StoreError(f"key {key!r} escapes the store root {root}")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{self.location()}: no object {key!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        if self.public_base_url:
            return self._public_url(key)
        return str(self._path(key))

    def location(self) -> str:
        return str(Path(self.root).expanduser().resolve())


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


def image_store_from_url(url: str, public_base_url: str = "", **s3_options) -> ImageStore:
    """`/path`, `file:///path` -> local folder; `s3://bucket/prefix` -> S3-compatible store.

    `s3_options` (endpoint, credentials, presign expiry, ...) go to `S3ImageStore.from_url`.
    """
    if url.startswith("s3://"):
        from resources.s3_image_store import S3ImageStore

        return S3ImageStore.from_url(url, public_base_url=public_base_url, **s3_options)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        raise ValueError(f"ZIMAGE_STORAGE_URL={url!r}: use a folder path, file://..., or s3://bucket/prefix")
    return LocalImageStore(root=url, public_base_url=public_base_url)
