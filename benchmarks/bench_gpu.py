"""The generation path against its floor: full-size Z-Image-Turbo with random weights, no download.

    python benchmarks/bench_gpu.py --out gpu.json                  # on a CUDA GPU: 1024x1024, 8 steps
    python benchmarks/bench_gpu.py --tiny --out tiny.json          # anywhere: the tiny architecture (the test suite runs this)

Builds the real classes from resources/zimage_configs/turbo/ on the meta device and materialises
them on the GPU with random bf16 weights (resources/random_zimage.py), then measures, for each
variant (speed options from resources/speed_options.py, the production code path):

- images/s at batch 1, 2, 4; seconds per image split into text encoding, denoising and VAE
  decode (CUDA events, or synchronised timers on a CPU); peak GPU memory;
- model FLOP utilisation against the issue's 467 TFLOP per image (1024x1024, 8 steps) and against
  the FLOP counted by torch.utils.flop_counter in this run, both at 790 TFLOP/s (H100/H200 bf16);
- batch invariance (image 0 of the largest batch vs the same spec alone) and the difference from
  the plain eager bf16 image (what fp8 or compilation change);
- the compile time of the compiled variants (first call minus a steady call).

Variants: eager with each offline attention backend, compile (buckets, dynamic), fp8 (layerwise;
torchao when installed), the inpaint (scene) pipeline, model CPU offload + VAE tiling. The JSON
is rewritten after each variant, so a run cut short keeps what it measured. Images are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resources.random_zimage import build_on_meta, configs_revision, materialise, random_components, random_configs  # noqa: E402
from resources.speed_options import SpeedOptions, SpeedOptionError, offline_attention_backends  # noqa: E402
from zimage_assets.domain.batch_invariance import compare_pixels  # noqa: E402

REFERENCE_TFLOP_PER_IMAGE = 467.0  # Turbo, 1024x1024, 8 steps (docs/gpu.md)
PEAK_TFLOPS = 790.0  # bf16 dense matrix products on an H100 / H200
# About 110 tokens with the chat template under the byte-level tokenizer (one per character): a caption of 128 after
# the transformer's padding, the length the 467 TFLOP reference assumes (a real Qwen tokenizer: one token per 3-4 characters).
PROMPT = "Studio product photo of a black wool hoodie with a zip pocket, front view, white background."
ATTENTION_ON_GPU = ("native", "_native_cudnn", "_native_flash", "_native_efficient", "flash", "_flash_3", "sage", "xformers")


def main() -> None:
    import diffusers.utils.logging

    diffusers.utils.logging.set_verbosity_error()  # warnings about float32 modules (there are none) and experimental APIs
    args = _parser().parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    tiny = args.tiny or not cuda
    size = args.size or (64 if tiny else 1024)
    dtype = torch.bfloat16 if cuda else torch.float32
    configs = random_configs(tiny=tiny)
    started = time.perf_counter()
    report = {
        "benchmark": "bench_gpu", "tiny": tiny, "device": device, "dtype": str(dtype).replace("torch.", ""),
        "size": size, "steps": args.steps, "batches": args.batches, "rounds": args.rounds, "max_sequence_length": args.max_sequence_length,
        "model_revision": configs_revision(configs, 0), "environment": environment(device),
        "flops": {"reference_tflop_per_image": REFERENCE_TFLOP_PER_IMAGE, "peak_tflops": PEAK_TFLOPS,
                  "full_size_from_configs": full_size_flops(size if not tiny else 1024, args.steps if not tiny else 8, args.max_sequence_length)},
        "variants": [],
    }
    derived = report["flops"]["full_size_from_configs"]
    print(f"{report['environment'].get('gpu') or 'CPU'}: full-size Turbo at {derived['size']}px, {derived['steps']} steps = "
          f"{derived['per_image_tflop']} TFLOP per image counted from the configs (reference {REFERENCE_TFLOP_PER_IMAGE:g}); "
          f"floor {derived['floor_seconds_per_image_at_peak']} s at {PEAK_TFLOPS:g} TFLOP/s", flush=True)
    out = Path(args.out)
    bench = Bench(args, configs, device, dtype, size)
    for name, options, pipeline in variants(args, cuda):
        if time.perf_counter() - started > args.time_budget:
            report["variants"].append({"name": name, "status": "skipped", "reason": f"time budget of {args.time_budget:g} s spent"})
        else:
            report["variants"].append(bench.run(name, options, pipeline))
            print(summary_line(report["variants"][-1]), flush=True)
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        out.write_text(json.dumps(report, indent=2, default=str))
    report["best"] = best(report["variants"])
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out} ({report['wall_seconds']} s)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_gpu.json")
    parser.add_argument("--tiny", action="store_true", help="the tiny architecture (always on a CPU)")
    parser.add_argument("--device", default="")
    parser.add_argument("--size", type=int, default=0, help="image side (default 1024; 64 with --tiny)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2, help="timed calls per batch size (after one warm-up)")
    parser.add_argument("--max-sequence-length", type=int, default=256, help="the generator's default")
    parser.add_argument("--attention", default="", help="comma-separated backends (default: every offline one that may work)")
    parser.add_argument("--only", default="", help="comma-separated variant names or prefixes (default: all)")
    parser.add_argument("--compile-backend", default="", help="torch.compile backend (default inductor; eager with --tiny)")
    parser.add_argument("--strength", type=float, default=1.0, help="inpaint strength (1.0: every step runs)")
    parser.add_argument("--time-budget", type=float, default=420.0, help="seconds; the variants after it are skipped")
    return parser


def variants(args, cuda: bool):
    """(name, SpeedOptions, pipeline kind), most telling first (a time budget cuts the tail); eager/native
    first of all: the others compare their images with it."""
    wanted = [w for w in args.only.split(",") if w]
    names = args.attention.split(",") if args.attention else [b for b in ATTENTION_ON_GPU if b in offline_attention_backends()]
    if not cuda and not args.attention:
        names = ["native", "_native_math"]
    items = [
        ("eager/native", SpeedOptions(), "text2img"),
        ("compile-buckets/native", SpeedOptions(compile="buckets"), "text2img"),
        ("inpaint/native", SpeedOptions(), "inpaint"),
        ("fp8-layerwise/native", SpeedOptions(fp8="layerwise"), "text2img"),
        ("offload+vae-tiling", SpeedOptions(cpu_offload=True, vae_tiling=True), "text2img"),
        *[(f"eager/{b}", SpeedOptions(attention_backend=b), "text2img") for b in names if b != "native"],
        ("compile-dynamic/native", SpeedOptions(compile="dynamic"), "text2img"),
        ("fp8-torchao/native", SpeedOptions(fp8="torchao"), "text2img"),
        ("fp8-torchao+compile-buckets", SpeedOptions(fp8="torchao", compile="buckets"), "text2img"),
        ("inpaint+compile-buckets", SpeedOptions(compile="buckets"), "inpaint"),
        ("vae-tiling/native", SpeedOptions(vae_tiling=True), "text2img"),
    ]
    return [v for v in items if not wanted or v[0] == "eager/native" or any(v[0].startswith(w) for w in wanted)]


class Bench:
    """One text encoder and VAE for the run; a fresh transformer (same seed, same weights) per variant."""

    def __init__(self, args, configs: dict, device: str, dtype, size: int):
        self.args, self.configs, self.device, self.dtype, self.size = args, configs, device, dtype, size
        self.cuda = device.startswith("cuda")
        self.tiny = args.tiny or not self.cuda
        started = time.perf_counter()
        self.components = random_components(configs, device=device, dtype=dtype, seed=0)
        self.build_seconds = round(time.perf_counter() - started, 2)
        self.baseline: dict[str, np.ndarray] = {}  # pipeline kind -> the eager native image of spec 0
        self.flops: dict[str, float] = {}  # pipeline kind -> FLOP per image, counted on an eager call
        self.prompts = [PROMPT + " Detail." * i for i in range(max(args.batches))]  # different lengths, as a batch has

    def pipeline(self, options: SpeedOptions, kind: str):
        from diffusers import ZImageInpaintPipeline, ZImagePipeline

        import torch._dynamo

        torch._dynamo.reset()
        components = dict(self.components)
        transformer = build_on_meta(self.configs, self.dtype, names=("transformer",))["transformer"]
        components["transformer"] = materialise(transformer, self.device, seed=0)
        if options.cpu_offload:  # its own models, and the shared ones off the GPU: peak memory is the offloaded pipeline's
            for name in ("text_encoder", "vae"):
                self.components[name].to("cpu")
            del components["transformer"], transformer
            components = random_components(self.configs, device=self.device, dtype=self.dtype, seed=0)
        pipe = ZImagePipeline(**components)
        if kind == "inpaint":
            pipe = ZImageInpaintPipeline.from_pipe(pipe)
        pipe.set_progress_bar_config(disable=True)
        backend = self.args.compile_backend or ("inductor" if self.cuda else "eager")
        options.apply(pipe, device=self.device, dtype=self.dtype, max_sequence_length=self.args.max_sequence_length, compile_backend=backend)
        return pipe

    def run(self, name: str, options: SpeedOptions, kind: str) -> dict:
        result = {"name": name, "pipeline": kind, "options": options.describe(), "status": "ok"}
        if options.cpu_offload and not self.cuda:
            return {**result, "status": "skipped", "reason": "model CPU offload needs a CUDA GPU"}
        started = time.perf_counter()
        try:
            pipe = self.pipeline(options, kind)
            result["setup_seconds"] = round(time.perf_counter() - started, 2)
            first = self.call(pipe, kind, 1)
            result["first_call_seconds"] = round(first["total"], 3)
            if kind not in self.flops and options == SpeedOptions(attention_backend=options.attention_backend):  # eager, bf16
                self.flops[kind] = round(count_flops(lambda: self.call(pipe, kind, 1)) / 1e12, 6)
            result["flops_per_image_tflop"] = self.flops.get(kind, 0.0)
            result["batches"] = {}
            compile_seconds = 0.0
            for batch in self.args.batches:
                warm = self.call(pipe, kind, batch)["total"]  # warm-up (and compilation of this shape)
                measured = result["batches"][str(batch)] = self.measure(pipe, kind, batch, result["flops_per_image_tflop"])
                measured["warmup_seconds"] = round(warm, 3)
                steady = measured["seconds_per_image"] * batch
                compile_seconds += max(0.0, warm - steady) + (max(0.0, first["total"] - steady) if batch == 1 else 0.0)
            if options.compile != "off":
                result["compile_seconds"] = round(compile_seconds, 2)  # first calls minus steady calls, every shape
            result.update(self.invariance(pipe, kind, name))
        except (SpeedOptionError, RuntimeError, ValueError, ImportError, AssertionError, TypeError) as exc:
            unavailable = isinstance(exc, SpeedOptionError) or "not usable" in str(exc) or "not available" in str(exc)
            result.update(status="unavailable" if unavailable else "error", error=f"{type(exc).__name__}: {str(exc)[:400]}")
        finally:
            self.components["vae"].disable_tiling()
            for name in ("text_encoder", "vae"):
                self.components[name].to(self.device)
            if self.cuda:
                torch.cuda.empty_cache()
        result["seconds"] = round(time.perf_counter() - started, 2)
        return result

    def call(self, pipe, kind: str, batch: int, keep: bool = False) -> dict:
        """One pipeline call in three timed phases; seconds per phase for the whole batch."""
        prompts = self.prompts[:batch]
        timer = Timer(self.cuda)
        with torch.inference_mode():
            with timer("text_encoding"):
                embeds, _ = pipe.encode_prompt(prompt=list(prompts), device=pipe._execution_device, do_classifier_free_guidance=False,
                                               max_sequence_length=self.args.max_sequence_length)
            generators = [torch.Generator("cpu").manual_seed(1000 + i) for i in range(batch)]
            extra = {}
            if kind == "inpaint":
                extra = {"image": [scene_photo(self.size)] * batch, "mask_image": [scene_mask(self.size)] * batch, "strength": self.args.strength}
            with timer("denoising"):
                latents = pipe(prompt_embeds=embeds, height=self.size, width=self.size, num_inference_steps=self.args.steps,
                               guidance_scale=0.0, generator=generators, max_sequence_length=self.args.max_sequence_length,
                               output_type="latent", **extra).images
            with timer("vae_decode"):
                vae = pipe.vae
                images = vae.decode((latents.to(vae.dtype) / vae.config.scaling_factor) + vae.config.shift_factor, return_dict=False)[0]
        phases = timer.seconds()
        if keep:
            phases["images"] = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return phases

    def measure(self, pipe, kind: str, batch: int, tflop_per_image: float) -> dict:
        """Median of the timed rounds. MFU only means something for the full-size model on a GPU."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        rounds = [self.call(pipe, kind, batch) for _ in range(self.args.rounds)]
        median = {k: float(np.median([r[k] for r in rounds])) for k in ("text_encoding", "denoising", "vae_decode", "total")}
        per_image = median["total"] / batch
        out = {
            "images_per_second": round(batch / median["total"], 4),
            "seconds_per_image": round(per_image, 4),
            **{f"{k}_seconds_per_image": round(median[k] / batch, 4) for k in ("text_encoding", "denoising", "vae_decode")},
            "mfu_vs_467_tflop": None if self.tiny else round(REFERENCE_TFLOP_PER_IMAGE / per_image / PEAK_TFLOPS, 4),
            "mfu_vs_counted_flop": round(tflop_per_image / per_image / PEAK_TFLOPS, 4 if not self.tiny else 9),
            "usd_per_1000_images_at_2.5_per_hour": round(per_image * 1000 / 3600 * 2.5, 3),
            "rounds_seconds": [round(r["total"], 4) for r in rounds],
        }
        if self.cuda:
            out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return out

    def invariance(self, pipe, kind: str, name: str) -> dict:
        largest = max(self.args.batches)
        single = self.call(pipe, kind, 1, keep=True)["images"][0]
        batched = self.call(pipe, kind, largest, keep=True)["images"][0]
        out = {"batch_invariance": {"batch": largest, **compare_pixels(batched, single)}}
        if name.startswith(("eager/native", "inpaint/native")):
            self.baseline[kind] = single
        elif kind in self.baseline:
            out["vs_eager_native"] = compare_pixels(self.baseline[kind], single)
        return out


