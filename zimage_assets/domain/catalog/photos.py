"""Photo references: the merchant's own product photos that a catalog row names.

Every format turns its image columns into one ordered list per SKU, ``Candidate.photos``, of
references ``{"role", "label", "position", "ref"}``:

- ``ref``: the reference exactly as the catalog gives it (a path relative to the media root such
  as Magento's ``/m/h/mh01-gray_main.jpg``, or an absolute URL). It is untrusted: it is only ever
  resolved by the photo fetcher, under ``ZIMAGE_MEDIA_ROOT`` or against the host allow-list.
- ``role``: what the format says the photo is: ``main`` (Magento ``base_image``, Shopify's
  ``Variant Image`` or the lowest ``Image Position``, WooCommerce's first ``Images`` entry, the
  generic ``image`` column), ``small`` / ``thumbnail`` (Magento, only when they differ from the
  base image), ``additional``, or a role named by a generic ``image_<role>`` column
  (``image_back`` -> ``back``). Which view uses which photo is decided later, from these roles
  and the templates' file-name conventions (``_main``, ``_back``, ``_alt1``, ``_side_a``).
- ``label``: the catalog's label / alt text ('' when none). ``position``: 1, 2, ... in order.

A reference appears once per SKU (the first role wins); Magento's ``no_selection`` means none.

Variants: a variant without photos of its own inherits its parent's only when nothing that
changes the look differs (:data:`LOOK_ATTRIBUTES`: colour, pattern, material...; a size does not
count); otherwise it has none, and its views fall back to text-to-image with a recorded reason.

Photo references are part of the content that decides whether a SKU changed:
:func:`hash_with_photos` folds the ordered (role, reference) pairs into the content hash (labels
and positions do not change a picture). A SKU without photos keeps the hash it always had.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable, Sequence

from zimage_assets.domain.catalog.normalising import (
    IMAGE_ATTRIBUTES,
    NON_VISUAL_ATTRIBUTES,
    column_key,
    split_escaped_commas,
)

#: Attributes whose difference means a parent's photo does not show the variant.
LOOK_ATTRIBUTES = IMAGE_ATTRIBUTES - NON_VISUAL_ATTRIBUTES
#: Magento's word for "no image".
_NONE_VALUES = frozenset({"", "no_selection", "none", "null", "nan"})
_LIST_SPLIT = re.compile(r"[\n|]")
#: Generic columns: the main photo, a list of photos (first = main when there is no main column).
GENERIC_MAIN_COLUMNS = ("image", "image_url", "main_image", "base_image", "image_src")
GENERIC_LIST_COLUMNS = ("images", "image_urls", "additional_images", "photos")
GENERIC_LABEL_COLUMNS = ("image_label", "image_alt", "base_image_label")
_ROLE_COLUMN = re.compile(r"^image[ _]([a-z0-9][a-z0-9_]*)$")
_NOT_ROLES = {"url", "urls", "label", "alt", "src", "position"}


def photo(role: str, ref: str, label: str = "", position: int = 0) -> dict[str, Any]:
    return {"role": role, "label": label, "position": position, "ref": ref}


def _clean(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text.lower() in _NONE_VALUES else text


def split_refs(cell: str) -> list[str]:
    """A list cell: comma, newline or ``|`` separated (``\\,`` escapes a comma, as WooCommerce does)."""
    out = []
    for part in _LIST_SPLIT.split(cell or ""):
        out.extend(split_escaped_commas(part))
    return [p for p in (_clean(x) for x in out) if p]


def ordered(photos: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each reference once (the first occurrence wins), positions renumbered 1, 2, ..."""
    seen: set[str] = set()
    out = []
    for p in photos:
        ref = _clean(p["ref"])
        if not ref or ref in seen:
            continue
        seen.add(ref)
        out.append(photo(p["role"], ref, _clean(p.get("label")), len(out) + 1))
    return out


# ---- per format --------------------------------------------------------------------------


def magento_photos(base: str, base_label: str, small: str, small_label: str, thumb: str, thumb_label: str,
                   additional: str, additional_labels: str) -> list[dict[str, Any]]:
    """``base_image`` (main), ``small_image`` / ``thumbnail_image`` when different, then
    ``additional_images`` (comma separated, labels in ``additional_image_labels`` in the same order)."""
    extra = split_refs(additional)
    labels = [s.strip() for s in (additional_labels or "").split(",")]
    found = [photo("main", base, base_label), photo("small", small, small_label), photo("thumbnail", thumb, thumb_label)]
    found += [photo("additional", ref, labels[i] if i < len(labels) else "") for i, ref in enumerate(extra)]
    return ordered(found)


