"""How a loaded Z-Image pipeline is made fast (or small) on its device: the generator's speed options.

Each option is a setting (README, "Speed options"), applied once when the pipeline is loaded, in
this order: memory placement (model CPU offload for 16-24 GB GPUs, else the whole pipeline on the
device), VAE tiling, fp8, attention backend, compilation. `benchmarks/bench_gpu.py` applies the
same functions, so what it measures is what production runs.

- attention backend: diffusers' `set_attention_backend`; `native` (PyTorch SDPA) by default.
  Backends that download kernels from the Hugging Face Hub at run time (`*_hub`) are refused.
- compile: `compile_repeated_blocks(fullgraph=True)` (the 30 + 4 transformer blocks share one
  compiled graph). The blocks see a caption of the prompt's length and a joint sequence of image
  plus caption, so every new prompt length would compile a new graph (and after
  torch._dynamo's recompile limit, silently run uncompiled). `buckets` pads both, masked, to
  the next prompt-length bucket (64, 128, 256, ... tokens) and marks the batch dimension
  dynamic: a handful of graphs per image size, whatever the prompts. `dynamic` compiles with
  symbolic shapes instead (no padding, fewer graphs, kernels not specialised to a length).
  Masked padding changes no image beyond float rounding (the batch-invariance check's tolerance).
- fp8: `layerwise` stores the transformer's weights in float8_e4m3fn and computes in bf16
  (half the weight memory; usually slower); `torchao` quantises it to fp8 weights and
  activations (Hopper and newer). fp8 changes pixels: the generator puts it in the revision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

COMPILE_MODES = ("off", "buckets", "dynamic")
FP8_MODES = ("off", "layerwise", "torchao")
DEFAULT_ATTENTION = "native"
SEQ_MULTIPLE = 32  # the transformer pads every caption to a multiple of 32 tokens
RECOMPILE_LIMIT = 64  # torch._dynamo's default (8) counts every block of every shape


class SpeedOptionError(ValueError):
    """A speed option that cannot be applied here; the message says why and what to use."""


@dataclass(frozen=True)
class SpeedOptions:
    compile: str = "off"
    attention_backend: str = DEFAULT_ATTENTION
    cpu_offload: bool = False
    vae_tiling: bool = False
    fp8: str = "off"

    def __post_init__(self):
        if self.compile not in COMPILE_MODES:
            raise SpeedOptionError(f"compile={self.compile!r}: use one of {', '.join(COMPILE_MODES)}")
        if self.fp8 not in FP8_MODES:
            raise SpeedOptionError(f"fp8={self.fp8!r}: use one of {', '.join(FP8_MODES)}")
        hub_backend_error(self.attention_backend)

    def describe(self) -> dict:
        return asdict(self)

    def apply(self, pipe, *, device: str, dtype, max_sequence_length: int, compile_backend: str = "inductor") -> None:
        place(pipe, device, cpu_offload=self.cpu_offload)
        if self.vae_tiling:
            pipe.vae.enable_tiling()
        apply_fp8(pipe.transformer, self.fp8, compute_dtype=dtype)
        apply_attention_backend(pipe.transformer, self.attention_backend)
        compile_transformer(pipe.transformer, self.compile, max_sequence_length, backend=compile_backend)


# ---- memory ----


def place(pipe, device: str, *, cpu_offload: bool) -> None:
    """The whole pipeline on the device, or (CUDA only) each model moved there only while it runs."""
    if cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)


# ---- attention ----


def hub_backend_error(name: str) -> None:
    if (name or "").strip().lower().endswith("_hub"):
        raise SpeedOptionError(
            f"attention backend {name!r} downloads its kernels from the Hugging Face Hub at run time, which this project "
            f"never does: use {DEFAULT_ATTENTION!r} (PyTorch SDPA) or an installed one ({', '.join(offline_attention_backends())})"
        )


def offline_attention_backends() -> list[str]:
    """diffusers' attention backends that need no download (they may still need a package or a GPU)."""
    from diffusers.models.attention_dispatch import _HUB_KERNELS_REGISTRY, AttentionBackendName

    return [b.value for b in AttentionBackendName if b not in _HUB_KERNELS_REGISTRY and not b.value.endswith("_hub")]


