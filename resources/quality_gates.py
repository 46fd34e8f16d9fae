"""The safety and quality gates' policy (from settings) and the NSFW classifier, as one resource.

Used by product_prompts (prompt verdicts), product_images (image verdicts, fixes, the
regeneration loop), the asset checks and the `zimage-qc` command. What the gates do, and in which
order, is pure code: `zimage_assets/domain/gates.py` for images, `zimage_assets/domain/
prompt_safety.py` for prompts. This resource holds what they are handed: thresholds, modes, the
view -> profile map, the term lists and the classifier.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from resources.image_safety import ImageSafety
from zimage_assets.domain import compliance, gates, photo_gates, prompt_safety
from zimage_assets.domain.verdicts import Assessment
from zimage_assets.settings import DEFAULTS


class QualityGates(ConfigurableResource):
    """PASS / REVIEW / BLOCK for prompts and images; see docs/quality.md."""

    quality_mode: str = Field(default="strict", description="strict | smoke (structural checks only, for the tiny model)")
    view_profiles: str = Field(default="", description="VIEW=PROFILE,... on top of the defaults (front=main, back=studio, ...)")
    max_attempts: int = Field(default=DEFAULTS["max_attempts"], ge=1, le=20, description="Images made per item before it lands in REVIEW or BLOCK")
    max_block_share: float = Field(default=DEFAULTS["max_block_share"], ge=0.0, le=1.0, description="Share of BLOCK above which a batch check fails (ERROR)")
    prompt_max_chars: int = Field(default=DEFAULTS["prompt_max_chars"], ge=1, description="Longer prompts are BLOCKed")
    safety_terms_dir: str = Field(default="", description="Folder of extra term lists (*.txt) added to the built-in ones")
    fix_compliance: bool = Field(default=True, description="Whiten / pad / crop where that fixes a compliance failure")
    image_safety: ImageSafety = Field(default_factory=ImageSafety, description="The NSFW classifier")
    illustrative_review: bool = Field(default=True, description="Text-to-image images (no real product) go to REVIEW")

    # ---- prompts ----

    def terms(self) -> prompt_safety.TermList:
        return prompt_safety.load_terms([self.safety_terms_dir] if self.safety_terms_dir else [])

    def assess_prompt(self, prompt: str, source_text: Iterable[str] = ()) -> Assessment:
        return prompt_safety.assess_prompt(prompt, self.terms(), max_chars=self.prompt_max_chars, source_text=source_text)

    # ---- images ----

    def profile_for(self, view: str | None, profile: str | None = None) -> compliance.ComplianceProfile:
        if profile:
            return compliance.get_profile(profile)
        if view is None:
            return compliance.PROFILES["none"]
        return compliance.profile_for_view(view, compliance.parse_view_profiles(self.view_profiles))

    def assess_image(
        self,
        data: bytes | np.ndarray,
        *,
        view: str | None = None,
        profile: str | None = None,
        expected_size: tuple[int, int] | None = None,
        mode: str | None = None,
    ) -> gates.ImageResult:
        """Every gate on one image, with this deployment's policy and classifier."""
        return gates.evaluate_image(
            data,
            profile=self.profile_for(view, profile),
            mode=mode or self.quality_mode,
            nsfw=self.image_safety.assess,
            expected_size=expected_size,
            fix=self.fix_compliance,
        )

    # ---- images made from the merchant's photo ----

    def assess_composite(self, data: bytes, *, view: str | None, mode: str, expected_size, cutout_rgba: np.ndarray, placement, notes=(),
                         profile: str | None = None) -> gates.ImageResult:
        """The gates of a photo or scene image, with the product-preservation gate (domain/photo_gates.py)."""
        return photo_gates.evaluate_composite(
            data, mode=mode, profile=self.profile_for(view, profile), quality_mode=self.quality_mode, nsfw=self.image_safety.assess,
            expected_size=expected_size, cutout_rgba=cutout_rgba, placement=placement, notes=notes,
        )
