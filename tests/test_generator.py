"""The Z-Image generator resource on the real (tiny) diffusers pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resources.generator import GeneratorError, ZImageGenerator
from zimage_assets.domain.specs import build_spec


def _specs(generator: ZImageGenerator, prompts, seeds, size=(48, 48)):
    info = generator.model_info()
    return [build_spec(info, prompt=p, negative_prompt="blurry", width=size[0], height=size[1], seed=s) for p, s in zip(prompts, seeds)]


def _pixels(results):
    return [np.asarray(r.image, dtype=np.int16) for r in results]


def test_presets_carry_the_right_steps_and_guidance():
    assert (ZImageGenerator(model="turbo").model_info().steps, ZImageGenerator(model="turbo").model_info().guidance_scale) == (8, 0.0)
    base = ZImageGenerator(model="base").model_info()
    assert (base.model_id, base.steps, base.guidance_scale) == ("Tongyi-MAI/Z-Image", 28, 4.0)
    custom = ZImageGenerator(model="turbo", steps=4, guidance_scale=1.5, revision="abc123").model_info()
    assert (custom.steps, custom.guidance_scale, custom.revision) == (4, 1.5, "abc123")


def test_batched_generation_equals_single_calls(models_dir):
    prompts = ["a red hoodie", "a blue bag", "a red hoodie"]
    seeds = [1, 2, 3]
    batched = ZImageGenerator(models_dir=str(models_dir), batch_size=3)
    single = ZImageGenerator(models_dir=str(models_dir), batch_size=1)
    one_call = list(batched.generate(_specs(batched, prompts, seeds)))
    three_calls = list(single.generate(_specs(single, prompts, seeds)))
    assert [r.spec.seed for r in one_call] == seeds
    for a, b in zip(_pixels(one_call), _pixels(three_calls)):
        assert a.shape == (48, 48, 3) and np.abs(a - b).max() <= 1
    assert np.abs(_pixels(one_call)[0] - _pixels(one_call)[2]).max() > 10  # other seed, other image


def test_specs_are_grouped_by_size_and_each_image_has_its_size(models_dir):
    generator = ZImageGenerator(models_dir=str(models_dir), batch_size=8)
    specs = _specs(generator, ["a", "b"], [1, 2], (32, 48)) + _specs(generator, ["c"], [3], (64, 32))
    results = list(generator.generate(specs))
    assert sorted(r.image.size for r in results) == [(32, 48), (32, 48), (64, 32)]
    assert all(r.seconds > 0 for r in results)


def test_callers_prompt_lists_are_not_rewritten(models_dir):
    generator = ZImageGenerator(models_dir=str(models_dir))
    prompts = ["a green watch"]
    specs = _specs(generator, prompts, [5])
    list(generator.generate(specs))
    assert prompts == ["a green watch"] and specs[0].prompt == "a green watch"


def test_out_of_memory_halves_the_batch_and_still_makes_every_image(models_dir, monkeypatch):
    generator = ZImageGenerator(models_dir=str(models_dir), batch_size=4)
    real_call = ZImageGenerator._call_pipeline
    sizes = []

    def call_with_small_gpu(self, pipe, chunk, embeddings):  # a GPU that fits 1 image at a time
        sizes.append(len(chunk))
        if len(chunk) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_call(self, pipe, chunk, embeddings)

    monkeypatch.setattr(ZImageGenerator, "_call_pipeline", call_with_small_gpu)
    results = list(generator.generate(_specs(generator, ["a", "b", "c"], [1, 2, 3])))
    assert [r.spec.seed for r in results] == [1, 2, 3]
    assert sizes[:3] == [3, 2, 1]


def test_float16_is_refused_and_missing_weights_explain_what_to_do(tmp_path):
    with pytest.raises(GeneratorError, match="float16"):
        ZImageGenerator(dtype="float16", device="cpu").runtime_info()
    with pytest.raises(GeneratorError, match="hf download Tongyi-MAI/Z-Image-Turbo"):
        ZImageGenerator(model="turbo", device="cpu", model_path=str(tmp_path / "none")).pipeline()
    with pytest.raises(GeneratorError, match="never downloaded at run time"):
        ZImageGenerator(model="turbo", device="cpu").pipeline()  # not in the local hub cache, no download


def test_a_local_folder_model_loads_offline_with_a_stable_revision(models_dir, tmp_path):
    tiny = ZImageGenerator(models_dir=str(models_dir))
    tiny.pipeline().save_pretrained(tmp_path / "my-model")
    local = ZImageGenerator(model=str(tmp_path / "my-model"), steps=4, guidance_scale=0.0)
    info = local.model_info()
    assert info.revision.startswith("local-") and info.revision == local.model_info().revision
    (result,) = local.generate([build_spec(info, prompt="a cap", negative_prompt="", width=32, height=32, seed=1)])
    assert result.image.size == (32, 32)


def test_a_spec_for_another_model_is_refused(models_dir):
    turbo_spec = _specs(ZImageGenerator(model="turbo"), ["x"], [1])
    with pytest.raises(GeneratorError, match="given to generator tiny-random-zimage"):
        list(ZImageGenerator(models_dir=str(models_dir)).generate(turbo_spec))
