"""The full-size Z-Image-Turbo architecture with random weights, built without a download.

What an image costs does not depend on the weights' values, so the `full-random` preset and
`benchmarks/bench_gpu.py` build the real classes (`ZImageTransformer2DModel` 6.15 B parameters,
Qwen3-4B `Qwen3Model` 4.02 B, the FLUX `AutoencoderKL` 84 M, `FlowMatchEulerDiscreteScheduler`)
from the configurations committed in `resources/zimage_configs/turbo/` (the public
Tongyi-MAI/Z-Image-Turbo ones; docs/gpu.md says where they differ from diffusers' class
defaults). Each model is built on the `meta` device, so the host never holds its 20 GB, then
materialised on the target device in the target dtype and filled with a cheap seeded random
init (normal with std 1/sqrt(fan_in), norms 1, biases 0), which keeps activations finite in
bf16. The tokenizer is the byte-level Qwen2 tokenizer with the Qwen3 chat template of
`resources/tiny_zimage.py`. Images from random weights are noise: time them, never judge them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "zimage_configs"
COMPONENTS = ("transformer", "text_encoder", "vae", "scheduler")

# The same classes shrunk to CPU-test size (the shape of resources/tiny_zimage.py): what
# `random_configs(tiny=True)` applies on top of the full-size configurations.
TINY_OVERRIDES = {
    "transformer": {"dim": 32, "n_layers": 2, "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2, "cap_feat_dim": 32, "axes_dims": [8, 4, 4]},
    "text_encoder": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 512, "bos_token_id": None, "eos_token_id": None},
    "vae": {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1, "sample_size": 32},
    "scheduler": {},
}


def random_configs(name: str = "turbo", *, tiny: bool = False) -> dict[str, dict]:
    """The committed configuration of each component (`tiny`: shrunk by TINY_OVERRIDES)."""
    folder = CONFIG_DIR / name
    configs = {c: json.loads((folder / f"{c}.json").read_text()) for c in COMPONENTS}
    if tiny:
        configs = {c: {**configs[c], **TINY_OVERRIDES[c]} for c in COMPONENTS}
    return configs


def configs_revision(configs: dict[str, dict], seed: int) -> str:
    """Names the random model in receipts: its configurations and its seed."""
    digest = hashlib.sha256(json.dumps(configs, sort_keys=True).encode()).hexdigest()[:12]
    return f"random-{digest}-seed{seed}"


def _kwargs(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_") and k != "model_type"}


MODELS = ("transformer", "text_encoder", "vae")


def build_on_meta(configs: dict[str, dict], dtype, names: tuple[str, ...] = MODELS) -> dict:
    """The named models (default: transformer, text_encoder, vae) on the meta device (no memory), in `dtype`."""
    import torch
    from diffusers import AutoencoderKL, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    builders = {
        "transformer": lambda: ZImageTransformer2DModel(**_kwargs(configs["transformer"])),
        "text_encoder": lambda: Qwen3Model(Qwen3Config(**_kwargs(configs["text_encoder"]))),
        "vae": lambda: AutoencoderKL(**_kwargs(configs["vae"])),
    }
    with torch.device("meta"):
        models = {name: builders[name]() for name in names}
    for model in models.values():
        torch.nn.Module.to(model, dtype=dtype)  # plain cast on meta (diffusers' `to` warns about fp32 modules; there are none)
        model.eval()
    return models


def materialise(model, device: str, seed: int):
    """Allocate `model` (built on meta) on `device` and fill it with a cheap seeded random init."""
    import torch

    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                fan_in = param[0].numel()
                param.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
            elif name.endswith("bias"):
                param.zero_()
            else:  # norm scales
                param.fill_(1.0)
        _recompute_buffers(model)
    return model


def _recompute_buffers(model) -> None:
    """Buffers are not parameters: recompute the ones these classes have, refuse unknown ones."""
    handled = set()
    for prefix, module in model.named_modules():
        if hasattr(module, "inv_freq") and hasattr(module, "compute_default_rope_parameters"):
            if module.rope_type != "default":
                raise RuntimeError(f"random build: rope type {module.rope_type!r} of {prefix} is not handled")
            inv_freq, scaling = module.compute_default_rope_parameters(module.config)
            module.inv_freq.copy_(inv_freq)
            module.original_inv_freq.copy_(inv_freq)
            module.attention_scaling = scaling
            handled |= {f"{prefix}.inv_freq", f"{prefix}.original_inv_freq"}
    unknown = sorted(name for name, _ in model.named_buffers() if name not in handled)
    if unknown:
        raise RuntimeError(f"random build of {type(model).__name__}: buffers {unknown} would stay uninitialised")


def random_components(configs: dict[str, dict], *, device: str, dtype, seed: int = 0) -> dict:
    """Every component of a ZImagePipeline: built on meta, materialised on `device`."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from resources.tiny_zimage import tiny_tokenizer

    models = build_on_meta(configs, dtype)
    for offset, name in enumerate(MODELS):
        materialise(models[name], device, seed + offset)
    scheduler = FlowMatchEulerDiscreteScheduler(**_kwargs(configs["scheduler"]))
    return {**models, "scheduler": scheduler, "tokenizer": tiny_tokenizer()}


def random_pipeline(configs: dict[str, dict] | None = None, *, device: str, dtype, seed: int = 0):
    """A ZImagePipeline of the committed full-size (or given) architecture with random weights."""
    from diffusers import ZImagePipeline

    return ZImagePipeline(**random_components(configs or random_configs(), device=device, dtype=dtype, seed=seed))
