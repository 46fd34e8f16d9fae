"""Photo-first: where the merchant's photos are, who may serve them, and how sure a cut-out must be."""

from __future__ import annotations

from zimage_assets.settings.defaults import DEFAULTS, SAMPLE_CATALOG, SAMPLE_MEDIA
from zimage_assets.settings.values import flag, integer, number


def photo_settings(env: dict[str, str]) -> dict:
    from zimage_assets.domain.media_refs import MediaRoot

    catalog = env.get("ZIMAGE_CATALOG_SOURCE") or str(SAMPLE_CATALOG)
    # The bundled sample ships a few of its photos; any other catalog names its own media root.
    default_root = str(SAMPLE_MEDIA) if catalog == str(SAMPLE_CATALOG) else ""
    root = env.get("ZIMAGE_MEDIA_ROOT", default_root).strip()
    MediaRoot.parse(root)  # a malformed root fails here, naming the variable
    hosts = lambda name: tuple(h.strip().lower() for h in (env.get(name) or "").split(",") if h.strip())  # noqa: E731
    timeout = number(env, "ZIMAGE_MEDIA_TIMEOUT_SECONDS", DEFAULTS["media_timeout_seconds"])
    if timeout == 0:
        raise ValueError("ZIMAGE_MEDIA_TIMEOUT_SECONDS must be more than 0")
    confidence = number(env, "ZIMAGE_MASK_MIN_CONFIDENCE", DEFAULTS["mask_min_confidence"])
    if confidence > 1:
        raise ValueError("ZIMAGE_MASK_MIN_CONFIDENCE must be between 0 and 1")
    segmenter = env.get("ZIMAGE_SEGMENTER") or DEFAULTS["segmenter"]
    if segmenter != "default" and not segmenter.startswith("onnx:"):
        raise ValueError(f"ZIMAGE_SEGMENTER={segmenter!r}: use default or onnx:/path/to/model.onnx")
    review = env.get("ZIMAGE_ILLUSTRATIVE_REVIEW")
    return {
        "media_root": root,
        "media_allowed_hosts": hosts("ZIMAGE_MEDIA_ALLOWED_HOSTS"),
        "media_private_hosts": hosts("ZIMAGE_MEDIA_PRIVATE_HOSTS"),
        "media_max_bytes": integer(env, "ZIMAGE_MEDIA_MAX_BYTES", DEFAULTS["media_max_bytes"]),
        "media_timeout_seconds": timeout,
        "media_max_attempts": integer(env, "ZIMAGE_MEDIA_MAX_ATTEMPTS", DEFAULTS["media_max_attempts"]),
        "segmenter": segmenter,
        "mask_min_confidence": confidence,
        "illustrative_review": True if review in (None, "") else flag(env, "ZIMAGE_ILLUSTRATIVE_REVIEW"),
    }
