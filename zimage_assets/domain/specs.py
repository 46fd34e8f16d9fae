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


# ---- photo-first: images made from the merchant's photo ----

#: The receipt's model of an image no model made (the `photo` mode).
NO_MODEL = "none"


@dataclass(frozen=True)
class PhotoSpec:
    """What exactly produces a photo or scene image: the source photo's bytes, the cut-out's method
    and version, the placement asked for, the frame, the compositor, and for a scene the painting's
    model call. A changed photo or segmenter gives a new hash (regenerated); an unchanged one the
    same hash (a cache hit)."""

    mode: str  # photo | scene
    source_sha256: str
    mask_method: str
    mask_version: str
    placement: str  # canonical JSON of the view's placement request (fill, position, shadow)
    width: int
    height: int
    compositor_version: str
    generation: GenerationSpec | None = None  # scene: the inpaint call (prompt, seed, model, steps)

    @property
    def spec_hash(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(("photo-spec:" + canonical).encode("utf-8")).hexdigest()

    @property
    def generated(self) -> bool:
        return self.generation is not None

    def receipt_fields(self) -> dict:
        """The model columns of a receipt: the painting's for a scene, `none` for a photo."""
        g = self.generation
        if g is None:
            return {"model_id": NO_MODEL, "revision": "", "scheduler": "", "steps": 0, "guidance_scale": 0.0, "seed": 0}
        return {"model_id": g.model_id, "revision": g.revision, "scheduler": g.scheduler, "steps": g.steps, "guidance_scale": g.guidance_scale, "seed": g.seed}


def receipt_fields(spec: "GenerationSpec | PhotoSpec") -> dict:
    """The model columns of a receipt for any spec."""
    if isinstance(spec, PhotoSpec):
        return spec.receipt_fields()
    return {"model_id": spec.model_id, "revision": spec.revision, "scheduler": spec.scheduler, "steps": spec.steps,
            "guidance_scale": spec.guidance_scale, "seed": spec.seed}


def spec_mode(spec: "GenerationSpec | PhotoSpec") -> str:
    return spec.mode if isinstance(spec, PhotoSpec) else "text"
