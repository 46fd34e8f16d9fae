"""Asset checks per batch: prompt safety, image safety, image quality, marketplace compliance.

Each check reads the verdicts the assets recorded and summarises the batch: counts per verdict,
the most common reasons, the worst items with their reasons and thumbnails. A check passes when
its gate found nothing; it fails with WARN when some items are REVIEW or BLOCK (they are simply
not published: one bad item never blocks the good ones); it fails with ERROR, which blocks
publication in the same run, only when the batch as a whole is broken: more than
ZIMAGE_MAX_BLOCK_SHARE of its items BLOCKed by that gate (a broken model, wrong templates).
"""

import io
import warnings

import dagster as dg
from PIL import Image

from resources.image_store import ImageStore, StoreError
from resources.quality_gates import QualityGates
from resources.state_db import StateDB
from zimage_assets.assets.images import product_images
from zimage_assets.assets.prompts import product_prompts
from zimage_assets.domain.contact_sheet import contact_sheet, markdown_image, to_jpeg
from zimage_assets.domain.verdicts import BLOCK, PASS, REVIEW, VERDICTS, gate_of, gate_verdict, rank
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions

WORST_ITEMS = 12
THUMB = 96


def summarise_gate(rows: list[dict], gate: str, max_block_share: float) -> dict:
    """Per-gate counts, reasons, worst items and whether the batch is broken (pure)."""
    counts = {v: 0 for v in VERDICTS}
    reasons: dict[str, int] = {}
    judged = []
    for row in rows:
        verdict = row["verdict"] if gate == "prompt" else gate_verdict(row, gate)
        codes = [c for c in row["reasons"] if gate == "prompt" or gate_of(c) == gate]
        counts[verdict] += 1
        for code in codes:
            reasons[code] = reasons.get(code, 0) + 1
        judged.append({**row, "gate_verdict": verdict, "gate_reasons": codes})
    total = len(rows)
    block_share = counts[BLOCK] / total if total else 0.0
    worst = sorted((r for r in judged if r["gate_verdict"] != PASS), key=lambda r: (-rank(r["gate_verdict"]), r["sku"], r["view"]))
    return {
        "total": total,
        "counts": counts,
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "block_share": round(block_share, 4),
        "broken": total > 0 and block_share > max_block_share,
        "worst": worst[:WORST_ITEMS],
    }


def _final_image_rows(state_db: StateDB, batch_id: str) -> list[dict]:
    """The last attempt's verdict row of every generated item (reviewer decisions not applied:
    the checks judge what the gates found)."""
    latest: dict[tuple[str, str], dict] = {}
    for row in state_db.verdicts(batch_id, stage="image"):
        latest[(row["sku"], row["view"])] = row
    return [latest[k] for k in sorted(latest)]


def _result(summary: dict, gate: str, max_block_share: float, extra: dict | None = None) -> dg.AssetCheckResult:
    counts = summary["counts"]
    bad = counts[REVIEW] + counts[BLOCK]
    if summary["broken"]:
        severity, passed = dg.AssetCheckSeverity.ERROR, False
        description = (
            f"{gate}: {counts[BLOCK]} of {summary['total']} items BLOCK ({summary['block_share']:.0%} > "
            f"{max_block_share:.0%}): the batch as a whole is wrong; publication is blocked"
        )
    else:
        severity, passed = dg.AssetCheckSeverity.WARN, bad == 0
        description = f"{gate}: {counts[PASS]} PASS, {counts[REVIEW]} REVIEW, {counts[BLOCK]} BLOCK of {summary['total']}"
    rows = [
        {"sku": r["sku"], "view": r["view"], "attempt": r.get("attempt", 0), "verdict": r["gate_verdict"], "reasons": ", ".join(r["gate_reasons"]),
         "details": "; ".join(f"{k}: {v}" for k, v in ((r.get("scores") or {}).get("details") or {}).items())}
        for r in summary["worst"]
    ]
    metadata = {
        "total": summary["total"],
        "pass": counts[PASS],
        "review": counts[REVIEW],
        "block": counts[BLOCK],
        "block_share": float(summary["block_share"]),
        "max_block_share": float(max_block_share),
        "reasons": dg.MetadataValue.json(summary["reasons"]),
        "worst_items": dg.MetadataValue.md(markdown_table(rows, ["sku", "view", "attempt", "verdict", "reasons", "details"], 140)),
        **(extra or {}),
    }
    return dg.AssetCheckResult(passed=passed, severity=severity, description=description, metadata=metadata)


