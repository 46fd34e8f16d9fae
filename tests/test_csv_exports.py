"""CSV files people open in a spreadsheet (manifests, the review queue) never carry a live
formula from untrusted catalog text; JSON keeps the original; a review file round-trips."""

from __future__ import annotations

import csv
import io
import json

import pytest

from zimage_assets.domain.manifest import manifest_csv, manifest_json

HOSTILE = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB"]


@pytest.mark.parametrize("sku", HOSTILE)
def test_manifest_csv_neutralises_formulas_and_json_keeps_the_original(sku):
    row = {"sku": sku, "view": "front", "url": "https://cdn/x.png", "key": "public/x.png", "width": 512, "height": 512,
           "spec_hash": "ab", "sha256": "cd", "seed": 7, "model_id": "m"}
    (written,) = list(csv.DictReader(io.StringIO(manifest_csv([row]).decode(), newline="")))
    assert written["sku"] == "'" + sku and written["width"] == "512"
    assert json.loads(manifest_json("b", [row]))["images"][0]["sku"] == sku


def test_plain_values_are_left_alone():
    from zimage_assets.domain.spreadsheet import spreadsheet_cell

    for value in ("MH01-XS-Black", "a=b", "12", "", "O'Brien"):
        assert spreadsheet_cell(value) == value
    assert spreadsheet_cell(-3) == -3  # numbers stay numbers


def test_the_review_queue_csv_is_safe_and_its_decisions_come_back_to_the_real_skus(project, tmp_path):
    from zimage_assets.domain.review import parse_review_csv

    hostile = "=cmd|' /C calc'!A0"
    # A prompt-review item: the catalog title makes its prompt REVIEW.
    project.ingest(_catalog(tmp_path, [(hostile, "Sexy red dress", "Women/Dresses", "Red")]), fmt="generic")
    (batch_id,) = project.mint(skus=[hostile])
    project.generate(batch_id)
    import dagster as dg

    from zimage_assets.assets.review import QUEUE_CSV_KEY, review_queue

    dg.materialize([review_queue], resources=project.resources, instance=project.instance)
    text = project.store.get(QUEUE_CSV_KEY).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {r["sku"] for r in rows} == {"'" + hostile}
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())

    filled = io.StringIO()
    writer = csv.DictWriter(filled, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "decision": "approve", "reviewer": "ana"})
    parsed, errors, _ = parse_review_csv(filled.getvalue())
    assert not errors and {r.sku for r in parsed} == {hostile}


def _catalog(folder, rows):
    path = folder / "catalog.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "category", "color"])
        writer.writerows(rows)
    return path
