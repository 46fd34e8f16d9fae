"""The Z-Image generator: a Dagster resource around `diffusers.ZImagePipeline`.

What it does for callers:
- resolves a preset (`tiny`, `turbo`, `base`, `full-random`), a hub id or a local folder to one
  loaded pipeline, offline by default, loaded once per process and only when an image is
  actually needed, with its speed options applied (`resources/speed_options.py`);
- generates a list of `GenerationSpec`s: groups them by (size, steps, guidance), encodes each
  distinct prompt once and reuses the embedding, runs up to `batch_size` images per call with one
  seeded `torch.Generator` per image (batched output equals single calls), and halves the batch
  when the GPU runs out of memory;
- yields images chunk by chunk, so the caller can store each one before the next is made (a
  killed run keeps everything it finished).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field

from zimage_assets.domain.specs import GenerationSpec, ModelInfo
from zimage_assets.settings import DEFAULTS

FLOW_MATCH_SHIFT_3 = "FlowMatchEulerDiscreteScheduler(shift=3.0)"


@dataclass(frozen=True)
class ModelPreset:
    model_id: str
    steps: int
    guidance_scale: float
    scheduler: str = FLOW_MATCH_SHIFT_3


PRESETS = {
    # Turbo is distilled for 8 steps without classifier-free guidance; the pipeline's own
    # defaults (50 steps, guidance 5) are wrong for it.
    "turbo": ModelPreset("Tongyi-MAI/Z-Image-Turbo", steps=8, guidance_scale=0.0),
    "base": ModelPreset("Tongyi-MAI/Z-Image", steps=28, guidance_scale=4.0),
    "tiny": ModelPreset("tiny-random-zimage", steps=8, guidance_scale=0.0),
    # The full-size Turbo architecture with random weights (resources/random_zimage.py): real
    # cost per image, noise for images. For GPU benchmarks and end-to-end runs; CUDA only.
    "full-random": ModelPreset("full-size-random-z-image-turbo", steps=8, guidance_scale=0.0),
}


class GeneratorError(RuntimeError):
    """The model cannot be loaded or run; the message says what to do."""


@dataclass
class GeneratedImage:
    spec: GenerationSpec
    image: "PIL.Image.Image"  # noqa: F821 (PIL imported lazily with torch)
    seconds: float  # this image's share of its pipeline call


# Pipelines are heavy (20 GB for Turbo in bf16): one per process per configuration.
_PIPELINES: dict[tuple, object] = {}
_PIPELINES_LOCK = threading.Lock()


class ZImageGenerator(ConfigurableResource):
    """Z-Image text-to-image generation. See the README for every setting."""

    model: str = Field(default=DEFAULTS["model"], description="tiny | turbo | base | a hub id | a local folder")
    revision: str = Field(default="", description="Hub revision (branch, tag or commit); '' = main")
    model_path: str = Field(default="", description="Local folder with the preset's weights")
    models_dir: str = Field(default="", description="Where the tiny model is built and kept")
    device: str = Field(default=DEFAULTS["device"], description="auto | cuda | cuda:N | cpu | mps")
    dtype: str = Field(default=DEFAULTS["dtype"], description="auto (bf16 on CUDA, fp32 on CPU) | bfloat16 | float32")
    batch_size: int = Field(default=DEFAULTS["batch_size"], ge=1, description="Images per pipeline call")
    steps: int = Field(default=0, ge=0, description="Inference steps; 0 = the preset's")
    guidance_scale: float = Field(default=-1.0, description="CFG scale; negative = the preset's")
    max_sequence_length: int = Field(
        default=256, ge=16, le=1024,
        description="Prompt tokens kept; the text encoder pays for all of them, longer prompts are cut",
    )
    allow_download: bool = Field(default=False, description="Allow fetching weights from the hub")
    cpu_offload: bool = Field(default=False, description="enable_model_cpu_offload() for 16-24 GB GPUs")
    compile: bool = Field(default=False, description="torch.compile the transformer's repeated blocks")
    compile_mode: str = Field(default="buckets", description="buckets (prompt-length buckets, static shapes) | dynamic (symbolic shapes)")
    compile_backend: str = Field(default="inductor", description="torch.compile backend (eager: tracing only, for tests)")
    attention_backend: str = Field(default=DEFAULTS["attention_backend"], description="diffusers attention backend; native = PyTorch SDPA; *_hub refused")
    vae_tiling: bool = Field(default=False, description="Decode the VAE in tiles (less memory on small GPUs)")
    fp8: str = Field(default=DEFAULTS["fp8"], description="off | layerwise (fp8 weight storage) | torchao (fp8 compute); changes pixels")
    invariance_sample: int = Field(default=DEFAULTS["invariance_sample"], ge=0, description="Images per batch the batch_invariance check makes again alone")
    invariance_tolerance: float = Field(default=DEFAULTS["invariance_tolerance"], ge=0, description="Mean absolute pixel difference (0-255) allowed")

    # ---- what the model is (cheap, never loads weights) ----

    @property
    def preset(self) -> ModelPreset | None:
        return PRESETS.get(self.model)

    def model_info(self) -> ModelInfo:
        preset = self.preset
        if preset is not None:
            model_id, steps, guidance, scheduler = preset.model_id, preset.steps, preset.guidance_scale, preset.scheduler
        else:
            model_id, steps, guidance = self.model, 28, 4.0
            scheduler = _scheduler_from_folder(self.model) or FLOW_MATCH_SHIFT_3
        return ModelInfo(
            model_id=model_id,
            revision=self._revision(),
            steps=self.steps or steps,
            guidance_scale=guidance if self.guidance_scale < 0 else self.guidance_scale,
            scheduler=scheduler,
            max_sequence_length=self.max_sequence_length,
        )

    def runtime_info(self) -> dict[str, str]:
        import diffusers
        import torch

        device = self._device()
        return {
            "device": device,
            "dtype": str(self._dtype(device)).replace("torch.", ""),
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
        }

    def _revision(self) -> str:
        return self._weights_revision() + ("" if self.fp8 == "off" else f"+fp8-{self.fp8}")  # fp8 changes pixels

    def _weights_revision(self) -> str:
        if self.model == "tiny":
            from resources.tiny_zimage import TINY_REVISION

            return TINY_REVISION
        if self.model == "full-random":
            from resources.random_zimage import configs_revision, random_configs

            return configs_revision(random_configs(), seed=0)
        folder = self._local_folder()
        if self.revision:
            return self.revision
        if folder is not None:
            return "local-" + _folder_fingerprint(folder)[:16]
        return "main"

    def _local_folder(self) -> Path | None:
        if self.model == "tiny":
            return self._tiny_folder()
        if self.model_path:
            return Path(self.model_path).expanduser()
        if self.preset is None and Path(self.model).expanduser().is_dir():
            return Path(self.model).expanduser()
        return None

    def _tiny_folder(self) -> Path:
        from resources.tiny_zimage import TINY_REVISION

        base = Path(self.models_dir).expanduser() if self.models_dir else Path(tempfile.gettempdir()) / "zimage-models"
        return base / TINY_REVISION

    def _device(self) -> str:
        import torch

        if self.device != "auto":
            return self.device
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def _dtype(self, device: str):
        import torch

        if self.dtype == "auto":
            return torch.bfloat16 if device.startswith("cuda") else torch.float32
        if self.dtype in ("float16", "fp16", "half"):
            raise GeneratorError("Z-Image produces NaN / black images in float16: use bfloat16 (or auto)")
        try:
            return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}[self.dtype]
        except KeyError:
            raise GeneratorError(f"unknown dtype {self.dtype!r}: use auto, bfloat16 or float32") from None

    def preflight(self) -> None:
        """Fail now, naming the setting, when this configuration cannot run on this machine: a
        device that is not there, an unusable dtype, local weights that are missing. Loads no
        weights (only torch)."""
        import torch

        device = self._device()
        self._dtype(device)
        if device.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            if index >= count:
                found = f"{count} CUDA GPU(s)" if torch.version.cuda else f"a CPU-only torch {torch.__version__} (no CUDA)"
                raise GeneratorError(f"ZIMAGE_DEVICE={self.device}: this machine has {found}; use ZIMAGE_DEVICE=cpu or auto")
        elif device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise GeneratorError("ZIMAGE_DEVICE=mps: Apple's Metal (MPS) is not available here; use ZIMAGE_DEVICE=cpu or auto")
        folder = self._local_folder()
        if folder is not None and self.model != "tiny" and not folder.is_dir():
            raise GeneratorError(f"model weights folder {folder} does not exist (ZIMAGE_MODEL / ZIMAGE_MODEL_PATH)")

    # ---- loading ----

    def pipeline(self):
        device = self._device()
        dtype = self._dtype(device)
        key = (self.model, str(self._local_folder()), self._revision(), device, str(dtype), self.max_sequence_length,
               self.compile_backend, *self.speed_options().describe().values())
        with _PIPELINES_LOCK:
            if key not in _PIPELINES:
                started = time.perf_counter()
                _PIPELINES[key] = self._load(device, dtype)
                get_dagster_logger().info(
                    f"loaded Z-Image {self.model_info().model_id} on {device} ({dtype}) in {time.perf_counter() - started:.1f}s"
                )
            return _PIPELINES[key]

    def _load(self, device: str, dtype):
        import diffusers.utils.logging
        import transformers.utils.logging

        # Loading bars would flood Dagster's captured logs; the load time is logged instead.
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()

        if self.model == "full-random":
            pipe = self._random_pipeline(device, dtype)
        else:
            pipe = self._pretrained_pipeline(device, dtype)
        pipe.set_progress_bar_config(disable=True)
        self._apply_speed_options(pipe, device, dtype)
        return pipe

    def _pretrained_pipeline(self, device: str, dtype):
        from diffusers import ZImagePipeline

        if self.model == "tiny":
            _build_tiny_folder(self._tiny_folder())
        folder = self._local_folder()
        source = str(folder) if folder is not None else self.model_info().model_id
        try:
            pipe = ZImagePipeline.from_pretrained(
                source,
                revision=(self.revision or None) if folder is None else None,
                dtype=dtype,
                local_files_only=folder is not None or not self.allow_download,
            )
        except (OSError, ValueError) as exc:
            raise GeneratorError(
                f"cannot load Z-Image weights from {source!r}: {exc}\n"
                "Weights are never downloaded at run time unless allowed. Fetch them once, e.g.\n"
                f"  hf download {self.model_info().model_id} --local-dir /models/z-image\n"
                "then set ZIMAGE_MODEL_PATH=/models/z-image (or ZIMAGE_MODEL to that folder)."
            ) from exc
        return pipe

    # ---- speed options (load path only: resources/speed_options.py) ----

    def speed_options(self):
        from resources.speed_options import SpeedOptionError, SpeedOptions

        try:
            return SpeedOptions(
                compile=self.compile_mode if self.compile else "off",
                attention_backend=self.attention_backend,
                cpu_offload=self.cpu_offload,
                vae_tiling=self.vae_tiling,
                fp8=self.fp8,
            )
        except SpeedOptionError as exc:
            raise GeneratorError(str(exc)) from None

    def _apply_speed_options(self, pipe, device: str, dtype) -> None:
        from resources.speed_options import SpeedOptionError

        options = self.speed_options()
        if options.cpu_offload and not device.startswith("cuda"):
            get_dagster_logger().warning(f"cpu_offload is for CUDA GPUs; ignored on {device}")
        try:
            options.apply(pipe, device=device, dtype=dtype, max_sequence_length=self.max_sequence_length, compile_backend=self.compile_backend)
        except SpeedOptionError as exc:
            raise GeneratorError(str(exc)) from None

    def _random_pipeline(self, device: str, dtype):
        """The full-size architecture with random weights, materialised straight on the GPU."""
        if not device.startswith("cuda"):
            raise GeneratorError(
                f"the full-random model builds the full-size Z-Image-Turbo (10 B parameters, 20 GB in bf16) with random "
                f"weights to measure a GPU; it needs CUDA, not {device!r}. Use ZIMAGE_MODEL=tiny on this machine."
            )
        from resources.random_zimage import random_configs, random_pipeline

        return random_pipeline(random_configs(), device=device, dtype=dtype, seed=0)

    # ---- generation ----

    def generate(self, specs: Sequence[GenerationSpec]) -> Iterator[GeneratedImage]:
        """Generate every spec, yielding images in chunks as they are made."""
        if not specs:
            return
        info = self.model_info()
        for spec in specs:
            if (spec.model_id, spec.revision) != (info.model_id, info.revision):
                raise GeneratorError(
                    f"spec for {spec.model_id}@{spec.revision} given to generator {info.model_id}@{info.revision}"
                )
        pipe = self.pipeline()
        embeddings = _EmbeddingCache(pipe, self.max_sequence_length)
        groups: OrderedDict[tuple, list[GenerationSpec]] = OrderedDict()
        for spec in specs:
            groups.setdefault(spec.group_key, []).append(spec)
        for group in groups.values():
            yield from self._generate_group(pipe, group, embeddings)

    def generate_unbatched(self, specs: Sequence[GenerationSpec]) -> Iterator[GeneratedImage]:
        """The same specs one image per pipeline call (the batch_invariance check compares the two)."""
        return self.model_copy(update={"batch_size": 1}).generate(specs)

    def _generate_group(self, pipe, group: list[GenerationSpec], embeddings: "_EmbeddingCache") -> Iterator[GeneratedImage]:
        import torch

        size = self.batch_size
        start = 0
        while start < len(group):
            chunk = group[start : start + size]
            try:
                images, seconds = self._call_pipeline(pipe, chunk, embeddings)
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise GeneratorError(
                        f"out of GPU memory with a single {chunk[0].width}x{chunk[0].height} image: "
                        "enable cpu_offload, lower the size, or use a larger GPU"
                    ) from None
                size = max(1, size // 2)
                torch.cuda.empty_cache()
                get_dagster_logger().warning(f"out of GPU memory: batch size halved to {size}")
                continue
            for spec, image in zip(chunk, images):
                yield GeneratedImage(spec=spec, image=image, seconds=seconds / len(chunk))
            start += len(chunk)

    def _call_pipeline(self, pipe, chunk: list[GenerationSpec], embeddings: "_EmbeddingCache"):
        import torch

        first = chunk[0]
        use_cfg = first.guidance_scale > 0
        started = time.perf_counter()
        with torch.inference_mode():
            prompt_embeds = embeddings.get([s.prompt for s in chunk])
            negative_embeds = embeddings.get([s.negative_prompt for s in chunk]) if use_cfg else None
            # CPU generators: the same seed gives the same latents on every device.
            generators = [torch.Generator("cpu").manual_seed(s.seed) for s in chunk]
            output = pipe(
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_embeds,
                height=first.height,
                width=first.width,
                num_inference_steps=first.steps,
                guidance_scale=first.guidance_scale,
                generator=generators,
                max_sequence_length=first.max_sequence_length,
                output_type="pil",
            )
        if torch.cuda.is_available() and self._device().startswith("cuda"):
            torch.cuda.synchronize()
        return output.images, time.perf_counter() - started


class _EmbeddingCache:
    """Encodes each distinct prompt once per `generate` call (views and seeds share them)."""

    def __init__(self, pipe, max_sequence_length: int, capacity: int = 512):
        self.pipe = pipe
        self.max_sequence_length = max_sequence_length
        self.capacity = capacity
        self._cache: OrderedDict[str, object] = OrderedDict()

    def get(self, prompts: list[str]) -> list:
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            # encode_prompt rewrites the list it is given (chat template): hand it a copy.
            encoded, _ = self.pipe.encode_prompt(
                prompt=list(missing),
                device=self.pipe._execution_device,
                do_classifier_free_guidance=False,
                max_sequence_length=self.max_sequence_length,
            )
            for prompt, embedding in zip(missing, encoded):
                self._cache[prompt] = embedding
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return [self._cache[p] for p in prompts]


def _build_tiny_folder(folder: Path) -> None:
    """Build the tiny model once and keep it on disk; atomic, so concurrent runs are safe."""
    if (folder / "model_index.json").exists():
        return
    from resources.tiny_zimage import tiny_pipeline

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        tiny_pipeline().save_pretrained(staging)
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _scheduler_from_folder(model: str) -> str | None:
    config = Path(model).expanduser() / "scheduler" / "scheduler_config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text())
    return f"{data.get('_class_name', 'scheduler')}(shift={data.get('shift')})"


def _folder_fingerprint(folder: Path) -> str:
    """Identifies local weights without hashing gigabytes: configs plus weight file sizes."""
    digest = hashlib.sha256()
    if not folder.is_dir():
        return "missing"
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            digest.update(rel.encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
            else:
                digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()
