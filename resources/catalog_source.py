"""Catalog files wherever they live: a local path or `s3://bucket/key`, read or listed.

`read` fetches the bytes of a catalog export (or of a reviewers' decision file); `list_files`
lists the watched catalog location (ZIMAGE_CATALOG_SOURCE: one file, a folder, or an s3://
prefix) cheaply (names, sizes, modification times or ETags; no file is read), so a sensor can
look every 30 seconds and start an ingest run only for a file it has not seen in this version.
The S3 connection is this resource's own (ZIMAGE_S3_* by default, set where resources are built).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.image_store import StoreError
from resources.s3 import list_s3_objects, read_s3_uri

CATALOG_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
# Names that editors, browsers and copy tools use while a file is still being written.
_PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".swp")


class CatalogSourceError(RuntimeError):
    """The catalog cannot be read; the message names the source."""


@dataclass(frozen=True)
class CatalogFile:
    uri: str  # what sku_catalog reads: a local path or s3://bucket/key
    identity: str  # changes whenever the file's content may have: size + mtime, or the ETag
    modified: float  # POSIX seconds of the last modification
    size: int
    atomic: bool = False  # appears complete (an S3 object); a local file may still be being written


def is_catalog_name(name: str) -> bool:
    lower = name.lower()
    if lower.startswith((".", "~")) or lower.endswith(_PARTIAL_SUFFIXES):
        return False
    return lower.endswith(CATALOG_SUFFIXES)


class CatalogSource(ConfigurableResource):
    """Reads catalog (and review) files and lists the watched catalog location."""

    default_source: str = Field(default="", description="Catalog used when a run names none; the watched location")
    s3: S3Resource = Field(description="Connection for s3:// sources: endpoint URL, region, credentials (EnvVar)")
    s3_addressing_style: str = Field(default="auto", description="auto | path | virtual")

    def read(self, source: str) -> bytes:
        if source.startswith("s3://"):
            try:
                return read_s3_uri(source, self.s3, addressing_style=self.s3_addressing_style)
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

    def list_files(self, location: str | None = None) -> list[CatalogFile]:
        """Catalog files at `location` (default: the watched one), sorted by name.

        A missing location is an error that names it."""
        location = self.default_source if location is None else location
        if location.startswith("s3://"):
            return self._list_s3(location)
        path = Path(location.removeprefix("file://")).expanduser()
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(p for p in path.iterdir() if p.is_file() and is_catalog_name(p.name))
        else:
            raise CatalogSourceError(f"watched catalog location {location!r} does not exist (ZIMAGE_CATALOG_SOURCE)")
        files = []
        for p in candidates:
            try:
                stat = p.stat()
            except FileNotFoundError:  # removed while listing
                continue
            files.append(CatalogFile(uri=str(p), identity=f"{stat.st_size}-{stat.st_mtime_ns}", modified=stat.st_mtime, size=stat.st_size))
        return files

    def _list_s3(self, location: str) -> list[CatalogFile]:
        try:
            objects = list_s3_objects(location, self.s3, addressing_style=self.s3_addressing_style)
        except (StoreError, ValueError) as exc:
            raise CatalogSourceError(f"cannot list watched catalog location {location!r}: {exc}") from None
        return [
            CatalogFile(
                uri=o["uri"],
                identity=o["etag"] or f"{o['size']}-{o['last_modified'].timestamp()}",
                modified=o["last_modified"].timestamp(),
                size=o["size"],
                atomic=True,
            )
            for o in objects
            if is_catalog_name(o["key"].rsplit("/", 1)[-1])
        ]
