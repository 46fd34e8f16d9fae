"""One image through the gates, and what one attempt of an item ends up as. Pure: no I/O.

The order of the gates for one image (`evaluate_image`):
  1. Decode: bytes -> RGB. A file that cannot be used (corrupt, a bomb, 1x1) is BLOCK, and a new
     seed may fix it.
  2. Quality, measured on the product (blur, noise, JPEG traces, exposure, uniform or blank
     images, wrong size). An image too small to judge stops here.
  3. Marketplace compliance for the view's profile (strict mode only), with the fixes that leave
     the product's pixels untouched (whiten the background, pad, crop).
  4. Image safety (NSFW) on the image that would be published: the fixed one when there is one.
     The classifier is handed in (`nsfw`), so this module never loads a model.
  5. Combine: the worst finding sets the verdict.

`judge_attempt` then adds what the prompt's verdict means for the image (a doubtful prompt sends
its image to REVIEW) and decides whether another seed is worth a try. The item's final verdict
over all attempts and reviewer decisions is `zimage_assets/domain/review.py`'s; `summarise_gate`
is one gate's view of a whole batch, for the asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from zimage_assets.domain import compliance, image_quality
from zimage_assets.domain.encoding import to_png
from zimage_assets.domain.verdicts import BLOCK, PASS, REVIEW, VERDICTS, Assessment, Finding, combine, gate_of, gate_verdict, rank


@dataclass
class ImageResult:
    """One image through the gates: the verdict, and the fixed image when a fix was applied."""

    assessment: Assessment
    fixed_png: bytes | None = None
    thumbnail_source: np.ndarray | None = None  # the pixels that would be published (fixed or not)


def nsfw_findings(score: float, review_threshold: float, block_threshold: float) -> list[Finding]:
    """BLOCK at or above the block threshold, REVIEW at or above the review threshold."""
    if score >= block_threshold:
        return [Finding("nsfw", BLOCK, f"nsfw score {score:.3f} >= {block_threshold}")]
    if score >= review_threshold:
        return [Finding("nsfw_suspect", REVIEW, f"nsfw score {score:.3f} >= {review_threshold}")]
    return []


def evaluate_image(
    data: bytes | np.ndarray,
    *,
    profile: compliance.ComplianceProfile,
    mode: str,
    nsfw: Callable[[np.ndarray], Assessment],
    expected_size: tuple[int, int] | None = None,
    fix: bool = True,
) -> ImageResult:
    """Run every gate on one image (encoded bytes or decoded RGB), in the order above."""
    # 1. Decode.
    if isinstance(data, np.ndarray):
        rgb, info = data, {}
    else:
        try:
            loaded = image_quality.load_image(data)
        except image_quality.ImageLoadError as exc:
            failed = Assessment(scores={"bytes": len(data)})
            failed.add(Finding(exc.code, BLOCK, str(exc), regenerate=True))
            return ImageResult(failed)
        rgb, info = loaded.rgb, loaded.info

    # 2. Quality.
    quality = image_quality.assess_quality(rgb, mode=mode, expected_size=expected_size, info=info)
    if quality.verdict == BLOCK and "image_too_small" in quality.reasons:
        return ImageResult(quality)

    # 3. Compliance, with fixes.
    parts = [quality]
    fixed_rgb = None
    if mode == image_quality.STRICT and profile.name != "none":
        checked, fixed_rgb = compliance.assess_compliance(rgb, profile, fix=fix)
        parts.append(checked)
    else:
        judged = profile.name if mode == image_quality.STRICT else f"{profile.name} (not judged in {mode} mode)"
        parts.append(Assessment(scores={"profile": judged}))

    # 4. Safety, on what would be published.
    shown = fixed_rgb if fixed_rgb is not None else rgb
    parts.append(nsfw(shown))

    # 5. Combine.
    assessment = combine(parts)
    assessment.scores["quality_mode"] = mode
    return ImageResult(assessment, to_png(fixed_rgb) if fixed_rgb is not None else None, shown)


def judge_attempt(image: Assessment, prompt_verdict: Mapping | None) -> tuple[Assessment, bool]:
    """One item's verdict for one attempt, and whether a new seed is worth a try.

    Items that share an image share its assessment; each gets its own copy here, because its
    prompt's verdict may differ. A new seed is tried when the image is not PASS and every
    problem is one a new seed may fix (quality, compliance; never safety).
    """
    item = Assessment(verdict=image.verdict, findings=list(image.findings), scores=dict(image.scores), fixes=list(image.fixes))
    if prompt_verdict is not None and prompt_verdict["verdict"] == REVIEW:  # a person looks at what a doubtful prompt made
        item.add(Finding("prompt_review", REVIEW, ", ".join(prompt_verdict["reasons"])))
    retry = image.verdict != PASS and image.regenerable
    return item, retry


def summarise_gate(rows: Sequence[Mapping], gate: str, max_block_share: float, worst_items: int = 12) -> dict:
    """One gate's view of a batch: counts, reasons, the worst items and whether the batch as a whole is
    broken (more than `max_block_share` of its items BLOCKed by this gate). `rows`: the items' last
    verdict rows; gate `prompt` reads the prompt verdicts as they are."""
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
        "worst": worst[:worst_items],
    }
