"""Image quality: decode safely, measure, and judge one image. Pure functions (numpy, OpenCV, PIL).

Each defect has its own cheap, targeted measurement (a single generic score such as BRISQUE or a
global Laplacian variance fails as a gate on real white-background photos):

| score          | what it measures                                                  | defect            |
|----------------|-------------------------------------------------------------------|-------------------|
| edge_sigma     | width (Gaussian sigma, px at <=1024 px) of the sharpest strong     | blur              |
|                | edges; a white background has no strong edges, so it is measured  |                   |
|                | on the product                                                    |                   |
| noise          | noise floor: Immerkaer's estimate in the flattest 20% of blocks   | noise             |
| jpeg_q         | JPEG quantisation step found in the 8x8 DCT coefficients          | compression       |
| jpeg_quality   | quality from the file's own quantisation table (JPEG files only)  | compression       |
| p99 / p5       | luminance percentiles                                             | under/over-exposure |
| std            | luminance standard deviation                                      | uniform / blank   |
| grid16 / grid8 | boundary/inside gradient ratio on a 16 px grid (VAE patch seams)  | generation artefact |

Thresholds come from benchmarks/calibrate_quality.py over all 100 photos in shared/photos and
their degraded copies (figures in docs/quality.md). Scores are computed at a fixed analysis size
(long side 1024 px) where they depend on resolution.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from zimage_assets.domain.verdicts import BLOCK, REVIEW, Assessment, Finding

ANALYSIS_SIDE = 1024
MAX_PIXELS = 64_000_000  # refuse to decode more (decompression bombs); 8000x8000
MIN_SIDE = 32  # smaller images cannot be assessed
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # APNG is format PNG; multi-frame TIFF / MPO are still photos

# Quality modes: `strict` judges everything; `smoke` only what holds for any image, even the
# random noise of the tiny test model (decodable, right size, not uniform / black / blank).
STRICT, SMOKE = "strict", "smoke"
QUALITY_MODES = (STRICT, SMOKE)


@dataclass(frozen=True)
class QualityThresholds:
    """Limits per score; see docs/quality.md for the calibration behind each."""

    max_edge_sigma: float = 1.12  # blur: good photos <= 1.18 (2 of 100 above 1.10), blur sigma 1.5 >= 1.16
    max_noise: float = 1.5  # good photos <= 0.42, noise sigma 10 >= 3.7
    max_jpeg_q: float = 25.0  # quantisation step of low DCT frequencies: good <= 8, JPEG quality 10 >= 55
    min_jpeg_quality: int = 30  # from the file's quantisation table (JPEG files only)
    min_p99: float = 170.0  # underexposed: good photos 255, brightness x0.4 gives 102
    max_p5: float = 235.0  # overexposed: nothing darker than this in 95% of the frame
    min_std: float = 3.0  # uniform image (a flat grey frame has 0)
    black_mean: float = 16.0  # black image (NaN output of a broken model decodes to black)
    max_grid16: float = 2.0  # VAE seams on a 16 px grid not explained by an 8 px JPEG grid


DEFAULT_THRESHOLDS = QualityThresholds()


class ImageLoadError(ValueError):
    """The bytes are not an image we can assess. `code` is the machine-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class LoadedImage:
    rgb: np.ndarray  # HxWx3 uint8
    info: dict[str, Any]  # format, mode, width, height, jpeg_quality, alpha_flattened, ...


# ---- decoding ----


