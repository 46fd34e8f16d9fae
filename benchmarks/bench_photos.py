"""Photo-first figures over the real photos in ../shared/photos (AFL-3.0): prints, asserts nothing.

1. Every photo through the `photo` path (cut out, placed on white at 1024 x 1024, PNG, decoded
   again) and the same gates as the pipeline with the `main` profile: the share that PASSes, why
   the others do not, the product-preservation max abs difference, ms per photo for the cut-out
   and for the main image.
2. Cut-out accuracy where the truth is known: each confidently cut product is pasted, with its
   mask, onto other light backgrounds (off-white, light grey, a gradient, a faint texture, a soft
   shadow); the IoU of the recovered mask against the pasted one (median, 5th percentile), and
   how often the cut is (wrongly) unsure there.
3. The same products on busy backgrounds (stripes and noise, colour blocks, a dark scene, a
   high-frequency texture): how often the confidence correctly says "unsure".

    .venv/bin/python benchmarks/bench_photos.py [--photos DIR] [--limit N] [--synthetic N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resources.quality_gates import QualityGates  # noqa: E402
from zimage_assets.domain.cutout import CutoutError, cut_out, full_alpha, mask_iou  # noqa: E402
from zimage_assets.domain.encoding import to_png  # noqa: E402
from zimage_assets.domain.compositing import PlacementRequest, photo_image  # noqa: E402
from zimage_assets.domain.preservation import measure  # noqa: E402
from zimage_assets.settings import DEFAULTS  # noqa: E402

THRESHOLD = DEFAULTS["mask_min_confidence"]


def light_backgrounds(h: int, w: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    flat = lambda v: np.full((h, w, 3), v, np.float32)  # noqa: E731
    gradient = np.stack([235 + 15 * xx / w, 232 + 18 * yy / h, 240 - 10 * xx / w], axis=2)
    texture = flat(238) + cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 2)[:, :, None]
    return {"off-white": flat((250, 247, 240)), "light grey": flat(225), "gradient": gradient, "faint texture": texture}


def busy_backgrounds(h: int, w: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = np.stack([np.sin(xx / 9) * 100 + 120, np.cos(yy / 13) * 90 + 110, (xx + yy) % 200], axis=2) + rng.normal(0, 30, (h, w, 3))
    blocks = cv2.resize(rng.integers(0, 256, (12, 10, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    dark = cv2.GaussianBlur(rng.integers(20, 110, (h // 8, w // 8, 3)).astype(np.uint8), (0, 0), 3)
    dark = cv2.resize(dark, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    fine = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
    return {"stripes + noise": stripes, "colour blocks": blocks, "dark scene": dark, "fine texture": fine}


def paste(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray, shadow: bool = False) -> np.ndarray:
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    bg = background.copy()
    if shadow:  # a soft shadow to the lower right of the product
        offset = np.roll(np.roll(alpha, 25, axis=0), 18, axis=1).astype(np.float32) / 255.0
        bg = bg * (1.0 - 0.35 * cv2.GaussianBlur(offset, (0, 0), 12)[:, :, None])
    return np.clip(np.round(rgb.astype(np.float32) * a + bg * (1.0 - a)), 0, 255).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "photos" / "magento"))
    parser.add_argument("--limit", type=int, default=0, help="at most N photos (0 = all)")
    parser.add_argument("--synthetic", type=int, default=100, help="photos used for the synthetic backgrounds")
    args = parser.parse_args()
    paths = sorted(Path(args.photos).glob("*.jpg"))[: args.limit or None]
    gates = QualityGates(quality_mode="strict")
    rng = np.random.default_rng(3)

    # 1. The photo path with the `main` profile.
    verdicts, reasons, diffs, cut_ms, main_ms, kept = Counter(), Counter(), [], [], [], []
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        started = time.perf_counter()
        try:
            cut = cut_out(rgb)
        except CutoutError as exc:
            verdicts["BLOCK"] += 1
            reasons[exc.code] += 1
            continue
        cut_ms.append(1000 * (time.perf_counter() - started))
        if cut.confidence < THRESHOLD:
            verdicts["REVIEW"] += 1
            reasons["mask_unsure"] += 1
            continue
        kept.append((rgb, cut))
        started = time.perf_counter()
        main, placement = photo_image(cut.rgba, cut.touches, (1024, 1024), PlacementRequest(0.9))
        png = to_png(main)
        main_ms.append(1000 * (time.perf_counter() - started))
        decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        diffs.append(measure(decoded, cut.rgba, placement)["max_abs_diff"])
        row = gates.assess_composite(png, view=None, profile="main", mode="photo", expected_size=(1024, 1024), cutout_rgba=cut.rgba,
                                     placement=placement).assessment.as_row()
        verdicts[row["verdict"]] += 1
        reasons.update(row["reasons"])
    total = len(paths)
    print(f"photo path, `main` profile, {total} real photos ({args.photos}):")
    print(f"  PASS {verdicts['PASS']}/{total} = {verdicts['PASS'] / total:.0%}; REVIEW {verdicts['REVIEW']}, BLOCK {verdicts['BLOCK']}")
    print(f"  reasons: {dict(reasons.most_common())}")
    print(f"  product preservation max abs diff over {len(diffs)} main images: max {max(diffs)}, "
          f"share at 0: {sum(d == 0 for d in diffs) / len(diffs):.0%}")
    print(f"  ms per photo: cut-out median {statistics.median(cut_ms):.0f} (p95 {np.quantile(cut_ms, 0.95):.0f}); "
          f"main image (place + composite + PNG) median {statistics.median(main_ms):.0f} (p95 {np.quantile(main_ms, 0.95):.0f})")

    # 2. and 3. Known masks on other backgrounds.
    light_iou: dict[str, list[float]] = {}
    light_unsure = Counter()
    busy_unsure, busy_total = Counter(), Counter()
    for rgb, cut in kept[: args.synthetic]:
        alpha = full_alpha(cut)
        truth = alpha > 127
        h, w = alpha.shape
        product = rgb.copy()
        x0, y0, x1, y1 = cut.box
        product[y0:y1, x0:x1] = np.where(cut.rgba[:, :, 3:4] > 0, cut.rgba[:, :, :3], rgb[y0:y1, x0:x1])  # the decontaminated colours
        cases = {name: paste(product, alpha, bg) for name, bg in light_backgrounds(h, w, rng).items()}
        cases["soft shadow"] = paste(product, alpha, np.full((h, w, 3), 245, np.float32), shadow=True)
        for name, image in cases.items():
            try:
                again = cut_out(image)
            except CutoutError:
                light_iou.setdefault(name, []).append(0.0)
                light_unsure[name] += 1
                continue
            light_iou.setdefault(name, []).append(mask_iou(full_alpha(again) > 127, truth))
            light_unsure[name] += again.confidence < THRESHOLD
        for name, bg in busy_backgrounds(h, w, rng).items():
            busy_total[name] += 1
            try:
                busy_unsure[name] += cut_out(paste(product, alpha, bg)).confidence < THRESHOLD
            except CutoutError:
                busy_unsure[name] += 1
    every = [v for values in light_iou.values() for v in values]
    if not every:
        return 0
    print(f"\ncut-out IoU against the pasted mask, {len(kept[: args.synthetic])} products on light backgrounds:")
    for name, values in light_iou.items():
        print(f"  {name:14s} median {statistics.median(values):.3f}, 5th percentile {np.quantile(values, 0.05):.3f}; "
              f"unsure {light_unsure[name]}/{len(values)}")
    print(f"  all            median {statistics.median(every):.3f}, 5th percentile {np.quantile(every, 0.05):.3f}")
    print(f"\nbusy backgrounds: confidence says unsure (< {THRESHOLD}):")
    for name in busy_total:
        print(f"  {name:16s} {busy_unsure[name]}/{busy_total[name]} = {busy_unsure[name] / busy_total[name]:.0%}")
    print(f"  all              {sum(busy_unsure.values())}/{sum(busy_total.values())} = {sum(busy_unsure.values()) / sum(busy_total.values()):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
