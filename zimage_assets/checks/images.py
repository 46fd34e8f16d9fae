"""The image checks of product_images[batch]: image safety, image quality, marketplace compliance,
product preservation (the product's pixels are the merchant's photo; text images are illustrative).

Each reads the verdicts product_images recorded and summarises the batch for its gate: counts per
verdict, the most common reasons, the worst items with their reasons and thumbnails (see
`checks/gate_results.py` for when a check warns and when it blocks publication).
"""

import dagster as dg

from resources.image_store import ImageStore
from resources.quality_gates import QualityGates
from resources.state_db import StateDB
from zimage_assets.assets.images import product_images
from zimage_assets.assets.previews import load_tiles, sheet_markdown
from zimage_assets.checks.gate_results import WORST_ITEMS, gate_check_result, partitioned_check
from zimage_assets.domain.gates import summarise_gate

THUMB = 96


def _thumbnails(state_db: StateDB, image_store: ImageStore, batch_id: str, worst: list[dict]) -> dict:
    """A contact sheet of the worst items (the image each one would publish), for the UI."""
    if not worst:
        return {}
    shown = state_db.shown_images(batch_id)
    keys = []
    for row in worst:
        stored = shown.get((row["sku"], row["view"], row.get("attempt", 0)))
        if stored is not None:
            keys.append((f"{row['gate_verdict'][0]} {row['sku']}/{row['view']}", stored["storage_key"]))
    tiles = load_tiles(image_store, keys)
    if not tiles:
        return {}
    return {"thumbnails": dg.MetadataValue.md(sheet_markdown(tiles, f"{batch_id}: worst items", thumb=THUMB, columns=6))}


def _image_check(gate: str, label: str):
    @partitioned_check(
        asset=product_images,
        name={"compliance": "marketplace_compliance", "preservation": "product_preservation"}.get(gate, f"image_{gate}"),
        description=f"{label} verdicts of the batch's images (last attempt of each item)",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, state_db: StateDB, image_store: ImageStore, quality_gates: QualityGates
    ) -> dg.AssetCheckResult:
        batch_id = context.partition_key
        rows = [f for f in state_db.final_verdicts(batch_id) if f["stage"] == "image"]  # what the gates found
        summary = summarise_gate(rows, gate, quality_gates.max_block_share, WORST_ITEMS)
        extra = _thumbnails(state_db, image_store, batch_id, summary["worst"])
        if gate == "compliance":
            fixed: dict[str, int] = {}
            for row in rows:
                for fix in (row.get("scores") or {}).get("fixes") or []:
                    fixed[fix] = fixed.get(fix, 0) + 1
            extra["fixes_applied"] = dg.MetadataValue.json(fixed)
            profiles: dict[str, int] = {}
            for row in rows:
                name = str((row.get("scores") or {}).get("profile", "none"))
                profiles[name] = profiles.get(name, 0) + 1
            extra["profiles"] = dg.MetadataValue.json(profiles)
        if gate == "preservation":
            modes: dict[str, int] = {}
            for row in rows:
                mode = str((row.get("scores") or {}).get("mode", "text"))
                modes[mode] = modes.get(mode, 0) + 1
            extra["modes"] = dg.MetadataValue.json(modes)
            diffs = [(row.get("scores") or {}).get("preservation_max_abs_diff") for row in rows]
            diffs = [d for d in diffs if d is not None]
            extra["max_abs_diff"] = max(diffs) if diffs else 0
        if gate == "quality":
            attempts = [r.get("attempt", 0) for r in rows]
            extra["regenerated_items"] = sum(1 for a in attempts if a > 0)
            extra["quality_mode"] = quality_gates.quality_mode
        return gate_check_result(summary, label, quality_gates.max_block_share, extra)

    return _check


image_safety = _image_check("safety", "image safety")
image_quality = _image_check("quality", "image quality")
marketplace_compliance = _image_check("compliance", "marketplace compliance")
product_preservation = _image_check("preservation", "product preservation")

IMAGE_CHECKS = [image_safety, image_quality, marketplace_compliance, product_preservation]
