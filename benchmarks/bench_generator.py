"""Images per second of the generator resource at batch size 1 vs N, same size and steps.

    .venv/bin/python benchmarks/bench_generator.py [--model tiny] [--size 256] [--steps 8] [--images 16] [--batch 8]

Runs both settings in the same process, alternating, and prints the ratio (the machine is
shared and noisy: compare ratios from one run, absolute figures only on a dedicated GPU).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from resources.generator import ZImageGenerator
from zimage_assets.domain.specs import build_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--model-path", default="")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    models_dir = tempfile.mkdtemp(prefix="zimage-bench-")
    generators = {
        bs: ZImageGenerator(model=args.model, model_path=args.model_path, device=args.device, models_dir=models_dir, batch_size=bs, steps=args.steps)
        for bs in (1, args.batch)
    }
    info = generators[1].model_info()
    specs = [
        build_spec(info, prompt=f"Studio product photo of item {i}, white background", negative_prompt="", width=args.size, height=args.size, seed=i)
        for i in range(args.images)
    ]
    generators[1].pipeline()  # load once (shared by both generators), then warm up
    for generator in generators.values():
        list(generator.generate(specs[: args.batch]))

    rates: dict[int, list[float]] = {bs: [] for bs in generators}
    for _ in range(args.rounds):
        for bs, generator in generators.items():
            started = time.perf_counter()
            made = sum(1 for _ in generator.generate(specs))
            rates[bs].append(made / (time.perf_counter() - started))
    runtime = generators[1].runtime_info()
    print(f"model {info.model_id} on {runtime['device']} ({runtime['dtype']}), {args.size}x{args.size}, {args.steps} steps, {args.images} images x {args.rounds} rounds")
    for bs, values in rates.items():
        print(f"  batch size {bs:>2}: {statistics.median(values):7.3f} images/s (median; runs {', '.join(f'{v:.3f}' for v in values)})")
    print(f"  ratio batch {args.batch} / batch 1: {statistics.median(rates[args.batch]) / statistics.median(rates[1]):.2f}x")


if __name__ == "__main__":
    main()
