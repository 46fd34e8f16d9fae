"""Cutting the product out of a studio photo, without model weights. Pure (numpy, OpenCV).

`cut_out(rgb)` is the default segmenter (method `border-grabcut`), for photos on a light, uniform
background, as most catalog photos are:

1. Background: a smooth surface (a quadratic in x and y per channel, fitted robustly to a strip
   along the border, so gradients and vignetting count as background); how far each pixel is from
   it (max channel difference) is the distance map.
2. The border-connected region of near-background pixels is the background seed (pixels far from
   the border that merely look like the background, such as a white logo, are not).
3. OpenCV GrabCut refines that split at a working size (sure background, probable background,
   probable product, sure product), with the colour models of both.
4. The edge is feathered: in a band around the boundary alpha follows the distance map (a pixel
   half way between background and product colour is half transparent), and the product's colour
   there is recovered from the blend (no white fringe on a dark scene).
5. A confidence in [0, 1] says whether this was a studio photo the method can handle: a border
   that is not one light colour (a busy background), a product that runs into three or four sides
   of the frame, a product that is nearly the whole frame or nearly nothing, or GrabCut moving far
   from the colour split, each lower it. Callers treat a confidence under their threshold as
   "unsure" (REVIEW, never a bad cut).

`from_alpha(rgba)` uses a merchant's transparent PNG as it is (method `alpha`). Both return a
`Cutout`: the product cropped to its box as RGBA, where it was in the photo, which sides it runs
into, the confidence and the reasons that lowered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

METHOD = "border-grabcut"
VERSION = "1"
ALPHA_METHOD = "alpha"
ALPHA_VERSION = "1"
WORK_SIDE = 384  # GrabCut runs at this long side (it is the slow step); edges are refined at full size
MIN_BACKGROUND = 170  # a "light" background: every channel of its colour at least this
SIDES = ("top", "bottom", "left", "right")


@dataclass
class Cutout:
    """The product as RGBA cropped to its box, and what is known about the cut."""

    rgba: np.ndarray  # h x w x 4 uint8: the product's pixels, alpha 0 outside it
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the crop in the source photo
    source_size: tuple[int, int]  # width, height of the source photo
    touches: list[str]  # sides of the source frame the product runs into
    confidence: float
    method: str
    version: str
    reasons: list[str] = field(default_factory=list)  # what lowered the confidence
    scores: dict = field(default_factory=dict)

    @property
    def alpha(self) -> np.ndarray:
        return self.rgba[:, :, 3]


class CutoutError(ValueError):
    """Nothing usable: no product found, or a fully transparent image. `code` names the reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _border_pixels(rgb: np.ndarray, strip: int) -> np.ndarray:
    return np.concatenate([rgb[:strip].reshape(-1, 3), rgb[-strip:].reshape(-1, 3), rgb[:, :strip].reshape(-1, 3), rgb[:, -strip:].reshape(-1, 3)])


def _distance(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.abs(rgb.astype(np.int16) - colour.astype(np.int16)).max(axis=2).astype(np.uint8)


def _terms(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, ys * ys, xs * ys], axis=1)


