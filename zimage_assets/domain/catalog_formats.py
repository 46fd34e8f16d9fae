"""Pure catalog parsing: raw export tables -> one normalised SKU table plus a rejects table.

No Dagster, no database, no network. ``read_catalog_table`` turns bytes or a local path into a
DataFrame of strings; ``parse_catalog`` turns that DataFrame into a :class:`ParsedCatalog`.

Output
======
``ParsedCatalog.skus`` has the columns :data:`SKU_COLUMNS`, one row per accepted SKU:

- ``sku``: the SKU exactly as given, surrounding whitespace stripped. It is untrusted (may hold
  ``/``, ``..``, spaces, unicode): code that builds paths or keys from it must encode it.
- ``title``: the row's own display title. ``product_name``: the name shared by all variants of
  one product (the parent's title for a variant, the row's own title otherwise).
- ``category``: one category path, segments joined with ``/`` (a ``/`` inside a segment becomes
  ``-``). Where a row lists several paths, paths under a merchandising root
  (:data:`MERCHANDISING_ROOTS`: Collections, Promotions, Sale...) lose to the others, then the
  deepest wins, then the first.
- ``attributes``: JSON (``sort_keys=True, ensure_ascii=False``) of the image-relevant attributes
  only: keys normalised to lower snake case (:func:`normalise_attribute_key`, synonyms in
  :data:`ATTRIBUTE_SYNONYMS`), kept only when in :data:`IMAGE_ATTRIBUTES`. Price, stock, flags
  such as ``sale`` / ``new`` / ``eco_collection`` never appear, so changing them does not change
  ``content_hash``. Multi-valued cells (newline, ``|``, or WooCommerce ``,`` separated) are joined
  with ``", "``.
- ``description``: plain text (HTML stripped, entities unescaped, whitespace collapsed).
- ``parent_sku`` / ``kind``: ``simple``, ``parent`` or ``variant`` (variants carry the parent's
  SKU). A variant inherits the attribute keys it does not set itself, and an empty category or
  description, from its parent.
- ``source_row``: 1-based data-row number (header excluded); rejects use the same numbers.
- ``note``: how the row was interpreted when that is not obvious (derived SKU, missing parent...).
- ``content_hash``: :func:`content_hash` of product_name, category, attributes without the
  :data:`NON_VISUAL_ATTRIBUTES` keys (size), description. Sizes of one colour share a hash.

``ParsedCatalog.rejects`` has the columns :data:`REJECT_COLUMNS`. ``reason`` is
``"<code>: <human text>"``; :func:`reject_code` returns the code. Codes: ``missing_sku``,
``invalid_sku`` (over 255 characters or control characters), ``missing_title``,
``duplicate_sku`` (same SKU, different content; the first row is named), ``duplicate_identical``,
``unparseable_value``, ``store_view_override`` (Magento), ``image_only_row`` and
``missing_handle`` (Shopify), ``no_variant_data`` (Shopify), ``malformed_row`` (a CSV line with
more fields than the header; see :func:`read_catalog_table`). Every input row is either one
accepted SKU or at least one reject: ``rows_read == len(skus) + rejects["row"].nunique()``.

Formats
=======
``auto`` picks by columns (case-insensitive; :func:`detect_format`):
Magento full export (``sku`` + ``product_type`` + ``additional_attributes``), Shopify
(``Handle`` + ``Variant SKU`` or ``Option1 Value``), WooCommerce (``ID`` + ``Type`` + ``SKU`` +
``Name``), Magento fixture shape (``sku`` + ``name`` + ``category``, and neither ``title`` nor
``parent_sku``), otherwise generic.

magento
    Full Magento 2 export: ``sku, store_view_code, product_type, categories, name, description,
    additional_attributes`` (``k=v,k=v``; a value may hold ``|`` or, as a continuation, ``,``),
    ``configurable_variations`` (``sku=X,size=XS,color=Black|sku=Y,...``). Configurable rows are
    ``parent``; a row listed in a parent's ``configurable_variations`` is a ``variant`` of it
    (the variation's own ``k=v`` pairs fill attributes the child row lacks). The first segment
    of every category path is the root category (``Default Category``) and is dropped. Rows
    with a ``store_view_code`` are store-view overrides of a SKU, not SKUs:
    ``store_view_override``. Also the smaller fixture shape (``category, name, sku,
    description`` plus attribute columns such as ``material, style_bags, pattern``), whose
    multi-valued cells and category levels are newline separated ("Gear\\nBags\\nCollections\\n
    Erin Recommends" is two paths, split at the merchandising root).
shopify
    Shopify product CSV. Rows are grouped by ``Handle``; the product-level fields (Title,
    Body (HTML), Type, Product Category, Option names, product metafield columns such as
    ``Color (product.metafields.shopify.color-pattern)``) come from the first row of the Handle
    that has a Title. Variant rows are rows with option values, a Variant SKU or variant fields
    (price, barcode...). Choices:

    * A product whose only variant has Option1 Value ``Default Title`` (or no option values) is
      ``simple``: sku = Variant SKU, else the Handle (note says so).
    * Otherwise every variant row is a ``variant`` with ``parent_sku`` = the Handle and title
      ``"<Title> - <value1> / <value2>"``. **No parent row is emitted**: the Handle is not a
      sellable SKU and has no row of its own in the file, so emitting one would break
      "one input row -> one SKU or reject"; consumers group variants by ``parent_sku``.
    * Empty Variant SKU -> derived ``slug(Handle)-slug(value1)-slug(value2)...``
      (``classic-tee-red-m``), note ``sku derived from Handle and option values``.
    * Rows with an Image Src and no variant data -> ``image_only_row``; other rows without
      variant data -> ``no_variant_data``; rows without Handle -> ``missing_handle``.
    * Category: the last :data:`SHOPIFY_CATEGORY_DEPTH` segments of ``Product Category`` (a
      Google/Shopify taxonomy path, ``>`` separated), else ``Type``.
woocommerce
    WooCommerce product CSV export: ``ID, Type, SKU, Name, Published, Short description,
    Description, Categories, Tags, Images, Parent, Attribute N name, Attribute N value(s), ...``.
    ``variable`` -> ``parent``; ``variation`` -> ``variant`` (``Parent`` is ``id:123`` or the
    parent's SKU); everything else (simple, grouped, external) -> ``simple``. A variation without
    SKU gets ``<parent SKU>-slug(value1)-slug(value2)`` with a note. ``product_name`` is the
    parent's Name (variation names are usually "Parent - Red"). Categories: ``A > B`` paths,
    several comma separated (``\\,`` escapes a comma); an ``Uncategorized`` path is ignored.
    Attribute values are comma separated (``\\,`` escapes). ``pa_`` prefixes are dropped.
generic
    CSV / Parquet with the columns (case-insensitive):

    ============ ======== ===========================================================
    column       required meaning
    ============ ======== ===========================================================
    sku          yes      the SKU
    title        yes      display title (a ``name`` column is accepted instead)
    category     no       ``A/B/C``, ``A > B > C`` or newline-separated levels
    description  no       text or HTML
    parent_sku   no       makes the row a ``variant`` of that SKU; referenced rows are ``parent``
    <attribute>  no       any column whose normalised name is in IMAGE_ATTRIBUTES or a synonym
    attr_<name>  no       an explicit attribute column, kept even if not in IMAGE_ATTRIBUTES
    ============ ======== ===========================================================

    Other columns (price, stock...) are ignored. ``mapping`` renames the user's columns to these
    names before anything else, e.g. ``{"ProductCode": "sku", "Name": "title",
    "Farbe": "color", "Dept": "category"}``. It works for every format (a renamed Shopify
    header can be mapped back too); a mapping key that is not a column is an error.

Errors that concern the whole table raise :class:`CatalogFormatError`: an unknown format, an
explicit format whose required columns are missing (the message lists them), an unreadable
file, an empty catalog.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import warnings
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from zimage_assets.domain.html_text import html_to_text

__all__ = [
    "ATTRIBUTE_SYNONYMS",
    "CatalogFormatError",
    "FORMATS",
    "IMAGE_ATTRIBUTES",
    "MAX_SKU_LENGTH",
    "MERCHANDISING_ROOTS",
    "NON_VISUAL_ATTRIBUTES",
    "ParsedCatalog",
    "REJECT_COLUMNS",
    "SKU_COLUMNS",
    "content_hash",
    "detect_format",
    "normalise_attribute_key",
    "parse_catalog",
    "read_catalog_table",
    "reject_code",
]

SKU_COLUMNS = [
    "sku", "title", "product_name", "category", "attributes", "description",
    "parent_sku", "kind", "source_row", "note", "content_hash",
]
REJECT_COLUMNS = ["row", "sku", "field", "value", "reason"]
FORMATS = ("auto", "generic", "magento", "shopify", "woocommerce")

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
MAX_SKU_LENGTH = 255
SHOPIFY_CATEGORY_DEPTH = 2
_MAX_REJECT_VALUE = 200


class CatalogFormatError(ValueError):
    """The table as a whole cannot be parsed (format, columns, file, emptiness)."""


@dataclass
class ParsedCatalog:
    format: str
    rows_read: int
    skus: pd.DataFrame
    rejects: pd.DataFrame

    @property
    def rows_rejected(self) -> int:
        """Number of distinct input rows with at least one reject."""
        return int(self.rejects["row"].nunique()) if len(self.rejects) else 0


def reject_code(reason: str) -> str:
    """``"missing_sku: no SKU ..."`` -> ``"missing_sku"``."""
    return reason.split(":", 1)[0].strip()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".txt")
_TSV_SUFFIXES = (".tsv", ".tab")


def read_catalog_table(data: bytes | str | os.PathLike, name: str = "") -> pd.DataFrame:
    """Read a CSV/TSV or Parquet catalog into a DataFrame of ``str`` (empty cells ``""``).

    ``data`` is the file's bytes, a local path (``str`` or ``PathLike``), or CSV text (a
    ``str`` holding a newline). ``name`` (or the path) gives the suffix: ``.parquet``/``.pq``
    -> Parquet, ``.tsv``/``.tab`` -> tab separated, anything else -> CSV; bytes starting with
    ``PAR1`` are Parquet whatever the name. A CSV's delimiter (``,`` ``;`` or tab) is sniffed
    from its header line. UTF-8 with or without BOM; quoted multi-line fields are fine.

    A data line with more fields than the header is kept (first fields) and listed in
    ``df.attrs["malformed_rows"]`` (``{1-based row: message}``); ``parse_catalog`` rejects
    those rows with reason ``malformed_row`` instead of guessing which field shifted.
    """
    path: Path | None = None
    raw: bytes | None = None
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    elif isinstance(data, str) and ("\n" in data or "\r" in data):
        raw = data.encode("utf-8")
    elif isinstance(data, (str, os.PathLike)):
        path = Path(os.fspath(data))
        name = name or path.name
        if not path.is_file():
            raise CatalogFormatError(f"cannot read catalog {str(path)!r}: no such file")
    else:
        raise CatalogFormatError(
            f"cannot read catalog from a {type(data).__name__}; pass bytes or a path"
        )
    label = name or ("<bytes>" if path is None else str(path))

    try:
        if path is not None:
            with open(path, "rb") as fh:
                head = fh.read(65536)
        else:
            head = raw[:65536]
    except OSError as exc:
        raise CatalogFormatError(f"cannot read catalog {label!r}: {exc}") from exc

    suffix = os.path.splitext(name.lower())[1]
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise CatalogFormatError(f"catalog is empty: {label!r} has no header and no rows")
    is_parquet = head[:4] == b"PAR1"
    if suffix in _PARQUET_SUFFIXES and not is_parquet:
        raise CatalogFormatError(f"catalog {label!r} is named as Parquet but is not a Parquet file")
    if is_parquet:
        return _read_parquet(path if path is not None else io.BytesIO(raw), label)
    if suffix in _TSV_SUFFIXES:
        sep = "\t"
    else:
        sep = _sniff_delimiter(head)
    return _read_csv(path, raw, sep, label)


def _sniff_delimiter(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first, in_quote = [], False
    for ch in text:  # the header line, outside quotes
        if ch == '"':
            in_quote = not in_quote
        elif ch in "\r\n" and not in_quote:
            break
        elif not in_quote:
            first.append(ch)
    line = "".join(first)
    counts = {sep: line.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def _read_csv(path: Path | None, raw: bytes | None, sep: str, label: str) -> pd.DataFrame:
    def source():
        return path if path is not None else io.BytesIO(raw)

    lossy = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(
                source(), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                encoding="utf-8-sig", index_col=False, skip_blank_lines=True,
            )
        lossy = any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)
    except UnicodeDecodeError as exc:
        raise CatalogFormatError(
            f"catalog {label!r} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r}"
            f" at offset {exc.start}); export it as UTF-8"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise CatalogFormatError(f"catalog is empty: {label!r} has no header row") from exc
    except pd.errors.ParserError as exc:
        if "Expected" not in str(exc):  # e.g. "EOF inside string": a truncated file
            raise CatalogFormatError(f"catalog {label!r} is not valid CSV: {exc}") from exc
        lossy = True
    except (OSError, ValueError) as exc:
        raise CatalogFormatError(f"cannot read catalog {label!r}: {exc}") from exc
    if lossy:
        # Some line has more fields than the header: redo it with the csv module, which
        # tells us which rows, so they can be rejected instead of silently truncated.
        df = _read_csv_ragged(source(), sep, label)
    df.columns = [str(c) for c in df.columns]
    return df


def _read_csv_ragged(src, sep: str, label: str) -> pd.DataFrame:
    import csv

    if isinstance(src, Path):
        fh = open(src, encoding="utf-8-sig", newline="")
    else:
        fh = io.TextIOWrapper(src, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(fh, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration as exc:
            raise CatalogFormatError(f"catalog is empty: {label!r} has no header row") from exc
        n = len(header)
        rows: list[list[str]] = []
        malformed: dict[int, str] = {}
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0]):
                continue  # blank line, as pandas skips them
            if len(fields) > n:
                malformed[len(rows) + 1] = (
                    f"{len(fields)} fields where the header has {n}; extra: "
                    + sep.join(fields[n:])
                )
                fields = fields[:n]
            elif len(fields) < n:
                fields = fields + [""] * (n - len(fields))
            rows.append(fields)
    except UnicodeDecodeError as exc:
        raise CatalogFormatError(
            f"catalog {label!r} is not UTF-8 text; export it as UTF-8") from exc
    except csv.Error as exc:
        raise CatalogFormatError(f"catalog {label!r} is not valid CSV: {exc}") from exc
    finally:
        fh.close()
    df = pd.DataFrame(rows, columns=_dedupe_names(header), dtype=str)
    df.attrs["malformed_rows"] = malformed
    return df


def _dedupe_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            out.append(f"{nm}.{seen[nm]}")
        else:
            seen[nm] = 0
            out.append(nm)
    return out


def _read_parquet(src, label: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(src)
    except Exception as exc:  # pyarrow raises several types
        raise CatalogFormatError(
            f"catalog {label!r} is not a readable Parquet file: {exc}") from exc
    return _stringify_frame(df)


def _stringify_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as str, nulls as "", integral floats without the ".0"."""
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_float_dtype(s.dtype):
            vals = s.tolist()
            present = [v for v in vals if v == v]
            if all(math.isfinite(v) and float(v).is_integer() for v in present):
                out[str(col)] = ["" if v != v else str(int(v)) for v in vals]
            else:
                out[str(col)] = ["" if v != v else repr(float(v)) for v in vals]
        elif pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
            out[str(col)] = s.fillna("").tolist()
        else:
            out[str(col)] = [_cell_str(v) for v in s.tolist()]
    return pd.DataFrame(out, columns=[str(c) for c in df.columns], dtype=str)


