"""GPU speed options and the batch-invariance check."""

from __future__ import annotations

from zimage_assets.settings.defaults import DEFAULTS
from zimage_assets.settings.values import choice, flag, integer, number


def speed_settings(env: dict[str, str]) -> dict:
    compile_mode = (env.get("ZIMAGE_COMPILE") or DEFAULTS["compile"]).strip().lower()
    compile_mode = {"true": "buckets", "1": "buckets", "yes": "buckets", "on": "buckets", "false": "off", "0": "off", "no": "off"}.get(
        compile_mode, compile_mode
    )
    if compile_mode not in ("off", "buckets", "dynamic"):
        raise ValueError(f"ZIMAGE_COMPILE={env.get('ZIMAGE_COMPILE')!r}: use off, buckets or dynamic")
    backend = (env.get("ZIMAGE_ATTENTION_BACKEND") or DEFAULTS["attention_backend"]).strip().lower()
    if backend.endswith("_hub"):
        raise ValueError(
            f"ZIMAGE_ATTENTION_BACKEND={backend!r} downloads kernels from the Hugging Face Hub at run time, which this project "
            "never does: use native (PyTorch SDPA) or an installed backend such as _native_cudnn, flash or sage"
        )
    tolerance = number(env, "ZIMAGE_INVARIANCE_TOLERANCE", DEFAULTS["invariance_tolerance"])
    if tolerance > 255:
        raise ValueError(f"ZIMAGE_INVARIANCE_TOLERANCE={env.get('ZIMAGE_INVARIANCE_TOLERANCE')!r} must be between 0 and 255")
    return {
        "compile": compile_mode,
        "attention_backend": backend,
        "cpu_offload": flag(env, "ZIMAGE_CPU_OFFLOAD"),
        "vae_tiling": flag(env, "ZIMAGE_VAE_TILING"),
        "fp8": choice(env, "ZIMAGE_FP8", ("off", "layerwise", "torchao")),
        "invariance_sample": integer(env, "ZIMAGE_INVARIANCE_SAMPLE", DEFAULTS["invariance_sample"], minimum=0),
        "invariance_tolerance": tolerance,
    }
