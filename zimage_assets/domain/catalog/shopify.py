"""The shopify format: Shopify product CSV exports, one row per variant grouped by Handle.

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
    * A later, separate block of rows with the same Handle and a different Title is read with its
      own Title (a SKU it repeats is then a ``duplicate_sku``); a later block without a Title
      continues the product.
    * Rows with an Image Src and no variant data -> ``image_only_row``; other rows without
      variant data -> ``no_variant_data``; rows without Handle -> ``missing_handle``.
    * Category: the last :data:`SHOPIFY_CATEGORY_DEPTH` segments of ``Product Category`` (a
      Google/Shopify taxonomy path, ``>`` separated), else ``Type``.

``auto`` picks shopify for ``Handle`` + ``Variant SKU`` or ``Option1 Value``.
"""

from __future__ import annotations

from zimage_assets.domain.catalog import photos
from zimage_assets.domain.catalog.normalising import (
    add_attribute,
    category_path,
    column_key,
    image_key,
    memo_category,
    normalise_value,
    one_line,
    segment,
    slug,
    variant_key,
)
from zimage_assets.domain.catalog.rows import Candidate, Columns, Rejects
from zimage_assets.domain.html_text import html_to_text

#: Required columns, as display names matched case-insensitively; a tuple means "one of these".
REQUIRED_COLUMNS = [("Handle",), ("Title",), ("Variant SKU", "Option1 Value")]
#: How many trailing segments of the Product Category taxonomy path become the category.
SHOPIFY_CATEGORY_DEPTH = 2

_VARIANT_FIELDS = (
    "variant sku", "variant price", "variant barcode", "variant grams",
    "variant inventory qty", "variant compare at price", "variant weight",
)


def detects(cols: set[str]) -> bool:
    """``auto``: normalised column names of a Shopify product CSV."""
    return "handle" in cols and bool({"variant sku", "option1 value"} & cols)


@memo_category
def _product_category(cell: str) -> str:
    """``Apparel & Accessories > Clothing > Shirts & Tops`` -> ``Clothing/Shirts & Tops``; a bare
    ``gid://`` id -> ``""``."""
    if ">" not in cell and cell.lower().startswith("gid:"):
        return ""
    segs = [s for s in (segment(s) for s in cell.split(">")) if s]
    return "/".join(segs[-SHOPIFY_CATEGORY_DEPTH:])


def parse(c: Columns, rej: Rejects, skip: set[int]) -> list[Candidate]:
    """The shopify format's parser: rows grouped by Handle, one candidate per variant row."""
    handles = c.get("handle")
    titles = c.get("title")
    bodies = c.get("body (html)", "body html", "body")
    types = c.get("type")
    pcats = c.get("product category")
    images = c.get("image src")
    image_positions, image_alts, variant_images = c.get("image position"), c.get("image alt text"), c.get("variant image")
    vskus = c.get("variant sku")
    opt_names = [c.get(f"option{k} name") for k in (1, 2, 3)]
    opt_values = [c.get(f"option{k} value") for k in (1, 2, 3)]
    variant_fields = [c.get(f) for f in _VARIANT_FIELDS if c.has(f)]
    handle_col = c.name("handle") or "Handle"
    vsku_col = c.name("variant sku") or "Variant SKU"
    title_col = c.name("title") or "Title"
    # product-level attribute columns: metafields / Google Shopping fields in the allow-list
    product_attr_cols = []
    for col in c.raw.columns:
        norm = column_key(col)
        if "metafields." in norm or norm.startswith("google shopping /"):
            key = image_key(col)
            if key:
                product_attr_cols.append((key, c.values(col)))

    # Contiguous blocks of one Handle; a later block of the same Handle with a Title of its own
    # that differs is read as what it says (its own product fields), not as the first block's.
    blocks: list[tuple[str, list[int]]] = []
    for i in range(c.n):
        if i in skip:
            continue
        handle = handles[i].strip()
        if not handle:
            rej.add(i + 1, vskus[i].strip(), handle_col, "",
                    "missing_handle: row has no Handle, so it belongs to no product")
            continue
        if not blocks or blocks[-1][0] != handle:
            blocks.append((handle, []))
        blocks[-1][1].append(i)
    first_title: dict[str, str] = {}
    block_titles = []
    for handle, idxs in blocks:
        title = next((one_line(titles[i]) for i in idxs if titles[i].strip()), "")
        block_titles.append(title)
        if title:
            first_title.setdefault(handle, title)
    groups: dict[tuple[str, str], list[int]] = {}
    for (handle, idxs), title in zip(blocks, block_titles):
        groups.setdefault((handle, title or first_title.get(handle, "")), []).extend(idxs)

    cands: list[Candidate] = []
    for (handle, _), idxs in groups.items():
        prod = next((i for i in idxs if titles[i].strip()), idxs[0])
        title = one_line(titles[prod])
        names = []
        for k in range(3):
            nm = opt_names[k][prod].strip() or next(
                (opt_names[k][i].strip() for i in idxs if opt_names[k][i].strip()), "")
            names.append(nm)
        category = _product_category(pcats[prod]) or category_path(types[prod])
        description = html_to_text(bodies[prod])
        product_photos = photos.shopify_product_photos([(images[i], image_positions[i], image_alts[i]) for i in idxs])
        product_attrs: dict[str, str] = {}
        for key, vals in product_attr_cols:
            v = vals[prod]
            if v:
                add_attribute(product_attrs, key, normalise_value(v.replace(";", "|")))

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
            cand = Candidate(
                row=i + 1, sku=sku or handle, title=title, product_name=title,
                category=category, attributes=dict(product_attrs), description=description,
                sku_field=vsku_col, title_field=title_col,
                photos=photos.variant_photos(variant_images[i], {}, {}, product_photos),
            )
            if not sku:
                cand.add_note("sku is the Handle (no Variant SKU)")
            cands.append(cand)
            continue
        for i in variant_rows:
            values = [opt_values[k][i].strip() for k in range(3)]
            attrs = dict(product_attrs)
            for nm, val in zip(names, values):
                key = variant_key(nm) if nm else None
                if key and val:
                    attrs[key] = normalise_value(val)
            shown = [v for v in values if v]
            sku = vskus[i].strip()
            notes = []
            if not sku:
                parts = [slug(handle)] + [slug(v) for v in shown]
                parts = [p for p in parts if p]
                if len(parts) > 1:
                    sku = "-".join(parts)
                    notes.append("sku derived from Handle and option values")
            cands.append(Candidate(
                row=i + 1, sku=sku,
                title=f"{title} - {' / '.join(shown)}" if title and shown else title,
                product_name=title, category=category, attributes=attrs,
                description=description, parent_sku=handle, kind="variant", notes=notes,
                sku_field=vsku_col, title_field=title_col,
                photos=photos.variant_photos(variant_images[i], attrs, product_attrs, product_photos),
            ))
    return cands

