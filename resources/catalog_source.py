"""Reads catalog files: a local path today; `s3://bucket/key` through the S3 backend."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field


class CatalogSourceError(RuntimeError):
    """The catalog cannot be read; the message names the source."""


class CatalogSource(ConfigurableResource):
    """Fetches the bytes of a catalog export, wherever it lives."""

    default_source: str = Field(default="", description="Catalog used when a run names none")

    def read(self, source: str) -> bytes:
        if source.startswith("s3://"):
            from resources.image_store import StoreError
            from resources.s3_image_store import read_s3_uri

            try:  # endpoint and credentials: ZIMAGE_S3_* (the image store's)
                return read_s3_uri(source)
            except (StoreError, ValueError) as exc:
                raise CatalogSourceError(f"catalog source {source!r}: {exc}") from None
        path = Path(source.removeprefix("file://")).expanduser()
        if not path.exists():
            raise CatalogSourceError(f"catalog source {source!r} does not exist")
        if not path.is_file():
            raise CatalogSourceError(f"catalog source {source!r} is not a file")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CatalogSourceError(f"cannot read catalog source {source!r}: {exc.strerror}") from None