def background_surface(rgb: np.ndarray, strip: int) -> tuple[np.ndarray, np.ndarray]:
    """(h x w x 3 float32 background estimate, residuals of the border pixels that fit it).

    A quadratic per channel fitted to the border strip's pixels near its median colour, then once
    more to those near the first fit (the product where it runs into the frame is left out)."""
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[:strip], mask[-strip:], mask[:, :strip], mask[:, -strip:] = True, True, True, True
    ys, xs = np.nonzero(mask)
    step = max(1, len(ys) // 20000)
    ys, xs = ys[::step], xs[::step]
    colours = rgb[ys, xs].astype(np.float64)
    terms = _terms(xs / max(1, w - 1) - 0.5, ys / max(1, h - 1) - 0.5)
    residual = np.abs(colours - np.median(colours, axis=0)).max(axis=1)
    keep = residual <= 30
    if keep.sum() < 50:
        keep = np.ones(len(ys), bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(terms[keep], colours[keep], rcond=None)
        residual = np.abs(colours - terms @ coef).max(axis=1)
        keep = residual <= max(8.0, 3.0 * float(np.median(residual[keep])) + 6.0)
    x = (np.arange(w, dtype=np.float32) / max(1, w - 1) - 0.5)[None, :]
    y = (np.arange(h, dtype=np.float32) / max(1, h - 1) - 0.5)[:, None]
    c = coef.astype(np.float32)
    surface = np.stack([c[0, k] + c[1, k] * x + c[2, k] * y + c[3, k] * x * x + c[4, k] * y * y + c[5, k] * x * y for k in range(3)], axis=2)
    return np.clip(surface, 0, 255), residual[keep]


def sides_touched(mask: np.ndarray, share: float = 0.02) -> list[str]:
    """Sides of the frame where the mask covers more than `share` of the outermost rows/columns."""
    strip = max(1, round(0.004 * min(mask.shape)))
    parts = {"top": mask[:strip], "bottom": mask[-strip:], "left": mask[:, :strip], "right": mask[:, -strip:]}
    return [side for side in SIDES if float(parts[side].mean()) > share]


def cut_out(rgb: np.ndarray) -> Cutout:
    """The default segmenter (see the module docstring); raises CutoutError when nothing is found."""
    h, w = rgb.shape[:2]
    strip = max(2, round(0.015 * min(h, w)))
    surface, fitted = background_surface(rgb, strip)
    background = np.median(surface.reshape(-1, 3), axis=0).astype(np.uint8)
    dist = np.clip(np.abs(rgb.astype(np.float32) - surface).max(axis=2), 0, 255).astype(np.uint8)
    border_dist = _border_pixels(dist[:, :, None].repeat(3, axis=2), strip)[:, 0].astype(np.int16)
    noise = float(np.quantile(fitted, 0.75)) if len(fitted) else 48.0
    low = int(np.clip(3 * noise + 6, 8, 40))  # distance up to which a pixel is background
    high = low + 24  # from which it is product
    reasons: list[str] = []

    # 2. The border-connected near-background region.
    near = (cv2.GaussianBlur(dist, (3, 3), 0) <= low).astype(np.uint8)
    count, labels = cv2.connectedComponents(near, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge != 0] if count > 1 else edge
    background_region = np.isin(labels, edge) & (near > 0)
    rough = ~background_region
    if rough.mean() < 0.002:
        raise CutoutError("no_product_found", "nothing stands out from the background")

    # 3. GrabCut at a working size.
    scale = min(1.0, WORK_SIDE / max(h, w))
    small_size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA)
    small_rough = cv2.resize(rough.astype(np.uint8), small_size, interpolation=cv2.INTER_NEAREST)
    small_dist = cv2.resize(dist, small_size, interpolation=cv2.INTER_AREA)
    gc = np.full(small_rough.shape, cv2.GC_PR_BGD, np.uint8)
    gc[small_rough > 0] = cv2.GC_PR_FGD
    sure_fg = cv2.erode((small_rough > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) & (small_dist > high)
    gc[sure_fg > 0] = cv2.GC_FGD
    sure_bg = cv2.erode((small_rough == 0).astype(np.uint8), np.ones((5, 5), np.uint8)) & (small_dist <= max(4, low // 2))
    gc[sure_bg > 0] = cv2.GC_BGD
    gc[:2], gc[-2:], gc[:, :2], gc[:, -2:] = [np.where(g == cv2.GC_PR_FGD, g, cv2.GC_BGD) for g in (gc[:2], gc[-2:], gc[:, :2], gc[:, -2:])]
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, None, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), 3,
                    cv2.GC_INIT_WITH_MASK)
        small_mask = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    except cv2.error:  # degenerate colour models (a flat image): keep the colour split
        small_mask = small_rough.astype(np.uint8)
    agreement = _iou(small_mask > 0, small_rough > 0)

    # 4. Back to full size: GrabCut decides the body, the distance map the edge band.
    mask = cv2.resize(small_mask * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
    mask = _largest_components(mask)
    band_width = max(2, round(1.5 / scale))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_width + 1, 2 * band_width + 1))
    inner = cv2.erode(mask.astype(np.uint8), kernel) > 0
    outer = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    band = outer & ~inner
    soft = np.clip((dist.astype(np.float32) - low) / float(high - low), 0.0, 1.0)
    alpha = np.where(inner, 1.0, np.where(band, soft, 0.0)).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0.7)
    alpha[inner] = 1.0
    alpha8 = np.round(alpha * 255).astype(np.uint8)
    if int((alpha8 > 127).sum()) < 0.002 * h * w:
        raise CutoutError("no_product_found", "nothing stands out from the background")

    # 5. Confidence.
    hard = alpha8 > 127
    touches = sides_touched(hard)
    fill = float(hard.mean())
    border_clean = float((border_dist <= low).mean())
    confidence = 1.0
    light = int(background.min()) >= MIN_BACKGROUND
    if not light:
        confidence = min(confidence, 0.3)
        reasons.append(f"background colour {tuple(int(v) for v in background)} is not light")
    if border_clean < 0.6:
        confidence = min(confidence, 0.2 + 0.4 * border_clean)
        reasons.append(f"busy background: only {border_clean:.0%} of the border is one colour")
    if len(touches) >= 3:
        confidence = min(confidence, 0.35 if len(touches) == 3 else 0.15)
        reasons.append(f"the product runs into {len(touches)} sides of the frame ({', '.join(touches)})")
    if fill > 0.92 or fill < 0.01:
        confidence = min(confidence, 0.3)
        reasons.append(f"the product covers {fill:.0%} of the frame")
    if noise > 8:
        confidence = min(confidence, 0.45)
        reasons.append(f"the background is not one even colour (border noise {noise:.0f})")
    if agreement < 0.7:
        confidence = min(confidence, max(0.1, agreement - 0.1))
        reasons.append(f"GrabCut and the colour split disagree (IoU {agreement:.2f})")
    texture = float(np.std(dist[background_region])) if background_region.any() else 0.0
    if texture > 6:
        confidence = min(confidence, 0.4)
        reasons.append(f"the background is textured (spread {texture:.1f})")

    rgba = _decontaminated_rgba(rgb, alpha8, surface)
    return _crop(rgba, touches, confidence, METHOD, VERSION, reasons, {
        "background": [int(v) for v in background], "border_clean": round(border_clean, 4), "fill": round(fill, 4),
        "grabcut_agreement": round(agreement, 4), "background_texture": round(texture, 2), "threshold": low, "border_noise": noise,
    })


