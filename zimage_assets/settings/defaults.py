"""Every setting's default, written once: `Settings.from_env` and the resources' field defaults use these."""

from pathlib import Path

from zimage_assets.domain.prompt_safety import DEFAULT_MAX_CHARS

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # zimage_assets/
SAMPLE_CATALOG = PACKAGE_DIR / "sample_data" / "products.csv"
SAMPLE_MEDIA = PACKAGE_DIR / "sample_data" / "media"  # the sample catalog's photos (a few of them)
DEFAULT_TEMPLATES = PACKAGE_DIR / "templates" / "default.yaml"

DEFAULTS: dict = {
    "model": "tiny",  # the offline random-weight Z-Image: tests and the demo
    "device": "auto",  # CUDA, then MPS, then CPU
    "dtype": "auto",  # bf16 on CUDA, fp32 elsewhere
    "batch_size": 4,  # images per pipeline call
    "max_items_per_batch": 200,
    "s3_max_attempts": 5,
    "presign_expiry_seconds": 7 * 24 * 3600,  # the most SigV4 allows
    "cache_ttl_seconds": 90 * 24 * 3600,
    "cache_key_prefix": "zimage:result:",
    "gpu_hour_price_usd": 2.5,
    "sla_hours": 2.0,
    "refresh_max_age_days": 180,
    "seconds_per_image": 1.0,
    "refresh_budget_usd": 0.0,
    "retention_days": 90,
    "max_attempts": 3,
    "max_block_share": 0.5,
    "prompt_max_chars": DEFAULT_MAX_CHARS,  # the prompt gate's own default
    # Calibrated in benchmarks/calibrate_quality.py (docs/quality.md): real clothed apparel photos,
    # including bare-chested male models in sportswear, stay below the REVIEW threshold.
    "nsfw_review_threshold": 0.6,
    "nsfw_block_threshold": 0.85,
    # photo-first
    "media_max_bytes": 25 * 1024 * 1024,
    "media_timeout_seconds": 15.0,
    "media_max_attempts": 3,
    "segmenter": "default",  # the weight-free border / GrabCut cut-out
    "mask_min_confidence": 0.6,  # benchmarks/bench_photos.py: studio photos >= 0.9, busy backgrounds <= 0.45
    # ---- beyond one GPU ----
    "executor": "in_process",
    "celery_broker_url": "pyamqp://guest@127.0.0.1:5672//",
    "celery_backend_url": "rpc://",  # replies travel over RabbitMQ, nothing else to run
    "celery_cpu_queue": "zimage-cpu",
    "k8s_gpus": 1,
    "k8s_tolerations": "nvidia.com/gpu:NoSchedule",  # the taint GPU node pools usually carry
    "k8s_gpu_memory": "32Gi",  # Turbo's 20 GB of bf16 weights pass through host memory
    "k8s_weights_claim": "zimage-weights",
    "k8s_weights_mount": "/models",
    # ---- requests from other systems (the generations API, the RabbitMQ intake) ----
    "api_max_images": 100,  # "100 variations of this prompt for an A/B test"
    "api_max_body_bytes": 64 * 1024,
    "api_sync_max_images": 4,
    "api_sync_wait_seconds": 60.0,  # well inside the clients' 120 s timeout
    "api_idempotency_hours": 24.0,
    "api_requests_per_minute": 60,
    "api_images_per_day": 1000,
    "request_deadline_hours": "high=0.5,normal=2,low=24",
    "intake_queue_prefix": "zimage.gen",
    # GPU speed options (docs/gpu.md): each off until a benchmark on the team's GPU shows it faster.
    "compile": "off",
    "attention_backend": "native",  # PyTorch SDPA
    "fp8": "off",
    "invariance_sample": 2,  # images per batch regenerated alone by the batch_invariance check
    "invariance_tolerance": 1.0,  # mean absolute difference, 0-255 levels per channel
}