def shopify_product_photos(rows: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The Handle's image rows as (Image Src, Image Position, Image Alt Text), by position (rows
    without a position keep their order after the numbered ones); the first is ``main``."""
    numbered = []
    for order, (src, position, alt) in enumerate(rows):
        if not _clean(src):
            continue
        try:
            pos = int(float(position))
        except (TypeError, ValueError):
            pos = 1 << 30
        numbered.append((pos, order, src, alt))
    numbered.sort()
    return ordered(photo("main" if i == 0 else "additional", src, alt) for i, (_, _, src, alt) in enumerate(numbered))


def variant_photos(own_ref: str, attrs: dict[str, str], product_attrs: dict[str, str],
                   product_photos: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Shopify variant's photos: its ``Variant Image`` first (``main``), then the product's
    images when the variant looks like the product (only non-look options such as size differ)."""
    own = [photo("main", own_ref)] if _clean(own_ref) else []
    if not same_look(attrs, product_attrs):
        return ordered(own)
    rest = [photo("additional" if own else p["role"], p["ref"], p["label"]) for p in product_photos]
    return ordered(own + rest)


def woocommerce_photos(cell: str) -> list[dict[str, Any]]:
    """``Images``: comma-separated URLs, the first is the main image."""
    return ordered(photo("main" if i == 0 else "additional", ref) for i, ref in enumerate(split_refs(cell)))


def generic_photo_columns(columns: Iterable[str]) -> tuple[str | None, str | None, str | None, list[tuple[str, str]]]:
    """The generic format's photo columns among ``columns``: (main, list, label, [(role, column)])."""
    by_key = {}
    for col in columns:
        by_key.setdefault(column_key(col).replace(" ", "_"), col)
    main = next((by_key[k] for k in GENERIC_MAIN_COLUMNS if k in by_key), None)
    listed = next((by_key[k] for k in GENERIC_LIST_COLUMNS if k in by_key), None)
    label = next((by_key[k] for k in GENERIC_LABEL_COLUMNS if k in by_key), None)
    roles = []
    for key, col in by_key.items():
        m = _ROLE_COLUMN.match(key)
        if m and col not in (main, listed, label) and m.group(1) not in _NOT_ROLES:
            roles.append((m.group(1), col))
    return main, listed, label, roles


def generic_photos(main: str, listed: str, label: str, roles: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One generic row: ``image`` (main), ``images`` (first = main when there is no ``image``),
    then ``image_<role>`` columns."""
    refs = split_refs(listed)
    found = [photo("main", main, label)] if _clean(main) else []
    found += [photo("main" if not found and i == 0 else "additional", ref) for i, ref in enumerate(refs)]
    found += [photo(role, value) for role, value in roles]
    return ordered(found)


# ---- variants ----------------------------------------------------------------------------


def same_look(variant: dict[str, str], parent: dict[str, str]) -> bool:
    """True when no look attribute differs between a variant's and its parent's attributes."""
    keys = (set(variant) | set(parent)) & LOOK_ATTRIBUTES
    return all((variant.get(k) or "") == (parent.get(k) or "") for k in keys)


def inherit_photos(cand: Any, parent: Any) -> None:
    """A variant (``Candidate``) without photos gets its parent's when the look is the same."""
    if cand.photos or parent is None or not parent.photos:
        return
    if same_look(cand.attributes, parent.attributes):
        cand.photos = [dict(p) for p in parent.photos]


# ---- output ------------------------------------------------------------------------------


def photos_json(photos: Sequence[dict[str, Any]] | None) -> str:
    """The SKU table's ``photos`` cell."""
    return json.dumps(list(photos or []), ensure_ascii=False, separators=(",", ":"))


def hash_with_photos(content_hash: str, photos: Sequence[dict[str, Any]] | None) -> str:
    """The content hash with the ordered (role, reference) pairs folded in; unchanged without photos."""
    if not photos:
        return content_hash
    pairs = json.dumps([[p["role"], p["ref"]] for p in photos], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{content_hash}\nphotos:{pairs}".encode("utf-8")).hexdigest()
