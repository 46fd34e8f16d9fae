"""The photo-first tables: each SKU's photo references, fetched source photos, cut-outs, each item's
source and mode, and where each image came from (provenance).

Defined on the same `metadata` as every other table (resources/state_db/tables.py), so they are
created with them.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, Index, Integer, String, Table, Text

from resources.state_db.tables import SKU_LEN, metadata

# ---- photo-first: the merchant's photos, their cut-outs, and where each image came from ----

# The photo references each SKU's catalog row names, in order (rewritten when the SKU's row changes).
sku_photos = Table(
    "sku_photos",
    metadata,
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("position", Integer, primary_key=True),  # 1, 2, ... in catalog order
    Column("ref", Text, nullable=False),  # as the catalog gives it: untrusted, resolved only by the photo fetcher
    Column("role", String(64), nullable=False),  # main | small | thumbnail | additional | a generic image_<role>
    Column("label", Text, nullable=False),
)

# One record per SKU x photo reference: what fetching it gave (the latest attempt).
source_photos = Table(
    "source_photos",
    metadata,
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("ref", String(2048), primary_key=True),
    Column("status", String(16), nullable=False),  # ok | converted | unusable
    Column("reason", Text, nullable=False),  # reason code and detail when not plainly ok
    Column("sha256", String(64), nullable=False),  # of the fetched bytes ('' when none)
    Column("storage_key", Text, nullable=False),  # sources/<sha[:2]>/<sha>.<ext> in the image store
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("identity", Text, nullable=False),  # ETag / Last-Modified / size+mtime: unchanged -> not fetched again
    Column("location", Text, nullable=False),  # where it was read (file, s3:// or https:// URL)
    Column("fetched_at", DateTime, nullable=False),
    Index("ix_source_photos_ref", "ref"),
)

# One cut-out per photo content and segmentation method (variants sharing a photo share it).
photo_cutouts = Table(
    "photo_cutouts",
    metadata,
    Column("sha256", String(64), primary_key=True),  # the source photo's bytes
    Column("method", String(128), primary_key=True),  # border-grabcut | alpha | onnx:<model>
    Column("version", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # ok | unsure | unusable
    Column("reason", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("cutout_key", Text, nullable=False),  # RGBA PNG of the product (cropped to its box)
    Column("box", Text, nullable=False),  # JSON [x0, y0, x1, y1] in the source photo
    Column("touches", Text, nullable=False),  # JSON list of the source's sides the product runs into
    Column("notes", Text, nullable=False),  # JSON list of decoding notes (converted from CMYK, first frame, ...)
    Column("seconds", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Per batch item: the mode its view asked for, the mode it got, and the photo it uses.
item_sources = Table(
    "item_sources",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("requested_mode", String(16), nullable=False),  # photo | scene | text
    Column("mode", String(16), nullable=False),  # what it gets: text when no usable photo
    Column("role", String(64), nullable=False),
    Column("ref", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("mask_method", String(128), nullable=False),
    Column("mask_version", String(64), nullable=False),
    Column("placement", Text, nullable=False),  # JSON: the view's placement request (fill, position, shadow)
    Column("reason", Text, nullable=False),  # why it fell back to text ('' when it did not)
)

# Per image attempt: how the image was made (the receipt's provenance; manifests carry it too).
image_provenance = Table(
    "image_provenance",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("view", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("mode", String(16), nullable=False),  # photo | scene | text
    Column("generated", Boolean, nullable=False),  # a model made (part of) the pixels: scene, text
    Column("illustrative", Boolean, nullable=False),  # the product itself is generated (text)
    Column("source_ref", Text, nullable=False),
    Column("source_sha256", String(64), nullable=False),
    Column("mask_method", String(128), nullable=False),
    Column("mask_version", String(64), nullable=False),
    Column("placement", Text, nullable=False),  # JSON: scale, offset, size, canvas
    Column("reason", Text, nullable=False),  # why a photo view fell back to text
)
