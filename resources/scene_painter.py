"""Scene images: Z-Image repaints everything around the real product (`ZImageInpaintPipeline`).

The inpaint pipeline is built from the generator's already-loaded text-to-image pipeline with
`ZImageInpaintPipeline.from_pipe` (the same transformer, VAE, text encoder, tokenizer and
scheduler objects: no second load of the weights), once per loaded pipeline. `paint` takes
`SceneJob`s (the spec, the canvas with the product on it, the mask: white = repaint), groups them
like the generator does (size, steps, guidance), encodes each distinct prompt once, runs up to
`batch_size` images per call with one seeded generator per image, halves the batch on CUDA out of
memory, and yields each painting as soon as its call returns. `strength=1.0`: the background is
painted from noise, guided by the view's prompt; the product area is carried through in latent
space, and the caller then composites the original product pixels back (the VAE round trip alone
is close, not pixel-exact).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from dagster import get_dagster_logger

from resources.generator import GeneratorError, ZImageGenerator, _EmbeddingCache
from zimage_assets.domain.specs import GenerationSpec

_INPAINT: dict[int, object] = {}  # id(text-to-image pipeline) -> its inpaint pipeline
_LOCK = threading.Lock()
STRENGTH = 1.0


@dataclass
class SceneJob:
    key: str  # the caller's handle (the scene spec's hash)
    spec: GenerationSpec  # prompt, seed, size, steps, guidance of the painting
    canvas: np.ndarray  # h x w x 3 uint8: the product placed on the canvas
    mask: np.ndarray  # h x w uint8: 255 = repaint, 0 = keep


@dataclass
class Painted:
    job: SceneJob
    image: np.ndarray  # h x w x 3 uint8, before the product is composited back
    seconds: float


def inpaint_pipeline(generator: ZImageGenerator):
    """The inpaint pipeline sharing the generator's loaded components (built once per pipeline)."""
    from diffusers import ZImageInpaintPipeline

    text_to_image = generator.pipeline()
    with _LOCK:
        key = id(text_to_image)
        if key not in _INPAINT:
            pipe = ZImageInpaintPipeline.from_pipe(text_to_image)
            pipe.set_progress_bar_config(disable=True)
            _INPAINT[key] = pipe
        return _INPAINT[key]


def paint(generator: ZImageGenerator, jobs: Sequence[SceneJob]) -> Iterator[Painted]:
    """Paint every job's background, yielding paintings in chunks as they are made."""
    if not jobs:
        return
    info = generator.model_info()
    for job in jobs:
        if (job.spec.model_id, job.spec.revision) != (info.model_id, info.revision):
            raise GeneratorError(f"scene spec for {job.spec.model_id}@{job.spec.revision} given to generator {info.model_id}@{info.revision}")
    pipe = inpaint_pipeline(generator)
    embeddings = _EmbeddingCache(pipe, generator.max_sequence_length)
    groups: OrderedDict[tuple, list[SceneJob]] = OrderedDict()
    for job in jobs:
        groups.setdefault(job.spec.group_key, []).append(job)
    for group in groups.values():
        yield from _paint_group(generator, pipe, group, embeddings)


def _paint_group(generator: ZImageGenerator, pipe, group: list[SceneJob], embeddings) -> Iterator[Painted]:
    import torch

    size = generator.batch_size
    start = 0
    while start < len(group):
        chunk = group[start : start + size]
        try:
            images, seconds = _call(generator, pipe, chunk, embeddings)
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise GeneratorError(f"out of GPU memory with a single {chunk[0].spec.width}x{chunk[0].spec.height} scene") from None
            size = max(1, size // 2)
            torch.cuda.empty_cache()
            get_dagster_logger().warning(f"out of GPU memory: scene batch size halved to {size}")
            continue
        for job, image in zip(chunk, images):
            yield Painted(job=job, image=np.asarray(image.convert("RGB")), seconds=seconds / len(chunk))
        start += len(chunk)


def _call(generator: ZImageGenerator, pipe, chunk: list[SceneJob], embeddings):
    import torch
    from PIL import Image

    first = chunk[0].spec
    use_cfg = first.guidance_scale > 0
    started = time.perf_counter()
    with torch.inference_mode():
        prompt_embeds = embeddings.get([j.spec.prompt for j in chunk])
        negative = embeddings.get([j.spec.negative_prompt for j in chunk]) if use_cfg else None
        output = pipe(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative,
            image=[Image.fromarray(j.canvas) for j in chunk],
            mask_image=[Image.fromarray(j.mask, mode="L") for j in chunk],
            strength=STRENGTH,
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance_scale,
            generator=[torch.Generator("cpu").manual_seed(j.spec.seed) for j in chunk],
            max_sequence_length=first.max_sequence_length,
            output_type="pil",
        )
    if torch.cuda.is_available() and generator._device().startswith("cuda"):
        torch.cuda.synchronize()
    return output.images, time.perf_counter() - started
