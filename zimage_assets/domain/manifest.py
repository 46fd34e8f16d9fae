"""The per-batch manifest of published images, as CSV and JSON bytes.

Besides where each image is and what made it, every row says how it was made: `mode` (photo,
scene, text), `generated` (a model made some of its pixels: the EU AI Act's transparency duty),
`illustrative` (the product itself is generated, text-to-image) and the source photo it shows.

The CSV is for people and spreadsheets: text cells that would run as a formula are written
safely (`spreadsheet_cell`); the JSON keeps every value as it is.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Mapping, Sequence

from zimage_assets.domain.spreadsheet import spreadsheet_cell

MANIFEST_COLUMNS = ["sku", "view", "url", "key", "width", "height", "spec_hash", "sha256", "seed", "model_id",
                    "mode", "generated", "illustrative", "source_photo", "source_sha256"]


def manifest_csv(rows: Sequence[Mapping]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=_order):
        writer.writerow({k: spreadsheet_cell(v) for k, v in row.items()})
    return out.getvalue().encode("utf-8")


def manifest_json(batch_id: str, rows: Sequence[Mapping]) -> bytes:
    doc = {
        "batch_id": batch_id,
        "count": len(rows),
        "images": [{k: row.get(k) for k in MANIFEST_COLUMNS} for row in sorted(rows, key=_order)],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")


def _order(row: Mapping) -> tuple[str, str]:
    return (str(row["sku"]), str(row["view"]))