def _cell_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v != v:
        return ""
    if v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def _norm_col(name: Any) -> str:
    return " ".join(str(name).strip().lstrip("\ufeff").lower().split())


_REQUIRED = {
    # format -> requirements, as display names (matched case-insensitively); a tuple means
    # "one of these"
    "magento": [("sku",), ("name",)],
    "shopify": [("Handle",), ("Title",), ("Variant SKU", "Option1 Value")],
    "woocommerce": [("ID",), ("Type",), ("SKU",), ("Name",)],
    "generic": [("sku",), ("title", "name")],
}


def detect_format(columns: Iterable[Any]) -> str:
    """The concrete format (never ``auto``) a table with these column names is in."""
    cols = {_norm_col(c) for c in columns}
    if {"sku", "product_type", "additional_attributes"} <= cols:
        return "magento"
    if "handle" in cols and ({"variant sku", "option1 value"} & cols):
        return "shopify"
    if {"id", "type", "sku", "name"} <= cols:
        return "woocommerce"
    if {"sku", "name", "category"} <= cols and not ({"title", "parent_sku"} & cols):
        return "magento"
    return "generic"


def _missing_columns(fmt: str, cols: set[str]) -> list[str]:
    missing = []
    reqs = list(_REQUIRED[fmt])
    if fmt == "magento" and "category" not in cols and "product_type" not in cols:
        reqs.append(("product_type", "category"))
    for req in reqs:
        if not any(_norm_col(r) in cols for r in req):
            missing.append(" or ".join(req))
    return missing


