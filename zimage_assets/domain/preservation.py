"""The product-preservation gate: are the product's pixels in an image the merchant's own? Pure.

For a photo or scene image, the product region of the output must equal the source cut-out at
the same scale and place (`placement.resize_cutout`, the function that made it). Compared inside
the eroded mask (fully opaque product pixels, 2 px in from the edge, where no feathering or
inpaint blending reaches): the largest absolute difference of any channel and the SSIM. Either
off its limit -> BLOCK `product_altered` (the product was re-rendered, recoloured or shifted: a
generated product must never pass as the real one).

Then where the product sits, per profile: its fill (long side of its box over the frame's)
against the profile's minimum (`product_too_small`, REVIEW), and, for the white-background
profiles, its centring (`product_off_centre`, REVIEW), except along a side the product was kept
against because the source photo cut it there.

Text-to-image images get `illustrative`: the product itself is generated. They go to REVIEW by
default (ZIMAGE_ILLUSTRATIVE_REVIEW), and their receipts and manifests say so.
"""

from __future__ import annotations

import cv2
import numpy as np

from zimage_assets.domain.compliance import ComplianceProfile
from zimage_assets.domain.compositing import Placement, placed_layer
from zimage_assets.domain.verdicts import BLOCK, PASS, REVIEW, Assessment, Finding

MAX_ABS_DIFF = 2  # 0-1 after resampling and rounding; more means the pixels were changed
MIN_SSIM = 0.99
MAX_CENTRE_OFFSET = 0.05  # share of the frame the box centre may be off the frame's centre
ERODE_PX = 2


def product_region(layer: np.ndarray) -> np.ndarray:
    """The fully opaque product pixels, eroded by ERODE_PX (boolean mask on the canvas)."""
    opaque = (layer[:, :, 3] == 255).astype(np.uint8)
    return cv2.erode(opaque, np.ones((3, 3), np.uint8), iterations=ERODE_PX) > 0


def masked_ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5, on luminance) over the pixels of `region`; outside it
    `a` is taken as `b`, so a window at the region's edge compares only the region's pixels."""
    if not region.any():
        return float("nan")
    a = np.where(region[:, :, None], a, b)  # only the region's pixels may differ: the window sees nothing else
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = max(0, ys.min() - 8), ys.max() + 9, max(0, xs.min() - 8), xs.max() + 9
    ga = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float64)
    gb = cv2.cvtColor(b[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(ga), blur(gb)
    var_a, var_b, cov = blur(ga * ga) - mu_a**2, blur(gb * gb) - mu_b**2, blur(ga * gb) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim[region[y0:y1, x0:x1]].mean())


def measure(output: np.ndarray, cutout_rgba: np.ndarray, placement: Placement) -> dict:
    """max_abs_diff, mean_abs_diff and SSIM of the product region, with the region's size."""
    layer = placed_layer(cutout_rgba, placement)
    region = product_region(layer)
    if output.shape[:2] != layer.shape[:2]:
        return {"product_pixels": int(region.sum()), "max_abs_diff": 255, "mean_abs_diff": 255.0, "ssim": 0.0, "size_mismatch": True}
    if not region.any():
        return {"product_pixels": 0, "max_abs_diff": 0, "mean_abs_diff": 0.0, "ssim": 1.0}
    diff = np.abs(output[region].astype(np.int16) - layer[:, :, :3][region].astype(np.int16))
    return {
        "product_pixels": int(region.sum()),
        "max_abs_diff": int(diff.max()),
        "mean_abs_diff": round(float(diff.mean()), 4),
        "ssim": round(masked_ssim(output, layer[:, :, :3], region), 5),
    }


def assess(output: np.ndarray, cutout_rgba: np.ndarray, placement: Placement, profile: ComplianceProfile) -> Assessment:
    """The gate's findings for one photo or scene image (see the module docstring)."""
    scores = measure(output, cutout_rgba, placement)
    out = Assessment(scores={f"preservation_{k}": v for k, v in scores.items()})
    if scores["product_pixels"] == 0:
        out.add(Finding("product_altered", BLOCK, "no fully opaque product pixel to compare"))
    elif scores["max_abs_diff"] > MAX_ABS_DIFF or not scores["ssim"] >= MIN_SSIM:
        out.add(Finding("product_altered", BLOCK, f"product pixels differ from the photo: max abs diff {scores['max_abs_diff']}, "
                        f"SSIM {scores['ssim']} (limits {MAX_ABS_DIFF}, {MIN_SSIM})"))
    fill, centre = layout_of(placement)
    out.scores.update({"product_fill": round(fill, 4), "product_centre": [round(c, 4) for c in centre]})
    if profile.min_fill and fill < profile.min_fill:
        out.add(Finding("product_too_small", REVIEW, f"the product fills {fill:.0%} < {profile.min_fill:.0%}"))
    if profile.white_background:
        off = [abs(centre[0] - 0.5) if not {"left", "right"} & set(placement.anchored) else 0.0,
               abs(centre[1] - 0.5) if not {"top", "bottom"} & set(placement.anchored) else 0.0]
        if max(off) > MAX_CENTRE_OFFSET:
            out.add(Finding("product_off_centre", REVIEW, f"the product's centre is {max(off):.0%} of the frame off centre"))
    return out


def layout_of(placement: Placement) -> tuple[float, tuple[float, float]]:
    """Fill (long side of the product box over the frame's) and the box centre in shares of the frame."""
    cw, ch = placement.canvas
    w, h = placement.size
    x, y = placement.offset
    x0, y0, x1, y1 = max(0, x), max(0, y), min(cw, x + w), min(ch, y + h)
    return max((x1 - x0) / cw, (y1 - y0) / ch), ((x0 + x1) / 2 / cw, (y0 + y1) / 2 / ch)


def illustrative(review: bool, fallback: str = "") -> Assessment:
    """Findings of a text-to-image image: `illustrative` (REVIEW by default) and why a photo view
    fell back to text (`photo_fallback`, REVIEW, with the photo's reason)."""
    out = Assessment(scores={"illustrative": True})
    out.add(Finding("illustrative", REVIEW if review else PASS, "text-to-image: the product itself is generated, not the merchant's photo"))
    if fallback:
        out.add(Finding("photo_fallback", REVIEW, fallback))
    return out
