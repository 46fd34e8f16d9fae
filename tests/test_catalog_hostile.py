"""Messy real-world catalog files: every row is accepted with its own values or rejected with a
reason naming the row and field; whole-file problems are refused with a message that says what
the file is and what to do. Pure parsing, no Dagster."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from zimage_assets.domain.catalog import CatalogFormatError, parse_catalog, read_catalog_table, reject_code


def _parse(text: str, fmt: str = "auto"):
    return parse_catalog(read_catalog_table(text.encode("utf-8"), "x.csv"), fmt)


def _codes(parsed) -> dict[int, str]:
    return {int(r["row"]): reject_code(r["reason"]) for r in parsed.rejects.to_dict("records")}


def _reasons(parsed) -> dict[int, str]:
    return {int(r["row"]): r["reason"] for r in parsed.rejects.to_dict("records")}


def _accounted(parsed) -> None:
    rows = set(parsed.skus["source_row"]) | set(parsed.rejects["row"])
    assert rows == set(range(1, parsed.rows_read + 1))


# ---- rows with too few fields, unbalanced quotes, repeated headers ----


@pytest.mark.parametrize(
    "lines, short_row",
    [
        (["A,Alpha,Red", "B Beta,Blue", "C,Gamma,Green"], 2),  # a missing comma
        (["A,Alpha,Red", "B,Beta,Blue", "C,Gam"], 3),  # a file cut mid-row
    ],
)
def test_a_row_with_fewer_fields_than_the_header_is_rejected_not_padded(lines, short_row):
    parsed = _parse("sku,title,color\n" + "\n".join(lines) + "\n", "generic")
    _accounted(parsed)
    assert _codes(parsed) == {short_row: "malformed_row"}
    assert "2 fields where the header has 3" in _reasons(parsed)[short_row]
    assert len(parsed.skus) == 2
    assert all(json.loads(attrs)["color"] in ("Red", "Blue", "Green") for attrs in parsed.skus["attributes"])


def test_an_unbalanced_quote_is_refused_with_the_row_where_it_opened():
    text = 'sku,title,color\nA,"Alpha,Red\nB,Beta,"Blue"\nC,Gamma,Green\n'
    with pytest.raises(CatalogFormatError, match=r"row 1 \(line 2\).*quote") as err:
        _parse(text)
    assert "x.csv" in str(err.value)


def test_an_unbalanced_quote_at_the_end_of_the_file_names_its_row():
    with pytest.raises(CatalogFormatError, match=r"row 2 \(line 3\).*never closed"):
        _parse('sku,title\nA,Alpha\nB,"Beta\nC,Gamma\n')


def test_legitimate_multi_line_quoted_fields_still_read():
    parsed = _parse('sku,title,description\nA,Alpha,"two\nlines, with ""quotes"""\nB,Beta,plain\n', "generic")
    assert list(parsed.skus["sku"]) == ["A", "B"] and parsed.rows_read == 2
    assert parsed.skus["description"][0] == 'two lines, with "quotes"'


@pytest.mark.parametrize("header", ["sku,title,color,color,sku", "SKU,title,Sku"])
def test_a_header_naming_a_column_twice_is_refused_naming_the_columns(header):
    with pytest.raises(CatalogFormatError, match="more than once") as err:
        _parse(header + "\n" + ",".join("v" * 1 for _ in header.split(",")) + "\n")
    assert "sku" in str(err.value).lower()


def test_a_dataframe_with_repeated_columns_is_refused_too():
    frame = pd.DataFrame([["A", "Alpha", "Red", "Blue"]], columns=["sku", "title", "color", "color"])
    with pytest.raises(CatalogFormatError, match="'color'"):
        parse_catalog(frame)


# ---- control characters, the same on every backend ----


def test_control_characters_are_removed_from_text_fields_and_noted():
    frame = pd.DataFrame(
        {
            "sku": ["NUL-1", "ESC-2", "OK-3"],
            "title": ["Mug\x00 One", "Tee\x1b[31m red", "Cap"],
            "description": ["Hand\x00made", "bell\x07 here", "fine"],
            "color": ["Re\x00d", "Blue", "Black"],
            "category": ["Gear\x00/Mugs", "Men/Tees", "Hats"],
        }
    )
    parsed = parse_catalog(frame, "generic")
    rows = {r["sku"]: r for r in parsed.skus.to_dict("records")}
    assert set(rows) == {"NUL-1", "ESC-2", "OK-3"}
    for row in rows.values():
        for field in ("title", "product_name", "description", "category", "attributes"):
            assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in row[field]), (field, row[field])
    assert rows["NUL-1"]["title"] == "Mug One" and json.loads(rows["NUL-1"]["attributes"]) == {"color": "Red"}
    assert rows["ESC-2"]["title"] == "Tee[31m red"
    assert "control characters removed" in rows["NUL-1"]["note"] and "title" in rows["NUL-1"]["note"]
    assert rows["OK-3"]["note"] == ""


