"""Marketplace compliance profiles, chosen per view, and the fixes that do not touch the product.

| profile   | background at the border | product fill (long side of its box / frame) | frame            |
|-----------|--------------------------|---------------------------------------------|------------------|
| main      | pure white (>= 250)       | >= 85%, not cut off (runs into <= 1 side)    | long side >= 1000, square |
| studio    | pure white               | >= 50%, not cut off                          | long side >= 1000 |
| detail    | any                      | any                                         | long side >= 1000 |
| lifestyle | any                      | any                                         | long side >= 1000 |
| none      | no compliance rules (quality and safety only)                                          |

`main` is an Amazon-style main image. Fixes, applied only where they leave every product pixel as
it was, and recorded: `whitened_background` (an off-white, uniform background connected to the
border set to 255), `padded_to_square` (white added around), `cropped_to_fill` (white margin
removed so the product fills 90% of the frame, only when the result still meets the frame size,
so nothing is ever upscaled). Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from zimage_assets.domain.verdicts import REVIEW, Assessment, Finding

WHITE = 250  # "pure white": every channel at least this (JPEG noise allowed)
FOREGROUND_DELTA = 20  # a pixel differs from the background by more than this -> product
TARGET_FILL = 0.90
# Share of the border's background pixels that must be pure white: soft floor shadows under a
# standing product are allowed (good studio photos have 85-100%).
MIN_WHITE_SHARE = 0.85


@dataclass(frozen=True)
class ComplianceProfile:
    name: str
    white_background: bool = False
    min_fill: float = 0.0
    not_cut_off: bool = False
    square: bool = False
    min_long_side: int = 0
    description: str = ""


PROFILES: dict[str, ComplianceProfile] = {
    "main": ComplianceProfile(
        "main", white_background=True, min_fill=0.85, not_cut_off=True, square=True, min_long_side=1000,
        description="Amazon-style main image: pure white background, product fills >= 85%, square, long side >= 1000 px",
    ),
    "studio": ComplianceProfile(
        "studio", white_background=True, min_fill=0.5, not_cut_off=True, min_long_side=1000,
        description="secondary image on white: pure white background, product fills >= 50%, long side >= 1000 px",
    ),
    "detail": ComplianceProfile("detail", min_long_side=1000, description="close-up: long side >= 1000 px"),
    "lifestyle": ComplianceProfile("lifestyle", min_long_side=1000, description="in a setting: long side >= 1000 px"),
    "none": ComplianceProfile("none", description="no compliance rules"),
}

# Which profile each view of the default templates gets; other views get DEFAULT_VIEW_PROFILE.
# "request": images asked for with a free prompt through the API (no marketplace rules apply).
DEFAULT_VIEW_PROFILES: dict[str, str] = {
    "front": "main", "back": "studio", "side": "studio", "detail": "detail", "lifestyle": "lifestyle", "request": "none",
}
DEFAULT_VIEW_PROFILE = "studio"


def parse_view_profiles(text: str) -> dict[str, str]:
    """`front=main,back=studio` -> mapping, on top of the defaults; unknown profiles are an error."""
    mapping = dict(DEFAULT_VIEW_PROFILES)
    for part in (p.strip() for p in text.split(",") if p.strip()):
        view, sep, profile = part.partition("=")
        if not sep or not view.strip() or profile.strip() not in PROFILES:
            raise ValueError(f"ZIMAGE_VIEW_PROFILES entry {part!r}: expected VIEW=PROFILE with PROFILE one of {sorted(PROFILES)}")
        mapping[view.strip()] = profile.strip()
    return mapping


def profile_for_view(view: str, mapping: Mapping[str, str] | None = None) -> ComplianceProfile:
    mapping = DEFAULT_VIEW_PROFILES if mapping is None else mapping
    return PROFILES[mapping.get(view, DEFAULT_VIEW_PROFILE)]


def get_profile(name: str) -> ComplianceProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown compliance profile {name!r}; expected one of {sorted(PROFILES)}") from None


@dataclass
class Layout:
    """Where the product is and what surrounds it."""

    background: tuple[int, int, int]  # median colour of the border strip
    border_uniform: bool  # the border strip is one colour (a studio background)
    border_white_share: float  # share of border pixels that are pure white
    box: tuple[int, int, int, int] | None  # product box x0, y0, x1, y1 (None: nothing found)
    fill: float  # max(box width / frame width, box height / frame height)
    cut_off: bool  # the product runs into the frame's edges

    def scores(self) -> dict:
        return {
            "background": list(self.background),
            "border_white_share": round(self.border_white_share, 4),
            "fill": round(self.fill, 4),
            "cut_off": self.cut_off,
        }


def _border(array: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate(
        [array[:width].reshape(-1, *array.shape[2:]), array[-width:].reshape(-1, *array.shape[2:]),
         array[:, :width].reshape(-1, *array.shape[2:]), array[:, -width:].reshape(-1, *array.shape[2:])]
    )


def analyse_layout(rgb: np.ndarray) -> Layout:
    h, w = rgb.shape[:2]
    strip = max(2, round(0.01 * min(h, w)))
    border = _border(rgb, strip).astype(np.int16)
    background = tuple(int(v) for v in np.median(border, axis=0))
    spread = np.abs(border - np.array(background, np.int16)).max(axis=1)
    border_uniform = float((spread <= FOREGROUND_DELTA).mean()) >= 0.9
    mask = foreground_mask(rgb, background)
    # Whiteness of the background part of the border (product pixels there are judged by cut_off).
    background_border = border[~_border(mask, strip)]
    border_white_share = float((background_border.min(axis=1) >= WHITE).mean()) if len(background_border) else 0.0
    ys, xs = np.nonzero(mask)
    if len(ys) < max(50, 0.0005 * h * w):
        return Layout(background, border_uniform, border_white_share, None, 0.0, False)
    y0, y1 = np.quantile(ys, [0.0005, 0.9995])
    x0, x1 = np.quantile(xs, [0.0005, 0.9995])
    box = (int(x0), int(y0), int(x1) + 1, int(y1) + 1)
    fill = max((box[2] - box[0]) / w, (box[3] - box[1]) / h)
    # Cut off: the product runs into two or more sides of the frame. One side is allowed: a
    # model's legs leaving the bottom of a shirt photo, a standing product on the bottom edge.
    sides = [mask[:strip].mean(), mask[-strip:].mean(), mask[:, :strip].mean(), mask[:, -strip:].mean()]
    cut_off = bool(sum(s > 0.01 for s in sides) >= 2)
    return Layout(background, border_uniform, border_white_share, box, float(fill), cut_off)


def foreground_mask(rgb: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    diff = np.abs(rgb.astype(np.int16) - np.array(background, np.int16)).max(axis=2).astype(np.uint8)
    diff = cv2.GaussianBlur(diff, (3, 3), 0)
    mask = (diff > FOREGROUND_DELTA).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def check(layout: Layout, profile: ComplianceProfile, size: tuple[int, int]) -> list[Finding]:
    """Findings of one profile for a layout and a frame size (width, height)."""
    out: list[Finding] = []
    long_side = max(size)
    if profile.min_long_side and long_side < profile.min_long_side:
        out.append(Finding("too_small_for_profile", REVIEW, f"long side {long_side} < {profile.min_long_side} px ({profile.name})"))
    if profile.white_background:
        if layout.box is None:
            out.append(Finding("no_product_found", REVIEW, "nothing stands out from the background", regenerate=True))
        if min(layout.background) < WHITE or layout.border_white_share < MIN_WHITE_SHARE:
            out.append(Finding("background_not_white", REVIEW, f"border colour {layout.background}, {layout.border_white_share:.0%} pure white", regenerate=True))
    if profile.not_cut_off and layout.cut_off:
        out.append(Finding("product_cut_off", REVIEW, "the product runs into the frame's edge", regenerate=True))
    if profile.min_fill and layout.box is not None and layout.fill < profile.min_fill:
        out.append(Finding("product_too_small", REVIEW, f"fills {layout.fill:.0%} < {profile.min_fill:.0%}", regenerate=True))
    if profile.square and size[0] != size[1]:
        out.append(Finding("not_square", REVIEW, f"{size[0]}x{size[1]}", regenerate=True))
    return out


def assess_compliance(rgb: np.ndarray, profile: ComplianceProfile, *, fix: bool = True) -> tuple[Assessment, np.ndarray | None]:
    """Check a profile; where whitening, padding or cropping fixes every finding, apply it.

    Returns the assessment (of the fixed image when fixed, with its fixes recorded) and the fixed
    image, or None when nothing was changed.
    """
    size = (rgb.shape[1], rgb.shape[0])
    if profile.name == "none":
        return Assessment(scores={"profile": "none"}), None
    layout = analyse_layout(rgb)
    findings = check(layout, profile, size)
    if findings and fix:
        fixed, fixes = _fix(rgb, layout, profile)
        if fixes:
            new_layout = analyse_layout(fixed)
            new_findings = check(new_layout, profile, (fixed.shape[1], fixed.shape[0]))
            if len(new_findings) < len(findings):
                assessment = Assessment(scores={"profile": profile.name, **new_layout.scores(), "fixed_from": layout.scores()})
                assessment.extend(new_findings)
                assessment.fixes.extend(fixes)
                return assessment, fixed
    assessment = Assessment(scores={"profile": profile.name, **layout.scores()})
    assessment.extend(findings)
    return assessment, None


def _fix(rgb: np.ndarray, layout: Layout, profile: ComplianceProfile) -> tuple[np.ndarray, list[str]]:
    fixes: list[str] = []
    out = rgb
    if not profile.white_background or layout.box is None or layout.cut_off:
        return out, fixes  # a cut-off product or no product: only a new image helps
    light = min(layout.background) >= 215 and layout.border_uniform
    if min(layout.background) < WHITE or layout.border_white_share < MIN_WHITE_SHARE:
        if not light:
            return out, fixes
        out = whiten_background(out, layout.background)
        fixes.append("whitened_background")
    h, w = out.shape[:2]
    x0, y0, x1, y1 = layout.box
    cx, cy, longest = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    if profile.square:
        side = max(h, w)
        if profile.min_fill and longest / side < profile.min_fill:
            # Padding alone would leave the product too small: a square window around it.
            tight = round(longest / TARGET_FILL)
            if tight >= profile.min_long_side:
                out = _crop_or_pad(out, cx, cy, tight, tight)
                fixes.append("cropped_to_fill")
                if h != w:
                    fixes.append("padded_to_square")
        elif h != w:
            out = _crop_or_pad(out, w / 2, h / 2, side, side)
            fixes.append("padded_to_square")
    elif profile.min_fill and layout.fill < profile.min_fill:
        # Crop the white margin so the product fills TARGET_FILL, keeping the aspect ratio and
        # never going below the frame minimum (nothing is ever upscaled).
        scale = max((x1 - x0) / TARGET_FILL / w, (y1 - y0) / TARGET_FILL / h)
        if max(w, h) * scale >= profile.min_long_side:
            out = _crop_or_pad(out, cx, cy, round(w * scale), round(h * scale))
            fixes.append("cropped_to_fill")
    return out, fixes


def whiten_background(rgb: np.ndarray, background: tuple[int, int, int], tolerance: int = 18) -> np.ndarray:
    """Set the background (pixels near its colour, connected to the border, outside the product
    mask) to pure white. Every pixel of `foreground_mask` keeps its value."""
    near = (np.abs(rgb.astype(np.int16) - np.array(background, np.int16)).max(axis=2) <= tolerance)
    near = (near & ~foreground_mask(rgb, background)).astype(np.uint8)
    _, labels = cv2.connectedComponents(near, connectivity=4)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep = np.isin(labels, edge_labels[edge_labels != 0])  # label 0: pixels far from the background
    out = rgb.copy()
    out[keep] = 255
    return out


def _crop_or_pad(rgb: np.ndarray, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """A width x height window centred on (cx, cy); parts outside the image are white."""
    h, w = rgb.shape[:2]
    left, top = round(cx - width / 2), round(cy - height / 2)
    canvas = np.full((height, width, 3), 255, np.uint8)
    sx0, sy0 = max(0, left), max(0, top)
    sx1, sy1 = min(w, left + width), min(h, top + height)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = rgb[sy0:sy1, sx0:sx1]
    return canvas
