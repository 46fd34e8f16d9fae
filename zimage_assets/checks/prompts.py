"""The prompt safety check of product_prompts[batch]: the batch's prompt verdicts summarised."""

import dagster as dg

from resources.quality_gates import QualityGates
from resources.state_db import StateDB
from zimage_assets.assets.prompts import product_prompts
from zimage_assets.checks.gate_results import WORST_ITEMS, gate_check_result, partitioned_check
from zimage_assets.domain.gates import summarise_gate


@partitioned_check(asset=product_prompts, description="Prompt safety verdicts of the batch")
def prompt_safety(context: dg.AssetCheckExecutionContext, state_db: StateDB, quality_gates: QualityGates) -> dg.AssetCheckResult:
    rows = state_db.verdicts(context.partition_key, stage="prompt")
    summary = summarise_gate(rows, "prompt", quality_gates.max_block_share, WORST_ITEMS)
    prompts = {(i["sku"], i["view"]): i["prompt"] for i in state_db.batch_items(context.partition_key)}
    for row in summary["worst"]:
        row.setdefault("scores", {})
        row["scores"] = {**row["scores"], "details": {**(row["scores"].get("details") or {}), "prompt": (prompts.get((row["sku"], row["view"])) or "")[:100]}}
    return gate_check_result(summary, "prompt safety", quality_gates.max_block_share)
