"""Decoding a merchant's photo safely: what is refused, what is converted, and what is noted. Pure.

| input                                  | outcome                                                     |
|----------------------------------------|-------------------------------------------------------------|
| 0 bytes, not an image, corrupt         | refused: `photo_not_an_image` / `photo_corrupt`             |
| a truncated JPEG or PNG                | refused: `photo_truncated` (a grey band is not the product) |
| SVG (XML)                              | refused: `photo_svg_refused` (vector files can fetch URLs)  |
| declared size over the pixel limit     | refused before decoding: `photo_too_many_pixels` (bombs)    |
| smaller than MIN_SIDE                  | refused: `photo_too_small`                                  |
| CMYK (JPEG)                            | converted to RGB, noted `converted_cmyk` (REVIEW: colours)  |
| 16-bit (PNG / TIFF)                    | converted to 8-bit, noted `converted_16bit`                 |
| palette with transparency              | converted to RGBA (its transparency is a cut-out), noted    |
| an animated GIF / WebP / PNG           | the first frame, noted `first_frame_of_animation` (REVIEW)  |
| EXIF orientation                       | applied                                                     |

`decode_photo` returns RGB plus the alpha channel when the file has real transparency, and the
notes; `PhotoRefused` carries a reason code and a human detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from zimage_assets.domain.image_quality import ImageLoadError, open_image

MAX_PIXELS = 50_000_000  # about 7000 x 7000: more is refused before decoding (decompression bombs)
MIN_SIDE = 64
#: Notes that send the image to REVIEW: the result may not look like the merchant's photo.
REVIEW_NOTES = frozenset({"converted_cmyk", "first_frame_of_animation"})


class PhotoRefused(ValueError):
    """This photo cannot be used; `code` is the machine-readable reason."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class DecodedPhoto:
    rgb: np.ndarray  # h x w x 3 uint8
    alpha: np.ndarray | None  # h x w uint8 when the file has real transparency
    format: str
    notes: list[str] = field(default_factory=list)  # e.g. converted_cmyk, first_frame_of_animation

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def sniff_svg(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()) or b"<!doctype svg" in head


def decode_photo(data: bytes, *, max_pixels: int = MAX_PIXELS) -> DecodedPhoto:
    """Decode a source photo (see the module docstring), or raise PhotoRefused."""
    if not data:
        raise PhotoRefused("photo_not_an_image", "the file is empty (0 bytes)")
    if sniff_svg(data):
        raise PhotoRefused("photo_svg_refused", "SVG is refused: a vector file is not a product photo and can reference other URLs")
    try:
        image = open_image(data, max_pixels=max_pixels, animated="first_frame")
    except ImageLoadError as exc:
        if exc.code == "image_too_large":
            raise PhotoRefused("photo_too_many_pixels", str(exc)) from None
        if "not an image format" in str(exc):
            raise PhotoRefused("photo_not_an_image", "not an image file PIL can read") from None
        raise PhotoRefused("photo_truncated" if exc.code == "truncated_image" else "photo_corrupt", str(exc)) from None
    width, height = image.size
    fmt = image.format or ""
    frames = getattr(image, "n_frames", 1) or 1
    if min(width, height) < MIN_SIDE:
        raise PhotoRefused("photo_too_small", f"{width}x{height} is smaller than {MIN_SIDE} px on a side")
    notes: list[str] = []
    if frames > 1:
        notes.append("first_frame_of_animation")  # load() decoded frame 0
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not worth refusing for
        pass
    rgb, alpha, converted = _to_rgb_alpha(image)
    notes += converted
    return DecodedPhoto(rgb=rgb, alpha=alpha, format=fmt, notes=notes)


def _to_rgb_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    mode = image.mode
    if mode == "CMYK":
        return np.asarray(image.convert("RGB")), None, ["converted_cmyk"]
    if mode in ("I;16", "I;16B", "I;16L", "I", "F") or mode.endswith(";16") or mode == "RGB;16":
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2) if grey.ndim == 2 else grey[:, :, :3]
        return rgb, None, ["converted_16bit"]
    palette_alpha = mode == "P" and "transparency" in image.info
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or palette_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        notes = ["converted_palette_transparency"] if palette_alpha else []
        alpha = rgba[:, :, 3]
        if int(alpha.min()) < 250:
            return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(alpha), notes
        return np.ascontiguousarray(rgba[:, :, :3]), None, notes
    return np.asarray(image.convert("RGB")), None, []
