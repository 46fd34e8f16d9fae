"""Cutting the product out and placing it: real photos of the sample (AFL-3.0), a real ONNX model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from photo_server import MEDIA, busy_background_photo
from zimage_assets.domain import compliance, preservation
from zimage_assets.domain.cutout import cut_out, from_alpha, full_alpha, mask_iou
from zimage_assets.domain.compositing import PlacementRequest, photo_image, plan
from zimage_assets.domain.source_decoding import decode_photo

PHOTOS = sorted(MEDIA.rglob("*.jpg"))


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("path", PHOTOS, ids=[p.name for p in PHOTOS])
def test_studio_photos_are_cut_out_confidently_and_placed_pixel_exactly(path):
    rgb = _rgb(path)
    cut = cut_out(rgb)
    assert cut.confidence >= 0.9 and len(cut.touches) <= 1, (cut.confidence, cut.reasons, cut.touches)
    main, placement = photo_image(cut.rgba, cut.touches, (1024, 1024), PlacementRequest(0.9))
    decoded = np.asarray(Image.open(io.BytesIO(_png(main))).convert("RGB"))
    measured = preservation.measure(decoded, cut.rgba, placement)
    assert measured["max_abs_diff"] == 0 and measured["ssim"] == 1.0
    checked, _ = compliance.assess_compliance(decoded, compliance.PROFILES["main"], fix=False)
    assert checked.findings == []  # the main profile: white, filled, square, large enough


def test_a_busy_background_is_unsure_and_a_pasted_product_is_recovered():
    busy = cut_out(np.asarray(Image.open(io.BytesIO(busy_background_photo())).convert("RGB")))
    assert busy.confidence < 0.6 and any("busy" in r or "textured" in r for r in busy.reasons)
    # The product with its known mask pasted on a light grey gradient: the cut finds that mask again.
    rgb = _rgb(PHOTOS[0])
    truth = full_alpha(cut_out(rgb)) > 127
    h, w = truth.shape
    background = (np.linspace(225, 245, w)[None, :, None] * np.ones((h, 1, 3))).astype(np.uint8)
    pasted = np.where(truth[:, :, None], rgb, background).astype(np.uint8)
    again = cut_out(pasted)
    assert again.confidence >= 0.9 and mask_iou(full_alpha(again) > 127, truth) > 0.97


def test_a_transparent_png_is_used_as_it_is_and_a_cut_product_stays_against_its_edge():
    rgb = _rgb(PHOTOS[0])
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[200:900, 300:800] = 255
    png = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha])).save(png, format="PNG")
    photo = decode_photo(png.getvalue())
    cut = from_alpha(np.dstack([photo.rgb, photo.alpha]))
    assert cut.method == "alpha" and cut.confidence == 1.0 and cut.box == (300, 200, 800, 900)
    # A model cut at the bottom edge of the photo stays on the bottom edge of the canvas.
    placed = plan((500, 700), ["bottom"], (1000, 1000), PlacementRequest(0.9))
    assert placed.offset[1] + placed.size[1] == 1000 and "bottom" in placed.anchored
    assert plan((500, 700), [], (1000, 1000), PlacementRequest(0.9)).size == (643, 900)


def test_a_user_provided_onnx_segmentation_model(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    # A real ONNX graph: dark pixels (the product) -> 1, light background -> 0, at a fixed 64x64 input.
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["threshold", "mean"], ["diff"]),
        helper.make_node("Mul", ["diff", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes, "darkness", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 64, 64])],
        [helper.make_tensor("threshold", TensorProto.FLOAT, [], [1.9]), helper.make_tensor("gain", TensorProto.FLOAT, [], [12.0])])
    model_path = tmp_path / "darkness.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model_path))

    from resources.segmenter import Segmenter, SegmenterError

    segmenter = Segmenter(spec=f"onnx:{model_path}")
    method, version = segmenter.method()
    assert method == "onnx:darkness.onnx" and len(version) == 16
    photo = decode_photo(PHOTOS[0].read_bytes())
    cut = segmenter.cut(photo)
    default = cut_out(photo.rgb)
    assert cut.method == method and mask_iou(full_alpha(cut) > 127, full_alpha(default) > 127) > 0.6
    with pytest.raises(SegmenterError):
        Segmenter(spec="onnx:/nonexistent/model.onnx").method()


def test_zimage_qc_main_image_writes_compliant_main_images(tmp_path):
    out = tmp_path / "main"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    busy = tmp_path / "busy.jpg"
    busy.write_bytes(busy_background_photo())
    done = subprocess.run([sys.executable, "-m", "zimage_assets.qc_cli", "main-image", str(PHOTOS[0]), str(busy), str(tmp_path / "none.jpg"),
                           "--out", str(out)], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["verdict"] for line in lines] == ["PASS", "REVIEW", "BLOCK"]
    good = lines[0]
    assert good["reasons"] == [] and good["fill"] >= 0.85 and good["mask_confidence"] >= 0.9
    with Image.open(good["output"]) as image:
        assert image.size == (1024, 1024) and image.getpixel((0, 0)) == (255, 255, 255)
    assert lines[1]["reasons"] == ["mask_unsure"] and lines[1]["output"] is None  # never a bad cut
    assert lines[2]["reasons"] == ["unreadable_file"]


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()
