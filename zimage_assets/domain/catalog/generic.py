"""The generic format: one row per SKU, columns named for what they hold.

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
    image        no       the main photo (also ``image_url``, ``main_image``, ``base_image``);
                          ``image_label`` / ``image_alt`` its label
    images       no       photos, comma / newline / ``|`` separated (the first is the main one
                          when there is no ``image`` column; also ``additional_images``)
    image_<role> no       a photo with that role, e.g. ``image_back``, ``image_side``
    ============ ======== ===========================================================

    Other columns (price, stock...) are ignored. A ``mapping`` (see the package docstring)
    renames the user's columns to these names first, e.g. ``{"ProductCode": "sku",
    "Name": "title", "Farbe": "color", "Dept": "category"}``.

``auto`` picks generic when no other format matches. :func:`parse_flat` also reads the
Magento fixture shape (see :mod:`.magento`), which is this table without ``parent_sku``.
"""

from __future__ import annotations

from zimage_assets.domain.catalog import photos
from zimage_assets.domain.catalog.normalising import (
    IMAGE_ATTRIBUTES,
    WS,
    add_attribute,
    category_path,
    column_key,
    normalise_attribute_key,
    normalise_value,
)
from zimage_assets.domain.catalog.rows import Candidate, Columns, Rejects, inherit
from zimage_assets.domain.html_text import html_to_text

#: Required columns, as display names matched case-insensitively; a tuple means "one of these".
REQUIRED_COLUMNS = [("sku",), ("title", "name")]

_FLAT_CORE = {"sku", "title", "name", "category", "categories", "description", "parent_sku"}


def parse(c: Columns, rej: Rejects, skip: set[int]) -> list[Candidate]:
    """The generic format's parser."""
    return parse_flat(c, rej, skip, read_parent_sku=True)


def parse_flat(c: Columns, rej: Rejects, skip: set[int], *,
               read_parent_sku: bool) -> list[Candidate]:
    """One candidate per row from ``sku``, ``title`` / ``name``, ``category``, ``description``,
    attribute columns and (when ``read_parent_sku``) ``parent_sku``."""
    sku_col = c.name("sku")
    title_col = c.name("title", "name")
    attr_keys: list[str] = []
    attr_names: list[str] = []
    for col in c.raw.columns:
        norm = column_key(col)
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
        c.iter("description"), c.iter("parent_sku") if read_parent_sku else c.iter(),
        zip(*[c.iter_col(col) for col in attr_names]) if attr_names else c.iter(const=()),
    )
    photo_rows = _photo_rows(c)
    cands: list[Candidate] = []
    norm_value = normalise_value
    ws_sub = WS.sub
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
                        add_attribute(attrs, key, v)
                    else:
                        attrs[key] = v
        title = ws_sub(" ", title).strip()
        cands.append(Candidate(
            row=i + 1, sku=sku.strip(), title=title, product_name=title,
            category=category_path(cat), attributes=attrs,
            description=html_to_text(desc), parent_sku=parent.strip(),
            sku_field=sku_field, title_field=title_field, photos=photo_rows[i] if photo_rows else None,
        ))
    _link_by_parent_sku(cands)
    return cands


def _photo_rows(c: Columns) -> list[list[dict]] | None:
    """Each row's photo references (see .photos), or None when the table has no photo column."""
    main, listed, label, roles = photos.generic_photo_columns(c.raw.columns)
    if not (main or listed or roles):
        return None
    cells = [c.values(col) if col else [""] * c.n for col in (main, listed, label)]
    role_cells = [(role, c.values(col)) for role, col in roles]
    return [photos.generic_photos(cells[0][i], cells[1][i], cells[2][i], [(r, v[i]) for r, v in role_cells])
            for i in range(c.n)]


def _link_by_parent_sku(cands: list[Candidate]) -> None:
    """Generic parent/variant resolution on ``parent_sku``."""
    referenced = {c.parent_sku for c in cands if c.parent_sku}
    if not referenced:
        return
    first: dict[str, Candidate] = {}
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
            inherit(cand, parent, cand.parent_sku)
        elif cand.sku in first and first[cand.sku] is cand:
            cand.kind = "parent"