def from_alpha(rgba: np.ndarray) -> Cutout:
    """A transparent PNG is already a cut-out: its alpha is used as it is."""
    alpha = rgba[:, :, 3]
    if int((alpha > 127).sum()) < max(16, 0.001 * alpha.size):
        raise CutoutError("empty_alpha", "the image is (almost) fully transparent")
    return _crop(rgba.copy(), sides_touched(alpha > 127), 1.0, ALPHA_METHOD, ALPHA_VERSION, [], {"fill": round(float((alpha > 127).mean()), 4)})


def from_mask(rgb: np.ndarray, alpha: np.ndarray, *, method: str, version: str, confidence: float, reasons: list[str]) -> Cutout:
    """A cut-out from an alpha mask some other segmenter made (a user's ONNX model)."""
    if int((alpha > 127).sum()) < max(16, 0.002 * alpha.size):
        raise CutoutError("no_product_found", "the segmentation model found no product")
    rgba = np.dstack([rgb, alpha]).astype(np.uint8)
    return _crop(rgba, sides_touched(alpha > 127), confidence, method, version, reasons, {"fill": round(float((alpha > 127).mean()), 4)})


def _crop(rgba: np.ndarray, touches: list[str], confidence: float, method: str, version: str, reasons: list[str], scores: dict) -> Cutout:
    alpha = rgba[:, :, 3]
    ys, xs = np.nonzero(alpha)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    crop = rgba[y0:y1, x0:x1].copy()
    crop[crop[:, :, 3] == 0, :3] = 0  # invisible pixels carry nothing (and compress well)
    return Cutout(crop, (x0, y0, x1, y1), (rgba.shape[1], rgba.shape[0]), touches, round(float(confidence), 4), method, version, reasons, scores)


def _decontaminated_rgba(rgb: np.ndarray, alpha8: np.ndarray, background: np.ndarray) -> np.ndarray:
    """`background`: the h x w x 3 background estimate."""
    """Where alpha is partial, the product's own colour: F = (C - (1 - a) B) / a."""
    out = np.dstack([rgb, alpha8]).astype(np.uint8)
    partial = (alpha8 > 0) & (alpha8 < 255)
    if partial.any():
        a = alpha8[partial].astype(np.float32)[:, None] / 255.0
        colour = rgb[partial].astype(np.float32)
        fg = (colour - (1.0 - a) * background[partial]) / np.maximum(a, 0.05)
        out[partial, :3] = np.clip(np.round(fg), 0, 255).astype(np.uint8)
    return out


def _largest_components(mask: np.ndarray, keep_share: float = 0.05) -> np.ndarray:
    """Drop specks: keep components at least `keep_share` of the largest one."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.nonzero(areas >= keep_share * areas.max())[0]
    return np.isin(labels, keep)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of the same size."""
    return _iou(a.astype(bool), b.astype(bool))


def full_alpha(cutout: Cutout) -> np.ndarray:
    """The cut-out's alpha at the source photo's size (for comparing masks)."""
    w, h = cutout.source_size
    out = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = cutout.box
    out[y0:y1, x0:x1] = cutout.alpha
    return out