def _thumbnails(state_db: StateDB, image_store: ImageStore, batch_id: str, worst: list[dict]) -> dict:
    """A contact sheet of the worst items (the image each one would publish), for the UI."""
    if not worst:
        return {}
    receipts = {(r["sku"], r["view"], r["attempt"]): r for r in state_db.receipts(batch_id, latest_only=False)}
    fixes = state_db.fixes(batch_id)
    tiles = []
    for row in worst:
        key = (row["sku"], row["view"], row.get("attempt", 0))
        stored = fixes.get(key) or receipts.get(key)
        if stored is None:
            continue
        try:
            image = Image.open(io.BytesIO(image_store.get(stored["storage_key"])))
            image.load()
        except (StoreError, OSError, ValueError):
            continue
        tiles.append((f"{row['gate_verdict'][0]} {row['sku']}/{row['view']}", image))
    if not tiles:
        return {}
    jpeg = to_jpeg(contact_sheet(tiles, thumb=THUMB, columns=6))
    return {"thumbnails": dg.MetadataValue.md(markdown_image(jpeg, f"{batch_id}: worst items"))}


def _partitioned_check(**kwargs):
    """`asset_check` per batch partition (partitioned checks are a Dagster preview feature: its
    warning is silenced here, one partition per run is what this project does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decorator = dg.asset_check(partitions_def=batch_partitions, blocking=True, **kwargs)

    def wrap(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decorator(fn)

    return wrap


@_partitioned_check(asset=product_prompts, description="Prompt safety verdicts of the batch")
def prompt_safety(context: dg.AssetCheckExecutionContext, state_db: StateDB, quality_gates: QualityGates) -> dg.AssetCheckResult:
    rows = state_db.verdicts(context.partition_key, stage="prompt")
    summary = summarise_gate(rows, "prompt", quality_gates.max_block_share)
    prompts = {(i["sku"], i["view"]): i["prompt"] for i in state_db.batch_items(context.partition_key)}
    for row in summary["worst"]:
        row.setdefault("scores", {})
        row["scores"] = {**row["scores"], "details": {**(row["scores"].get("details") or {}), "prompt": (prompts.get((row["sku"], row["view"])) or "")[:100]}}
    return _result(summary, "prompt safety", quality_gates.max_block_share)


def _image_check(gate: str, label: str):
    @_partitioned_check(
        asset=product_images,
        name=f"image_{gate}" if gate != "compliance" else "marketplace_compliance",
        description=f"{label} verdicts of the batch's images (last attempt of each item)",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, state_db: StateDB, image_store: ImageStore, quality_gates: QualityGates
    ) -> dg.AssetCheckResult:
        batch_id = context.partition_key
        rows = _final_image_rows(state_db, batch_id)
        summary = summarise_gate(rows, gate, quality_gates.max_block_share)
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
        if gate == "quality":
            attempts = [r.get("attempt", 0) for r in rows]
            extra["regenerated_items"] = sum(1 for a in attempts if a > 0)
            extra["quality_mode"] = quality_gates.quality_mode
        return _result(summary, label, quality_gates.max_block_share, extra)

    return _check


image_safety = _image_check("safety", "image safety")
image_quality = _image_check("quality", "image quality")
marketplace_compliance = _image_check("compliance", "marketplace compliance")

QUALITY_CHECKS = [prompt_safety, image_safety, image_quality, marketplace_compliance]
