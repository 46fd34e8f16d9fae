"""The output every format parser produces, and the shared row / reject machinery behind it.

A format parser reads the table through :class:`Columns`, turns each input row into a
:class:`Candidate` (or records a reject in :class:`Rejects`), links variants to parents with
:func:`inherit`; :func:`finalise` then applies the checks common to every format and builds the
SKU table. :class:`ParsedCatalog` is what ``parse_catalog`` returns.

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
  :data:`NON_VISUAL_ATTRIBUTES` keys (size), description; with the photo references folded in
  (:func:`~.photos.hash_with_photos`). Sizes of one colour share a hash.
- ``photos``: JSON list of the row's photo references, in order (:mod:`.photos`).

Text fields (title, product_name, category, description, attribute keys and values) never keep
control characters (NUL, ESC, ... and the bidirectional override controls): they are removed
and the row's ``note`` names the fields, the same on every database.

``ParsedCatalog.rejects`` has the columns :data:`REJECT_COLUMNS`. ``reason`` is
``"<code>: <human text>"``; :func:`reject_code` returns the code; control and invisible
characters in ``sku`` / ``value`` are written as escapes (:func:`visible`). Codes:
``missing_sku``, ``invalid_sku`` (over 255 characters, or control or invisible formatting
characters such as U+202E or a zero-width space), ``missing_title``, ``duplicate_sku`` (same
SKU, different content; the first row is named), ``duplicate_identical``, ``unparseable_value``,
``store_view_override`` (Magento), ``image_only_row`` and ``missing_handle`` (Shopify),
``no_variant_data`` (Shopify), ``not_photographed`` (grouped and downloadable products:
:data:`NOT_PHOTOGRAPHED`), ``malformed_row`` (a CSV line with more or fewer fields than the
header; see :func:`read_catalog_table`). Every input row is either one
accepted SKU or at least one reject: ``rows_read == len(skus) + rejects["row"].nunique()``
(:func:`finalise` rejects any row a parser left unaccounted as ``unaccounted_row``, a parser bug).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from zimage_assets.domain.catalog import photos as photo_refs
from zimage_assets.domain.catalog.normalising import column_key, content_hash

SKU_COLUMNS = [
    "sku", "title", "product_name", "category", "attributes", "description",
    "parent_sku", "kind", "source_row", "note", "content_hash", "photos",
]
REJECT_COLUMNS = ["row", "sku", "field", "value", "reason"]
MAX_SKU_LENGTH = 255
_MAX_REJECT_VALUE = 200
#: Characters a text field never keeps: C0 / C1 controls (NUL, ESC, ...) and the bidirectional
#: embedding / override / isolate controls, which reorder how the text around them is shown.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Characters a SKU may not hold: the above, and invisible format characters (zero-width
#: spaces and joiners, direction marks, word joiners, BOM, soft hyphen) that make two SKUs look
#: alike.
_NOT_IN_SKU = re.compile(r"[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
#: Product types that are not photographed, by the type names exports use, with the reason.
NOT_PHOTOGRAPHED = {
    "grouped": "grouped product: a set of other products, each with its own images",
    "downloadable": "downloadable product: a digital item, nothing to photograph",
}


def not_photographed(types: set[str]) -> str | None:
    """The ``not_photographed`` reason for a row of these product types, or None."""
    for kind, reason in NOT_PHOTOGRAPHED.items():
        if kind in types:
            return f"not_photographed: {reason}"
    return None


def visible(text: str) -> str:
    """``text`` with every control or invisible character written as an escape (``\\x00``,
    ``\\u202e``): what rejects store and show, the same on every database."""
    return _NOT_IN_SKU.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


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


@dataclass(slots=True)
class Candidate:
    """One input row as a would-be SKU, before the common checks of :func:`finalise`.

    ``sku_field`` / ``title_field`` name the columns a reject of this row points at.
    """

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
    photos: list | None = None  # photo references, see .photos

    def add_note(self, text: str) -> None:
        if self.notes is None:
            self.notes = [text]
        else:
            self.notes.append(text)


class Rejects:
    """The rejects table being built, column by column; :meth:`frame` sorts it by row."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.skus: list[str] = []
        self.fields: list[str] = []
        self.values: list[str] = []
        self.reasons: list[str] = []

    def add(self, row: int, sku: str, field_: str, value: Any, reason: str) -> None:
        value = "" if value is None else str(value)
        self.rows.append(row)
        self.skus.append(visible(sku)[:_MAX_REJECT_VALUE])
        self.fields.append(visible(field_))
        self.values.append(visible(value)[:_MAX_REJECT_VALUE])
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