@pytest.mark.parametrize("sku", ["ABC\u202e321", "A\u200bB", "\u2066X\u2069", "ZW\ufeffNBSP"])
def test_bidi_and_invisible_format_characters_are_refused_in_skus(sku):
    parsed = parse_catalog(pd.DataFrame({"sku": [sku, "PLAIN"], "title": ["t", "t"]}))
    assert list(parsed.skus["sku"]) == ["PLAIN"]
    assert _codes(parsed) == {1: "invalid_sku"}
    reject = parsed.rejects.to_dict("records")[0]
    assert "invisible" in reject["reason"] and not any(0x2000 <= ord(c) <= 0x206F or ord(c) == 0xFEFF for c in reject["value"])


def test_reject_values_never_carry_raw_control_characters():
    parsed = parse_catalog(pd.DataFrame({"sku": ["BAD\x00SKU", "OK"], "title": ["t", "t"]}))
    (reject,) = parsed.rejects.to_dict("records")
    assert "\x00" not in reject["value"] + reject["sku"] and "\\x00" in reject["value"]


# ---- Parquet columns of other types ----


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_parquet_list_columns_are_multi_valued_cells_not_python_reprs():
    data = _parquet(pd.DataFrame({"sku": ["A"], "title": ["Tee"], "category": [["Men", "Tops"]], "color": [["Red", "Blue"]]}))
    parsed = parse_catalog(read_catalog_table(data, "c.parquet"))
    (row,) = parsed.skus.to_dict("records")
    assert row["category"] == "Men/Tops"
    assert json.loads(row["attributes"]) == {"color": "Red, Blue"}
    assert "[" not in row["category"] + row["attributes"]


def test_parquet_bools_are_written_as_words():
    data = _parquet(pd.DataFrame({"sku": ["A", "B"], "title": ["Tee", "Cap"], "attr_logo": [True, False]}))
    table = read_catalog_table(data, "c.parquet")
    assert list(table["attr_logo"]) == ["true", "false"]


@pytest.mark.parametrize(
    "column, kind",
    [
        ({"dims": [{"w": 1, "h": 2}]}, "struct"),
        ({"color": [[["Red"], ["Blue"]]]}, "nested list"),
    ],
)
def test_parquet_nested_columns_are_refused_naming_the_column_and_type(column, kind):
    data = _parquet(pd.DataFrame({"sku": ["A"], "title": ["Tee"], **column}))
    name = next(iter(column))
    with pytest.raises(CatalogFormatError, match=rf"column '{name}'.*{kind}"):
        read_catalog_table(data, "c.parquet")


def test_a_dataframe_with_numpy_array_cells_reads_like_parquet():
    frame = pd.DataFrame({"sku": ["A"], "title": ["Tee"], "category": [np.array(["Men", "Tops"])]})
    assert parse_catalog(frame).skus["category"][0] == "Men/Tops"


# ---- files that are not CSV at all ----


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_an_xlsx_workbook_is_named_as_such():
    workbook = _zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    with pytest.raises(CatalogFormatError, match=r"Excel workbook \(\.xlsx\).*save it as CSV"):
        read_catalog_table(workbook, "products.xlsx")
    with pytest.raises(CatalogFormatError, match="Excel workbook"):
        read_catalog_table(workbook, "products.csv")  # named .csv, still a workbook


def test_a_zip_archive_is_named_as_such_with_its_members():
    archive = _zip_bytes({"export/products.csv": b"sku,title\nA,B\n"})
    with pytest.raises(CatalogFormatError, match=r"ZIP archive.*export/products\.csv.*unzip"):
        read_catalog_table(archive, "catalog.zip")


@pytest.mark.parametrize(
    "data, what", [(b"\x1f\x8b\x08\x00" + b"\x00" * 20, "gzip"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20, "Excel 97")]
)
def test_other_binary_files_are_named(data, what):
    with pytest.raises(CatalogFormatError, match=what):
        read_catalog_table(data, "x.csv")


# ---- WooCommerce: variants that look different, products that are not photographed ----

WOO_HEADER = "ID,Type,SKU,Name,Parent,Categories,Attribute 1 name,Attribute 1 value(s),Attribute 2 name,Attribute 2 value(s)\n"


