"""Photo references at ingest, for every format: roles, labels, positions, variants, the content hash."""

from __future__ import annotations

import csv
import io
import json


from conftest import SAMPLE_CATALOG
from zimage_assets.domain.catalog import parse_catalog, read_catalog_table
from zimage_assets.domain.catalog.photos import hash_with_photos, same_look


def _parse(text: str, fmt: str = "auto", mapping=None):
    return parse_catalog(read_catalog_table(text.encode(), name="x.csv"), fmt, mapping)


def _photos(parsed) -> dict[str, list[tuple]]:
    return {r.sku: [(p["role"], p["ref"], p["label"], p["position"]) for p in json.loads(r.photos)] for r in parsed.skus.itertuples()}


def _csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def test_magento_base_small_thumbnail_and_additional_images_with_labels():
    sample = _photos(parse_catalog(read_catalog_table(SAMPLE_CATALOG.read_bytes(), name="p.csv")))
    assert sample["MH01-XS-Gray"] == [
        ("main", "/m/h/mh01-gray_main.jpg", "", 1), ("additional", "/m/h/mh01-gray_alt1.jpg", "", 2),
        ("additional", "/m/h/mh01-gray_back.jpg", "", 3)]  # small / thumbnail are the base image: listed once
    assert sample["MH01-XS-Gray"] == sample["MH01-XL-Gray"]  # size variants share their photos
    header = ["sku", "product_type", "name", "categories", "additional_attributes", "base_image", "base_image_label",
              "small_image", "small_image_label", "thumbnail_image", "thumbnail_image_label", "additional_images", "additional_image_labels"]
    rows = [["A1", "simple", "Bag", "Default Category/Gear/Bags", "color=Red", "/a/a1_main.jpg", "Front", "/a/a1_small.jpg", "Small",
             "no_selection", "", "/a/a1_back.jpg,/a/a1_main.jpg,/a/a1_side_a.jpg", "Back,Again,Side"]]
    assert _photos(_parse(_csv(header, rows)))["A1"] == [
        ("main", "/a/a1_main.jpg", "Front", 1), ("small", "/a/a1_small.jpg", "Small", 2),
        ("additional", "/a/a1_back.jpg", "Back", 3), ("additional", "/a/a1_side_a.jpg", "Side", 4)]


SHOPIFY_HEADER = ["Handle", "Title", "Option1 Name", "Option1 Value", "Option2 Name", "Option2 Value", "Variant SKU",
                  "Variant Price", "Image Src", "Image Position", "Image Alt Text", "Variant Image"]


def test_shopify_image_rows_by_position_with_alt_text_and_variant_images():
    rows = [
        ["tee", "Tee", "Size", "S", "", "", "TEE-S", "10", "https://cdn.shop/tee-back.jpg", "2", "Back of the tee", ""],
        ["tee", "", "Size", "M", "", "", "TEE-M", "10", "https://cdn.shop/tee-front.jpg", "1", "Front", "https://cdn.shop/tee-m.jpg"],
        ["tee", "", "", "", "", "", "", "", "https://cdn.shop/tee-detail.jpg", "3", "", ""],  # an image-only row
        ["hood", "Hoodie", "Color", "Red", "Size", "S", "H-RED-S", "30", "https://cdn.shop/hood.jpg", "1", "", "https://cdn.shop/hood-red.jpg"],
        ["hood", "", "Color", "Blue", "Size", "S", "H-BLUE-S", "30", "", "", "", ""],
    ]
    parsed = _parse(_csv(SHOPIFY_HEADER, rows))
    photos = _photos(parsed)
    product = [("main", "https://cdn.shop/tee-front.jpg", "Front", 1), ("additional", "https://cdn.shop/tee-back.jpg", "Back of the tee", 2),
               ("additional", "https://cdn.shop/tee-detail.jpg", "", 3)]
    assert photos["TEE-S"] == product  # only the size differs: the product's photos show it
    assert photos["TEE-M"][0] == ("main", "https://cdn.shop/tee-m.jpg", "", 1)  # its Variant Image first
    assert [p[1] for p in photos["TEE-M"][1:]] == [p[1] for p in product]
    assert photos["H-RED-S"] == [("main", "https://cdn.shop/hood-red.jpg", "", 1)]  # another colour: its own image only
    assert photos["H-BLUE-S"] == []  # no image of its own, and the product's show another colour


