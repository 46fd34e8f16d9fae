"""Image gates on real photos (shared/photos), their degraded copies, and bad files. No Dagster."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED
from resources.image_safety import ImageSafety
from zimage_assets.domain.gates import nsfw_findings
from resources.quality_gates import QualityGates
from zimage_assets.domain import compliance, image_quality
from zimage_assets.domain.image_quality import ImageLoadError, assess_quality, load_image

PHOTOS = SHARED / "photos" / "magento"
# A model shot, a bare-chested model in shorts, a bag, a jump rope, leggings, a DVD cover.
GOOD = ["ms03-black_main.jpg", "msh05-blue_main.jpg", "wb01-black-0.jpg", "ug04-bk-0.jpg", "wp06-black_main.jpg", "lt04.jpg"]


@pytest.fixture(scope="module")
def gates():
    return QualityGates(quality_mode="strict", image_safety=ImageSafety())


def _photo(name: str) -> np.ndarray:
    return load_image((PHOTOS / name).read_bytes()).rgb


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", GOOD)
def test_good_real_photos_pass_every_gate(gates, name):
    result = gates.assess_image((PHOTOS / name).read_bytes(), profile="none")
    assert result.assessment.verdict == "PASS", (name, result.assessment.reasons, result.assessment.scores)
    assert result.assessment.scores["nsfw"] < gates.image_safety.review_threshold
    assert result.assessment.scores["jpeg_quality"] > 80


def _degrade(rgb: np.ndarray, kind: str) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(1)
    if kind == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), 1.5)
    if kind == "noise":
        return np.clip(rgb + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=10)
        return np.asarray(Image.open(buffer).convert("RGB"))
    if kind == "dark":
        return (rgb * 0.4).astype(np.uint8)
    return np.full_like(rgb, 128)


@pytest.mark.parametrize("name", GOOD[:2])
@pytest.mark.parametrize(
    "kind,code,verdict",
    [("blur", "blurry", "REVIEW"), ("noise", "noisy", "REVIEW"), ("jpeg", "jpeg_artifacts", "REVIEW"),
     ("dark", "underexposed", "REVIEW"), ("grey", "uniform_image", "BLOCK")],
)
def test_mild_degradations_are_caught_with_their_reason(name, kind, code, verdict):
    result = assess_quality(_degrade(_photo(name), kind))
    assert result.verdict == verdict and code in result.reasons, (kind, result.reasons, result.scores)
    assert result.regenerable  # a new seed may fix a quality defect


def test_scale_changes_do_not_make_good_photos_fail():
    rgb = _photo("ms03-black_main.jpg")
    for factor in (0.75, 1.5):
        scaled = np.asarray(Image.fromarray(rgb).resize((round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)), Image.Resampling.LANCZOS))
        result = assess_quality(scaled)
        assert result.verdict == "PASS", (factor, result.reasons, result.scores)


def test_a_jpeg_file_s_own_quantisation_table_is_read():
    buffer = io.BytesIO()
    Image.fromarray(_photo("wb01-black-0.jpg")).save(buffer, format="JPEG", quality=50)
    assert load_image(buffer.getvalue()).info["jpeg_quality"] == 50


# ---- bad input: a verdict or a clear error per file, never a crash ----


def _huge_png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data,code",
    [
        (b"", "empty_file"),
        (b"this is not an image at all" * 10, "unreadable_image"),
        ((PHOTOS / "wb01-black-0.jpg").read_bytes()[:5000], "truncated_image"),
        (_huge_png_header(40_000, 40_000), "image_too_large"),
    ],
    ids=["zero-byte", "corrupt", "truncated", "decompression-bomb"],
)
def test_unreadable_files_get_a_block_with_a_reason(gates, data, code):
    with pytest.raises(ImageLoadError) as info:
        load_image(data)
    assert info.value.code == code and str(info.value)
    result = gates.assess_image(data)
    assert result.assessment.verdict == "BLOCK" and result.assessment.reasons == [code]


def test_a_1x1_image_is_too_small(gates):
    result = gates.assess_image(_png(Image.new("RGB", (1, 1), "white")))
    assert result.assessment.verdict == "BLOCK" and result.assessment.reasons == ["image_too_small"]


def test_non_rgb_modes_are_converted(gates):
    rgb = _photo("wb01-black-0.jpg")
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG", quality=95)
    assert gates.assess_image(cmyk.getvalue(), profile="none").assessment.verdict == "PASS"

    grey16 = (image_quality.luminance(rgb).astype(np.uint16) * 257).astype(np.uint16)
    loaded = load_image(_png(Image.fromarray(grey16)))
    assert loaded.rgb.dtype == np.uint8 and abs(int(loaded.rgb[..., 0].mean()) - int(image_quality.luminance(rgb).mean())) <= 1

    rgba = Image.fromarray(rgb).convert("RGBA")
    alpha = np.asarray(rgba).copy()
    alpha[:100, :, 3] = 0  # a transparent band at the top
    result = gates.assess_image(_png(Image.fromarray(alpha, "RGBA")), profile="none")
    assert result.assessment.verdict == "PASS" and "alpha_flattened_on_white" in result.assessment.fixes
    assert (load_image(_png(Image.fromarray(alpha, "RGBA"))).rgb[:100] == 255).all()

    palette = Image.fromarray(rgb).convert("P")
    palette.info["transparency"] = 0
    assert load_image(_png(palette)).info.get("alpha_flattened") in (True, None)


def test_wrong_size_uniform_and_black_images():
    rgb = _photo("wb01-black-0.jpg")
    assert "wrong_size" in assess_quality(rgb, expected_size=(1024, 1024)).reasons
    black = assess_quality(np.zeros((256, 256, 3), np.uint8))
    assert black.verdict == "BLOCK" and {"uniform_image", "black_image"} <= set(black.reasons)


def test_smoke_mode_keeps_only_structural_checks():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert assess_quality(noise, mode="smoke").verdict == "PASS"
    strict = assess_quality(noise, mode="strict")
    assert strict.verdict == "REVIEW" and "noisy" in strict.reasons
    assert assess_quality(np.full((64, 64, 3), 90, np.uint8), mode="smoke").verdict == "BLOCK"


# ---- compliance profiles and fixes ----


def test_off_white_background_is_whitened_without_touching_the_product():
    rgb = _photo("wb01-black-0.jpg")
    off_white = np.clip(rgb.astype(int) - 12, 0, 255).astype(np.uint8)
    layout = compliance.analyse_layout(off_white)
    product = compliance.foreground_mask(off_white, layout.background)
    result, fixed = compliance.assess_compliance(off_white, compliance.PROFILES["studio"])
    assert result.verdict == "PASS" and result.fixes == ["whitened_background"]
    assert result.scores["fixed_from"]["background"] == [243, 243, 243]
    assert (fixed[product] == off_white[product]).all()  # every product pixel as it was
    assert compliance.analyse_layout(fixed).background == (255, 255, 255)


def test_main_profile_pads_to_square_and_crops_wide_margins():
    rgb = _photo("wb01-black-0.jpg")  # 1080x1340, the bag fills 74% of the height
    result, fixed = compliance.assess_compliance(rgb, compliance.PROFILES["main"])
    assert result.verdict == "PASS" and fixed.shape[0] == fixed.shape[1] >= 1000
    assert "cropped_to_fill" in result.fixes and result.scores["fill"] >= 0.85

    roomy = np.full((2400, 2400, 3), 255, np.uint8)
    roomy[530:1870, 660:1740] = rgb  # the photo in a lot of white
    result, fixed = compliance.assess_compliance(roomy, compliance.PROFILES["main"])
    assert result.verdict == "PASS" and result.fixes == ["cropped_to_fill"] and result.scores["fixed_from"]["fill"] < 0.6


def test_cut_off_products_and_small_frames_are_not_fixed():
    rgb = _photo("wb01-black-0.jpg")
    cut = rgb[300:900, 200:700].copy()  # the bag runs into several edges
    result, fixed = compliance.assess_compliance(cut, compliance.PROFILES["studio"])
    assert fixed is None and result.verdict == "REVIEW"
    assert {"product_cut_off", "too_small_for_profile"} <= set(result.reasons)
    assert compliance.assess_compliance(cut, compliance.PROFILES["lifestyle"])[0].reasons == ["too_small_for_profile"]
    assert compliance.assess_compliance(cut, compliance.PROFILES["none"])[0].verdict == "PASS"


def test_view_profiles_are_configurable():
    assert compliance.profile_for_view("front").name == "main"
    assert compliance.profile_for_view("side").name == "studio"
    assert compliance.profile_for_view("unknown-view").name == "studio"
    mapping = compliance.parse_view_profiles("front=lifestyle, detail=none")
    assert compliance.profile_for_view("front", mapping).name == "lifestyle"
    with pytest.raises(ValueError, match="VIEW=PROFILE"):
        compliance.parse_view_profiles("front=amazon")


def test_nsfw_thresholds():
    assert nsfw_findings(0.59, 0.6, 0.85) == []
    assert [f.code for f in nsfw_findings(0.6, 0.6, 0.85)] == ["nsfw_suspect"]
    (block,) = nsfw_findings(0.9, 0.6, 0.85)
    assert block.verdict == "BLOCK" and not block.regenerate  # safety is never "try another seed"
