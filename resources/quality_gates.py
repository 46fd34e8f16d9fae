"""The safety and quality gates as one resource: the policy (from settings) plus the NSFW model.

Used by product_prompts (prompt verdicts), product_images (image verdicts, fixes, the
regeneration loop), the asset checks and the `zimage-qc` command. The scoring itself is pure
(zimage_assets/domain/: prompt_safety, image_quality, compliance, verdicts); this resource
reads the term lists and holds the classifier.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from resources.image_safety import ImageSafety
from zimage_assets.domain import compliance, image_quality, prompt_safety
from zimage_assets.domain.verdicts import BLOCK, Assessment, Finding, combine

@dataclass
class ImageResult:
    """One image through the gates: the verdict, and the fixed image when a fix was applied."""

    assessment: Assessment
    fixed_png: bytes | None = None
    thumbnail_source: np.ndarray | None = None  # the (fixed) pixels, for previews


class QualityGates(ConfigurableResource):
    """PASS / REVIEW / BLOCK for prompts and images; see docs/quality.md."""

    quality_mode: str = Field(default="strict", description="strict | smoke (structural checks only, for the tiny model)")
    view_profiles: str = Field(default="", description="VIEW=PROFILE,... on top of the defaults (front=main, back=studio, ...)")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Images made per item before it lands in REVIEW or BLOCK")
    max_block_share: float = Field(default=0.5, ge=0.0, le=1.0, description="Share of BLOCK above which a batch check fails (ERROR)")
    prompt_max_chars: int = Field(default=prompt_safety.DEFAULT_MAX_CHARS, ge=1, description="Longer prompts are BLOCKed")
    safety_terms_dir: str = Field(default="", description="Folder of extra term lists (*.txt) added to the built-in ones")
    fix_compliance: bool = Field(default=True, description="Whiten / pad / crop where that fixes a compliance failure")
    image_safety: ImageSafety = Field(default_factory=ImageSafety, description="The NSFW classifier")

    # ---- prompts ----

    def terms(self) -> prompt_safety.TermList:
        return prompt_safety.load_terms([self.safety_terms_dir] if self.safety_terms_dir else [])

    def assess_prompt(self, prompt: str, source_text: Iterable[str] = ()) -> Assessment:
        return prompt_safety.assess_prompt(prompt, self.terms(), max_chars=self.prompt_max_chars, source_text=source_text)

    # ---- images ----

    def view_profile_map(self) -> dict[str, str]:
        return compliance.parse_view_profiles(self.view_profiles)

    def profile_for(self, view: str | None, profile: str | None = None) -> compliance.ComplianceProfile:
        if profile:
            return compliance.get_profile(profile)
        if view is None:
            return compliance.PROFILES["none"]
        return compliance.profile_for_view(view, self.view_profile_map())

    def assess_image(
        self,
        data: bytes | np.ndarray,
        *,
        view: str | None = None,
        profile: str | None = None,
        expected_size: tuple[int, int] | None = None,
        mode: str | None = None,
    ) -> ImageResult:
        """Decode (bytes) and run every gate: quality, compliance (with fixes), safety."""
        mode = mode or self.quality_mode
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
        quality = image_quality.assess_quality(rgb, mode=mode, expected_size=expected_size, info=info)
        if quality.verdict == BLOCK and "image_too_small" in quality.reasons:
            return ImageResult(quality)
        parts = [quality]
        fixed_rgb = None
        chosen = self.profile_for(view, profile)
        if mode == image_quality.STRICT and chosen.name != "none":
            checked, fixed_rgb = compliance.assess_compliance(rgb, chosen, fix=self.fix_compliance)
            parts.append(checked)
        else:
            parts.append(Assessment(scores={"profile": chosen.name if mode == image_quality.STRICT else f"{chosen.name} (not judged in {mode} mode)"}))
        final_rgb = fixed_rgb if fixed_rgb is not None else rgb
        parts.append(self.image_safety.assess(final_rgb))
        assessment = combine(parts)
        assessment.scores["quality_mode"] = mode
        return ImageResult(assessment, _png(fixed_rgb) if fixed_rgb is not None else None, final_rgb)


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def quality_gates_from_settings(settings) -> "QualityGates":
    """The gates as configured by ZIMAGE_* variables (see zimage_assets/settings.py)."""
    return QualityGates(
        quality_mode=settings.quality_mode,
        view_profiles=settings.view_profiles,
        max_attempts=settings.max_attempts,
        max_block_share=settings.max_block_share,
        prompt_max_chars=settings.prompt_max_chars,
        safety_terms_dir=settings.safety_terms_dir,
        image_safety=ImageSafety(review_threshold=settings.nsfw_review_threshold, block_threshold=settings.nsfw_block_threshold),
    )
