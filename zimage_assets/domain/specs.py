"""What exactly produces an image: the generation spec and its hash.

Two items with the same spec produce the same image (one torch.Generator per image makes
batched output equal to single calls), so the spec hash keys the result cache, deduplicates
work inside a batch, and is recorded in every receipt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelInfo:
    """The parts of the model that change pixels (not the device, not the batch size)."""

    model_id: str
    revision: str
    steps: int
    guidance_scale: float
    scheduler: str
    max_sequence_length: int


@dataclass(frozen=True)
class GenerationSpec:
    model_id: str
    revision: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    scheduler: str
    max_sequence_length: int

    @property
    def spec_hash(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def group_key(self) -> tuple[int, int, int, float]:
        """Specs that can share one pipeline call."""
        return (self.width, self.height, self.steps, self.guidance_scale)


def build_spec(
    model: ModelInfo, *, prompt: str, negative_prompt: str, width: int, height: int, seed: int, steps: int | None = None
) -> GenerationSpec:
    """The spec of one image; `steps` (an item's own, e.g. a request's quality) replaces the model's."""
    # Without guidance the negative prompt is never used: leave it out of the spec so that
    # editing it does not invalidate every cached Turbo image.
    negative = negative_prompt if model.guidance_scale > 0 else ""
    return GenerationSpec(
        model_id=model.model_id,
        revision=model.revision,
        prompt=prompt,
        negative_prompt=negative,
        width=width,
        height=height,
        steps=steps or model.steps,
        guidance_scale=model.guidance_scale,
        seed=seed,
        scheduler=model.scheduler,
        max_sequence_length=model.max_sequence_length,
    )
