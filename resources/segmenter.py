"""Cutting the product out of a source photo: the segmenter resource (ZIMAGE_SEGMENTER).

- `default`: the weight-free method of `zimage_assets/domain/cutout.py` (border background,
  border-connected region, GrabCut, feathered edge, a confidence), for light studio backgrounds.
- `onnx:/path/model.onnx`: a segmentation / matting model the user provides in a local folder
  (U2-Net, IS-Net, BiRefNet exports: input 1x3xHxW RGB normalised with the ImageNet mean and
  deviation, output a 1-channel mask), run with onnxruntime on the CPU. Nothing is downloaded.
  Its confidence is how decided its mask is (few pixels between 0.1 and 0.9), lowered like the
  default's when the product runs into three or four sides of the frame.

Either way a photo with real transparency (a merchant's cut-out PNG) is used as it is. Below
`min_confidence` a cut is "unsure": the item goes to REVIEW with the reasons, never a bad cut.
The method and its version (for ONNX, a fingerprint of the model file) are part of every spec
that uses the cut-out, so changing the segmenter regenerates the images it made.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import cv2
import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain import cutout as cut
from zimage_assets.domain.source_decoding import DecodedPhoto
from zimage_assets.settings import DEFAULTS

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
DYNAMIC_SIDE = 320  # input size for a model whose input dimensions are not fixed

_SESSIONS: dict[str, object] = {}
_LOCK = threading.Lock()


class SegmenterError(RuntimeError):
    """The configured segmenter cannot be used (a missing or broken model file)."""


class Segmenter(ConfigurableResource):
    """default | onnx:/path/model.onnx; see the module docstring."""

    spec: str = Field(default=DEFAULTS["segmenter"], description="default | onnx:/path/to/model.onnx")
    min_confidence: float = Field(default=DEFAULTS["mask_min_confidence"], ge=0.0, le=1.0, description="Cuts below this are unsure (REVIEW)")

    def _onnx_path(self) -> Path | None:
        if self.spec in ("", "default"):
            return None
        if not self.spec.startswith("onnx:"):
            raise SegmenterError(f"ZIMAGE_SEGMENTER={self.spec!r}: use default or onnx:/path/to/model.onnx")
        path = Path(self.spec[len("onnx:"):]).expanduser()
        if not path.is_file():
            raise SegmenterError(f"ZIMAGE_SEGMENTER: no ONNX model at {path}")
        return path

    def method(self) -> tuple[str, str]:
        """(method, version) of cuts of photos without transparency."""
        path = self._onnx_path()
        if path is None:
            return cut.METHOD, cut.VERSION
        return f"onnx:{path.name}", _file_fingerprint(path)

    def method_for(self, photo: DecodedPhoto) -> tuple[str, str]:
        return (cut.ALPHA_METHOD, cut.ALPHA_VERSION) if photo.alpha is not None else self.method()

    def cut(self, photo: DecodedPhoto) -> cut.Cutout:
        """The product of one decoded photo; raises cutout.CutoutError when there is none."""
        if photo.alpha is not None:
            return cut.from_alpha(np.dstack([photo.rgb, photo.alpha]))
        path = self._onnx_path()
        if path is None:
            return cut.cut_out(photo.rgb)
        return self._onnx_cut(path, photo.rgb)

    def _onnx_cut(self, path: Path, rgb: np.ndarray) -> cut.Cutout:
        session = _session(path)
        first = session.get_inputs()[0]
        dims = list(first.shape)
        height = dims[2] if len(dims) == 4 and isinstance(dims[2], int) else DYNAMIC_SIDE
        width = dims[3] if len(dims) == 4 and isinstance(dims[3], int) else DYNAMIC_SIDE
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        tensor = ((small - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None].astype(np.float32)
        output = np.asarray(session.run(None, {first.name: tensor})[0], np.float32)
        mask = np.squeeze(output)
        if mask.ndim == 3:
            mask = mask[0]
        if mask.min() < 0 or mask.max() > 1:
            mask = 1.0 / (1.0 + np.exp(-mask))
        spread = float(mask.max() - mask.min())
        mask = (mask - mask.min()) / spread if spread > 1e-6 else np.zeros_like(mask)
        h, w = rgb.shape[:2]
        alpha = np.clip(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        undecided = float(((alpha > 0.1) & (alpha < 0.9)).mean())
        confidence = float(np.clip(1.0 - 4.0 * undecided, 0.0, 1.0))
        reasons = [f"{undecided:.0%} of the mask is undecided"] if confidence < 1.0 else []
        alpha8 = np.round(alpha * 255).astype(np.uint8)
        touches = cut.sides_touched(alpha8 > 127)
        if len(touches) >= 3:
            confidence = min(confidence, 0.35)
            reasons.append(f"the product runs into {len(touches)} sides of the frame ({', '.join(touches)})")
        method, version = self.method()
        return cut.from_mask(rgb, alpha8, method=method, version=version, confidence=confidence, reasons=reasons)


def _session(path: Path):
    import onnxruntime

    key = str(path.resolve())
    with _LOCK:
        if key not in _SESSIONS:
            try:
                _SESSIONS[key] = onnxruntime.InferenceSession(key, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad files
                raise SegmenterError(f"ZIMAGE_SEGMENTER: cannot load {path}: {exc}") from None
        return _SESSIONS[key]


def _file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
