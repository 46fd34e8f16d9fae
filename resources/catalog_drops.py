"""The watched catalog location (ZIMAGE_CATALOG_SOURCE): one file, a folder, or an s3:// prefix.

Listing is cheap (names, sizes, modification times or ETags; no file is read), so a sensor can
look every 30 seconds and start an ingest run only for a file it has not seen in this version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resources.catalog_source import CatalogSourceError

CATALOG_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
# Names that editors, browsers and copy tools use while a file is still being written.
_PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".swp")


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


def list_catalog_files(location: str) -> list[CatalogFile]:
    """Catalog files at `location`, sorted by name. A missing location is an error that names it."""
    if location.startswith("s3://"):
        return _list_s3(location)
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


def _list_s3(location: str) -> list[CatalogFile]:
    from resources.image_store import StoreError
    from resources.s3_image_store import list_s3_objects

    try:
        objects = list_s3_objects(location)
    except (StoreError, ValueError) as exc:
        raise CatalogSourceError(f"cannot list watched catalog location {location!r}: {exc}") from None
    return [
        CatalogFile(uri=o["uri"], identity=o["etag"] or f"{o['size']}-{o['last_modified'].timestamp()}", modified=o["last_modified"].timestamp(), size=o["size"], atomic=True)
        for o in objects
        if is_catalog_name(o["key"].rsplit("/", 1)[-1])
    ]
