"""The safety and quality gates."""

from __future__ import annotations

from zimage_assets.settings.defaults import DEFAULTS
from zimage_assets.settings.values import integer, number


def quality_settings(env: dict[str, str], model: str) -> dict:
    mode = env.get("ZIMAGE_QUALITY_MODE") or "auto"
    if mode not in ("auto", "strict", "smoke"):
        raise ValueError(f"ZIMAGE_QUALITY_MODE={mode!r}: use auto, strict or smoke")
    if mode == "auto":  # the tiny random-weight model makes noise: structural checks only
        mode = "smoke" if model == "tiny" else "strict"
    shares = {}
    for name, default in (("ZIMAGE_MAX_BLOCK_SHARE", DEFAULTS["max_block_share"]), ("ZIMAGE_NSFW_REVIEW", DEFAULTS["nsfw_review_threshold"]), ("ZIMAGE_NSFW_BLOCK", DEFAULTS["nsfw_block_threshold"])):
        shares[name] = number(env, name, default)
        if shares[name] > 1:
            raise ValueError(f"{name}={env.get(name)!r} must be between 0 and 1")
    if shares["ZIMAGE_NSFW_REVIEW"] > shares["ZIMAGE_NSFW_BLOCK"]:
        raise ValueError("ZIMAGE_NSFW_REVIEW must not be above ZIMAGE_NSFW_BLOCK")
    return {
        "quality_mode": mode,
        "max_attempts": integer(env, "ZIMAGE_MAX_ATTEMPTS", DEFAULTS["max_attempts"]),
        "view_profiles": env.get("ZIMAGE_VIEW_PROFILES") or "",
        "max_block_share": shares["ZIMAGE_MAX_BLOCK_SHARE"],
        "prompt_max_chars": integer(env, "ZIMAGE_PROMPT_MAX_CHARS", DEFAULTS["prompt_max_chars"]),
        "safety_terms_dir": env.get("ZIMAGE_SAFETY_TERMS_DIR") or "",
        "nsfw_review_threshold": shares["ZIMAGE_NSFW_REVIEW"],
        "nsfw_block_threshold": shares["ZIMAGE_NSFW_BLOCK"],
    }
