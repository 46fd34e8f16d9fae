"""Placing the real product on a canvas, and putting its own pixels back. Pure (numpy, OpenCV).

A cut-out (the product as RGBA, cropped to its box) is scaled so its box fills `fill` of the
frame (the long side of the box over the frame's, as the compliance profiles measure it) and
placed with its centre at `position` (shares of the frame). A product the source photo cut off
(a model's legs leaving the bottom edge) stays against that side of the canvas, so the cut edge
is a frame edge again, never a floating line; a product cut at two opposite sides spans that
dimension.

- `photo_image`: the product on pure white (RGB 255). No model.
- `scene_canvas`: the product on a canvas plus the inpaint mask (white = repaint: everything
  outside the product, slightly dilated); `scene_composite` puts the original product pixels
  back over what the model painted (optionally over a soft contact shadow), so every pixel of
  the product is the photo's.

Resampling is `resize_cutout` (premultiplied alpha, area filter down, Lanczos up, integer
offsets): the preservation check (`domain/preservation.py`) calls the same function to know
which pixels the product must have.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

COMPOSITOR_VERSION = "1"
WHITE = 255


@dataclass(frozen=True)
class PlacementRequest:
    """What a view's template asks for."""

    fill: float = 0.9
    position: tuple[float, float] = (0.5, 0.5)
    shadow: bool = False

    def canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Placement:
    """Where the product went: the resized cut-out's size and top-left offset on the canvas."""

    canvas: tuple[int, int]  # width, height
    size: tuple[int, int]  # width, height of the resized cut-out
    offset: tuple[int, int]  # x, y of its top-left corner
    scale: float
    anchored: tuple[str, ...] = ()  # canvas sides the product was kept against

    def as_dict(self) -> dict:
        return {"canvas": list(self.canvas), "size": list(self.size), "offset": list(self.offset), "scale": round(self.scale, 6),
                "anchored": list(self.anchored)}

    @classmethod
    def from_dict(cls, data: dict) -> "Placement":
        return cls(tuple(data["canvas"]), tuple(data["size"]), tuple(data["offset"]), float(data["scale"]), tuple(data.get("anchored") or ()))


def plan(cutout_size: tuple[int, int], touches: list[str] | tuple[str, ...], canvas: tuple[int, int], request: PlacementRequest) -> Placement:
    """Scale and offset of a cut-out of `cutout_size` on `canvas` (see the module docstring)."""
    bw, bh = cutout_size
    cw, ch = canvas
    fit = min(cw / bw, ch / bh)  # the largest scale that keeps the whole box in the frame
    scale = request.fill * fit
    touches = set(touches)
    if {"top", "bottom"} <= touches or {"left", "right"} <= touches:
        scale = fit  # cut at two opposite sides: span that dimension
    w, h = max(1, round(bw * scale)), max(1, round(bh * scale))
    anchored = []

    def axis(low_side: str, high_side: str, length: int, frame: int, share: float) -> int:
        if low_side in touches:
            anchored.append(low_side)
            return 0
        if high_side in touches:
            anchored.append(high_side)
            return frame - length
        return int(np.clip(round(share * frame - length / 2), 0, max(0, frame - length)))

    x = axis("left", "right", w, cw, request.position[0])
    y = axis("top", "bottom", h, ch, request.position[1])
    return Placement((cw, ch), (w, h), (x, y), scale, tuple(anchored))