def test_woocommerce_images_first_is_main_and_variations_inherit_only_the_same_look():
    header = ["ID", "Type", "SKU", "Name", "Images", "Parent", "Attribute 1 name", "Attribute 1 value(s)", "Attribute 2 name", "Attribute 2 value(s)"]
    rows = [
        ["10", "variable", "CAP", "Cap", "https://shop.example/cap.jpg, https://shop.example/cap-side.jpg", "", "Color", "Red", "Size", "S, M"],
        ["11", "variation", "CAP-S", "Cap - S", "", "id:10", "Color", "Red", "Size", "S"],  # same colour: inherits
        ["12", "variation", "CAP-BLUE", "Cap - Blue", "", "id:10", "Color", "Blue", "", ""],  # another colour: none
        ["13", "variation", "CAP-GREEN", "Cap - Green", "https://shop.example/cap-green.jpg", "id:10", "Color", "Green", "", ""],
    ]
    photos = _photos(_parse(_csv(header, rows)))
    assert photos["CAP"] == [("main", "https://shop.example/cap.jpg", "", 1), ("additional", "https://shop.example/cap-side.jpg", "", 2)]
    assert photos["CAP-S"] == photos["CAP"]
    assert photos["CAP-BLUE"] == []
    assert photos["CAP-GREEN"] == [("main", "https://shop.example/cap-green.jpg", "", 1)]


def test_generic_photo_columns_through_the_mapping_and_parent_inheritance():
    header = ["Code", "Name", "Bild", "Rueckseite", "Farbe", "Parent", "Weitere"]
    rows = [["P1", "Lamp", "lamps/p1.jpg", "lamps/p1_back.jpg", "White", "", "lamps/p1_side.jpg|lamps/p1_top.jpg"],
            ["P1-EU", "Lamp EU plug", "", "", "White", "P1", ""],
            ["P1-BLK", "Lamp black", "", "", "Black", "P1", ""]]
    mapping = {"Code": "sku", "Name": "title", "Bild": "image", "Rueckseite": "image_back", "Farbe": "color", "Parent": "parent_sku",
               "Weitere": "images"}
    photos = _photos(_parse(_csv(header, rows), "generic", mapping))
    assert photos["P1"] == [("main", "lamps/p1.jpg", "", 1), ("additional", "lamps/p1_side.jpg", "", 2),
                            ("additional", "lamps/p1_top.jpg", "", 3), ("back", "lamps/p1_back.jpg", "", 4)]
    assert photos["P1-EU"] == photos["P1"] and photos["P1-BLK"] == []


def test_photo_references_are_part_of_the_content_hash():
    header = ["sku", "title", "color", "image"]
    one = _parse(_csv(header, [["S1", "Mug", "Red", "m/s1.jpg"], ["S2", "Mug", "Red", ""]]), "generic").skus.set_index("sku")
    other = _parse(_csv(header, [["S1", "Mug", "Red", "m/s1-v2.jpg"], ["S2", "Mug", "Red", ""]]), "generic").skus.set_index("sku")
    assert one.loc["S1", "content_hash"] != other.loc["S1", "content_hash"]  # a new photo: the SKU changed
    assert one.loc["S2", "content_hash"] == other.loc["S2", "content_hash"]
    assert one.loc["S1", "content_hash"] != one.loc["S2", "content_hash"]
    assert hash_with_photos("abc", []) == "abc"  # no photos: the hash it always had
    assert same_look({"color": "Red", "size": "S"}, {"color": "Red", "size": "M"}) and not same_look({"color": "Red"}, {})


def test_ingest_records_each_skus_photo_references(project):
    project.ingest()
    refs = project.state_db.sku_photos(["MH01-XS-Gray", "MH01-XS-Black", "nope"])
    assert [(r["position"], r["role"], r["ref"]) for r in refs["MH01-XS-Gray"]] == [
        (1, "main", "/m/h/mh01-gray_main.jpg"), (2, "additional", "/m/h/mh01-gray_alt1.jpg"), (3, "additional", "/m/h/mh01-gray_back.jpg")]
    assert set(refs) == {"MH01-XS-Gray", "MH01-XS-Black"}
    counts = project.state_db.table_counts()
    project.ingest()  # the same catalog again: nothing rewritten, nothing duplicated
    assert project.state_db.table_counts()["sku_photos"] == counts["sku_photos"] > 1994
