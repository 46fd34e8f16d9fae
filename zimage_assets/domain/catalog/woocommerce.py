"""The woocommerce format: WooCommerce product CSV exports (simple, variable and variation rows).

woocommerce
    WooCommerce product CSV export: ``ID, Type, SKU, Name, Published, Short description,
    Description, Categories, Tags, Images, Parent, Attribute N name, Attribute N value(s), ...``.
    ``variable`` -> ``parent``; ``variation`` -> ``variant`` (``Parent`` is ``id:123`` or the
    parent's SKU); ``grouped`` and ``downloadable`` rows are not photographed (rejected as
    ``not_photographed`` with the reason); everything else (simple, virtual, external) ->
    ``simple``. A variation's attributes all count (``Logo: Yes`` makes a variant of its own);
    other rows keep only the image attributes. A variation without
    SKU gets ``<parent SKU>-slug(value1)-slug(value2)`` with a note. ``product_name`` is the
    parent's Name (variation names are usually "Parent - Red"). Categories: ``A > B`` paths,
    several comma separated (``\\,`` escapes a comma); an ``Uncategorized`` path is ignored.
    Attribute values are comma separated (``\\,`` escapes). ``pa_`` prefixes are dropped.

``auto`` picks woocommerce for ``ID`` + ``Type`` + ``SKU`` + ``Name``.
"""

from __future__ import annotations

import re

from zimage_assets.domain.catalog import photos
from zimage_assets.domain.catalog.normalising import (
    WS,
    add_attribute,
    image_key,
    memo_category,
    one_line,
    pick_path,
    segment,
    slug,
    split_escaped_commas,
    variant_key,
)
from zimage_assets.domain.catalog.rows import Candidate, Columns, Rejects, inherit, not_photographed
from zimage_assets.domain.html_text import html_to_text

#: Required columns, as display names matched case-insensitively; a tuple means "one of these".
REQUIRED_COLUMNS = [("ID",), ("Type",), ("SKU",), ("Name",)]

_ATTR_COLUMN = re.compile(r"^attribute (\d+) (name|value\(s\)|values?)$")


def detects(cols: set[str]) -> bool:
    """``auto``: normalised column names of a WooCommerce product CSV."""
    return {"id", "type", "sku", "name"} <= cols


@memo_category
def _categories(cell: str) -> str:
    """``Clothing > Tees, Sale`` (``\\,`` escapes a comma); ``Uncategorized`` is ignored."""
    paths = [[segment(s) for s in p.split(">")] for p in split_escaped_commas(cell)]
    return pick_path([p for p in paths if [s for s in p if s] != ["Uncategorized"]])


def parse(c: Columns, rej: Rejects, skip: set[int]) -> list[Candidate]:
    """The woocommerce format's parser: one candidate per row, then variations linked."""
    ids = c.get("id")
    types = c.get("type")
    skus = c.get("sku")
    names = c.get("name")
    descs = c.get("description")
    shorts = c.get("short description")
    cats = c.get("categories")
    parents = c.get("parent")
    images = c.get("images")
    sku_col = c.name("sku") or "SKU"
    name_col = c.name("name") or "Name"
    slots: dict[str, dict[str, str]] = {}
    for norm, col in c.by_norm.items():
        m = _ATTR_COLUMN.match(norm)
        if m:
            slots.setdefault(m.group(1), {})["name" if m.group(2) == "name" else "value"] = col
    attr_slots = [(c.values(s["name"]), c.values(s["value"]))
                  for _, s in sorted(slots.items(), key=lambda kv: int(kv[0]))
                  if "name" in s and "value" in s]

    cands: list[Candidate] = []
    woo_kind: list[str] = []
    # per candidate: attribute keys the row names (even with an empty value), raw values
    mentioned: list[dict[str, str]] = []
    var_values: list[list[str]] = []
    by_id: dict[str, Candidate] = {}
    by_sku: dict[str, Candidate] = {}
    for i in range(c.n):
        if i in skip:
            continue
        type_set = {t.strip().lower() for t in types[i].split(",")}
        skipped = not_photographed(type_set)
        if skipped:
            rej.add(i + 1, skus[i].strip(), c.name("type") or "Type", types[i], skipped)
            continue
        kind = ("variant" if "variation" in type_set
                else "parent" if "variable" in type_set else "simple")
        attrs: dict[str, str] = {}
        named: dict[str, str] = {}
        values_in_order: list[str] = []
        for names_col, values_col in attr_slots:
            nm = names_col[i].strip()
            if not nm:
                continue
            vals = [v for v in split_escaped_commas(values_col[i]) if v]
            joined = ", ".join(dict.fromkeys(WS.sub(" ", v) for v in vals))
            values_in_order.extend(vals)
            key = variant_key(nm) if kind == "variant" else image_key(nm)
            if key:
                named[key] = joined
                add_attribute(attrs, key, joined)
        cand = Candidate(
            row=i + 1, sku=skus[i].strip(), title=one_line(names[i]),
            product_name=one_line(names[i]),
            category=_categories(cats[i]), attributes=attrs,
            description=html_to_text(descs[i] or shorts[i]), kind=kind,
            sku_field=sku_col, title_field=name_col, photos=photos.woocommerce_photos(images[i]),
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
            tail = [s for s in (slug(v) for v in values) if s]
            if base and tail:
                cand.sku = "-".join([base] + tail)
                cand.add_note("sku derived from parent SKU and attribute values")
        if not cand.title and parent is not None and parent.title and values:
            cand.title = f"{parent.title} - {', '.join(values)}"
            cand.add_note("title from parent name and attribute values")
        if parent is None and not ref:
            cand.add_note("variation without Parent; product_name from own title")
            continue
        inherit(cand, parent, ref, explicit=named)
    return cands

