"""Object keys for the image store.

SKUs are untrusted text ("../../etc/x", "a/b", spaces, emoji, 10 kB strings). They never become
a path on their own: every key segment is a slug of safe characters plus a short hash of the
original value, so two different SKUs can never share a key and no key can leave the store's
root. The original SKU is kept in the receipt and the manifest.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
MAX_SLUG = 48


def sku_key(sku: str) -> str:
    """A stable, collision-free, path-safe key segment for one SKU."""
    slug = _UNSAFE.sub("_", sku).strip("._")[:MAX_SLUG] or "sku"
    digest = hashlib.sha256(sku.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}"


def image_key(sha256_hex: str, extension: str = "png") -> str:
    """Content-addressed key of a generated image: same bytes, same key."""
    return f"images/{sha256_hex[:2]}/{sha256_hex}.{extension}"


def public_image_key(sku: str, view: str, sha256_hex: str, extension: str = "png") -> str:
    """Published key: readable per SKU, immutable per content (safe behind a CDN cache)."""
    return f"public/{sku_key(sku)}/{safe_segment(view)}-{sha256_hex[:12]}.{extension}"


def batch_file_key(area: str, batch_id: str, filename: str) -> str:
    return f"{area}/{safe_segment(batch_id)}/{safe_segment(filename)}"


def safe_segment(value: str) -> str:
    """A key segment made of known-safe characters (views, batch ids, file names)."""
    if _SEGMENT.match(value) and ".." not in value:
        return value
    return sku_key(value)


def validate_key(key: str) -> str:
    """Refuse any key that is not a relative path of safe segments (defence in depth)."""
    parts = key.split("/")
    if not key or any(not _SEGMENT.match(p) or p in {".", ".."} or ".." in p for p in parts):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


def source_photo_key(sha256_hex: str, extension: str) -> str:
    """Content-addressed key of a merchant's source photo, as fetched: same bytes, same key."""
    return f"sources/{sha256_hex[:2]}/{sha256_hex}.{safe_segment(extension)}"


def cutout_key(sha256_hex: str) -> str:
    """Content-addressed key of a cut-out (RGBA PNG of the product)."""
    return f"cutouts/{sha256_hex[:2]}/{sha256_hex}.png"
