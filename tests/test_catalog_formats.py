"""Tests for zimage_assets.domain.catalog: pure parsing, no Dagster, no network."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from zimage_assets.domain.catalog.photos import hash_with_photos
from zimage_assets.domain.catalog import (
    FORMATS,
    IMAGE_ATTRIBUTES,
    NON_VISUAL_ATTRIBUTES,
    REJECT_COLUMNS,
    SKU_COLUMNS,
    CatalogFormatError,
    ParsedCatalog,
    content_hash,
    detect_format,
    normalise_attribute_key,
    parse_catalog,
    read_catalog_table,
    reject_code,
)
from zimage_assets.domain.html_text import html_to_text

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "catalogs"
SAMPLE = ROOT / "zimage_assets" / "sample_data"
GENERIC_MAPPING = {"ProductCode": "sku", "Name": "title", "Dept": "category", "Body": "description",
                   "ParentCode": "parent_sku"}


def _parse_file(path: Path, fmt: str = "auto", mapping=None) -> ParsedCatalog:
    return parse_catalog(read_catalog_table(path), fmt, mapping)


def _parse_text(text: str, fmt: str = "auto", mapping=None) -> ParsedCatalog:
    return parse_catalog(read_catalog_table(text.encode("utf-8"), "x.csv"), fmt, mapping)


def _by_sku(parsed: ParsedCatalog) -> dict[str, dict]:
    return {r["sku"]: r for r in parsed.skus.to_dict("records")}


def _codes(parsed: ParsedCatalog) -> dict[int, str]:
    return {int(r["row"]): reject_code(r["reason"]) for r in parsed.rejects.to_dict("records")}


def _assert_invariant(parsed: ParsedCatalog) -> None:
    assert list(parsed.skus.columns) == SKU_COLUMNS
    assert list(parsed.rejects.columns) == REJECT_COLUMNS
    accepted = set(parsed.skus["source_row"])
    rejected = set(parsed.rejects["row"])
    assert not accepted & rejected
    assert accepted | rejected == set(range(1, parsed.rows_read + 1))
    assert parsed.rows_read == len(parsed.skus) + parsed.rejects["row"].nunique()
    assert parsed.skus["sku"].is_unique
    assert parsed.format in FORMATS and parsed.format != "auto"
    assert list(parsed.skus.index) == list(range(len(parsed.skus)))
    for attrs in parsed.skus["attributes"]:
        keys = json.loads(attrs).keys()
        assert not {"price", "qty", "sale", "new", "eco_collection", "has_options", "climate",
                    "activity", "performance_fabric", "erin_recommends"} & set(keys)
    assert (parsed.rejects["value"].str.len() <= 200).all()
    assert all(reject_code(r) and ": " in r for r in parsed.rejects["reason"])


# --------------------------------------------------------------------------------------------
# Magento: the real sample-data exports
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def magento_full() -> ParsedCatalog:
    return _parse_file(SAMPLE / "products.csv")


def test_magento_full_every_row_accounted(magento_full):
    p = magento_full
    assert p.format == "magento"
    assert p.rows_read == 1994
    assert len(p.skus) == 1994
    assert len(p.rejects) == 0
    assert p.skus["kind"].value_counts().to_dict() == {"variant": 1847, "parent": 147}
    _assert_invariant(p)


def test_magento_full_first_child_exact(magento_full):
    row = _by_sku(magento_full)["MH01-XS-Black"]
    assert row["title"] == "Chaz Kangeroo Hoodie-XS-Black"
    assert row["product_name"] == "Chaz Kangeroo Hoodie"
    assert row["category"] == "Men/Tops/Hoodies & Sweatshirts"
    assert row["attributes"] == (
        '{"color": "Black", "material": "Wool", "pattern": "Color-Blocked", "size": "XS"}')
    assert row["parent_sku"] == "MH01"
    assert row["kind"] == "variant"
    assert row["source_row"] == 1
    assert row["note"] == ""
    assert row["description"].startswith(
        "Ideal for cold-weather training or work outdoors, the Chaz Hoodie promises")
    assert row["description"].endswith(
        "• Two-tone gray heather hoodie. • Drawstring-adjustable hood. • Machine wash/dry.")
    assert row["content_hash"] == hash_with_photos(content_hash(
        "Chaz Kangeroo Hoodie", "Men/Tops/Hoodies & Sweatshirts",
        {"color": "Black", "material": "Wool", "pattern": "Color-Blocked"}, row["description"]),
        [{"role": "main", "ref": "/m/h/mh01-black_main.jpg"}])  # the photo references count too


def test_magento_full_parent_exact(magento_full):
    row = _by_sku(magento_full)["MH02"]
    assert row["kind"] == "parent"
    assert row["parent_sku"] == ""
    assert row["title"] == row["product_name"] == "Teton Pullover Hoodie"
    assert row["attributes"] == '{"material": "Wool, Fleece, Nylon", "pattern": "Solid"}'
    assert row["source_row"] == 32


def test_magento_children_get_parent_product_name(magento_full):
    skus = magento_full.skus
    parents = skus[skus["kind"] == "parent"].set_index("sku")["title"]
    children = skus[skus["kind"] == "variant"]
    assert children["parent_sku"].isin(parents.index).all()
    assert (children["product_name"] == children["parent_sku"].map(parents)).all()
    # every child's own title still starts with the parent's name ("...-XS-Black")
    assert all(t.startswith(n) for t, n in zip(children["title"], children["product_name"]))
    assert not skus["description"].str.contains("<", regex=False).any()
    assert not skus["description"].str.contains("&bull;", regex=False).any()
    assert set(skus["category"]) == {
        "Men/Tops/Hoodies & Sweatshirts", "Men/Tops/Tees", "Men/Tops/Jackets", "Men/Tops/Tanks",
        "Men/Bottoms/Pants", "Men/Bottoms/Shorts", "Women/Tops/Bras & Tanks",
        "Women/Tops/Tees", "Women/Tops/Jackets", "Women/Tops/Hoodies & Sweatshirts",
        "Women/Bottoms/Shorts", "Women/Bottoms/Pants"}


def test_magento_sizes_share_hash_colours_differ(magento_full):
    h = magento_full.skus.set_index("sku")["content_hash"]
    assert h["MH01-XS-Black"] == h["MH01-S-Black"] == h["MH01-XL-Black"]
    assert h["MH01-XS-Gray"] == h["MH01-S-Gray"]
    assert len({h["MH01-XS-Black"], h["MH01-XS-Gray"], h["MH01-XS-Orange"]}) == 3
    assert h["MH01-XS-Black"] != h["MH02-XS-Black"]
    assert h["MH01"] not in {h["MH01-XS-Black"], h["MH01-XS-Gray"]}
    # 147 parents; children collapse to one hash per (product, colour)
    children = magento_full.skus[magento_full.skus["kind"] == "variant"]
    colours = children["attributes"].map(lambda a: json.loads(a)["color"])
    assert children["content_hash"].nunique() == len(set(zip(children["parent_sku"], colours)))


def test_magento_gear_bags_fixture_shape():
    p = _parse_file(SAMPLE / "products_gear_bags.csv")
    assert (p.format, p.rows_read, len(p.skus), len(p.rejects)) == ("magento", 14, 14, 0)
    _assert_invariant(p)
    assert set(p.skus["category"]) == {"Gear/Bags"}  # "Gear\nBags\nCollections\n..." too
    assert set(p.skus["kind"]) == {"simple"}
    row = _by_sku(p)["24-MB01"]
    assert row["title"] == row["product_name"] == "Joust Duffle Bag"
    assert json.loads(row["attributes"]) == {
        "features": "Waterproof, TSA Approved, Lockable",
        "material": "Nylon, Polyester",
        "pattern": "Solid",
        "strap": "Adjustable, Cross Body, Detachable, Double, Padded, Shoulder",
        "style": "Luggage, Duffel, Exercise",
    }
    assert row["description"].endswith('Full-length zipper. L 29" x W 13" x H 11".')
    assert _by_sku(p)["24-MB04"]["category"] == "Gear/Bags"


def test_magento_gear_watches_fixture_shape():
    p = _parse_file(SAMPLE / "products_gear_watches.csv")
    assert (p.format, p.rows_read, len(p.skus), len(p.rejects)) == ("magento", 9, 9, 0)
    _assert_invariant(p)
    assert set(p.skus["category"]) == {"Gear/Watches"}
    # the cell is "\nMetal\nRubber\nSilicone": the empty first level is dropped
    assert _by_sku(p)["24-MG01"]["attributes"] == (
        '{"gender": "Men", "material": "Metal, Rubber, Silicone"}')


MAGENTO_SMALL_EXPORT = """\
sku,store_view_code,product_type,categories,name,description,additional_attributes,configurable_variations
MJ-S-Red,,simple,"Default Category/Men/Tops/Jackets",Storm Jacket-S-Red,<p>Warm.</p>,"size=S,color=Red",
MJ-L-Red,,simple,"Default Category/Men/Tops/Jackets",,,"size=L",
MJ,,configurable,"Default Category/Promotions/Men Sale,Default Category/Men/Tops/Jackets,Default Category",Storm Jacket,<p>Warm.</p>,"has_options=1,material=Nylon,style_general=Insulated|Rain Coat,pattern=Solid, with trim,climate=Cold,sale=Yes,new=No","sku=MJ-S-Red,size=S,color=Red|sku=MJ-L-Red,size=L,color=Red|sku=MJ-XL-Red,size=XL,color=Red"
MJ,default,configurable,,Storm Jacket (FR),,,
BAD-ATTR,,simple,Default Category/Gear,Bad Attr,,this is not kv,
BAD-VAR,,configurable,Default Category/Gear,Bad Var,,,garbage|sku=
LONE,,simple,Default Category/Gear/Bags,Lone Bag,,"color=Blue",
"""


def test_magento_full_links_rejects_and_fallbacks():
    p = _parse_text(MAGENTO_SMALL_EXPORT)
    assert p.format == "magento"
    _assert_invariant(p)
    assert _codes(p) == {4: "store_view_override", 5: "unparseable_value", 6: "unparseable_value"}
    rej = p.rejects.set_index("row")
    assert rej.loc[4, "field"] == "store_view_code" and rej.loc[4, "sku"] == "MJ"
    assert rej.loc[5, "field"] == "additional_attributes"
    assert rej.loc[5, "value"] == "this is not kv"
    assert rej.loc[6, "field"] == "configurable_variations"
    rows = _by_sku(p)
    assert list(p.skus["sku"]) == ["MJ-S-Red", "MJ-L-Red", "MJ", "LONE"]
    parent = rows["MJ"]
    assert parent["kind"] == "parent"
    assert parent["category"] == "Men/Tops/Jackets"  # a non-promotion path wins
    assert json.loads(parent["attributes"]) == {
        "material": "Nylon", "pattern": "Solid, with trim", "style": "Insulated, Rain Coat"}
    child = rows["MJ-S-Red"]
    assert (child["kind"], child["parent_sku"], child["product_name"]) == (
        "variant", "MJ", "Storm Jacket")
    assert json.loads(child["attributes"]) == {
        "color": "Red", "material": "Nylon", "pattern": "Solid, with trim", "size": "S",
        "style": "Insulated, Rain Coat"}
    # no name, no description, no colour of its own: from the parent and its variation entry
    bare = rows["MJ-L-Red"]
    assert bare["title"] == "Storm Jacket" and bare["note"] == "title from parent"
    assert bare["description"] == "Warm."
    assert json.loads(bare["attributes"])["color"] == "Red"
    assert bare["content_hash"] == child["content_hash"]
    assert rows["LONE"]["kind"] == "simple" and rows["LONE"]["category"] == "Gear/Bags"


# --------------------------------------------------------------------------------------------
# Shopify
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shopify() -> ParsedCatalog:
    return _parse_file(FIXTURES / "shopify_products.csv")


def test_shopify_variants_and_derived_skus(shopify):
    p = shopify
    assert (p.format, p.rows_read, len(p.skus)) == ("shopify", 17, 10)
    _assert_invariant(p)
    tee = p.skus[p.skus["parent_sku"] == "classic-tee"]
    assert list(tee["sku"]) == ["classic-tee-red-m", "classic-tee-red-l", "CT-NAVY-M",
                                "classic-tee-navy-l"]
    assert list(tee["title"]) == ["Classic Tee - Red / M", "Classic Tee - Red / L",
                                  "Classic Tee - Navy / M", "Classic Tee - Navy / L"]
    assert set(tee["product_name"]) == {"Classic Tee"}
    assert set(tee["kind"]) == {"variant"}
    assert set(tee["category"]) == {"Clothing/Shirts & Tops"}
    derived = "sku derived from Handle and option values"
    assert list(tee["note"]) == [derived, derived, "", derived]
    assert list(tee["source_row"]) == [1, 2, 3, 4]
    first = tee.iloc[0]
    assert first["attributes"] == '{"color": "Red", "size": "M"}'  # option beats metafield
    assert first["description"] == (
        "Soft organic cotton tee & a relaxed fit. Crew neck Machine wash cold")
    h = tee.set_index("sku")["content_hash"]
    assert h["classic-tee-red-m"] == h["classic-tee-red-l"]
    assert h["CT-NAVY-M"] == h["classic-tee-navy-l"] != h["classic-tee-red-m"]
    # no parent row is emitted for the Handle
    assert "classic-tee" not in set(p.skus["sku"])


def test_shopify_simple_products_and_rejects(shopify):
    rows = _by_sku(shopify)
    tote = rows["TOTE-001"]
    assert (tote["kind"], tote["parent_sku"], tote["title"], tote["category"]) == (
        "simple", "", "Canvas Tote", "Luggage & Bags/Shopping Totes")
    assert tote["description"] == "Sturdy 12 oz canvas tote."  # &nbsp; collapsed
    beanie = rows["wool-beanie"]
    assert (beanie["kind"], beanie["category"], beanie["note"]) == (
        "simple", "Hats", "sku is the Handle (no Variant SKU)")
    mug = rows["MUG-☕-01"]
    assert (mug["title"], mug["category"]) == ("Café Mug ☕", "Drinkware/Mugs")
    assert mug["description"] == "Stoneware… 350 ml"  # &#8239; is whitespace: collapsed
    assert _codes(shopify) == {
        5: "image_only_row", 7: "image_only_row", 12: "invalid_sku", 13: "invalid_sku",
        14: "missing_title", 15: "missing_handle", 16: "duplicate_sku"}
    rej = shopify.rejects.set_index("row")
    assert rej.loc[16, "reason"] == (
        "duplicate_sku: SKU already on row 3 with different content")
    assert rej.loc[5, "field"] == "Image Src"
    assert rej.loc[12, "value"] == "X" * 200  # truncated
    assert rej.loc[15, "sku"] == "ORPHAN-1"


def test_shopify_hostile_skus_verbatim(shopify):
    rows = _by_sku(shopify)
    assert rows["../../etc/x"]["attributes"] == '{"color": "Grün"}'  # "Colour" option
    assert rows["a/b"]["title"] == "Pathological SKUs - Blau"
    assert "with space" in rows  # surrounding whitespace stripped, inner kept
    assert rows["../../etc/x"]["description"] == "Edge cases"  # <script> content dropped


# --------------------------------------------------------------------------------------------
# WooCommerce
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def woo() -> ParsedCatalog:
    return _parse_file(FIXTURES / "woocommerce_products.csv")


def test_woocommerce_variations(woo):
    p = woo
    assert (p.format, p.rows_read, len(p.skus)) == ("woocommerce", 13, 7)
    _assert_invariant(p)
    rows = _by_sku(p)
    parent = rows["WOO-HOODIE"]
    assert (parent["kind"], parent["category"]) == ("parent", "Clothing/Hoodies")
    assert json.loads(parent["attributes"]) == {
        "color": "Blue, Green", "material": "Organic Cotton", "size": "S, M"}
    assert parent["description"] == "Brushed fleece hoodie. Kangaroo pocket Ribbed & cuffed"
    v = p.skus[p.skus["parent_sku"] == "WOO-HOODIE"]
    assert list(v["sku"]) == ["WOO-HOODIE-BLUE-S", "WOO-HOODIE-blue-m", "WOO-HOODIE-green-s"]
    assert list(v["title"]) == ["Hoodie - Blue, S", "Hoodie - Blue, M", "Hoodie - Green, S"]
    assert set(v["product_name"]) == {"Hoodie"}
    assert set(v["kind"]) == {"variant"}
    assert set(v["category"]) == {"Clothing/Hoodies"}
    assert list(v["note"]) == [
        "", "sku derived from parent SKU and attribute values",
        "sku derived from parent SKU and attribute values; "
        "title from parent name and attribute values"]
    assert json.loads(rows["WOO-HOODIE-blue-m"]["attributes"]) == {
        "color": "Blue", "material": "Organic Cotton", "size": "M"}
    assert rows["WOO-HOODIE-BLUE-S"]["content_hash"] == rows["WOO-HOODIE-blue-m"]["content_hash"]
    assert rows["WOO-HOODIE-blue-m"]["content_hash"] != rows["WOO-HOODIE-green-s"]["content_hash"]


def test_woocommerce_simple_orphans_and_rejects(woo):
    rows = _by_sku(woo)
    cap = rows["WOO-CAP"]
    assert (cap["kind"], cap["category"], cap["description"]) == (
        "simple", "Accessories/Hats/Caps", "Six-panel cap")
    assert cap["attributes"] == '{"color": "Black", "fit": "Adjustable"}'
    orphan = rows["WOO-ORPHAN-RED"]
    assert (orphan["kind"], orphan["parent_sku"], orphan["product_name"]) == (
        "variant", "", "Ghost - Red")
    assert orphan["note"] == "parent 'id:999' not in catalog; product_name from own title"
    assert orphan["attributes"] == '{"color": "Red"}'  # pa_color
    mug = rows["WOO-MUG"]
    assert mug["category"] == "Küche/Becher, Tassen"  # "\," is an escaped comma
    assert mug["title"] == "Tasse „Grüße“ 😀"
    assert mug["description"] == "Handgemachte Tasse. Spülmaschinenfest."
    assert "WOO-SET" not in rows  # grouped: a set of other products
    assert _codes(woo) == {7: "missing_sku", 8: "duplicate_identical", 9: "missing_title",
                           11: "missing_sku", 12: "missing_sku", 13: "not_photographed"}
    assert woo.rejects.set_index("row").loc[8, "reason"] == (
        "duplicate_identical: same SKU and content as row 5")


# --------------------------------------------------------------------------------------------
# Generic
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generic() -> ParsedCatalog:
    return _parse_file(FIXTURES / "generic_mapped.csv", "generic", GENERIC_MAPPING)


def test_generic_with_mapping(generic):
    p = generic
    assert (p.format, p.rows_read, len(p.skus)) == ("generic", 14, 9)
    _assert_invariant(p)
    rows = _by_sku(p)
    assert rows["JKT-100"]["kind"] == "parent"
    y = rows["JKT-100-YEL-S"]
    assert (y["kind"], y["parent_sku"], y["product_name"], y["title"]) == (
        "variant", "JKT-100", "Rain Jacket", "Rain Jacket Yellow S")
    assert (y["category"], y["description"]) == ("Outerwear/Jackets", "Packable rain shell.")
    assert y["attributes"] == '{"color": "Yellow", "size": "S"}'  # Colour -> color; no price
    assert y["content_hash"] == rows["JKT-100-YEL-M"]["content_hash"]
    assert y["content_hash"] != rows["JKT-100-BLK-S"]["content_hash"]
    lone = rows["JKT-200-RED-S"]
    assert (lone["kind"], lone["parent_sku"], lone["product_name"]) == (
        "variant", "JKT-200", "Lone Variant Red S")
    assert lone["note"] == "parent 'JKT-200' not in catalog; product_name from own title"


def test_generic_duplicates_and_rejects(generic):
    assert _codes(generic) == {10: "invalid_sku", 11: "missing_sku", 12: "duplicate_identical",
                               13: "duplicate_sku", 14: "missing_title"}
    rej = generic.rejects.set_index("row")
    assert rej.loc[12, "reason"] == "duplicate_identical: same SKU and content as row 2"
    assert rej.loc[13, "reason"] == "duplicate_sku: SKU already on row 3 with different content"
    assert rej.loc[11, "reason"] == "missing_sku: no SKU and none derivable"
    assert rej.loc[10, "reason"] == "invalid_sku: 300 characters, more than 255"
    assert (rej.loc[14, "sku"], rej.loc[14, "field"]) == ("NO-TITLE", "title")
    # the later duplicate did not replace the first one
    assert _by_sku(generic)["JKT-100-YEL-M"]["title"] == "Rain Jacket Yellow M"


def test_generic_hostile_skus_kept_verbatim(generic):
    skus = set(generic.skus["sku"])
    assert {"../../etc/x", "a/b", "with space", "Ü-ñíçødé-✓"} <= skus
    assert not any(len(s) > 255 for s in skus)


def test_generic_default_columns_name_attr_prefix_and_multivalue():
    text = (
        "SKU,name,Category,description,Colour,material,attr_heel_height_mm,price,qty,sale\n"
        "S1,  Trail   Runner ,Shoes/Running,<b>Fast</b>&amp;light,Black|Blue,\"Mesh\nRubber\","
        "12,89.99,4,Yes\n"
        "S2,Desk Lamp,Home > Lighting > Desk/Table,,,,,10,1,No\n"
    )
    assert detect_format(read_catalog_table(text).columns) == "magento"  # sku+name+category
    p = _parse_text(text, "generic")
    assert p.format == "generic"
    _assert_invariant(p)
    rows = _by_sku(p)
    s1 = rows["S1"]
    assert s1["title"] == "Trail Runner"
    assert s1["category"] == "Shoes/Running"
    assert s1["description"] == "Fast&light"
    assert s1["attributes"] == (
        '{"color": "Black, Blue", "heel_height_mm": "12", "material": "Mesh, Rubber"}')
    assert rows["S2"]["category"] == "Home/Lighting/Desk-Table"
    assert rows["S2"]["attributes"] == "{}"
    # price / qty / sale changes do not change the hash
    p2 = _parse_text(text.replace("89.99,4,Yes", "10.00,0,No"), "generic")
    assert list(p2.skus["content_hash"]) == list(p.skus["content_hash"])
    # a colour change does
    p3 = _parse_text(text.replace("Black|Blue", "Red"), "generic")
    # the same table read as the Magento fixture shape gives the same SKUs
    pm = _parse_text(text)
    assert pm.format == "magento"
    pd.testing.assert_frame_equal(pm.skus, p.skus)
    assert p3.skus["content_hash"][0] != p.skus["content_hash"][0]


def test_generic_control_characters_rejected():
    df = pd.DataFrame({"sku": ["OK-1", "bad\x00nul", "bad\x1besc", "line\nbreak"],
                       "title": ["a", "b", "c", "d"]})
    p = parse_catalog(df)
    assert list(p.skus["sku"]) == ["OK-1"]
    assert _codes(p) == {2: "invalid_sku", 3: "invalid_sku", 4: "invalid_sku"}


def test_generic_dataframe_with_non_string_dtypes():
    df = pd.DataFrame({"sku": [101, 102], "title": ["A", None], "size": [38.0, float("nan")]})
    p = parse_catalog(df)
    assert list(p.skus["sku"]) == ["101"]
    assert p.skus["attributes"][0] == '{"size": "38"}'
    assert _codes(p) == {2: "missing_title"}


# --------------------------------------------------------------------------------------------
# Reading: Parquet, CSV dialects, unreadable input
# --------------------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path, generic):
    raw = read_catalog_table(FIXTURES / "generic_mapped.csv")
    path = tmp_path / "catalog.parquet"
    raw.to_parquet(path, index=False)
    from_path = read_catalog_table(path)
    from_bytes = read_catalog_table(path.read_bytes())  # sniffed from b"PAR1"
    pd.testing.assert_frame_equal(from_path, raw)
    pd.testing.assert_frame_equal(from_bytes, raw)
    p = parse_catalog(from_bytes, "auto", GENERIC_MAPPING)
    pd.testing.assert_frame_equal(p.skus, generic.skus)
    pd.testing.assert_frame_equal(p.rejects, generic.rejects)


def test_parquet_typed_columns_become_strings(tmp_path):
    df = pd.DataFrame({"sku": ["A", "B"], "title": ["x", None], "qty": [3, 4],
                       "size": [42.0, None], "weight": [1.5, None]})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    raw = read_catalog_table(buf.getvalue(), "whatever.bin")
    assert raw.to_dict("list") == {"sku": ["A", "B"], "title": ["x", ""], "qty": ["3", "4"],
                                   "size": ["42", ""], "weight": ["1.5", ""]}


def test_csv_bom_semicolon_tsv_and_text():
    bom = b"\xef\xbb\xbfsku;title;colour\nA;Alpha;Red\n"
    assert read_catalog_table(bom, "x.csv").to_dict("list") == {
        "sku": ["A"], "title": ["Alpha"], "colour": ["Red"]}
    tsv = read_catalog_table(b"sku\ttitle\nA\tAl, pha\n", "x.tsv")
    assert tsv.to_dict("list") == {"sku": ["A"], "title": ["Al, pha"]}
    text = read_catalog_table('sku,title\nA,"two\nlines"\n')
    assert text.to_dict("list") == {"sku": ["A"], "title": ["two\nlines"]}


@pytest.mark.parametrize("bad_row", [1, 2, 3])  # pandas warned on row 1 and raised on later rows
def test_ragged_row_is_rejected_not_shifted(bad_row):
    lines = ["A,Alpha,Red", "B,Beta,Blue", "C,Gamma,Green", "D,Delta"]  # a short row too
    lines[bad_row - 1] += ",EXTRA"
    raw = read_catalog_table(("sku,title,color\n" + "\n".join(lines) + "\n").encode(), "x.csv")
    assert raw.attrs["malformed_rows"] == {
        bad_row: "4 fields where the header has 3; extra: EXTRA",
        4: "2 fields where the header has 3 (a missing separator, or a cut line)",
    }
    assert list(raw["sku"]) == ["A", "B", "C", "D"]
    assert list(raw["color"]) == ["Red", "Blue", "Green", ""]
    p = parse_catalog(raw)
    _assert_invariant(p)
    assert list(p.skus["sku"]) == [s for i, s in enumerate("ABC", 1) if i != bad_row]
    assert _codes(p) == {bad_row: "malformed_row", 4: "malformed_row"}


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"sku,title\n\xff\xfeA,B\n", "x.csv", "not UTF-8"),
        (b"not parquet at all", "x.parquet", "not a Parquet file"),
        (b"PAR1garbage", "", "not a readable Parquet file"),
        (b'sku,title\nA,"never closed\n', "x.csv", "not valid CSV"),
        (b"", "x.csv", "catalog is empty"),
    ],
)
def test_unreadable_input(data, name, message):
    with pytest.raises(CatalogFormatError, match=message):
        read_catalog_table(data, name)


def test_missing_file(tmp_path):
    with pytest.raises(CatalogFormatError, match="no such file"):
        read_catalog_table(tmp_path / "nope.csv")


# --------------------------------------------------------------------------------------------
# Formats, detection, errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "columns, expected",
    [
        (["sku", "store_view_code", "product_type", "name", "additional_attributes"], "magento"),
        (["category", "name", "sku", "description", "material"], "magento"),
        (["Handle", "Title", "Option1 Name", "Option1 Value", "Variant SKU"], "shopify"),
        (["handle", "title", "variant sku"], "shopify"),
        (["ID", "Type", "SKU", "Name", "Parent", "Attribute 1 name"], "woocommerce"),
        (["sku", "title", "category"], "generic"),
        (["sku", "name", "category", "parent_sku"], "generic"),
        (["ProductCode", "Name"], "generic"),
    ],
)
def test_detect_format(columns, expected):
    assert detect_format(columns) == expected


def test_explicit_format_missing_columns_named():
    df = pd.DataFrame({"Title": ["T"], "Variant Price": ["1"]})
    with pytest.raises(CatalogFormatError) as err:
        parse_catalog(df, "shopify")
    msg = str(err.value)
    assert ("shopify catalog is missing required columns: Handle, Variant SKU or Option1 Value"
            in msg)
    with pytest.raises(CatalogFormatError, match=r"woocommerce catalog is missing required "
                                                 r"columns: ID, Type"):
        parse_catalog(pd.DataFrame({"SKU": ["a"], "Name": ["b"]}), "woocommerce")
    with pytest.raises(CatalogFormatError, match=r"as generic is missing required columns: "
                                                 r"title or name"):
        parse_catalog(pd.DataFrame({"sku": ["a"], "label": ["b"]}))


def test_unknown_format_lists_formats():
    with pytest.raises(CatalogFormatError) as err:
        parse_catalog(pd.DataFrame({"sku": ["a"], "title": ["b"]}), "bigcommerce")
    assert "'bigcommerce'" in str(err.value)
    assert "auto, generic, magento, shopify, woocommerce" in str(err.value)


def test_empty_catalog():
    raw = read_catalog_table(b"sku,title,category\n", "x.csv")
    assert list(raw.columns) == ["sku", "title", "category"] and len(raw) == 0
    with pytest.raises(CatalogFormatError, match="catalog is empty"):
        parse_catalog(raw)


def test_mapping_errors():
    df = pd.DataFrame({"Code": ["a"], "Name": ["b"], "title": ["c"]})
    with pytest.raises(CatalogFormatError, match="not in the catalog: Nope"):
        parse_catalog(df, mapping={"Nope": "sku"})
    with pytest.raises(CatalogFormatError, match="two columns named 'title'"):
        parse_catalog(df, mapping={"Code": "sku", "Name": "title"})


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def test_html_to_text():
    assert html_to_text("<p>Warm &amp; dry.</p><ul><li>Hood</li><li>Zip</li></ul>") == (
        "Warm & dry. Hood Zip")
    assert html_to_text("a<br/>b&nbsp;c <script>x<y</script>d&#39;e <b>bo</b>ld") == (
        "a b c d'e bold")
    assert html_to_text("<style>p{color:red}</style>  plain\n\n text  ") == "plain text"
    assert html_to_text("Tom &amp; Jerry &lt;3") == "Tom & Jerry <3"
    assert html_to_text("unclosed <b>bold") == "unclosed bold"
    assert html_to_text("") == ""


def test_content_hash_rules():
    base = content_hash("Hoodie", "Men/Tops", {"color": "Black", "size": "XS"}, "Warm.")
    assert base == content_hash("Hoodie", "Men/Tops", {"size": "XL", "color": "Black"}, "Warm.")
    assert base == content_hash("Hoodie", "Men/Tops", '{"color": "Black"}', "Warm.")
    assert base != content_hash("Hoodie", "Men/Tops", {"color": "Gray", "size": "XS"}, "Warm.")
    assert base != content_hash("Hoodie", "Men/Tops", {"color": "Black"}, "Warm!")
    assert base != content_hash("Hoodie", "Women/Tops", {"color": "Black"}, "Warm.")
    assert len(base) == 64 and int(base, 16) >= 0
    assert NON_VISUAL_ATTRIBUTES == {"size"}
    assert {"color", "size", "material", "pattern", "style", "strap", "features"} <= (
        IMAGE_ATTRIBUTES)
    assert not {"price", "qty", "sale", "new", "eco_collection"} & IMAGE_ATTRIBUTES


@pytest.mark.parametrize(
    "name, key",
    [("Colour", "color"), ("style_bags", "style"), ("strap_bags", "strap"),
     ("features_bags", "features"), ("pa_color", "color"), ("attr_Heel Height", "heel"),
     ("ColorName", "color"), ("Color (product.metafields.shopify.color-pattern)", "color"),
     ("Google Shopping / Gender", "gender"), ("Sleeve Length", "sleeve")],
)
def test_normalise_attribute_key(name, key):
    assert normalise_attribute_key(name) == key


def test_sample_data_copied_with_license():
    for name in ("products.csv", "products_gear_bags.csv", "products_gear_watches.csv",
                 "LICENSE_AFL.txt"):
        assert (SAMPLE / name).stat().st_size > 1000
    readme = (SAMPLE / "README.md").read_text()
    assert "53807565" in readme and "AFL-3.0" in readme