def test_woocommerce_variants_that_differ_in_any_attribute_get_their_own_image():
    text = WOO_HEADER + (
        "1,variable,woo-hoodie,Hoodie,,Clothing > Hoodies,Color,\"Red, Blue\",Logo,\"Yes, No\"\n"
        "2,variation,woo-hoodie-blue,Hoodie - Blue,id:1,,Color,Blue,Logo,No\n"
        "3,variation,woo-hoodie-blue-logo,Hoodie - Blue,id:1,,Color,Blue,Logo,Yes\n"
        "4,variation,woo-hoodie-blue-s,Hoodie - Blue S,id:1,,Color,Blue,Size,S\n"
    )
    rows = {r["sku"]: r for r in _parse(text).skus.to_dict("records")}
    assert json.loads(rows["woo-hoodie-blue-logo"]["attributes"])["logo"] == "Yes"
    assert rows["woo-hoodie-blue"]["content_hash"] != rows["woo-hoodie-blue-logo"]["content_hash"]


def test_woocommerce_grouped_and_downloadable_products_are_skipped_with_a_reason():
    text = WOO_HEADER + (
        "1,simple,MUG,Mug,,Kitchen,,,,\n"
        "2,grouped,SET,Mug & Cap Set,,Sets,,,,\n"
        "3,\"simple, downloadable, virtual\",EBOOK,Style Guide (PDF),,Books,,,,\n"
        "4,\"simple, virtual\",CAP,Cap,,Hats,,,,\n"
    )
    parsed = _parse(text)
    _accounted(parsed)
    assert sorted(parsed.skus["sku"]) == ["CAP", "MUG"]
    assert _codes(parsed) == {2: "not_photographed", 3: "not_photographed"}
    assert "grouped" in _reasons(parsed)[2] and "downloadable" in _reasons(parsed)[3]


# ---- Shopify: a later block of the same Handle ----

SHOPIFY_HEADER = "Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price\n"


def test_shopify_a_later_block_of_a_handle_is_judged_by_its_own_content():
    text = SHOPIFY_HEADER + (
        "tee,Red Tee,Color,Red,TEE-R,10\n"
        "mug,Mug,Title,Default Title,MUG-1,5\n"
        "tee,Blue Tee,Color,Red,TEE-R,10\n"  # same Handle and SKU, different title
        "tee,Blue Tee,Color,Blue,TEE-B,10\n"
    )
    parsed = _parse(text)
    _accounted(parsed)
    assert _codes(parsed) == {3: "duplicate_sku"}
    rows = {r["sku"]: r for r in parsed.skus.to_dict("records")}
    assert rows["TEE-B"]["product_name"] == "Blue Tee" and rows["TEE-R"]["product_name"] == "Red Tee"


def test_shopify_a_later_block_without_a_title_still_belongs_to_its_product():
    text = SHOPIFY_HEADER + "tee,Red Tee,Color,Red,TEE-R,10\nmug,Mug,Title,Default Title,MUG-1,5\ntee,,,Blue,TEE-B,10\n"
    rows = {r["sku"]: r for r in _parse(text).skus.to_dict("records")}
    assert rows["TEE-B"]["product_name"] == "Red Tee" and json.loads(rows["TEE-B"]["attributes"]) == {"color": "Blue"}


def test_magento_grouped_and_downloadable_products_are_skipped_and_variation_options_count():
    text = (
        "sku,store_view_code,product_type,categories,name,additional_attributes,configurable_variations\n"
        'HOOD,,configurable,Default Category/Men,Hoodie,,"sku=HOOD-L,color=Blue,logo=Yes|sku=HOOD-N,color=Blue,logo=No"\n'
        "HOOD-L,,simple,Default Category/Men,Hoodie Logo,color=Blue,\n"
        "HOOD-N,,simple,Default Category/Men,Hoodie Plain,color=Blue,\n"
        "SET,,grouped,Default Category/Sets,Gym Set,,\n"
        "GUIDE,,downloadable,Default Category/Books,Fit Guide,,\n"
    )
    parsed = _parse(text)
    _accounted(parsed)
    assert _codes(parsed) == {4: "not_photographed", 5: "not_photographed"}
    rows = {r["sku"]: r for r in parsed.skus.to_dict("records")}
    assert json.loads(rows["HOOD-L"]["attributes"]) == {"color": "Blue", "logo": "Yes"}
    assert rows["HOOD-L"]["content_hash"] != rows["HOOD-N"]["content_hash"]
