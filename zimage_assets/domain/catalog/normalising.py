"""Normalising catalog cells: attribute keys and values, category paths, slugs, the content hash.

Pure string functions shared by every format parser (no pandas here). What they decide:

- which attributes reach the SKU table (:data:`IMAGE_ATTRIBUTES`, after the key is normalised
  by :func:`normalise_attribute_key` and mapped through :data:`ATTRIBUTE_SYNONYMS`; the options
  that tell a product's variants apart always do, :func:`variant_key`);
- how a multi-valued cell is written (``"a, b"``: :func:`normalise_value`, :func:`add_attribute`);
- which of several category paths a row gets (:func:`pick_path`; paths under a
  :data:`MERCHANDISING_ROOTS` root lose) and how the generic / level-per-line category cell reads
  (:func:`category_path`). Format-specific category cells are parsed in their format's module,
  memoised with :func:`memo_category`;
- the :func:`content_hash` that decides whether a SKU's image must be regenerated.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

#: Attributes that change what a product photo shows. Anything else is dropped.
IMAGE_ATTRIBUTES = frozenset(
    {
        "color", "size", "material", "pattern", "style", "gender", "age_group", "strap",
        "features", "finish", "fit", "shape", "sleeve", "neckline", "collar", "length",
        "print", "texture", "closure", "heel", "toe", "rise", "metal", "stone", "band",
    }
)
#: Normalised source key -> IMAGE_ATTRIBUTES key.
ATTRIBUTE_SYNONYMS = {
    "colour": "color", "colours": "color", "colors": "color", "color_name": "color",
    "colour_name": "color", "color_pattern": "color",
    "sizes": "size", "clothing_size": "size", "shoe_size": "size",
    "materials": "material", "fabric": "material",
    "patterns": "pattern",
    "style_bags": "style", "style_general": "style", "style_bottom": "style",
    "strap_bags": "strap", "features_bags": "features",
    "target_gender": "gender", "sex": "gender",
    "sleeve_length": "sleeve", "sleeve_style": "sleeve", "sleeves": "sleeve",
    "neck": "neckline", "neck_style": "neckline", "neckline_style": "neckline",
    "fit_type": "fit", "heel_height": "heel", "metal_type": "metal",
}
#: Attribute keys left out of content_hash: a size does not change the picture.
NON_VISUAL_ATTRIBUTES = frozenset({"size"})
#: First category segments that are merchandising groupings rather than product types.
MERCHANDISING_ROOTS = frozenset(
    {"collections", "collection", "promotions", "promotion", "sale", "sales", "new arrivals",
     "featured", "uncategorized"}
)

#: Runs of whitespace; ``WS.sub(" ", text)`` writes a cell on one line.
WS = re.compile(r"\s+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_KEY = re.compile(r"[\W_]+")
_SLUG_SPLIT = re.compile(r"[\W_]+")
_METAFIELD = re.compile(r"\s*\((?:product|variant)\.metafields\.[^)]*\)\s*$", re.I)
_MULTI = re.compile(r"[\n|]")


def column_key(name: Any) -> str:
    """How column names are compared: ``" Variant  SKU"`` -> ``"variant sku"`` (BOM dropped)."""
    return " ".join(str(name).strip().lstrip("\ufeff").lower().split())


def one_line(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped (titles, names)."""
    return WS.sub(" ", text).strip()


# ---- attributes ----------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def normalise_attribute_key(name: str) -> str:
    """``"Colour"`` -> ``color``, ``"Style_Bags"`` -> ``style``, ``"pa_color"`` -> ``color``."""
    key = _METAFIELD.sub("", str(name))
    key = key.split("/")[-1] if key.lower().startswith("google shopping /") else key
    key = _CAMEL.sub("_", key.strip())
    key = _NON_KEY.sub("_", key.lower()).strip("_")
    for prefix in ("attr_", "pa_"):
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix):]
            break
    return ATTRIBUTE_SYNONYMS.get(key, key)


def image_key(name: str) -> str | None:
    """The attribute key a column / attribute name stands for, or None when it is not kept."""
    key = normalise_attribute_key(name)
    return key if key in IMAGE_ATTRIBUTES else None


def variant_key(name: str) -> str | None:
    """The attribute key of an option that tells the variants of one product apart (what a
    shopper picks: colour, size, logo or not...). Every such option counts, under its normalised
    key, whether or not it is in IMAGE_ATTRIBUTES: a hoodie with a logo looks different from one
    without. None for a name with no letters."""
    return normalise_attribute_key(name) or None


