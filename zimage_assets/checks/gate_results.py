"""How a gate's verdicts over a batch become one asset check result, shared by the batch checks.

A check passes when its gate found nothing; it fails with WARN when some items are REVIEW or BLOCK
(they are simply not published: one bad item never blocks the good ones); it fails with ERROR,
which blocks publication in the same run, only when the batch as a whole is broken: more than
ZIMAGE_MAX_BLOCK_SHARE of its items BLOCKed by that gate (a broken model, wrong templates).
"""

import warnings

import dagster as dg

from zimage_assets.domain.verdicts import BLOCK, PASS, REVIEW
from zimage_assets.metadata import markdown_table
from zimage_assets.partitions import batch_partitions

WORST_ITEMS = 12


def gate_check_result(summary: dict, gate: str, max_block_share: float, extra: dict | None = None) -> dg.AssetCheckResult:
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


def partitioned_check(blocking: bool = True, **kwargs):
    """`asset_check` per batch partition (partitioned checks are a Dagster preview feature: its
    warning is silenced here, one partition per run is what this project does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decorator = dg.asset_check(partitions_def=batch_partitions, blocking=blocking, **kwargs)

    def wrap(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decorator(fn)

    return wrap
