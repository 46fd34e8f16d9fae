"""Scene images vs text-to-image: seconds per image at the same size, in one run. Prints figures.

A scene is the product (a real sample photo, cut out) placed on the canvas, the background painted
by `ZImageInpaintPipeline` (built with `from_pipe` from the loaded text-to-image pipeline: no
second load of the weights), then the product's pixels composited back. Text-to-image is the
generator's ordinary path. Both run the same prompts, seeds, size, steps and batch size, so the
ratio is what the photo-first scene costs over the fallback. The tiny offline model by default
(ZIMAGE_MODEL / ZIMAGE_MODEL_PATH pick another; on a GPU machine set ZIMAGE_DEVICE=cuda).

    .venv/bin/python benchmarks/bench_scenes.py [--size 512] [--images 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resources.generator import ZImageGenerator  # noqa: E402
from resources.scene_painter import SceneJob, inpaint_pipeline, paint  # noqa: E402
from zimage_assets.domain.cutout import cut_out  # noqa: E402
from zimage_assets.domain.compositing import PlacementRequest, scene_canvas, scene_composite  # noqa: E402
from zimage_assets.domain.preservation import measure  # noqa: E402
from zimage_assets.domain.specs import build_spec  # noqa: E402

PHOTO = ROOT / "zimage_assets" / "sample_data" / "media" / "m" / "s" / "ms09-blue_main.jpg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    generator = ZImageGenerator(
        model=os.environ.get("ZIMAGE_MODEL", "tiny"), model_path=os.environ.get("ZIMAGE_MODEL_PATH", ""),
        device=os.environ.get("ZIMAGE_DEVICE", "auto"), batch_size=int(os.environ.get("ZIMAGE_BATCH_SIZE", "4")),
        models_dir=os.environ.get("ZIMAGE_MODELS_DIR", str(Path(tempfile.gettempdir()) / "zimage-models")),
    )
    model = generator.model_info()
    started = time.perf_counter()
    text_pipe = generator.pipeline()
    load = time.perf_counter() - started
    started = time.perf_counter()
    scene_pipe = inpaint_pipeline(generator)
    derive = time.perf_counter() - started
    shared = all(getattr(scene_pipe, name) is getattr(text_pipe, name) for name in ("transformer", "vae", "text_encoder"))
    print(f"model {model.model_id} on {generator.runtime_info()['device']}: loaded in {load:.2f}s; inpaint pipeline from_pipe in "
          f"{derive * 1000:.1f} ms, components shared: {shared}")

    cut = cut_out(np.asarray(Image.open(PHOTO).convert("RGB")))
    start, mask, layer, placement = scene_canvas(cut.rgba, cut.touches, (args.size, args.size), PlacementRequest(0.6, (0.5, 0.55), True))
    text_times, scene_times, diffs = [], [], []
    for round_ in range(args.rounds + 1):  # the first round warms up and is not counted
        specs = [build_spec(model, prompt=f"lifestyle photo of a blue tee on a beach, take {i}", negative_prompt="", width=args.size,
                            height=args.size, seed=1000 * round_ + i) for i in range(args.images)]
        began = time.perf_counter()
        for _ in generator.generate(specs):
            pass
        text = (time.perf_counter() - began) / len(specs)
        began = time.perf_counter()
        scenes = [scene_composite(p.image, layer, placement, shadow=True) for p in paint(generator, [SceneJob(s.spec_hash, s, start, mask) for s in specs])]
        scene = (time.perf_counter() - began) / len(specs)
        diffs += [measure(image, cut.rgba, placement)["max_abs_diff"] for image in scenes]  # not timed
        if round_:
            text_times.append(text)
            scene_times.append(scene)
    t, s = statistics.median(text_times), statistics.median(scene_times)
    print(f"{args.images} images at {args.size}x{args.size}, {model.steps} steps, batch {generator.batch_size}, median of {args.rounds} rounds:")
    print(f"  text-to-image  {t:.3f} s/image")
    print(f"  scene (inpaint + composite)  {s:.3f} s/image  = {s / t:.2f}x text-to-image")
    print(f"  product preservation after compositing: max abs diff {max(diffs)} over {len(diffs)} scenes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
