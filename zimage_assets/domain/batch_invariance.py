"""Batch invariance: batching must never silently change an image.

One seeded `torch.Generator` per image makes a batched pipeline call give the same images as one
call per image, up to float rounding (on a CPU in fp32: at most 1 level of 255). Some speed
options can break that (fp8, a compiled graph, an attention kernel that treats padded prompts
differently, GPU kernels chosen by batch shape), and then the spec hash (the cache key, the
receipt) no longer names one image. The `batch_invariance` check regenerates a sample of each
batch's images at batch size 1 and compares them with the batched ones stored:

    mean_abs   mean absolute difference over all pixels and channels, in 0-255 levels
    max_abs    the largest difference of any pixel channel
    over_8     the share of pixel channels that differ by more than 8 levels

An image passes when its `mean_abs` is at most the tolerance (ZIMAGE_INVARIANCE_TOLERANCE, default
1.0 level): float rounding stays far below it, a visibly different image lies far above it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def sample_receipts(receipts: Sequence[Mapping[str, Any]], size: int) -> list[Mapping[str, Any]]:
    """`size` generated (not cached) images of a batch, spread evenly over it, one per spec."""
    if size <= 0:
        return []
    by_spec: dict[tuple[str, int], Mapping[str, Any]] = {}
    for receipt in sorted(receipts, key=lambda r: (r["sku"], r["view"], r.get("attempt") or 0)):
        if not receipt["cache_hit"]:
            by_spec.setdefault((receipt["spec_hash"], int(receipt.get("attempt") or 0)), receipt)
    made = list(by_spec.values())
    if len(made) <= size:
        return made
    step = len(made) / size
    return [made[int(i * step)] for i in range(size)]


def compare_pixels(batched: np.ndarray, single: np.ndarray) -> dict[str, float]:
    """How far two renderings of one spec are apart (uint8 arrays of the same shape)."""
    if batched.shape != single.shape:
        return {"mean_abs": 255.0, "max_abs": 255.0, "over_8": 1.0}
    diff = np.abs(batched.astype(np.int16) - single.astype(np.int16))
    return {"mean_abs": round(float(diff.mean()), 4), "max_abs": float(diff.max()), "over_8": round(float((diff > 8).mean()), 6)}


def invariance_result(rows: Sequence[Mapping[str, Any]], tolerance: float, batch_size: int) -> tuple[bool, str]:
    """(passed, description) for the compared images of one batch."""
    if not rows:
        return True, "no image of this batch was generated (all from the cache or blocked): nothing to compare"
    worst = max(rows, key=lambda r: r["mean_abs"])
    failed = [r for r in rows if r["mean_abs"] > tolerance]
    summary = (
        f"{len(rows)} image(s) made again alone vs in batches of up to {batch_size}: worst mean difference "
        f"{worst['mean_abs']:.3f} levels (max pixel {worst['max_abs']:.0f}) at {worst['sku']}/{worst['view']}; tolerance {tolerance:g}"
    )
    if failed:
        return False, (
            f"batching changed {len(failed)} of {len(rows)} image(s) beyond the tolerance. {summary}. A speed option "
            "(ZIMAGE_FP8, ZIMAGE_COMPILE, ZIMAGE_ATTENTION_BACKEND) or the GPU's kernels make images depend on their batch: "
            "turn the option off or set ZIMAGE_BATCH_SIZE=1"
        )
    return True, summary
