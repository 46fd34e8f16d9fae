"""Calibration of the image gates over ALL photos in shared/photos and their degraded copies.

    .venv/bin/python benchmarks/calibrate_quality.py [--photos DIR] [--limit N] [--json OUT]

Good photos (original, rescaled 0.75x and 1.5x) go through every gate as `zimage-qc images`
does (strict quality, NSFW, profile `none`); target: at most 2% get REVIEW or BLOCK. Degraded
copies (Gaussian blur sigma 1.5 / 3, additive noise sigma 10 / 40, JPEG quality 10 / 5,
brightness x0.4 / x0.25, a uniform grey frame) go through the quality gate as decoded pixels,
without the JPEG file's own quantisation table (the harder case); target: at least 95% caught
per kind. Extra rows, for information: brightness x1.8 (overexposure), JPEG quality 30, a
centre crop to 60% (caught by compliance, profile `studio`), compliance of the good photos per
profile with fixes. Then the score distributions behind each threshold and the cost of each
scorer in ms per 1024x1024 image.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resources.image_safety import ImageSafety  # noqa: E402
from resources.quality_gates import QualityGates  # noqa: E402
from zimage_assets.domain import compliance, image_quality  # noqa: E402
from zimage_assets.domain.verdicts import PASS  # noqa: E402

GOOD = ["original", "scale 0.75x", "scale 1.5x"]
REQUIRED = ["blur 1.5", "blur 3", "noise 10", "noise 40", "jpeg 10", "jpeg 5", "brightness 0.4", "brightness 0.25", "uniform grey"]
EXTRA = ["brightness 1.8", "jpeg 30"]
SCORES = ["edge_sigma", "noise", "jpeg_q", "p99", "p5", "std", "grid16"]


def degrade(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    import cv2

    name, _, value = kind.partition(" ")
    if name == "original":
        return rgb
    if name == "scale":
        factor = float(value.rstrip("x"))
        h, w = rgb.shape[:2]
        return np.asarray(Image.fromarray(rgb).resize((round(w * factor), round(h * factor)), Image.Resampling.LANCZOS))
    if name == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), float(value))
    if name == "noise":
        return np.clip(rgb.astype(np.float32) + rng.normal(0, float(value), rgb.shape), 0, 255).astype(np.uint8)
    if name == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(value))
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    if name == "brightness":
        return np.clip(rgb.astype(np.float32) * float(value), 0, 255).astype(np.uint8)
    if name == "uniform":
        return np.full_like(rgb, 128)
    if name == "crop":
        h, w = rgb.shape[:2]
        return rgb[int(0.2 * h) : int(0.8 * h), int(0.2 * w) : int(0.8 * w)].copy()
    raise ValueError(kind)


def stats(values: list[float]) -> str:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return "n/a"
    return f"min {v.min():8.3f}  p2 {np.percentile(v, 2):8.3f}  median {np.median(v):8.3f}  p98 {np.percentile(v, 98):8.3f}  max {v.max():8.3f}"


def time_scorers(photos: list[Path], gates: QualityGates, count: int) -> dict[str, float]:
    """ms per 1024x1024 image for each scorer (photos fitted onto a 1024x1024 white square)."""
    import cv2

    timings: dict[str, list[float]] = {}
    safety = gates.image_safety
    safety.score(np.zeros((64, 64, 3), np.uint8))  # load the model outside the timing
    for path in photos[:count]:
        square = Image.new("RGB", (1024, 1024), "white")
        photo = Image.open(path).convert("RGB")
        photo.thumbnail((1024, 1024))
        square.paste(photo, ((1024 - photo.width) // 2, (1024 - photo.height) // 2))
        rgb = np.asarray(square)
        png = io.BytesIO()
        square.save(png, format="PNG")
        data = png.getvalue()
        lum = image_quality.luminance(rgb)
        steps = {
            "decode PNG (load_image)": lambda: image_quality.load_image(data),
            "blur: edge_sigma": lambda: image_quality.edge_sigma(lum),
            "noise: noise_floor": lambda: image_quality.noise_floor(lum),
            "compression: jpeg_quant_step": lambda: image_quality.jpeg_quant_step(lum),
            "grid artefacts: grid_strength x2": lambda: (image_quality.grid_strength(lum, 8), image_quality.grid_strength(lum, 16)),
            "exposure/uniform: percentiles, std": lambda: np.percentile(cv2.resize(lum, (1024, 1024)), [5, 99]),
            "quality total: measure()": lambda: image_quality.measure(rgb),
            "compliance: main profile (with fixes)": lambda: compliance.assess_compliance(rgb, compliance.PROFILES["main"]),
            "safety: open_nsfw (ONNX, CPU)": lambda: safety.score(rgb),
            "all gates: QualityGates.assess_image(png, view=front)": lambda: gates.assess_image(data, view="front", mode="strict"),
        }
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            timings.setdefault(name, []).append(1000 * (time.perf_counter() - started))
    return {name: float(np.median(values)) for name, values in timings.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "photos" / "magento")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (quick look; report only full runs)")
    parser.add_argument("--json", type=Path, default=None, help="write every score to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if args.limit:
        photos = photos[: args.limit]
    if not photos:
        print(f"no photos in {args.photos}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    gates = QualityGates(quality_mode="strict", image_safety=ImageSafety())
    results: dict[str, list[dict]] = {kind: [] for kind in GOOD + REQUIRED + EXTRA + ["crop 60%"]}
    profiles: Counter = Counter()
    started = time.perf_counter()
    for number, path in enumerate(photos, start=1):
        loaded = image_quality.load_image(path.read_bytes())
        for kind in results:
            image = degrade(loaded.rgb, kind, rng)
            if kind in GOOD:
                # As zimage-qc does: every gate, the file's own JPEG quality for the original.
                info = loaded.info if kind == "original" else {}
                result = gates.assess_image(image, profile="none", mode="strict")
                if info.get("jpeg_quality") is not None and info["jpeg_quality"] < image_quality.DEFAULT_THRESHOLDS.min_jpeg_quality:
                    result.assessment.add(image_quality.Finding("jpeg_artifacts", "REVIEW"))
                assessment = result.assessment
            elif kind == "crop 60%":
                assessment, _ = compliance.assess_compliance(image, compliance.PROFILES["studio"])
            else:
                assessment = image_quality.assess_quality(image, mode="strict")
            results[kind].append({"photo": path.name, "verdict": assessment.verdict, "reasons": assessment.reasons, **{
                k: v for k, v in assessment.scores.items() if isinstance(v, (int, float))}})
        for name in ("main", "studio", "lifestyle"):
            checked, _ = compliance.assess_compliance(loaded.rgb, compliance.PROFILES[name])
            profiles[(name, checked.verdict, tuple(checked.fixes))] += 1
        if number % 20 == 0:
            print(f"  {number}/{len(photos)} photos ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    n = len(photos)
    print(f"\nCalibration over {n} photos from {args.photos} ({time.perf_counter() - started:.0f} s)\n")
    print("Good photos: share that gets REVIEW or BLOCK (all gates, profile none; target <= 2%)")
    for kind in GOOD:
        flagged = [r for r in results[kind] if r["verdict"] != PASS]
        reasons = Counter(code for r in flagged for code in r["reasons"])
        print(f"  {kind:16s} {len(flagged):3d}/{n} = {len(flagged) / n:6.1%}  {dict(reasons) or ''}  {[r['photo'] for r in flagged][:6]}")
    print("\nDegraded copies: share caught as REVIEW or BLOCK (quality gate on decoded pixels; target >= 95%)")
    for kind in REQUIRED + EXTRA + ["crop 60%"]:
        caught = [r for r in results[kind] if r["verdict"] != PASS]
        reasons = Counter(code for r in caught for code in r["reasons"])
        label = kind + ("  (extra)" if kind in EXTRA or kind.startswith("crop") else "")
        missed = [r["photo"] for r in results[kind] if r["verdict"] == PASS][:4]
        print(f"  {label:26s} {len(caught):3d}/{n} = {len(caught) / n:6.1%}  {dict(reasons.most_common(3))}  missed: {missed}")
    nsfw = [r["nsfw"] for kind in GOOD for r in results[kind] if "nsfw" in r]
    print(f"\nNSFW score of the good photos (all scales): {stats(nsfw)}")
    print(f"  thresholds: REVIEW >= {gates.image_safety.review_threshold}, BLOCK >= {gates.image_safety.block_threshold}")
    print("\nScore distributions (threshold in brackets):")
    t = image_quality.DEFAULT_THRESHOLDS
    limits = {"edge_sigma": f"> {t.max_edge_sigma}", "noise": f"> {t.max_noise}", "jpeg_q": f"> {t.max_jpeg_q}", "p99": f"< {t.min_p99}",
              "p5": f"> {t.max_p5}", "std": f"< {t.min_std}", "grid16": f"> {t.max_grid16}"}
    for score in SCORES:
        print(f"  {score} [{limits[score]}]")
        for kind in GOOD + REQUIRED + EXTRA:
            print(f"    {kind:16s} {stats([r.get(score) for r in results[kind]])}")
    print("\nCompliance of the good originals per profile (verdict, fixes applied): count")
    for key, count in sorted(profiles.items()):
        print(f"  {key}: {count}")
    print("\nCost per 1024x1024 image (median over 10 photos, ms):")
    for name, ms in time_scorers(photos, gates, 10).items():
        print(f"  {name:55s} {ms:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