# --------------------------------------------------------------------------------------------
# Normalisation helpers
# --------------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_KEY = re.compile(r"[\W_]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SLUG_SPLIT = re.compile(r"[\W_]+")
_METAFIELD = re.compile(r"\s*\((?:product|variant)\.metafields\.[^)]*\)\s*$", re.I)


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


def _image_key(name: str) -> str | None:
    key = normalise_attribute_key(name)
    return key if key in IMAGE_ATTRIBUTES else None


_MULTI = re.compile(r"[\n|]")


@lru_cache(maxsize=65536)
def _norm_value(value: str) -> str:
    """Split a multi-valued cell on newlines / ``|`` and join with ", "."""
    if "\n" in value or "|" in value or "\r" in value:
        parts = [_WS.sub(" ", p).strip() for p in _MULTI.split(value)]
        return ", ".join(dict.fromkeys(p for p in parts if p))
    return _WS.sub(" ", value).strip()


def _split_escaped_commas(value: str) -> list[str]:
    """WooCommerce lists: ``a, b\\, c`` -> ``["a", "b, c"]``."""
    if "\\," in value:
        parts = value.replace("\\,", "\x00").split(",")
        return [p.replace("\x00", ",").strip() for p in parts]
    return [p.strip() for p in value.split(",")]