def resize_cutout(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The cut-out at `size`, resampled with premultiplied alpha (no dark or white fringes)."""
    if (rgba.shape[1], rgba.shape[0]) == tuple(size):
        return rgba.copy()
    shrinking = size[0] < rgba.shape[1]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    alpha = rgba[:, :, 3].astype(np.float32) / 255.0
    premultiplied = rgba[:, :, :3].astype(np.float32) * alpha[:, :, None]
    small_alpha = np.clip(cv2.resize(alpha, size, interpolation=method), 0.0, 1.0)
    small_rgb = cv2.resize(premultiplied, size, interpolation=method)
    rgb = np.where(small_alpha[:, :, None] > 1e-3, small_rgb / np.maximum(small_alpha[:, :, None], 1e-3), 0.0)
    out = np.empty((size[1], size[0], 4), np.uint8)
    out[:, :, :3] = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    out[:, :, 3] = np.round(small_alpha * 255).astype(np.uint8)
    return out


def placed_layer(rgba: np.ndarray, placement: Placement) -> np.ndarray:
    """The resized cut-out on a transparent canvas-sized layer (parts outside the canvas dropped)."""
    cw, ch = placement.canvas
    layer = np.zeros((ch, cw, 4), np.uint8)
    small = resize_cutout(rgba, placement.size)
    x, y = placement.offset
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    w = min(small.shape[1] - sx0, cw - dx0)
    h = min(small.shape[0] - sy0, ch - dy0)
    if w > 0 and h > 0:
        layer[dy0 : dy0 + h, dx0 : dx0 + w] = small[sy0 : sy0 + h, sx0 : sx0 + w]
    return layer


def composite(background: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """`layer` (RGBA) over `background` (RGB); where alpha is 255 the result is the layer's pixel exactly."""
    alpha = layer[:, :, 3:4].astype(np.float32) / 255.0
    out = layer[:, :, :3].astype(np.float32) * alpha + background.astype(np.float32) * (1.0 - alpha)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    opaque = layer[:, :, 3] == 255
    out[opaque] = layer[:, :, :3][opaque]
    return out


def photo_image(rgba: np.ndarray, touches, canvas: tuple[int, int], request: PlacementRequest) -> tuple[np.ndarray, Placement]:
    """The product on pure white, scaled and placed (the `photo` view mode)."""
    placement = plan((rgba.shape[1], rgba.shape[0]), touches, canvas, request)
    white = np.full((canvas[1], canvas[0], 3), WHITE, np.uint8)
    return composite(white, placed_layer(rgba, placement)), placement


def scene_canvas(rgba: np.ndarray, touches, canvas: tuple[int, int], request: PlacementRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray, Placement]:
    """(canvas RGB with the product, inpaint mask (255 = repaint), the product layer, placement)."""
    placement = plan((rgba.shape[1], rgba.shape[0]), touches, canvas, request)
    layer = placed_layer(rgba, placement)
    keep = (layer[:, :, 3] > 0).astype(np.uint8)
    grow = max(1, round(0.008 * min(canvas)))
    keep = cv2.dilate(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    mask = np.where(keep > 0, 0, 255).astype(np.uint8)
    start = composite(np.full((canvas[1], canvas[0], 3), 127, np.uint8), layer)
    return start, mask, layer, placement


def contact_shadow(layer: np.ndarray, placement: Placement, strength: float = 0.35) -> np.ndarray | None:
    """A soft elliptical shadow under the product (h x w float in [0, strength]), or None when the
    product stands on the frame's bottom edge (a cut-off product has no floor contact)."""
    if "bottom" in placement.anchored:
        return None
    ys, xs = np.nonzero(layer[:, :, 3] > 127)
    if len(ys) == 0:
        return None
    ch, cw = layer.shape[:2]
    bottom, left, right = int(ys.max()), int(xs.min()), int(xs.max())
    width = max(4, round(0.8 * (right - left)))
    height = max(3, round(0.05 * (bottom - int(ys.min()))))
    shadow = np.zeros((ch, cw), np.float32)
    cv2.ellipse(shadow, ((left + right) // 2, min(ch - 1, bottom)), (width // 2, height // 2), 0, 0, 360, 1.0, -1)
    sigma = max(1.0, height / 1.5)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
    return shadow / max(float(shadow.max()), 1e-6) * strength


def scene_composite(generated: np.ndarray, layer: np.ndarray, placement: Placement, shadow: bool = False) -> np.ndarray:
    """The model's painting with the original product pixels composited back on top."""
    base = generated.astype(np.float32)
    if shadow:
        darkness = contact_shadow(layer, placement)
        if darkness is not None:
            base = base * (1.0 - darkness[:, :, None])
    return composite(np.clip(np.round(base), 0, 255).astype(np.uint8), layer)