def load_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode any common image to 8-bit RGB, or raise ImageLoadError with a reason code.

    Zero-byte, truncated and corrupt files, decompression bombs (checked from the header, before
    decoding), animated GIF / APNG / WebP (refused: `animated_image`), CMYK, 16-bit, palette and
    alpha images are all handled; alpha is flattened onto
    white (the e-commerce convention) and recorded.
    """
    if not data:
        raise ImageLoadError("empty_file", "the file is empty (0 bytes)")
    image = open_image(data, max_pixels=max_pixels, animated="refuse")
    width, height = image.size
    info: dict[str, Any] = {"format": image.format or "", "mode": image.mode, "width": width, "height": height}
    quality = jpeg_file_quality(image)
    if quality is not None:
        info["jpeg_quality"] = quality
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not worth failing for
        pass
    rgb, flattened = _to_rgb8(image)
    if flattened:
        info["alpha_flattened"] = True
    info["width"], info["height"] = rgb.shape[1], rgb.shape[0]
    return LoadedImage(rgb=rgb, info=info)


def open_image(data: bytes, *, max_pixels: int = MAX_PIXELS, animated: str = "refuse") -> Image.Image:
    """Open and decode an image, refusing bombs from the header before decoding.

    `animated`: "refuse" (an image the shop would show moving is `animated_image`: product images
    must be still) or "first_frame" (a source photo: its first frame is used, and the caller says so).
    ImageLoadError `image_too_large`, `animated_image`, `truncated_image` or `unreadable_image` otherwise.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageLoadError("image_too_large", f"{width}x{height} is more than {max_pixels:,} pixels; not decoded")
            frames = getattr(image, "n_frames", 1) if image.format in ANIMATED_FORMATS else 1
            if frames > 1 and animated == "refuse":  # judging one frame would pass an image the shop shows moving
                raise ImageLoadError(
                    "animated_image", f"animated {image.format} with {frames} frames: a product image must be a still image; export one frame"
                )
            image.load()
            return image
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError("image_too_large", f"decompression bomb refused: {_plain(exc)}") from None
    except Image.UnidentifiedImageError:
        raise ImageLoadError("unreadable_image", "cannot decode the image: not an image format Pillow can read (JPEG, PNG, WebP, GIF, TIFF...)") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad data
        text = str(exc).lower()
        kind = "truncated_image" if "truncated" in text or "broken data stream" in text else "unreadable_image"
        raise ImageLoadError(kind, f"cannot decode the image: {type(exc).__name__}: {_plain(exc)}") from None


def _plain(exc: Exception) -> str:
    """An exception's message without object reprs and memory addresses (`<... at 0x7f...>`)."""
    return _OBJECT_REPR.sub("the data", str(exc))


_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def _to_rgb8(image: Image.Image) -> tuple[np.ndarray, bool]:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2), False
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba, dtype=np.uint8)[:, :, 3]
        if alpha.min() < 255:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            white.alpha_composite(rgba)
            return np.asarray(white.convert("RGB")), True
        return np.asarray(rgba.convert("RGB")), False
    return np.asarray(image.convert("RGB")), False


# IJG standard luminance table (natural order), for estimating a JPEG file's quality.
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)