def _add_attr(attrs: dict[str, str], key: str, value: str) -> None:
    if not value:
        return
    old = attrs.get(key)
    if not old:
        attrs[key] = value
    elif old != value:
        merged = dict.fromkeys(old.split(", "))
        merged.update(dict.fromkeys(value.split(", ")))
        attrs[key] = ", ".join(merged)


def _slug(value: str) -> str:
    return _SLUG_SPLIT.sub("-", value.lower()).strip("-")


def _segment(value: str) -> str:
    return _WS.sub(" ", value).strip().replace("/", "-")


def _pick_path(paths: list[list[str]]) -> str:
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


_CATEGORY_CACHE: dict[tuple[str, str], str] = {}


def _category(kind: str, cell: str) -> str:
    key = (kind, cell)
    hit = _CATEGORY_CACHE.get(key)
    if hit is not None:
        return hit
    value = _category_uncached(kind, cell)
    if len(_CATEGORY_CACHE) > 100_000:
        _CATEGORY_CACHE.clear()
    _CATEGORY_CACHE[key] = value
    return value


def _category_uncached(kind: str, cell: str) -> str:
    cell = cell.strip()
    if not cell:
        return ""
    if kind == "magento_full":
        paths = []
        for p in cell.replace("\\/", "\x00").split(","):
            segs = [_segment(s.replace("\x00", "/")) for s in p.split("/")]
            paths.append(segs[1:])  # the first segment is the root category
        return _pick_path(paths)
    if "\n" in cell and kind in ("levels", "generic"):
        paths: list[list[str]] = [[]]
        for seg in cell.splitlines():
            seg = _segment(seg)
            if not seg or seg.lower() == "default category":
                continue
            if seg.lower() in MERCHANDISING_ROOTS and paths[-1]:
                paths.append([])
            paths[-1].append(seg)
        return _pick_path(paths)
    if kind == "woocommerce":
        paths = [[_segment(s) for s in p.split(">")] for p in _split_escaped_commas(cell)]
        return _pick_path([p for p in paths if [s for s in p if s] != ["Uncategorized"]])
    if kind == "shopify":
        if ">" not in cell and cell.lower().startswith("gid:"):
            return ""
        segs = [s for s in (_segment(s) for s in cell.split(">")) if s]
        return "/".join(segs[-SHOPIFY_CATEGORY_DEPTH:])
    # generic, and Magento fixture cells with a single level: one path
    sep = ">" if ">" in cell else "/"
    return "/".join(s for s in (_segment(s) for s in cell.split(sep)) if s)


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


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cand:
    row: int
    sku: str
    title: str
    product_name: str
    category: str
    attributes: dict
    description: str
    parent_sku: str = ""
    kind: str = "simple"
    notes: list | None = None
    sku_field: str = "sku"
    title_field: str = "title"

    def add_note(self, text: str) -> None:
        if self.notes is None:
            self.notes = [text]
        else:
            self.notes.append(text)


class _Rejects:
    def __init__(self) -> None:
        self.rows: list[int] = []
        self.skus: list[str] = []
        self.fields: list[str] = []
        self.values: list[str] = []
        self.reasons: list[str] = []

    def add(self, row: int, sku: str, field_: str, value: Any, reason: str) -> None:
        value = "" if value is None else str(value)
        self.rows.append(row)
        self.skus.append(sku[:_MAX_REJECT_VALUE])
        self.fields.append(field_)
        self.values.append(value[:_MAX_REJECT_VALUE])
        self.reasons.append(reason)

    def frame(self) -> pd.DataFrame:
        order = sorted(range(len(self.rows)), key=self.rows.__getitem__)  # stable: by row
        return pd.DataFrame(
            {"row": pd.Series([self.rows[i] for i in order], dtype="int64"),
             "sku": pd.Series([self.skus[i] for i in order], dtype=str),
             "field": pd.Series([self.fields[i] for i in order], dtype=str),
             "value": pd.Series([self.values[i] for i in order], dtype=str),
             "reason": pd.Series([self.reasons[i] for i in order], dtype=str)},
            columns=REJECT_COLUMNS,
        )


class _Cols:
    """Case/whitespace-insensitive column access returning plain Python lists."""

    def __init__(self, raw: pd.DataFrame) -> None:
        self.raw = raw
        self.n = len(raw)
        self.by_norm: dict[str, str] = {}
        for c in raw.columns:
            self.by_norm.setdefault(_norm_col(c), c)

    def has(self, *names: str) -> bool:
        return any(n in self.by_norm for n in names)

    def name(self, *names: str) -> str | None:
        for n in names:
            if n in self.by_norm:
                return self.by_norm[n]
        return None

    def get(self, *names: str) -> list[str]:
        col = self.name(*names)
        if col is None:
            return [""] * self.n
        return self.values(col)

    def values(self, col: str) -> list[str]:
        return self.raw[col].tolist()

    def iter_col(self, col: str, chunk: int = 65536) -> Iterator[str]:
        series = self.raw[col]
        for start in range(0, self.n, chunk):
            yield from series.iloc[start:start + chunk].tolist()

    def iter(self, *names: str, const: Any = "") -> Iterator[Any]:
        """Values of the first of ``names`` present, else ``const`` for every row."""
        col = self.name(*names) if names else None
        if col is None:
            return itertools.repeat(const, self.n)
        return self.iter_col(col)


