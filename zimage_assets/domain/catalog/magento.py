"""The magento format: Magento 2 product exports, full and the smaller fixture shape.

magento
    Full Magento 2 export: ``sku, store_view_code, product_type, categories, name, description,
    additional_attributes`` (``k=v,k=v``; a value may hold ``|`` or, as a continuation, ``,``),
    ``configurable_variations`` (``sku=X,size=XS,color=Black|sku=Y,...``). Configurable rows are
    ``parent``; a row listed in a parent's ``configurable_variations`` is a ``variant`` of it
    (the variation's own ``k=v`` pairs fill attributes the child row lacks). The first segment
    of every category path is the root category (``Default Category``) and is dropped. Rows
    with a ``store_view_code`` are store-view overrides of a SKU, not SKUs:
    ``store_view_override``. ``grouped`` and ``downloadable`` products are not photographed
    (``not_photographed``). Also the smaller fixture shape (``category, name, sku,
    description`` plus attribute columns such as ``material, style_bags, pattern``), whose
    multi-valued cells and category levels are newline separated ("Gear\\nBags\\nCollections\\n
    Erin Recommends" is two paths, split at the merchandising root).

``auto`` picks magento for a full export (``sku`` + ``product_type`` + ``additional_attributes``,
tested first) and for the fixture shape (``sku`` + ``name`` + ``category``, and neither ``title``
nor ``parent_sku``, tested after Shopify and WooCommerce). A table with any of
``product_type``, ``additional_attributes``, ``configurable_variations`` is read as a full
export; otherwise as the fixture shape, through the generic parser without ``parent_sku``.
"""

from __future__ import annotations

import re

from zimage_assets.domain.catalog import photos
from zimage_assets.domain.catalog.generic import parse_flat
from zimage_assets.domain.catalog.normalising import (
    add_attribute,
    image_key,
    memo_category,
    normalise_value,
    one_line,
    pick_path,
    segment,
    variant_key,
)
from zimage_assets.domain.catalog.rows import Candidate, Columns, Rejects, inherit, not_photographed
from zimage_assets.domain.html_text import html_to_text

#: Required columns, as display names matched case-insensitively; a tuple means "one of these".
REQUIRED_COLUMNS = [("sku",), ("name",), ("product_type", "category")]

_KV = re.compile(r"\s*([A-Za-z0-9_]+)\s*=(.*)", re.S)


def is_full_export(cols: set[str]) -> bool:
    """``auto``: normalised column names of a full Magento 2 export."""
    return {"sku", "product_type", "additional_attributes"} <= cols


def is_fixture_shape(cols: set[str]) -> bool:
    """``auto``: normalised column names of the smaller Magento fixture shape."""
    return {"sku", "name", "category"} <= cols and not ({"title", "parent_sku"} & cols)


def parse(c: Columns, rej: Rejects, skip: set[int]) -> list[Candidate]:
    """The magento format's parser: a full export, else the fixture shape."""
    if c.has("product_type", "additional_attributes", "configurable_variations"):
        return _parse_full_export(c, rej, skip)
    return parse_flat(c, rej, skip, read_parent_sku=False)


@memo_category
def _full_export_category(cell: str) -> str:
    """``Default Category/Men/Tops,Default Category/Sale``: comma-separated paths (``\\/``
    escapes a slash), each without its root segment."""
    paths = []
    for p in cell.replace("\\/", "\x00").split(","):
        segs = [segment(s.replace("\x00", "/")) for s in p.split("/")]
        paths.append(segs[1:])  # the first segment is the root category
    return pick_path(paths)


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
    """``sku=X,size=XS|sku=Y,...`` -> one pairs dict per variation; None if malformed."""
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
    """The image attributes among ``k=v`` pairs."""
    attrs: dict[str, str] = {}
    for k, v in pairs.items():
        key = image_key(k)
        if key:
            add_attribute(attrs, key, normalise_value(v))
    return attrs


def _parse_full_export(c: Columns, rej: Rejects, skip: set[int]) -> list[Candidate]:
    """Rows, then variants linked to the configurable parents that list them."""
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
    images = [c.get(k) for k in ("base_image", "base_image_label", "small_image", "small_image_label", "thumbnail_image",
                                 "thumbnail_image_label", "additional_images", "additional_image_labels")]

    cands: list[Candidate] = []
    # child sku -> (parent candidate, the variation's own pairs)
    child_of: dict[str, tuple[Candidate, dict[str, str]]] = {}
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
        skipped = not_photographed({ptype})
        if skipped:
            rej.add(row, sku, c.name("product_type") or "product_type", types[i], skipped)
            continue
        var_list: list[dict[str, str]] = []
        if variations[i].strip():
            parsed = _parse_variations(variations[i])
            if parsed is None:
                rej.add(row, sku, "configurable_variations", variations[i],
                        "unparseable_value: configurable_variations is not "
                        "sku=X,k=v|sku=Y,... entries")
                continue
            var_list = parsed
        title = one_line(names[i])
        cand = Candidate(
            row=row, sku=sku, title=title, product_name=title,
            category=_full_export_category(cats[i]), attributes=_magento_attrs(pairs),
            description=html_to_text(descs[i] or shorts[i]),
            kind="parent" if ptype == "configurable" else "simple",
            sku_field=sku_col, title_field=name_col, photos=photos.magento_photos(*(col[i] for col in images)),
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
        for k, v in var.items():  # the variation's own options all count (variant_key)
            key = variant_key(k) if k != "sku" else None
            if key and v.strip():
                cand.attributes.setdefault(key, normalise_value(v))
        inherit(cand, parent, parent.sku)
    return cands