def jpeg_file_quality(image: Image.Image) -> int | None:
    """IJG quality (1-100) that matches the file's luminance quantisation table, or None."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables or 0 not in tables:
        return None
    table = np.asarray(tables[0], dtype=np.float64)
    if table.size != 64:
        return None
    # The ratio of sums does not depend on the table's order (zigzag or natural).
    scale = float(table.sum() / _STD_LUMA.sum()) * 100.0
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return int(max(1, min(100, round(quality))))


# ---- measurements ----


def luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def resize_long_side(array: np.ndarray, side: int) -> np.ndarray:
    """Downscale so the long side is `side` (never upscales: that would invent blur)."""
    h, w = array.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return array
    return cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def edge_sigma(lum: np.ndarray, quantile: float = 0.98, min_range: float = 40.0) -> float:
    """Blur as the Gaussian sigma of the sharpest strong edges, in px at <= ANALYSIS_SIDE.

    A step edge of contrast C blurred with sigma s has a peak gradient C / (s * sqrt(2 pi)).
    Where the local range (7x7) is at least `min_range`, gradient / range is measured, and its
    98th percentile (the centres of the sharpest edges) gives s. Flat areas, such as a white
    background, have no such edges and do not count. NaN when there are too few edges.
    """
    small = resize_long_side(lum, ANALYSIS_SIDE)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.hypot(gx, gy)
    kernel = np.ones((7, 7), np.uint8)
    spread = cv2.dilate(small, kernel) - cv2.erode(small, kernel)
    strong = spread >= min_range
    if int(strong.sum()) < 100:
        return float("nan")
    ratio = grad[strong] / spread[strong]
    top = float(np.quantile(ratio, quantile))
    return float(1.0 / (np.sqrt(2.0 * np.pi) * top)) if top > 0 else float("inf")


_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_floor(lum: np.ndarray, block: int = 16, quantile: float = 0.2) -> float:
    """Noise sigma (grey levels) in the flattest blocks: Immerkaer's estimator, 20th percentile.

    Measured at full resolution (noise is per pixel). A clean white background gives 0; added
    noise shows there even where half of it is clipped at 255.
    """
    residual = np.abs(cv2.filter2D(lum, -1, _IMMERKAER))[1:-1, 1:-1]
    h, w = residual.shape
    h2, w2 = h // block * block, w // block * block
    if h2 == 0 or w2 == 0:
        return float(residual.mean() * np.sqrt(np.pi / 2) / 6) if residual.size else 0.0
    blocks = residual[:h2, :w2].reshape(h2 // block, block, w2 // block, block).mean(axis=(1, 3))
    return float(np.quantile(blocks, quantile) * np.sqrt(np.pi / 2) / 6)


def grid_strength(lum: np.ndarray, period: int) -> tuple[float, int, int]:
    """Gradient on the strongest grid phase / median of the other phases (min of both axes).

    Returns (strength, x offset, y offset) of the grid; 1.0 means no grid.
    """
    strengths, offsets = [], []
    for axis in (1, 0):  # x then y
        diffs = np.abs(np.diff(lum, axis=axis)).mean(axis=1 - axis)
        n = len(diffs) // period * period
        if n < period * 2:
            return 1.0, 0, 0
        phases = diffs[:n].reshape(-1, period).mean(axis=0)
        top = int(phases.argmax())
        rest = float(np.median(np.delete(phases, top)))
        strengths.append(float(phases[top] / max(rest, 1e-3)))
        offsets.append((top + 1) % period)
    return min(strengths), offsets[0], offsets[1]


_DCT8 = np.array(
    [[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * n + 1) * k * np.pi / 16) for n in range(8)] for k in range(8)], np.float32
)


def jpeg_quant_step(lum: np.ndarray, *, max_coefficients: int = 5000) -> float:
    """The quantisation step of the lowest AC frequencies, found in the 8x8 DCT of the pixels.

    A JPEG-compressed image keeps its coefficients on multiples of the quantisation table even
    after decoding; resampling, blur or noise destroy that. Returns the largest step q for which
    at least 60% of the coefficients of magnitude >= q/2 lie near a multiple of q (random
    values do so 20% of the time) (1 for none;
    0 when there are too few coefficients to tell, e.g. an almost white frame).
    """
    _, ox, oy = grid_strength(lum, 8)
    area = lum[oy:, ox:]
    h, w = area.shape[0] // 8 * 8, area.shape[1] // 8 * 8
    if h < 16 or w < 16:
        return 0.0
    blocks = area[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) - 128.0
    steps = []
    for u, v in ((0, 1), (1, 0), (1, 1)):
        c = np.einsum("j,abjk,k->ab", _DCT8[u], blocks, _DCT8[v], optimize=True).ravel()
        c = np.abs(c[np.abs(c) >= 1.0])
        if len(c) < 100:
            continue
        if len(c) > max_coefficients:
            c = c[:: len(c) // max_coefficients + 1]
        best = 1
        for q in range(2, 161):
            big = c[c >= q / 2]  # coefficients that step q would have kept non-zero
            if len(big) < 50:
                break
            # Decoding rounds and clips (dark and bright pixels), so a tolerance of 10% of q.
            near = np.abs(big - q * np.round(big / q)) <= max(1.0, 0.1 * q)
            if near.mean() >= 0.6:
                best = q
        steps.append(best)
    return float(np.median(steps)) if steps else 0.0


def measure(rgb: np.ndarray) -> dict[str, float]:
    """Every quality score of one RGB image (see the module table)."""
    lum = luminance(rgb)
    small = resize_long_side(lum, ANALYSIS_SIDE)
    grid8, _, _ = grid_strength(lum, 8)
    grid16, _, _ = grid_strength(lum, 16)
    p5, p99 = np.percentile(small, [5, 99])
    return {
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "mean": round(float(small.mean()), 3),
        "std": round(float(small.std()), 3),
        "p5": round(float(p5), 3),
        "p99": round(float(p99), 3),
        "edge_sigma": round(edge_sigma(lum), 4),
        "noise": round(noise_floor(lum), 4),
        "jpeg_q": jpeg_quant_step(lum),
        "grid8": round(grid8, 4),
        "grid16": round(grid16, 4),
    }


# ---- judging ----


def judge(
    scores: dict[str, Any],
    *,
    mode: str = STRICT,
    expected_size: tuple[int, int] | None = None,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """Findings for measured scores. Quality defects may go away with a new seed (`regenerate`)."""
    if mode not in QUALITY_MODES:
        raise ValueError(f"unknown quality mode {mode!r}; expected one of {QUALITY_MODES}")
    t = thresholds
    out: list[Finding] = []
    width, height = scores["width"], scores["height"]
    if expected_size is not None and (width, height) != tuple(expected_size):
        out.append(Finding("wrong_size", BLOCK, f"{width}x{height}, expected {expected_size[0]}x{expected_size[1]}"))
    if scores["std"] < t.min_std:
        out.append(Finding("uniform_image", BLOCK, f"luminance std {scores['std']}", regenerate=True))
    if scores["mean"] < t.black_mean and scores["p99"] < 3 * t.black_mean:
        out.append(Finding("black_image", BLOCK, f"mean luminance {scores['mean']}", regenerate=True))
    if scores["p5"] >= 254.5 and scores["std"] < 3 * t.min_std:
        out.append(Finding("blank_image", BLOCK, "nothing but white", regenerate=True))
    if mode == SMOKE or any(f.verdict == BLOCK for f in out):
        return out
    sigma = scores.get("edge_sigma")
    if sigma is not None and np.isfinite(sigma) and sigma > t.max_edge_sigma:
        out.append(Finding("blurry", REVIEW, f"edge sigma {sigma} > {t.max_edge_sigma}", regenerate=True))
    if scores["noise"] > t.max_noise:
        out.append(Finding("noisy", REVIEW, f"noise {scores['noise']} > {t.max_noise}", regenerate=True))
    jpeg = scores.get("jpeg_q") or 0.0
    file_quality = scores.get("jpeg_quality")
    if jpeg > t.max_jpeg_q or (file_quality is not None and file_quality < t.min_jpeg_quality):
        detail = f"quantisation step {jpeg}" + (f", file quality {file_quality}" if file_quality is not None else "")
        out.append(Finding("jpeg_artifacts", REVIEW, detail, regenerate=True))
    if scores["p99"] < t.min_p99:
        out.append(Finding("underexposed", REVIEW, f"99th percentile luminance {scores['p99']} < {t.min_p99}", regenerate=True))
    if scores["p5"] > t.max_p5:
        out.append(Finding("overexposed", REVIEW, f"5th percentile luminance {scores['p5']} > {t.max_p5}", regenerate=True))
    if scores["grid16"] > t.max_grid16 and scores["grid16"] > 1.5 * scores["grid8"]:
        out.append(Finding("grid_artifacts", REVIEW, f"16 px grid strength {scores['grid16']}", regenerate=True))
    return out


def assess_quality(
    rgb: np.ndarray,
    *,
    mode: str = STRICT,
    expected_size: tuple[int, int] | None = None,
    info: dict[str, Any] | None = None,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> Assessment:
    """Measure and judge one decoded image."""
    assessment = Assessment()
    if min(rgb.shape[:2]) < MIN_SIDE:
        assessment.scores.update({"width": int(rgb.shape[1]), "height": int(rgb.shape[0])})
        assessment.add(Finding("image_too_small", BLOCK, f"{rgb.shape[1]}x{rgb.shape[0]}; at least {MIN_SIDE} px per side"))
        return assessment
    scores: dict[str, Any] = measure(rgb)
    if info and info.get("jpeg_quality") is not None:
        scores["jpeg_quality"] = info["jpeg_quality"]
    assessment.scores.update(scores)
    assessment.extend(judge(scores, mode=mode, expected_size=expected_size, thresholds=thresholds))
    if info and info.get("alpha_flattened"):
        assessment.fixes.append("alpha_flattened_on_white")
    return assessment