def parse_catalog(
    raw: pd.DataFrame, fmt: str = "auto", mapping: dict[str, str] | None = None
) -> ParsedCatalog:
    """Normalise a raw catalog table (see the module docstring for formats and columns)."""
    if fmt not in FORMATS:
        raise CatalogFormatError(
            f"unknown catalog format {fmt!r}; expected one of: {', '.join(FORMATS)}"
        )
    if not isinstance(raw, pd.DataFrame):
        raise CatalogFormatError(f"parse_catalog needs a DataFrame, got {type(raw).__name__}")
    malformed = dict(raw.attrs.get("malformed_rows") or {})
    if mapping:
        raw = _apply_mapping(raw, mapping)
    if len(raw) == 0:
        raise CatalogFormatError(
            f"catalog is empty: {len(raw.columns)} columns but no data rows"
        )
    if raw.columns.duplicated().any() or any(not isinstance(c, str) for c in raw.columns):
        raw = raw.copy(deep=False)
        raw.columns = _dedupe_names([str(c) for c in raw.columns])
    if _needs_stringify(raw):
        raw = _stringify_frame(raw)

    cols = {_norm_col(c) for c in raw.columns}
    concrete = detect_format(raw.columns) if fmt == "auto" else fmt
    missing = _missing_columns(concrete, cols)
    if missing:
        what = (f"could not detect the catalog format; as {concrete}" if fmt == "auto"
                else f"{concrete} catalog")
        raise CatalogFormatError(
            f"{what} is missing required columns: {', '.join(missing)} "
            f"(columns found: {', '.join(map(str, raw.columns[:40]))}"
            f"{' ...' if len(raw.columns) > 40 else ''}); pass mapping= to rename columns"
        )

    rejects = _Rejects()
    skip = set()
    for row, msg in sorted(malformed.items()):
        if 1 <= row <= len(raw):
            rejects.add(row, "", "", msg, f"malformed_row: {msg}")
            skip.add(row - 1)
    c = _Cols(raw)
    if concrete == "magento":
        if c.has("product_type", "additional_attributes", "configurable_variations"):
            cands = _parse_magento_full(c, rejects, skip)
        else:
            cands = _parse_flat(c, rejects, skip, category_kind="levels", is_magento=True)
    elif concrete == "shopify":
        cands = _parse_shopify(c, rejects, skip)
    elif concrete == "woocommerce":
        cands = _parse_woocommerce(c, rejects, skip)
    else:
        cands = _parse_flat(c, rejects, skip, category_kind="generic", is_magento=False)
    skus = _finalise(cands, rejects, len(raw))
    return ParsedCatalog(format=concrete, rows_read=len(raw), skus=skus, rejects=rejects.frame())


def _needs_stringify(raw: pd.DataFrame) -> bool:
    for col in raw.columns:
        s = raw[col]
        if pd.api.types.is_object_dtype(s.dtype):
            if any(type(v) is not str for v in s.tolist()):
                return True
        elif pd.api.types.is_string_dtype(s.dtype):
            if s.hasnans:
                return True
        else:
            return True
    return False