class Timer:
    """Seconds per named phase: CUDA events on a GPU (no sync inside the phases), perf_counter on a CPU."""

    def __init__(self, cuda: bool):
        self.cuda, self.marks = cuda, []

    def __call__(self, name: str):
        timer = self

        class Phase:
            def __enter__(self):
                self.start = torch.cuda.Event(enable_timing=True) if timer.cuda else time.perf_counter()
                if timer.cuda:
                    self.start.record()

            def __exit__(self, *exc):
                if timer.cuda:
                    end = torch.cuda.Event(enable_timing=True)
                    end.record()
                    timer.marks.append((name, self.start, end))
                else:
                    timer.marks.append((name, self.start, time.perf_counter()))

        return Phase()

    def seconds(self) -> dict:
        if self.cuda:
            torch.cuda.synchronize()
            out = {name: start.elapsed_time(end) / 1000 for name, start, end in self.marks}
        else:
            out = {name: end - start for name, start, end in self.marks}
        out["total"] = sum(out.values())
        return out


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def full_size_flops(size: int, steps: int, max_sequence_length: int, caption_tokens: int = 128) -> dict:
    """TFLOP of the committed full-size architecture, counted on meta tensors (no memory, no GPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    side = size
    models = build_on_meta(random_configs(), torch.bfloat16)
    latent = torch.empty(16, 1, side // 8, side // 8, device="meta", dtype=torch.bfloat16)
    counted = {}
    with torch.no_grad():
        for name, fn in {
            "transformer_forward": lambda: models["transformer"]([latent], torch.empty(1, device="meta", dtype=torch.bfloat16),
                                                                  [torch.empty(caption_tokens, 2560, device="meta", dtype=torch.bfloat16)]),
            "text_encoder": lambda: models["text_encoder"](input_ids=torch.zeros(1, max_sequence_length, dtype=torch.long, device="meta")),
            "vae_decode": lambda: models["vae"].decode(torch.empty(1, 16, side // 8, side // 8, device="meta", dtype=torch.bfloat16)),
        }.items():
            with FlopCounterMode(display=False) as counter:
                fn()
            counted[name] = round(counter.get_total_flops() / 1e12, 3)
    per_image = steps * counted["transformer_forward"] + counted["text_encoder"] + counted["vae_decode"]
    return {"size": side, "steps": steps, "caption_tokens": caption_tokens, "text_tokens": max_sequence_length,
            **{f"{k}_tflop": v for k, v in counted.items()}, "per_image_tflop": round(per_image, 2),
            "floor_seconds_per_image_at_peak": round(per_image / PEAK_TFLOPS, 3)}


def scene_photo(size: int):
    from PIL import Image

    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(ramp, (size, 1))] * 3, axis=-1))


def scene_mask(size: int):
    from PIL import Image

    mask = np.full((size, size), 255, dtype=np.uint8)  # white: repainted (the scene) ...
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0  # ... black: kept (the product)
    return Image.fromarray(mask)


def environment(device: str) -> dict:
    import diffusers
    import transformers

    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
           "diffusers": diffusers.__version__, "transformers": transformers.__version__, "cuda": torch.version.cuda}
    try:
        import torchao

        env["torchao"] = torchao.__version__
    except ImportError:
        env["torchao"] = None
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                   capability=".".join(map(str, torch.cuda.get_device_capability(device))), cudnn=torch.backends.cudnn.version())
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            env["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        env.update(gpu=None, driver=None)
    return env


def summary_line(v: dict) -> str:
    if v.get("status") != "ok":
        return f"{v['name']:<32} {v.get('status')}: {v.get('error') or v.get('reason')}"
    parts = [f"b{b}: {m['images_per_second']:.3f} img/s ({m['text_encoding_seconds_per_image']:.3f}+{m['denoising_seconds_per_image']:.3f}"
             f"+{m['vae_decode_seconds_per_image']:.3f} s, MFU {m['mfu_vs_467_tflop'] or 0:.2f}/{m['mfu_vs_counted_flop']:.2f}"
             + (f", {m['peak_memory_gib']} GiB" if "peak_memory_gib" in m else "") + ")" for b, m in v["batches"].items()]
    inv = v["batch_invariance"]
    extra = f"; compile {v['compile_seconds']} s" if "compile_seconds" in v else ""
    return f"{v['name']:<32} " + "; ".join(parts) + f"; invariance mean {inv['mean_abs']} max {inv['max_abs']:.0f}{extra}"


def best(results: list[dict]) -> dict:
    ok = [(m["images_per_second"], v["name"], b) for v in results if v.get("status") == "ok" and v["pipeline"] == "text2img"
          for b, m in v["batches"].items()]
    if not ok:
        return {}
    rate, name, batch = max(ok)
    return {"variant": name, "batch": int(batch), "images_per_second": rate}


if __name__ == "__main__":
    main()