class Columns:
    """Case/whitespace-insensitive column access returning plain Python lists.

    Names passed to :meth:`has`, :meth:`name`, :meth:`get` and :meth:`iter` are normalised
    (:func:`column_key`: lower case, single spaces); :meth:`values` and :meth:`iter_col` take
    a real column name.
    """

    def __init__(self, raw: pd.DataFrame) -> None:
        self.raw = raw
        self.n = len(raw)
        self.by_norm: dict[str, str] = {}
        for c in raw.columns:
            self.by_norm.setdefault(column_key(c), c)

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


#: A format parser: the table, the rejects to add to, the 0-based rows to skip (malformed) ->
#: one candidate per row it did not reject, in any order.
Parser = Callable[[Columns, Rejects, set[int]], list[Candidate]]


def inherit(cand: Candidate, parent: Candidate | None, parent_ref: str,
            explicit: dict[str, str] | None = None) -> None:
    """Give a variant its parent's name and the fields it does not set itself.

    ``explicit``: the attribute keys the variant's row names (even with an empty value); by
    default the keys it has.
    """
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
    photo_refs.inherit_photos(cand, parent)


def finalise(cands: list[Candidate], rej: Rejects, rows_read: int) -> pd.DataFrame:
    """The SKU table: candidates in row order through the common checks (SKU present and
    valid, title present, duplicates), then any row neither accepted nor rejected is rejected.

    Empties ``cands`` as it goes (large catalogs).
    """
    cands.sort(key=lambda x: x.row)
    out: dict[str, list] = {name: [] for name in SKU_COLUMNS}
    o_sku, o_title, o_pname = out["sku"], out["title"], out["product_name"]
    o_cat, o_attrs, o_desc = out["category"], out["attributes"], out["description"]
    o_parent, o_kind, o_row = out["parent_sku"], out["kind"], out["source_row"]
    o_note, o_hash, o_photos = out["note"], out["content_hash"], out["photos"]
    seen: dict[str, int] = {}  # sku -> its position in the output lists
    dumps = json.dumps
    control = _CONTROL.search
    not_in_sku, not_in_sku_all = _NOT_IN_SKU.search, _NOT_IN_SKU.findall
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
        if not_in_sku(sku):
            rej.add(row, sku, cand.sku_field, sku,
                    "invalid_sku: contains control or invisible formatting characters "
                    f"({', '.join(sorted({f'U+{ord(c):04X}' for c in not_in_sku_all(sku)}))})")
            continue
        if not cand.title:
            rej.add(row, sku, cand.title_field, "",
                    "missing_title: no name on the row or its parent")
            continue
        if (control(cand.title) or control(cand.product_name) or control(cand.category)
                or control(cand.description) or any(control(k) or control(v) for k, v in cand.attributes.items())):
            _remove_control_characters(cand)
        attrs_json = dumps(cand.attributes, sort_keys=True, ensure_ascii=False)
        first = seen.get(sku)
        if first is not None:
            same = (o_title[first], o_pname[first], o_cat[first], o_attrs[first], o_desc[first],
                    o_parent[first], o_kind[first], o_photos[first]) == (
                cand.title, cand.product_name, cand.category, attrs_json, cand.description,
                cand.parent_sku, cand.kind, photo_refs.photos_json(cand.photos))
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
        o_hash.append(photo_refs.hash_with_photos(
            content_hash(cand.product_name, cand.category, cand.attributes, cand.description),
            cand.photos))
        o_photos.append(photo_refs.photos_json(cand.photos))
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


def _remove_control_characters(cand: Candidate) -> None:
    """Drop control characters from the candidate's text fields, noting which fields had them
    (a NUL byte would otherwise reach prompts, and PostgreSQL refuses it in text)."""
    strip = _CONTROL.sub
    fields = []
    for name in ("title", "product_name", "category", "description"):
        value = getattr(cand, name)
        cleaned = strip("", value)
        if cleaned != value:
            setattr(cand, name, " ".join(cleaned.split()) if name != "category" else cleaned)
            fields.append(name)
    attrs = {strip("", k): strip("", v) for k, v in cand.attributes.items()}
    if attrs != cand.attributes:
        cand.attributes = {k: v for k, v in attrs.items() if k and v}
        fields.append("attributes")
    if fields:
        cand.add_note(f"control characters removed from {', '.join(fields)}")