def _apply_mapping(raw: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    columns = [str(c) for c in raw.columns]
    by_norm = {}
    for col in columns:
        by_norm.setdefault(_norm_col(col), col)
    rename = {}
    unknown = []
    for src, dst in mapping.items():
        if src in columns:
            rename[src] = dst
        elif _norm_col(src) in by_norm:
            rename[by_norm[_norm_col(src)]] = dst
        else:
            unknown.append(src)
    if unknown:
        raise CatalogFormatError(
            f"mapping names columns that are not in the catalog: {', '.join(map(str, unknown))}"
            f" (columns found: {', '.join(columns[:40])})"
        )
    new_cols = [rename.get(c, c) for c in columns]
    seen: dict[str, str] = {}
    for old, new in zip(columns, new_cols):
        key = _norm_col(new)
        if key in seen:
            raise CatalogFormatError(
                f"mapping makes two columns named {new!r} ({seen[key]!r} and {old!r})"
            )
        seen[key] = old
    out = raw.copy(deep=False)
    out.columns = new_cols
    out.attrs = dict(raw.attrs)
    return out


# ---- generic and Magento fixture shape ----------------------------------------------------

_FLAT_CORE = {"sku", "title", "name", "category", "categories", "description", "parent_sku"}


def _parse_flat(c: _Cols, rej: _Rejects, skip: set[int], category_kind: str,
                is_magento: bool) -> list[_Cand]:
    sku_col = c.name("sku")
    title_col = c.name("title", "name")
    attr_keys: list[str] = []
    attr_names: list[str] = []
    for col in c.raw.columns:
        norm = _norm_col(col)
        if norm in _FLAT_CORE:
            continue
        key = normalise_attribute_key(col)
        explicit = norm.startswith("attr_") or norm.startswith("attr ")
        if key in IMAGE_ATTRIBUTES or (explicit and key):
            attr_keys.append(key)
            attr_names.append(col)
    # Stream the columns in chunks rather than materialising whole Python lists: on a 500k-row
    # catalog this keeps the raw HTML descriptions from all being alive at once.
    rows = zip(
        c.iter("sku"), c.iter("title", "name"), c.iter("category", "categories"),
        c.iter("description"), c.iter("parent_sku") if not is_magento else c.iter(),
        zip(*[c.iter_col(col) for col in attr_names]) if attr_names else c.iter(const=()),
    )
    cands: list[_Cand] = []
    norm_value = _norm_value
    ws_sub = _WS.sub
    sku_field = sku_col or "sku"
    title_field = title_col or "title"
    for i, (sku, title, cat, desc, parent, attr_vals) in enumerate(rows):
        if i in skip:
            continue
        attrs: dict[str, str] = {}
        for key, v in zip(attr_keys, attr_vals):
            if v:
                v = norm_value(v)
                if v:
                    if key in attrs:
                        _add_attr(attrs, key, v)
                    else:
                        attrs[key] = v
        title = ws_sub(" ", title).strip()
        cands.append(_Cand(
            row=i + 1, sku=sku.strip(), title=title, product_name=title,
            category=_category(category_kind, cat), attributes=attrs,
            description=html_to_text(desc), parent_sku=parent.strip(),
            sku_field=sku_field, title_field=title_field,
        ))
    _link_by_parent_sku(cands)
    return cands


def _link_by_parent_sku(cands: list[_Cand]) -> None:
    """Generic parent/variant resolution on ``parent_sku``."""
    referenced = {c.parent_sku for c in cands if c.parent_sku}
    if not referenced:
        return
    first: dict[str, _Cand] = {}
    for cand in cands:
        if cand.sku in referenced and cand.sku not in first:
            first[cand.sku] = cand
    for cand in cands:
        if cand.parent_sku:
            if cand.parent_sku == cand.sku:
                cand.parent_sku = ""
                cand.add_note("parent_sku equals sku; ignored")
                continue
            cand.kind = "variant"
            parent = first.get(cand.parent_sku)
            _inherit(cand, parent, cand.parent_sku)
        elif cand.sku in first and first[cand.sku] is cand:
            cand.kind = "parent"


def _inherit(cand: _Cand, parent: _Cand | None, parent_ref: str,
             explicit: dict[str, str] | None = None) -> None:
    """Give a variant its parent's name and the fields it does not set itself."""
    if parent is None or not parent.title:
        if parent is None:
            cand.add_note(f"parent {parent_ref!r} not in catalog; product_name from own title")
        else:
            cand.add_note(f"parent {parent_ref!r} has no title; product_name from own title")
        return
    cand.product_name = parent.title
    if not cand.title:
        cand.title = parent.title
        cand.add_note("title from parent")
    if not cand.category:
        cand.category = parent.category
    if not cand.description:
        cand.description = parent.description
    mentioned = explicit if explicit is not None else cand.attributes
    for key, value in parent.attributes.items():
        if key not in mentioned:
            cand.attributes[key] = value


# ---- Magento full export ------------------------------------------------------------------

_KV = re.compile(r"\s*([A-Za-z0-9_]+)\s*=(.*)", re.S)


def _parse_kv_pairs(cell: str) -> dict[str, str] | None:
    """``k=v,k=v`` (a piece without ``=`` continues the previous value); None if malformed."""
    out: dict[str, str] = {}
    if not cell.strip():
        return out
    last = None
    for piece in cell.split(","):
        m = _KV.fullmatch(piece)
        if m:
            last = m.group(1)
            out[last] = m.group(2)
        elif last is not None:
            out[last] += "," + piece
        else:
            return None
    return out


def _parse_variations(cell: str) -> list[dict[str, str]] | None:
    out = []
    for chunk in cell.split("|"):
        if not chunk.strip():
            continue
        pairs = _parse_kv_pairs(chunk)
        if not pairs or not pairs.get("sku", "").strip():
            return None
        out.append(pairs)
    return out


def _magento_attrs(pairs: dict[str, str]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for k, v in pairs.items():
        key = _image_key(k)
        if key:
            _add_attr(attrs, key, _norm_value(v))
    return attrs


def _parse_magento_full(c: _Cols, rej: _Rejects, skip: set[int]) -> list[_Cand]:
    sku_col = c.name("sku") or "sku"
    skus = c.get("sku")
    views = c.get("store_view_code")
    types = c.get("product_type")
    cats = c.get("categories", "category")
    names = c.get("name")
    descs = c.get("description")
    shorts = c.get("short_description")
    adds = c.get("additional_attributes")
    variations = c.get("configurable_variations")
    name_col = c.name("name") or "name"

    cands: list[_Cand] = []
    # child sku -> (parent candidate, the variation's own pairs)
    child_of: dict[str, tuple[_Cand, dict[str, str]]] = {}
    for i in range(c.n):
        if i in skip:
            continue
        row = i + 1
        sku = skus[i].strip()
        if views[i].strip():
            rej.add(row, sku, "store_view_code", views[i],
                    f"store_view_override: values for store view {views[i].strip()!r} of "
                    "an existing SKU, not a new SKU")
            continue
        pairs = _parse_kv_pairs(adds[i])
        if pairs is None:
            rej.add(row, sku, "additional_attributes", adds[i],
                    "unparseable_value: additional_attributes is not k=v,k=v pairs")
            continue
        ptype = types[i].strip().lower()
        var_list: list[dict[str, str]] = []
        if variations[i].strip():
            parsed = _parse_variations(variations[i])
            if parsed is None:
                rej.add(row, sku, "configurable_variations", variations[i],
                        "unparseable_value: configurable_variations is not "
                        "sku=X,k=v|sku=Y,... entries")
                continue
            var_list = parsed
        title = _WS.sub(" ", names[i]).strip()
        cand = _Cand(
            row=row, sku=sku, title=title, product_name=title,
            category=_category("magento_full", cats[i]), attributes=_magento_attrs(pairs),
            description=html_to_text(descs[i] or shorts[i]),
            kind="parent" if ptype == "configurable" else "simple",
            sku_field=sku_col, title_field=name_col,
        )
        cands.append(cand)
        for var in var_list:
            child = var["sku"].strip()
            if child not in child_of and child != sku:
                child_of[child] = (cand, var)
    for cand in cands:
        link = child_of.get(cand.sku)
        if link is None or cand.kind == "parent":
            continue
        parent, var = link
        cand.kind = "variant"
        cand.parent_sku = parent.sku
        for key, value in _magento_attrs({k: v for k, v in var.items() if k != "sku"}).items():
            cand.attributes.setdefault(key, value)
        _inherit(cand, parent, parent.sku)
    return cands


# ---- Shopify ------------------------------------------------------------------------------

_SHOPIFY_VARIANT_FIELDS = (
    "variant sku", "variant price", "variant barcode", "variant grams",
    "variant inventory qty", "variant compare at price", "variant weight",
)


def _parse_shopify(c: _Cols, rej: _Rejects, skip: set[int]) -> list[_Cand]:
    handles = c.get("handle")
    titles = c.get("title")
    bodies = c.get("body (html)", "body html", "body")
    types = c.get("type")
    pcats = c.get("product category")
    images = c.get("image src")
    vskus = c.get("variant sku")
    opt_names = [c.get(f"option{k} name") for k in (1, 2, 3)]
    opt_values = [c.get(f"option{k} value") for k in (1, 2, 3)]
    variant_fields = [c.get(f) for f in _SHOPIFY_VARIANT_FIELDS if c.has(f)]
    handle_col = c.name("handle") or "Handle"
    vsku_col = c.name("variant sku") or "Variant SKU"
    title_col = c.name("title") or "Title"
    # product-level attribute columns: metafields / Google Shopping fields in the allow-list
    product_attr_cols = []
    for col in c.raw.columns:
        norm = _norm_col(col)
        if "metafields." in norm or norm.startswith("google shopping /"):
            key = _image_key(col)
            if key:
                product_attr_cols.append((key, c.values(col)))

    groups: dict[str, list[int]] = {}
    for i in range(c.n):
        if i in skip:
            continue
        handle = handles[i].strip()
        if not handle:
            rej.add(i + 1, vskus[i].strip(), handle_col, "",
                    "missing_handle: row has no Handle, so it belongs to no product")
            continue
        groups.setdefault(handle, []).append(i)

    cands: list[_Cand] = []
    for handle, idxs in groups.items():
        prod = next((i for i in idxs if titles[i].strip()), idxs[0])
        title = _WS.sub(" ", titles[prod]).strip()
        names = []
        for k in range(3):
            nm = opt_names[k][prod].strip() or next(
                (opt_names[k][i].strip() for i in idxs if opt_names[k][i].strip()), "")
            names.append(nm)
        category = _category("shopify", pcats[prod]) or _category("generic", types[prod])
        description = html_to_text(bodies[prod])
        product_attrs: dict[str, str] = {}
        for key, vals in product_attr_cols:
            v = vals[prod]
            if v:
                _add_attr(product_attrs, key, _norm_value(v.replace(";", "|")))

        variant_rows = []
        has_data = {
            i: any(opt_values[k][i].strip() for k in range(3))
            or any(f[i].strip() for f in variant_fields)
            for i in idxs
        }
        others_have_data = any(has_data[i] for i in idxs if i != prod)
        for i in idxs:
            if has_data[i] or (i == prod and not others_have_data):
                variant_rows.append(i)
            elif i == prod:
                rej.add(i + 1, "", handle_col, handle,
                        f"no_variant_data: product row of {handle!r} has no variant of its own;"
                        " its fields apply to the variant rows")
            elif images[i].strip():
                rej.add(i + 1, "", c.name("image src") or "Image Src", images[i],
                        f"image_only_row: extra image of {handle!r}, not a variant")
            else:
                rej.add(i + 1, "", handle_col, handle,
                        f"no_variant_data: row of {handle!r} has no option values or variant "
                        "fields")

        first_values = [opt_values[k][variant_rows[0]].strip() for k in range(3)]
        simple = len(variant_rows) == 1 and (
            first_values[0] in ("", "Default Title") and not any(first_values[1:]))
        if simple:
            i = variant_rows[0]
            sku = vskus[i].strip()
            cand = _Cand(
                row=i + 1, sku=sku or handle, title=title, product_name=title,
                category=category, attributes=dict(product_attrs), description=description,
                sku_field=vsku_col, title_field=title_col,
            )
            if not sku:
                cand.add_note("sku is the Handle (no Variant SKU)")
            cands.append(cand)
            continue
        for i in variant_rows:
            values = [opt_values[k][i].strip() for k in range(3)]
            attrs = dict(product_attrs)
            for nm, val in zip(names, values):
                key = _image_key(nm) if nm else None
                if key and val:
                    attrs[key] = _norm_value(val)
            shown = [v for v in values if v]
            sku = vskus[i].strip()
            notes = []
            if not sku:
                parts = [_slug(handle)] + [_slug(v) for v in shown]
                parts = [p for p in parts if p]
                if len(parts) > 1:
                    sku = "-".join(parts)
                    notes.append("sku derived from Handle and option values")
            cands.append(_Cand(
                row=i + 1, sku=sku,
                title=f"{title} - {' / '.join(shown)}" if title and shown else title,
                product_name=title, category=category, attributes=attrs,
                description=description, parent_sku=handle, kind="variant", notes=notes,
                sku_field=vsku_col, title_field=title_col,
            ))
    return cands


# ---- WooCommerce --------------------------------------------------------------------------

_WOO_ATTR = re.compile(r"^attribute (\d+) (name|value\(s\)|values?)$")


def _parse_woocommerce(c: _Cols, rej: _Rejects, skip: set[int]) -> list[_Cand]:
    ids = c.get("id")
    types = c.get("type")
    skus = c.get("sku")
    names = c.get("name")
    descs = c.get("description")
    shorts = c.get("short description")
    cats = c.get("categories")
    parents = c.get("parent")
    sku_col = c.name("sku") or "SKU"
    name_col = c.name("name") or "Name"
    slots: dict[str, dict[str, str]] = {}
    for norm, col in c.by_norm.items():
        m = _WOO_ATTR.match(norm)
        if m:
            slots.setdefault(m.group(1), {})["name" if m.group(2) == "name" else "value"] = col
    attr_slots = [(c.values(s["name"]), c.values(s["value"]))
                  for _, s in sorted(slots.items(), key=lambda kv: int(kv[0]))
                  if "name" in s and "value" in s]

    cands: list[_Cand] = []
    woo_kind: list[str] = []
    # per candidate: attribute keys the row names (even with an empty value), raw values
    mentioned: list[dict[str, str]] = []
    var_values: list[list[str]] = []
    by_id: dict[str, _Cand] = {}
    by_sku: dict[str, _Cand] = {}
    for i in range(c.n):
        if i in skip:
            continue
        type_set = {t.strip().lower() for t in types[i].split(",")}
        kind = ("variant" if "variation" in type_set
                else "parent" if "variable" in type_set else "simple")
        attrs: dict[str, str] = {}
        named: dict[str, str] = {}
        values_in_order: list[str] = []
        for names_col, values_col in attr_slots:
            nm = names_col[i].strip()
            if not nm:
                continue
            vals = [v for v in _split_escaped_commas(values_col[i]) if v]
            joined = ", ".join(dict.fromkeys(_WS.sub(" ", v) for v in vals))
            values_in_order.extend(vals)
            key = _image_key(nm)
            if key:
                named[key] = joined
                _add_attr(attrs, key, joined)
        cand = _Cand(
            row=i + 1, sku=skus[i].strip(), title=_WS.sub(" ", names[i]).strip(),
            product_name=_WS.sub(" ", names[i]).strip(),
            category=_category("woocommerce", cats[i]), attributes=attrs,
            description=html_to_text(descs[i] or shorts[i]), kind=kind,
            sku_field=sku_col, title_field=name_col,
        )
        cands.append(cand)
        woo_kind.append(kind)
        mentioned.append(named)
        var_values.append(values_in_order)
        rid = ids[i].strip()
        if rid and rid not in by_id:
            by_id[rid] = cand
        if cand.sku and cand.sku not in by_sku:
            by_sku[cand.sku] = cand

    for cand, named, values in zip(cands, mentioned, var_values):
        if cand.kind != "variant":
            continue
        ref = parents[cand.row - 1].strip()
        if ref.lower().startswith("id:"):
            parent = by_id.get(ref[3:].strip())
        else:
            parent = by_sku.get(ref) if ref else None
        if parent is not None and parent is not cand:
            cand.parent_sku = parent.sku
        else:
            parent = None
            cand.parent_sku = "" if ref.lower().startswith("id:") else ref
        if not cand.sku:
            base = parent.sku if parent is not None else ""
            tail = [s for s in (_slug(v) for v in values) if s]
            if base and tail:
                cand.sku = "-".join([base] + tail)
                cand.add_note("sku derived from parent SKU and attribute values")
        if not cand.title and parent is not None and parent.title and values:
            cand.title = f"{parent.title} - {', '.join(values)}"
            cand.add_note("title from parent name and attribute values")
        if parent is None and not ref:
            cand.add_note("variation without Parent; product_name from own title")
            continue
        _inherit(cand, parent, ref, explicit=named)
    return cands


# ---- common checks and output -------------------------------------------------------------


def _finalise(cands: list[_Cand], rej: _Rejects, rows_read: int) -> pd.DataFrame:
    cands.sort(key=lambda x: x.row)
    out: dict[str, list] = {name: [] for name in SKU_COLUMNS}
    o_sku, o_title, o_pname = out["sku"], out["title"], out["product_name"]
    o_cat, o_attrs, o_desc = out["category"], out["attributes"], out["description"]
    o_parent, o_kind, o_row = out["parent_sku"], out["kind"], out["source_row"]
    o_note, o_hash = out["note"], out["content_hash"]
    seen: dict[str, int] = {}  # sku -> its position in the output lists
    dumps = json.dumps
    control = _CONTROL.search
    accepted = bytearray(rows_read + 1)
    for pos in range(len(cands)):
        cand = cands[pos]
        cands[pos] = None  # free each candidate once copied out (large catalogs)
        sku = cand.sku
        row = cand.row
        if not sku:
            rej.add(row, "", cand.sku_field, "", "missing_sku: no SKU and none derivable")
            continue
        if len(sku) > MAX_SKU_LENGTH:
            rej.add(row, sku, cand.sku_field, sku,
                    f"invalid_sku: {len(sku)} characters, more than {MAX_SKU_LENGTH}")
            continue
        if control(sku):
            rej.add(row, sku, cand.sku_field, sku, "invalid_sku: contains control characters")
            continue
        if not cand.title:
            rej.add(row, sku, cand.title_field, "",
                    "missing_title: no name on the row or its parent")
            continue
        attrs_json = dumps(cand.attributes, sort_keys=True, ensure_ascii=False)
        first = seen.get(sku)
        if first is not None:
            same = (o_title[first], o_pname[first], o_cat[first], o_attrs[first], o_desc[first],
                    o_parent[first], o_kind[first]) == (
                cand.title, cand.product_name, cand.category, attrs_json, cand.description,
                cand.parent_sku, cand.kind)
            if same:
                rej.add(row, sku, cand.sku_field, sku,
                        f"duplicate_identical: same SKU and content as row {o_row[first]}")
            else:
                rej.add(row, sku, cand.sku_field, sku,
                        f"duplicate_sku: SKU already on row {o_row[first]} with different content")
            continue
        seen[sku] = len(o_sku)
        accepted[row] = 1
        o_sku.append(sku)
        o_title.append(cand.title)
        o_pname.append(cand.product_name)
        o_cat.append(cand.category)
        o_attrs.append(attrs_json)
        o_desc.append(cand.description)
        o_parent.append(cand.parent_sku)
        o_kind.append(cand.kind)
        o_row.append(row)
        o_note.append("; ".join(cand.notes) if cand.notes else "")
        o_hash.append(
            content_hash(cand.product_name, cand.category, cand.attributes, cand.description))
    cands.clear()
    del seen
    # Belt and braces for the invariant: any row neither accepted nor rejected is rejected.
    rejected = set(rej.rows)
    for row in range(1, rows_read + 1):
        if not accepted[row] and row not in rejected:
            rej.add(row, "", "", "", "unaccounted_row: row produced no SKU (parser bug)")
    frame: dict[str, pd.Series] = {}
    for name in SKU_COLUMNS:  # convert column by column, dropping each list as we go
        values = out.pop(name)
        frame[name] = pd.Series(values, dtype="int64" if name == "source_row" else str)
        del values
    return pd.DataFrame(frame, columns=SKU_COLUMNS)