def apply_attention_backend(transformer, name: str) -> None:
    name = (name or DEFAULT_ATTENTION).strip().lower()
    hub_backend_error(name)
    offline = offline_attention_backends()
    if name not in offline:
        raise SpeedOptionError(f"unknown attention backend {name!r}: use one of {', '.join(offline)}")
    if name == DEFAULT_ATTENTION:
        return
    try:
        transformer.set_attention_backend(name)
    except (RuntimeError, ImportError, ValueError) as exc:
        raise SpeedOptionError(f"attention backend {name!r} is not usable here: {exc}") from None


# ---- fp8 ----


def apply_fp8(transformer, mode: str, *, compute_dtype) -> None:
    import torch

    if mode == "off":
        return
    if mode == "layerwise":
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
        return
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
    except ImportError:
        raise SpeedOptionError("fp8='torchao' needs the torchao package (pip install torchao matching your torch)") from None
    quantize_(transformer, Float8DynamicActivationFloat8WeightConfig())


# ---- compilation ----


def prompt_buckets(max_sequence_length: int) -> tuple[int, ...]:
    """Caption lengths the transformer is compiled for: 64, 128, 256, ... up to the longest prompt."""
    top = -(-max_sequence_length // SEQ_MULTIPLE) * SEQ_MULTIPLE
    buckets, size = [], 64
    while size < top:
        buckets.append(size)
        size *= 2
    return (*buckets, top)


def bucket_of(length: int, buckets: tuple[int, ...]) -> int:
    return next((b for b in buckets if length <= b), length)


def compile_transformer(transformer, mode: str, max_sequence_length: int, *, backend: str = "inductor") -> None:
    import torch._dynamo

    if mode == "off":
        return
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    if mode == "buckets":
        pad_to_prompt_buckets(transformer, prompt_buckets(max_sequence_length))
        transformer.compile_repeated_blocks(fullgraph=True, backend=backend)
    else:
        transformer.compile_repeated_blocks(fullgraph=True, dynamic=True, backend=backend)


def pad_to_prompt_buckets(transformer, buckets: tuple[int, ...]) -> None:
    """Make the caption and the joint sequence of every forward one of a few lengths, padded and masked.

    Wraps the two (diffusers 0.39-0.42) methods that lay out the sequences the blocks see; the
    padding is masked out of attention and cut off before unpatchify, like diffusers' own padding
    of shorter prompts in a batch.
    """
    if getattr(transformer, "_zimage_prompt_buckets", None) == buckets:
        return
    prepare, unify = transformer._prepare_sequence, transformer._build_unified_sequence

    def _prepare_sequence(feats, pos_ids, inner_pad_mask, pad_token, noise_mask=None, device=None):
        out, freqs, mask, seqlens, noise = prepare(feats, pos_ids, inner_pad_mask, pad_token, noise_mask, device)
        if pad_token is transformer.cap_pad_token:
            target = bucket_of(max(seqlens), buckets)
            out, freqs, mask = _padded(out, target), _padded(freqs, target), _mask(seqlens, target, out.device)
        _mark_shapes(out)
        return out, freqs.contiguous(), mask, seqlens, noise

    def _build_unified_sequence(x, x_freqs, x_seqlens, x_noise_mask, cap, cap_freqs, cap_seqlens, *rest):
        unified, freqs, mask, noise = unify(x, x_freqs, x_seqlens, x_noise_mask, cap, cap_freqs, cap_seqlens, *rest)
        target = max(x_seqlens) + bucket_of(max(cap_seqlens), buckets)
        lengths = [a + b for a, b in zip(x_seqlens, cap_seqlens)]
        unified, freqs = _padded(unified, target), _padded(freqs, target)
        _mark_shapes(unified)
        return unified, freqs, _mask(lengths, target, unified.device), noise

    transformer._prepare_sequence = _prepare_sequence
    transformer._build_unified_sequence = _build_unified_sequence
    transformer._zimage_prompt_buckets = buckets


def _mark_shapes(sequence) -> None:
    """One graph per bucket (a static length, kernels specialised to it), any batch size."""
    import torch._dynamo

    torch._dynamo.maybe_mark_dynamic(sequence, 0)
    torch._dynamo.mark_static(sequence, 1)


def _padded(tensor, length: int):
    import torch

    if tensor.shape[1] >= length:
        return tensor.contiguous()
    pad = tensor.new_zeros((tensor.shape[0], length - tensor.shape[1], *tensor.shape[2:]))
    return torch.cat([tensor, pad], dim=1)


def _mask(lengths: list[int], total: int, device):
    import torch

    positions = torch.arange(total, device=device)
    return positions[None, :] < torch.tensor(lengths, device=device)[:, None]
