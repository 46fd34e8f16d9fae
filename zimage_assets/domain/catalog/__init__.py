"""Pure catalog parsing: raw export tables -> one normalised SKU table plus a rejects table.

No Dagster, no database, no network. ``read_catalog_table`` turns bytes or a local path into a
DataFrame of strings; ``parse_catalog`` turns that DataFrame into a :class:`ParsedCatalog`.

Where things are
================
==================== =========================================================================
module               holds
==================== =========================================================================
``__init__``         this overview, the format registry, :func:`detect_format`,
                     :func:`parse_catalog` (mapping, required columns, dispatch)
``rows``             the output spec (SKU and reject columns, reject codes, the rule that every
                     input row is one SKU or at least one reject) and the machinery every parser
                     shares: ``Columns``, ``Candidate``, ``Rejects``, ``inherit``, ``finalise``
``reading``          bytes / path -> DataFrame of ``str`` (CSV sniffing, ragged rows, Parquet)
``normalising``      attribute keys and values, category paths, slugs, :func:`content_hash`
``generic``          the generic format (and the flat parser the Magento fixture shape reuses)
``magento``          Magento 2 exports, full and fixture shape
``shopify``          Shopify product CSV
``woocommerce``      WooCommerce product CSV
==================== =========================================================================

Each format module's docstring is that format's spec: the columns it reads and the choices it
makes. The output every format produces is specified in :mod:`.rows`.

Formats
=======
``fmt`` is one of :data:`FORMATS`. ``auto`` picks by columns (case-insensitive;
:func:`detect_format`, rules in :data:`DETECTION_RULES`, first match wins):
Magento full export (``sku`` + ``product_type`` + ``additional_attributes``), Shopify
(``Handle`` + ``Variant SKU`` or ``Option1 Value``), WooCommerce (``ID`` + ``Type`` + ``SKU`` +
``Name``), Magento fixture shape (``sku`` + ``name`` + ``category``, and neither ``title`` nor
``parent_sku``), otherwise generic.

``mapping`` renames the user's columns before anything else, e.g. ``{"ProductCode": "sku",
"Name": "title", "Farbe": "color", "Dept": "category"}``. It works for every format (a renamed
Shopify header can be mapped back too); a mapping key that is not a column is an error.

Errors that concern the whole table raise :class:`CatalogFormatError`: an unknown format, an
explicit format whose required columns are missing (the message lists them), an unreadable
file, an empty catalog.

Adding a format
===============
1. Write ``<name>.py`` next to the others: a docstring with the format's spec,
   ``REQUIRED_COLUMNS`` (display names, a tuple meaning "one of these"), a ``parse(c, rej,
   skip)`` function (see :data:`~.rows.Parser`: read cells through ``c``, return one
   ``Candidate`` per row you do not reject into ``rej``, skip the 0-based rows in ``skip``) and,
   if ``auto`` should recognise it, a ``detects(cols)`` test on the normalised column names.
2. Register it below: one entry in :data:`REGISTRY` (its position is its place in
   :data:`FORMATS`) and, for ``auto``, one rule in :data:`DETECTION_RULES` (order matters).

The common checks (missing / invalid / duplicate SKU, missing title), the content hash and the
accounting rule come for free from :func:`~.rows.finalise`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from zimage_assets.domain.catalog import generic, magento, shopify, woocommerce
from zimage_assets.domain.catalog.normalising import (
    ATTRIBUTE_SYNONYMS,
    IMAGE_ATTRIBUTES,
    MERCHANDISING_ROOTS,
    NON_VISUAL_ATTRIBUTES,
    column_key,
    content_hash,
    normalise_attribute_key,
)
from zimage_assets.domain.catalog.reading import (
    needs_stringify,
    read_catalog_table,
    refuse_repeated_columns,
    stringify_frame,
)
from zimage_assets.domain.catalog.rows import (
    MAX_SKU_LENGTH,
    REJECT_COLUMNS,
    SKU_COLUMNS,
    CatalogFormatError,
    Columns,
    ParsedCatalog,
    Parser,
    Rejects,
    finalise,
    reject_code,
)
from zimage_assets.domain.catalog.shopify import SHOPIFY_CATEGORY_DEPTH

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
    "SHOPIFY_CATEGORY_DEPTH",
    "SKU_COLUMNS",
    "content_hash",
    "detect_format",
    "normalise_attribute_key",
    "parse_catalog",
    "read_catalog_table",
    "reject_code",
]


@dataclass(frozen=True)
class CatalogFormat:
    """A registered format: its parser and the columns it cannot do without."""

    parse: Parser
    required: list[tuple[str, ...]]


# ---- the registry: the one place a format is added ----------------------------------------

#: Concrete format name -> its parser and required columns.
REGISTRY: dict[str, CatalogFormat] = {
    "generic": CatalogFormat(generic.parse, generic.REQUIRED_COLUMNS),
    "magento": CatalogFormat(magento.parse, magento.REQUIRED_COLUMNS),
    "shopify": CatalogFormat(shopify.parse, shopify.REQUIRED_COLUMNS),
    "woocommerce": CatalogFormat(woocommerce.parse, woocommerce.REQUIRED_COLUMNS),
}
#: ``auto``: (test on the normalised column names, format); the first test that passes wins,
#: none -> ``generic``. Order matters: a Magento fixture table may also pass a later test.
DETECTION_RULES: tuple[tuple[Callable[[set[str]], bool], str], ...] = (
    (magento.is_full_export, "magento"),
    (shopify.detects, "shopify"),
    (woocommerce.detects, "woocommerce"),
    (magento.is_fixture_shape, "magento"),
)
FORMATS = ("auto", *REGISTRY)


def detect_format(columns: Iterable[Any]) -> str:
    """The concrete format (never ``auto``) a table with these column names is in."""
    cols = {column_key(c) for c in columns}
    for test, fmt in DETECTION_RULES:
        if test(cols):
            return fmt
    return "generic"


def _missing_columns(fmt: str, cols: set[str]) -> list[str]:
    missing = []
    for req in REGISTRY[fmt].required:
        if not any(column_key(r) in cols for r in req):
            missing.append(" or ".join(req))
    return missing


def parse_catalog(
    raw: pd.DataFrame, fmt: str = "auto", mapping: dict[str, str] | None = None
) -> ParsedCatalog:
    """Normalise a raw catalog table (see the package and format docstrings for the columns)."""
    if fmt not in FORMATS:
        raise CatalogFormatError(
            f"unknown catalog format {fmt!r}; expected one of: {', '.join(FORMATS)}"
        )
    if not isinstance(raw, pd.DataFrame):
        raise CatalogFormatError(f"parse_catalog needs a DataFrame, got {type(raw).__name__}")
    malformed = dict(raw.attrs.get("malformed_rows") or {})
    refuse_repeated_columns(list(raw.columns))
    if mapping:
        raw = _apply_mapping(raw, mapping)
    if len(raw) == 0:
        raise CatalogFormatError(
            f"catalog is empty: {len(raw.columns)} columns but no data rows"
        )
    if any(not isinstance(c, str) for c in raw.columns):
        raw = raw.copy(deep=False)
        raw.columns = [str(c) for c in raw.columns]
    if needs_stringify(raw):
        raw = stringify_frame(raw)

    cols = {column_key(c) for c in raw.columns}
    concrete = detect_format(raw.columns) if fmt == "auto" else fmt
    missing = _missing_columns(concrete, cols)
    if missing:
        what = (f"could not detect the catalog format; as {concrete}" if fmt == "auto"
                else f"{concrete} catalog")
        raise CatalogFormatError(
            f"{what} is missing required columns: {', '.join(missing)} "
            f"(columns found: {', '.join(map(str, raw.columns[:40]))}"
            f"{' ...' if len(raw.columns) > 40 else ''}); rename your columns with a column mapping "
            "(zimage ingest --map COLUMN=NAME, or column_mapping in sku_catalog's config)"
        )

    rejects = Rejects()
    skip = set()
    for row, msg in sorted(malformed.items()):
        if 1 <= row <= len(raw):
            rejects.add(row, "", "", msg, f"malformed_row: {msg}")
            skip.add(row - 1)
    cands = REGISTRY[concrete].parse(Columns(raw), rejects, skip)
    skus = finalise(cands, rejects, len(raw))
    return ParsedCatalog(format=concrete, rows_read=len(raw), skus=skus, rejects=rejects.frame())


def _apply_mapping(raw: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """``raw`` with the mapping's columns renamed (matched exactly, else case-insensitively)."""
    columns = [str(c) for c in raw.columns]
    by_norm = {}
    for col in columns:
        by_norm.setdefault(column_key(col), col)
    rename = {}
    unknown = []
    for src, dst in mapping.items():
        if src in columns:
            rename[src] = dst
        elif column_key(src) in by_norm:
            rename[by_norm[column_key(src)]] = dst
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
        key = column_key(new)
        if key in seen:
            raise CatalogFormatError(
                f"mapping makes two columns named {new!r} ({seen[key]!r} and {old!r})"
            )
        seen[key] = old
    out = raw.copy(deep=False)
    out.columns = new_cols
    out.attrs = dict(raw.attrs)
    return out
