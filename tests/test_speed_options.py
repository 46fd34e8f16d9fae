"""GPU speed options and the full-size random architecture, on the CPU with the real diffusers classes.

Nothing here needs a GPU: the options are applied to the tiny pipeline (fp8 storage, VAE tiling,
attention backends, prompt-length buckets, compiled blocks with torch._dynamo's `eager` backend so
that counting graphs takes seconds), and the full-size architecture is built on the meta device.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from resources.generator import GeneratorError, ZImageGenerator
from resources.random_zimage import build_on_meta, configs_revision, random_configs, random_pipeline
from resources.speed_options import SpeedOptionError, apply_attention_backend, compile_transformer, pad_to_prompt_buckets, prompt_buckets
from resources.tiny_zimage import tiny_pipeline
from zimage_assets.domain.specs import build_spec
from zimage_assets.settings import Settings

# Where the committed (public Tongyi-MAI/Z-Image-Turbo) configurations differ from diffusers' and
# transformers' class defaults; docs/gpu.md lists the same.
DIFFERS_FROM_CLASS_DEFAULTS = {
    "transformer": {"axes_lens"},
    "text_encoder": {"hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads", "max_position_embeddings",
                     "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id"},
    "vae": {"block_out_channels", "down_block_types", "up_block_types", "layers_per_block", "latent_channels", "sample_size",
            "scaling_factor", "shift_factor", "use_quant_conv", "use_post_quant_conv"},
    "scheduler": {"shift"},
}
PROMPTS = [  # product prompts of very different lengths (the byte-level tokenizer: ~1 token per character)
    "Studio photo of a red hoodie.",
    "Professional e-commerce product photograph of a black wool hoodie, front view, white background, soft light.",
    "Macro close-up product photograph of a brown leather bag, showing its material, texture, stitching and finish "
    "in fine detail, neutral light background, sharp focus. Zip pocket, adjustable strap, brass buckles, lined inside.",
    "A cap.",
    "Lifestyle photograph of a blue denim jacket in natural daylight, in use in a realistic everyday setting.",
]


def _images(pipe, prompts, size=64, batch=4, max_len=512):
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        generators = [torch.Generator().manual_seed(start + i) for i in range(len(chunk))]
        result = pipe(prompt=list(chunk), height=size, width=size, num_inference_steps=2, guidance_scale=0.0,
                      generator=generators, max_sequence_length=max_len, output_type="np")
        out.append(result.images)
    return (np.concatenate(out) * 255).round()


def _class_defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if p.default is not inspect.Parameter.empty}


def test_committed_configs_differ_from_the_class_defaults_only_where_documented():
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
    from transformers import Qwen3Config

    qwen = Qwen3Config()
    defaults = {
        "transformer": _class_defaults(ZImageTransformer2DModel),
        "vae": _class_defaults(AutoencoderKL),
        "scheduler": _class_defaults(FlowMatchEulerDiscreteScheduler),
        "text_encoder": {**{k: getattr(qwen, k, None) for k in random_configs()["text_encoder"]}, "rope_theta": qwen.rope_parameters["rope_theta"]},
    }
    for component, config in random_configs().items():
        differ = set()
        for key, value in config.items():
            if key.startswith("_") or key == "model_type":
                continue
            default = defaults[component][key]
            if (list(default) if isinstance(default, tuple) else default) != value:
                differ.add(key)
        assert differ == DIFFERS_FROM_CLASS_DEFAULTS[component], component


def test_the_full_size_architecture_builds_on_meta_with_the_published_sizes():
    models = build_on_meta(random_configs(), torch.bfloat16)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert round(params["transformer"] / 1e9, 2) == 6.15 and round(params["text_encoder"] / 1e9, 2) == 4.02
    assert 80e6 < params["vae"] < 90e6
    assert all(p.device.type == "meta" and p.dtype == torch.bfloat16 for m in models.values() for p in m.parameters())


def test_a_random_pipeline_materialises_finite_images_and_is_named_by_its_configs():
    pipe = random_pipeline(random_configs(tiny=True), device="cpu", dtype=torch.float32, seed=3)
    pipe.set_progress_bar_config(disable=True)
    rotary = pipe.text_encoder.rotary_emb
    assert torch.allclose(rotary.inv_freq, rotary.compute_default_rope_parameters(rotary.config)[0])  # buffers recomputed
    images = _images(pipe, PROMPTS[:2])
    assert np.isfinite(images).all() and images.std() > 1
    again = random_pipeline(random_configs(tiny=True), device="cpu", dtype=torch.float32, seed=3)
    again.set_progress_bar_config(disable=True)
    assert np.array_equal(_images(again, PROMPTS[:2]), images)  # seeded: the same weights every time
    assert configs_revision(random_configs(), 0) != configs_revision(random_configs(tiny=True), 0)
    assert configs_revision(random_configs(), 0) == ZImageGenerator(model="full-random").model_info().revision


def test_the_full_random_preset_is_for_cuda_only():
    generator = ZImageGenerator(model="full-random", device="cpu")
    assert generator.model_info().model_id == "full-size-random-z-image-turbo"
    with pytest.raises(GeneratorError, match="needs CUDA"):
        generator.pipeline()


def test_hub_attention_backends_are_refused_with_a_clear_message(project_env, monkeypatch):
    monkeypatch.setenv("ZIMAGE_ATTENTION_BACKEND", "flash_hub")
    with pytest.raises(ValueError, match="ZIMAGE_ATTENTION_BACKEND='flash_hub' downloads kernels"):
        Settings.from_env()
    with pytest.raises(GeneratorError, match="downloads its kernels from the Hugging Face Hub"):
        ZImageGenerator(attention_backend="sage_hub").speed_options()
    transformer = tiny_pipeline().transformer
    with pytest.raises(SpeedOptionError, match="unknown attention backend 'fast'"):
        apply_attention_backend(transformer, "fast")
    with pytest.raises(SpeedOptionError, match="not usable here"):
        apply_attention_backend(transformer, "flash")  # flash-attn is not installed here


def test_an_offline_attention_backend_gives_the_same_images(models_dir):
    native = tiny_pipeline()
    native.set_progress_bar_config(disable=True)
    math_attention = tiny_pipeline()
    math_attention.set_progress_bar_config(disable=True)
    apply_attention_backend(math_attention.transformer, "_native_math")
    assert np.abs(_images(native, PROMPTS) - _images(math_attention, PROMPTS)).max() <= 1


def test_prompt_buckets_are_few_and_padding_to_them_changes_no_image():
    assert prompt_buckets(256) == (64, 128, 256) and prompt_buckets(300) == (64, 128, 256, 320) and prompt_buckets(40) == (64,)
    plain, bucketed = tiny_pipeline(), tiny_pipeline()
    for pipe in (plain, bucketed):
        pipe.set_progress_bar_config(disable=True)
    pad_to_prompt_buckets(bucketed.transformer, prompt_buckets(512))
    assert np.abs(_images(plain, PROMPTS) - _images(bucketed, PROMPTS)).max() <= 1


def _graphs_for(mode: str, prompts: list[str]) -> int:
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    torch._dynamo.config.recompile_limit = 64  # as compile_transformer sets it: no silent fallback to eager below
    counters.clear()
    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    if mode == "static":  # compile_repeated_blocks as diffusers documents it, no buckets
        pipe.transformer.compile_repeated_blocks(fullgraph=True, backend="eager")
    else:
        compile_transformer(pipe.transformer, mode, 512, backend="eager")
    _images(pipe, prompts, batch=3)
    return counters["stats"]["unique_graphs"]


def test_prompt_buckets_bound_the_graphs_a_batch_of_varied_prompts_compiles():
    varied = [p + " Extra detail." * i for i, p in enumerate(PROMPTS * 2)]  # 10 lengths, batches of 3 and a last 1
    more = [p + " More." * i for i, p in enumerate(PROMPTS * 2)]  # 10 other lengths in the same buckets
    buckets = _graphs_for("buckets", varied)
    # noise refiner + (caption refiner, joint blocks) x buckets used, batch 1 specialised: a bound, not a count per prompt
    assert buckets <= 2 * (1 + 2 * len(prompt_buckets(512)))
    assert _graphs_for("buckets", varied + more) == buckets  # new prompt lengths: no new graph
    assert _graphs_for("dynamic", varied + more) <= 6


def test_generator_speed_options_run_on_cpu_and_fp8_enters_the_revision(models_dir):
    plain = ZImageGenerator(models_dir=str(models_dir), batch_size=3)
    fp8 = ZImageGenerator(models_dir=str(models_dir), batch_size=3, fp8="layerwise", vae_tiling=True)
    assert fp8.model_info().revision == plain.model_info().revision + "+fp8-layerwise"
    specs = [build_spec(fp8.model_info(), prompt=p, negative_prompt="", width=64, height=64, seed=i) for i, p in enumerate(PROMPTS[:3])]
    batched = [np.asarray(r.image, dtype=np.int16) for r in fp8.generate(specs)]
    single = [np.asarray(r.image, dtype=np.int16) for r in fp8.generate_unbatched(specs)]
    assert all(np.abs(a - b).max() <= 1 for a, b in zip(batched, single))  # fp8 storage keeps batch invariance here
    pipe = fp8.pipeline()
    assert pipe.transformer.layers[0].attention.to_q.weight.dtype == torch.float8_e4m3fn and pipe.vae.use_tiling
    with pytest.raises(GeneratorError, match="compile='fast'"):
        ZImageGenerator(compile=True, compile_mode="fast").speed_options()


def test_speed_settings_are_read_and_checked(project_env, monkeypatch):
    monkeypatch.setenv("ZIMAGE_COMPILE", "true")
    monkeypatch.setenv("ZIMAGE_FP8", "layerwise")
    monkeypatch.setenv("ZIMAGE_VAE_TILING", "1")
    settings = Settings.from_env()
    assert (settings.compile, settings.fp8, settings.vae_tiling, settings.cpu_offload) == ("buckets", "layerwise", True, False)
    from resources import build_resources

    generator = build_resources(settings)["generator"]
    assert generator.speed_options().describe() == {
        "compile": "buckets", "attention_backend": "native", "cpu_offload": False, "vae_tiling": True, "fp8": "layerwise"
    }
    monkeypatch.setenv("ZIMAGE_COMPILE", "max")
    with pytest.raises(ValueError, match="ZIMAGE_COMPILE='max': use off, buckets or dynamic"):
        Settings.from_env()
