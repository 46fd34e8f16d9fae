"""benchmarks/bench_gpu.py runs at a tiny size on the CPU (so it cannot rot before a GPU runs it) and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

VARIANTS = {
    "eager/native", "eager/_native_math", "compile-buckets/native", "compile-dynamic/native", "fp8-layerwise/native",
    "fp8-torchao/native", "fp8-torchao+compile-buckets", "inpaint/native", "inpaint+compile-buckets", "vae-tiling/native",
    "offload+vae-tiling",
}


def test_the_gpu_benchmark_runs_tiny_on_the_cpu_and_reports_every_field(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--tiny", "--out", str(out),
               "--size", "32", "--steps", "2", "--batches", "1,2", "--rounds", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["tiny"] and report["device"] == "cpu" and report["size"] == 32 and report["model_revision"].startswith("random-")
    env = report["environment"]
    assert {"gpu", "driver", "cuda", "torch", "diffusers", "transformers", "python"} <= set(env) and env["torch"].startswith("2.")
    flops = report["flops"]
    assert (flops["reference_tflop_per_image"], flops["peak_tflops"]) == (467.0, 790.0)
    derived = flops["full_size_from_configs"]  # the real architecture at 1024 x 1024, 8 steps, counted on meta tensors
    assert (derived["size"], derived["steps"]) == (1024, 8) and 450 < derived["per_image_tflop"] < 480
    assert 55 < derived["transformer_forward_tflop"] < 58 and 10 < derived["vae_decode_tflop"] < 11

    variants = {v["name"]: v for v in report["variants"]}
    assert set(variants) == VARIANTS
    assert variants["offload+vae-tiling"]["status"] == "skipped" and "CUDA" in variants["offload+vae-tiling"]["reason"]
    assert variants["fp8-torchao/native"]["status"] in ("ok", "unavailable")
    for name in VARIANTS - {"offload+vae-tiling", "fp8-torchao/native", "fp8-torchao+compile-buckets"}:
        variant = variants[name]
        assert variant["status"] == "ok", (name, variant.get("error"))
        for batch in ("1", "2"):
            m = variant["batches"][batch]
            phases = m["text_encoding_seconds_per_image"] + m["denoising_seconds_per_image"] + m["vae_decode_seconds_per_image"]
            assert m["images_per_second"] > 0 and abs(phases - m["seconds_per_image"]) < 2e-3, (name, m)
            assert m["mfu_vs_467_tflop"] is None and m["mfu_vs_counted_flop"] > 0  # MFU is only stated for the full size
        assert variant["batch_invariance"]["mean_abs"] <= 1.0, name
    assert variants["eager/native"]["flops_per_image_tflop"] > 0 and variants["inpaint/native"]["flops_per_image_tflop"] > 0
    assert "compile_seconds" in variants["compile-buckets/native"] and "vs_eager_native" in variants["fp8-layerwise/native"]
    assert report["best"]["images_per_second"] > 0 and report["wall_seconds"] > 0


def test_the_end_to_end_benchmark_runs_a_real_dagster_batch_against_the_bare_loop(tmp_path):
    out = tmp_path / "e2e.json"
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,category,color\n" + "".join(f"CUP-{i},Cup {i},Gear/Misc,Red\n" for i in range(4)))
    command = [sys.executable, str(REPO / "benchmarks" / "bench_e2e.py"), "--model", "tiny", "--items", "6", "--size", "48",
               "--catalog", str(catalog), "--home", str(tmp_path / "home"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["items"] == 6 and report["distinct_specs"] == report["dagster"]["generated"]
    assert report["bare_loop"]["images"] == report["distinct_specs"] and report["bare_loop"]["images_per_second"] > 0
    steps = report["dagster"]["steps_seconds"]
    assert {"product_prompts", "product_images", "published_images", "product_images_batch_invariance"} <= set(steps)
    assert report["dagster"]["checks_passed"]["batch_invariance"] is True
    assert report["ratio_dagster_vs_bare"] > 0 and report["cpu_seconds_per_image_outside_generation"] is not None
    assert "img/s" in done.stdout and "STEP_START" not in done.stdout + done.stderr