@lru_cache(maxsize=65536)
def normalise_value(value: str) -> str:
    """Split a multi-valued cell on newlines / ``|`` and join with ", "."""
    if "\n" in value or "|" in value or "\r" in value:
        parts = [WS.sub(" ", p).strip() for p in _MULTI.split(value)]
        return ", ".join(dict.fromkeys(p for p in parts if p))
    return WS.sub(" ", value).strip()


def split_escaped_commas(value: str) -> list[str]:
    """WooCommerce lists: ``a, b\\, c`` -> ``["a", "b, c"]``."""
    if "\\," in value:
        parts = value.replace("\\,", "\x00").split(",")
        return [p.replace("\x00", ",").strip() for p in parts]
    return [p.strip() for p in value.split(",")]


def add_attribute(attrs: dict[str, str], key: str, value: str) -> None:
    """Set ``attrs[key]``, or merge ``value`` into the values it already has (no repeats)."""
    if not value:
        return
    old = attrs.get(key)
    if not old:
        attrs[key] = value
    elif old != value:
        merged = dict.fromkeys(old.split(", "))
        merged.update(dict.fromkeys(value.split(", ")))
        attrs[key] = ", ".join(merged)


def slug(value: str) -> str:
    """``"Navy Blue / XL"`` -> ``"navy-blue-xl"`` (derived SKUs)."""
    return _SLUG_SPLIT.sub("-", value.lower()).strip("-")


# ---- categories ----------------------------------------------------------------------------


def segment(value: str) -> str:
    """One category segment: whitespace collapsed, a ``/`` inside it becomes ``-``."""
    return WS.sub(" ", value).strip().replace("/", "-")


def pick_path(paths: list[list[str]]) -> str:
    """The path a row keeps: not under a merchandising root, then deepest, then first."""
    best: list[str] | None = None
    best_key = None
    for path in paths:
        path = [s for s in path if s]
        if not path:
            continue
        key = (path[0].lower() not in MERCHANDISING_ROOTS, len(path))
        if best is None or key > best_key:
            best, best_key = path, key
    return "/".join(best) if best else ""


def memo_category(rule: Callable[[str], str]) -> Callable[[str], str]:
    """Wrap a category rule: the cell is stripped (empty -> ``""``) and results are cached.

    ``rule`` gets a stripped, non-empty cell. Catalogs repeat a few hundred category cells over
    many rows, so each distinct cell is parsed once (the cache is emptied past 100,000 cells).
    """
    cache: dict[str, str] = {}

    @wraps(rule)
    def category(cell: str) -> str:
        hit = cache.get(cell)
        if hit is not None:
            return hit
        stripped = cell.strip()
        value = rule(stripped) if stripped else ""
        if len(cache) > 100_000:
            cache.clear()
        cache[cell] = value
        return value

    return category


@memo_category
def category_path(cell: str) -> str:
    """Generic and Magento fixture cells: ``A/B/C``, ``A > B > C`` or one level per line.

    Level-per-line cells may hold several paths: a merchandising root starts a new one
    ("Gear\\nBags\\nCollections\\nErin Recommends" is two paths); ``Default Category`` is dropped.
    """
    if "\n" in cell:
        paths: list[list[str]] = [[]]
        for seg in cell.splitlines():
            seg = segment(seg)
            if not seg or seg.lower() == "default category":
                continue
            if seg.lower() in MERCHANDISING_ROOTS and paths[-1]:
                paths.append([])
            paths[-1].append(seg)
        return pick_path(paths)
    sep = ">" if ">" in cell else "/"
    return "/".join(s for s in (segment(s) for s in cell.split(sep)) if s)


# ---- content hash --------------------------------------------------------------------------


def content_hash(product_name: str, category: str, attributes: dict | str, description: str) -> str:
    """sha256 hex of a canonical JSON of what shapes the product image.

    ``attributes`` (a dict, or its JSON) loses the :data:`NON_VISUAL_ATTRIBUTES` keys first, so
    the XS and S variants of one black hoodie hash alike.
    """
    if isinstance(attributes, str):
        attributes = json.loads(attributes) if attributes else {}
    visual = {k: v for k, v in attributes.items() if k not in NON_VISUAL_ATTRIBUTES}
    payload = json.dumps(
        {"attributes": visual, "category": category, "description": description,
         "product_name": product_name},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
