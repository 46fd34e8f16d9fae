"""The gates for images made from the merchant's photo (photo and scene modes). Pure: no I/O.

The order for one photo or scene image (`evaluate_composite`):
  1. Decode, and the structural checks of any image (right size, not blank or uniform).
  2. Quality, measured on the product: for a photo image the image itself (the product on white);
     for a scene, the product at the same scale on white, so a soft or busy painted background
     neither hides nor causes a defect. A photo image is always judged strictly (it is a real
     photo); a scene in the mode the model's images are judged in (smoke for the tiny model).
  3. Marketplace compliance for the view's profile, without fixes (the image was built to the
     profile; a fix could touch the product).
  4. NSFW on the image.
  5. Product preservation (`domain/preservation.py`): the product's pixels are the photo's
     (BLOCK `product_altered` otherwise), its fill and centring.
  6. What decoding the photo noted that a person should look at (`photo_converted`: a CMYK photo
     converted without its colour profile, the first frame of an animation).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from zimage_assets.domain import compliance, image_quality, preservation
from zimage_assets.domain.gates import ImageResult
from zimage_assets.domain.compositing import Placement, composite, placed_layer
from zimage_assets.domain.source_decoding import REVIEW_NOTES
from zimage_assets.domain.verdicts import BLOCK, REVIEW, Assessment, Finding, combine


def product_on_white(cutout_rgba: np.ndarray, placement: Placement) -> np.ndarray:
    """The product alone at its placement on a white canvas (what quality is measured on)."""
    cw, ch = placement.canvas
    return composite(np.full((ch, cw, 3), 255, np.uint8), placed_layer(cutout_rgba, placement))


def evaluate_composite(
    data: bytes,
    *,
    mode: str,
    profile: compliance.ComplianceProfile,
    quality_mode: str,
    nsfw: Callable[[np.ndarray], Assessment],
    expected_size: tuple[int, int] | None,
    cutout_rgba: np.ndarray,
    placement: Placement,
    notes: Sequence[str] = (),
) -> ImageResult:
    """Every gate on one photo or scene image, in the order of the module docstring."""
    # 1. Decode; structural checks.
    try:
        loaded = image_quality.load_image(data)
    except image_quality.ImageLoadError as exc:
        failed = Assessment(scores={"bytes": len(data)})
        failed.add(Finding(exc.code, BLOCK, str(exc)))
        return ImageResult(failed)
    rgb = loaded.rgb
    judged = image_quality.STRICT if mode == "photo" else quality_mode
    parts = [image_quality.assess_quality(rgb, mode=image_quality.SMOKE, expected_size=expected_size, info=loaded.info)]
    # 2. Quality on the product.
    if judged == image_quality.STRICT:
        measured = rgb if mode == "photo" else product_on_white(cutout_rgba, placement)
        quality = image_quality.assess_quality(measured, mode=image_quality.STRICT)
        quality.findings = [f for f in quality.findings if f.code not in {f.code for f in parts[0].findings}]
        parts.append(Assessment(findings=[Finding(f.code, f.verdict, f.detail) for f in quality.findings], scores=quality.scores))
    # 3. Compliance, no fixes.
    if judged == image_quality.STRICT and profile.name != "none":
        parts.append(compliance.assess_compliance(rgb, profile, fix=False)[0])
    else:
        parts.append(Assessment(scores={"profile": profile.name if judged == image_quality.STRICT else f"{profile.name} (not judged in {judged} mode)"}))
    # 4. Safety.
    parts.append(nsfw(rgb))
    # 5. Preservation; 6. notes.
    parts.append(preservation.assess(rgb, cutout_rgba, placement, profile))
    noted = Assessment()
    for note in notes:
        if note in REVIEW_NOTES:
            noted.add(Finding("photo_converted", REVIEW, f"the source photo was {note.replace('_', ' ')}"))
    parts.append(noted)
    assessment = combine(parts)
    assessment.scores.update({"quality_mode": judged, "mode": mode})
    return ImageResult(assessment, None, rgb)
