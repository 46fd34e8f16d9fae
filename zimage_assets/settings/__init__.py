"""Every environment variable the project reads, in one place.

Switching a part from its embedded default to production is configuration, not code:
set the variable, restart. `Settings.from_env()` is the only reader of `os.environ` for
project settings; resources are built from it in `resources/__init__.py`, and nowhere else.
The values Dagster needs while it builds the definitions (the GPU pool, whether the sensors
start running) come from `definition_settings()`, read once per process.

Each default is written once, in `DEFAULTS`; resources use the same values as their field
defaults, for code that builds a resource by hand.

The fields of `Settings` (each with its `# ZIMAGE_...:` comment) are the variable table; each
topic's values are read and checked in its own module beside this one: `operations.py`,
`quality.py`, `photos.py`, `scaleout.py`, `requests.py`, `speed.py`; `checks.py` (model, device, database);
`values.py` (reading one variable); `defaults.py`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields
from pathlib import Path

from zimage_assets.settings.checks import db_url, device, dtype, model_folder
from zimage_assets.settings.defaults import (  # noqa: F401 - re-exported
    DEFAULT_TEMPLATES,
    DEFAULTS,
    PACKAGE_DIR,
    SAMPLE_CATALOG,
    SAMPLE_MEDIA,
)
from zimage_assets.settings.operations import operations_settings
from zimage_assets.settings.photos import photo_settings
from zimage_assets.settings.quality import quality_settings
from zimage_assets.settings.requests import request_settings
from zimage_assets.settings.scaleout import scaleout_settings
from zimage_assets.settings.speed import speed_settings
from zimage_assets.settings.values import choice, integer, number, pool_suffix


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Field docs double as the README's variable table."""

    home: Path  # ZIMAGE_HOME: where the embedded defaults keep their files
    db_url: str  # ZIMAGE_DB_URL: SQLAlchemy URL of the project's tables
    storage_url: str  # ZIMAGE_STORAGE_URL: image store (folder path, file://, s3://bucket/prefix)
    public_base_url: str  # ZIMAGE_PUBLIC_BASE_URL: CDN base URL for published images
    cache_url: str  # ZIMAGE_CACHE_URL: result cache ("embedded" or redis://...)
    model: str  # ZIMAGE_MODEL: tiny | turbo | base | a hub id | a local folder
    model_revision: str  # ZIMAGE_MODEL_REVISION: hub revision (branch, tag or commit)
    model_path: str  # ZIMAGE_MODEL_PATH: local folder holding the weights of the chosen preset
    models_dir: str  # ZIMAGE_MODELS_DIR: where the tiny model is built once and kept
    device: str  # ZIMAGE_DEVICE: auto | cuda | cuda:N | cpu | mps
    dtype: str  # ZIMAGE_DTYPE: auto | bfloat16 | float32
    batch_size: int  # ZIMAGE_BATCH_SIZE: images per pipeline call
    templates_path: str  # ZIMAGE_TEMPLATES: prompt templates YAML
    catalog_source: str  # ZIMAGE_CATALOG_SOURCE: default catalog for sku_catalog
    max_items_per_batch: int  # ZIMAGE_MAX_ITEMS_PER_BATCH: SKU x view items per batch
    gpu_pool: str  # ZIMAGE_GPU_POOL: Dagster concurrency pool claimed by the GPU asset
    # ---- production backends (S3 store, Redis cache, metrics, cost) ----
    s3_endpoint_url: str  # ZIMAGE_S3_ENDPOINT_URL: S3-compatible endpoint (R2, OSS, MinIO, SeaweedFS); '' = AWS
    s3_region: str  # ZIMAGE_S3_REGION: region of the bucket ('' = boto3's default; R2 uses "auto")
    s3_access_key_id: str  # ZIMAGE_S3_ACCESS_KEY_ID: access key ('' = boto3's credential chain)
    s3_secret_access_key: str  # ZIMAGE_S3_SECRET_ACCESS_KEY: secret key (given to Dagster as EnvVar, never shown)
    s3_addressing_style: str  # ZIMAGE_S3_ADDRESSING_STYLE: auto | path | virtual
    s3_max_attempts: int  # ZIMAGE_S3_MAX_ATTEMPTS: tries per S3 request (throttling, 5xx, dropped connections)
    presign_expiry_seconds: int  # ZIMAGE_PRESIGN_EXPIRY_SECONDS: lifetime of presigned URLs (no CDN base URL)
    cache_ttl_seconds: int  # ZIMAGE_CACHE_TTL_SECONDS: how long a result cache entry lives
    cache_key_prefix: str  # ZIMAGE_CACHE_KEY_PREFIX: Redis key prefix (one per environment sharing a Redis)
    pushgateway_url: str  # ZIMAGE_PUSHGATEWAY_URL: Prometheus Pushgateway that runs push to ('' = none)
    metrics_file: str  # ZIMAGE_METRICS_FILE: Prometheus text file rewritten after each run ('' = none)
    gpu_hour_price_usd: float  # ZIMAGE_GPU_HOUR_PRICE_USD: price of one GPU-hour, for cost per batch
    # ---- new SKUs, SLA, monthly refresh, alerts, retention ----
    sla_hours: float  # ZIMAGE_SLA_HOURS: hours within which a new or changed SKU gets a published image
    refresh_max_age_days: int  # ZIMAGE_REFRESH_MAX_AGE_DAYS: the monthly refresh redoes images older than this (0 = never for age)
    seconds_per_image: float  # ZIMAGE_SECONDS_PER_IMAGE: GPU seconds per image for quotes until receipts measured it
    refresh_budget_usd: float  # ZIMAGE_REFRESH_BUDGET_USD: the monthly refresh mints nothing if its quote costs more (0 = no cap)
    alert_webhook_urls: tuple  # ZIMAGE_ALERT_WEBHOOK_URLS: comma-separated URLs that get run-failure alerts
    callback_urls: tuple  # ZIMAGE_CALLBACK_URLS: comma-separated URLs that get batch-completion callbacks
    webhook_secret: str  # ZIMAGE_WEBHOOK_SECRET: HMAC-SHA256 key that signs every webhook body (required with URLs)
    webhook_allowed_hosts: tuple  # ZIMAGE_WEBHOOK_ALLOWED_HOSTS: hosts webhooks may reach ('' = the hosts of the URLs above)
    webhook_allow_loopback: bool  # ZIMAGE_WEBHOOK_ALLOW_LOOPBACK: allow http:// to 127.0.0.1/localhost (tests only)
    retention_days: int  # ZIMAGE_RETENTION_DAYS: batch partitions older than this may be deleted (history stays)
    # ---- safety and quality gates ----
    quality_mode: str  # ZIMAGE_QUALITY_MODE: auto | strict | smoke (auto: smoke for the tiny model, strict otherwise)
    max_attempts: int  # ZIMAGE_MAX_ATTEMPTS: images made per item (new seed each) before it lands in REVIEW or BLOCK
    view_profiles: str  # ZIMAGE_VIEW_PROFILES: VIEW=PROFILE,... compliance profile per view (default front=main, back/side=studio, ...)
    max_block_share: float  # ZIMAGE_MAX_BLOCK_SHARE: share of BLOCK items above which a batch check fails with ERROR
    prompt_max_chars: int  # ZIMAGE_PROMPT_MAX_CHARS: longer prompts are BLOCKed
    safety_terms_dir: str  # ZIMAGE_SAFETY_TERMS_DIR: folder of extra term lists (*.txt) added to the built-in ones
    nsfw_review_threshold: float  # ZIMAGE_NSFW_REVIEW: NSFW score from which an image goes to REVIEW
    nsfw_block_threshold: float  # ZIMAGE_NSFW_BLOCK: NSFW score from which an image is BLOCKed
    # ---- beyond one GPU: executors, Celery workers, Kubernetes GPU pods ----
    executor: str  # ZIMAGE_EXECUTOR: in_process | celery (one worker per GPU, RabbitMQ) | k8s (one pod per step)
    celery_broker_url: str  # ZIMAGE_CELERY_BROKER_URL: RabbitMQ of the Celery executor and workers (pyamqp://USER:PASS@HOST:5672/VHOST)
    celery_backend_url: str  # ZIMAGE_CELERY_BACKEND_URL: Celery result backend (rpc:// = replies over the broker)
    celery_cpu_queue: str  # ZIMAGE_CELERY_CPU_QUEUE: Celery queue of every step but the GPU one
    k8s_gpus: int  # ZIMAGE_K8S_GPUS: nvidia.com/gpu limit of the GPU step's pod
    k8s_node_selector: str  # ZIMAGE_K8S_NODE_SELECTOR: LABEL=VALUE,... node pool of the GPU step's pod (default zimage/gpu-pool=<pool>)
    k8s_tolerations: str  # ZIMAGE_K8S_TOLERATIONS: KEY[=VALUE]:EFFECT,... taints the GPU step's pod tolerates
    k8s_gpu_memory: str  # ZIMAGE_K8S_GPU_MEMORY: memory request and limit of the GPU step's pod
    k8s_weights_claim: str  # ZIMAGE_K8S_WEIGHTS_CLAIM: PersistentVolumeClaim of the weights, mounted read-only ('' = none)
    k8s_weights_mount: str  # ZIMAGE_K8S_WEIGHTS_MOUNT: where that volume is mounted (ZIMAGE_MODEL_PATH lies under it)
    # ---- requests from other systems: the generations API and the RabbitMQ intake ----
    api_models: tuple  # ZIMAGE_API_MODELS: API model names served, comma-separated ('' = the one ZIMAGE_MODEL is)
    api_max_images: int  # ZIMAGE_API_MAX_IMAGES: most images one request may ask for
    api_max_body_bytes: int  # ZIMAGE_API_MAX_BODY_BYTES: larger request bodies are refused (413)
    api_sync_max_images: int  # ZIMAGE_API_SYNC_MAX_IMAGES: requests of at most this many images wait for their images (0 = never)
    api_sync_wait_seconds: float  # ZIMAGE_API_SYNC_WAIT_SECONDS: how long such a request waits before answering 202
    api_idempotency_hours: float  # ZIMAGE_API_IDEMPOTENCY_HOURS: a POST repeated within this (same key and body, or Idempotency-Key) is the same task
    api_requests_per_minute: int  # ZIMAGE_API_REQUESTS_PER_MINUTE: per-key request limit given to new keys
    api_images_per_day: int  # ZIMAGE_API_IMAGES_PER_DAY: per-key image limit given to new keys
    request_deadline_hours: dict  # ZIMAGE_REQUEST_DEADLINE_HOURS: deadline of a request batch per priority (high=0.5,normal=2,low=24)
    amqp_url: str  # ZIMAGE_AMQP_URL: RabbitMQ the intake reads, amqp://user:pass@host:5672/vhost ('' = no intake)
    intake_queue_prefix: str  # ZIMAGE_INTAKE_QUEUE_PREFIX: the intake's queues PREFIX.high, .normal, .low and PREFIX.dead
    intake_key_id: str  # ZIMAGE_INTAKE_KEY_ID: the API key that owns (and may read) the intake's tasks ('' = none)
    # ---- photo-first: the merchant's photos ----
    media_root: str  # ZIMAGE_MEDIA_ROOT: folder, s3://bucket/prefix or https:// base URL relative photo references resolve under
    media_allowed_hosts: tuple  # ZIMAGE_MEDIA_ALLOWED_HOSTS: hosts absolute photo URLs may name ('.example.com' = subdomains too)
    media_private_hosts: tuple  # ZIMAGE_MEDIA_PRIVATE_HOSTS: of those, hosts allowed to resolve to loopback / private addresses
    media_max_bytes: int  # ZIMAGE_MEDIA_MAX_BYTES: larger source photos are refused
    media_timeout_seconds: float  # ZIMAGE_MEDIA_TIMEOUT_SECONDS: per attempt to fetch one photo
    media_max_attempts: int  # ZIMAGE_MEDIA_MAX_ATTEMPTS: tries per photo for failures that may pass (timeouts, 5xx)
    segmenter: str  # ZIMAGE_SEGMENTER: default (weight-free cut-out) or onnx:/path/model.onnx
    mask_min_confidence: float  # ZIMAGE_MASK_MIN_CONFIDENCE: cut-outs less sure than this go to REVIEW (text fallback)
    illustrative_review: bool  # ZIMAGE_ILLUSTRATIVE_REVIEW: text-to-image images (no real product) go to REVIEW
    # ---- GPU speed options and batch invariance ----
    compile: str  # ZIMAGE_COMPILE: off | buckets (torch.compile the transformer blocks, prompt-length buckets) | dynamic (symbolic shapes)
    attention_backend: str  # ZIMAGE_ATTENTION_BACKEND: diffusers attention backend (native = PyTorch SDPA; *_hub backends are refused)
    cpu_offload: bool  # ZIMAGE_CPU_OFFLOAD: move each model to the GPU only while it runs (16-24 GB GPUs)
    vae_tiling: bool  # ZIMAGE_VAE_TILING: decode images in tiles (less GPU memory)
    fp8: str  # ZIMAGE_FP8: off | layerwise (fp8 weight storage, bf16 compute) | torchao (fp8 compute); changes pixels
    invariance_sample: int  # ZIMAGE_INVARIANCE_SAMPLE: images per batch the batch_invariance check regenerates at batch size 1 (0 = off)
    invariance_tolerance: float  # ZIMAGE_INVARIANCE_TOLERANCE: mean absolute pixel difference (0-255) allowed between batched and single

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("ZIMAGE_HOME") or "zimage_data").expanduser().resolve()
        model = env.get("ZIMAGE_MODEL") or DEFAULTS["model"]
        gpu_pool = env.get("ZIMAGE_GPU_POOL") or f"gpu-{pool_suffix(model)}"
        return cls(
            home=home,
            db_url=db_url(env.get("ZIMAGE_DB_URL") or f"sqlite:///{home / 'zimage.sqlite'}"),
            storage_url=env.get("ZIMAGE_STORAGE_URL") or str(home / "images"),
            public_base_url=env.get("ZIMAGE_PUBLIC_BASE_URL") or "",
            cache_url=env.get("ZIMAGE_CACHE_URL") or "embedded",
            model=model_folder("ZIMAGE_MODEL", model, presets=True),
            model_revision=env.get("ZIMAGE_MODEL_REVISION") or "",
            model_path=model_folder("ZIMAGE_MODEL_PATH", env.get("ZIMAGE_MODEL_PATH") or ""),
            models_dir=env.get("ZIMAGE_MODELS_DIR") or str(home / "models"),
            device=device(env.get("ZIMAGE_DEVICE") or DEFAULTS["device"]),
            dtype=dtype(env.get("ZIMAGE_DTYPE") or DEFAULTS["dtype"]),
            batch_size=integer(env, "ZIMAGE_BATCH_SIZE", DEFAULTS["batch_size"]),
            templates_path=env.get("ZIMAGE_TEMPLATES") or str(DEFAULT_TEMPLATES),
            catalog_source=env.get("ZIMAGE_CATALOG_SOURCE") or str(SAMPLE_CATALOG),
            max_items_per_batch=integer(env, "ZIMAGE_MAX_ITEMS_PER_BATCH", DEFAULTS["max_items_per_batch"]),
            gpu_pool=gpu_pool,
            s3_endpoint_url=env.get("ZIMAGE_S3_ENDPOINT_URL") or "",
            s3_region=env.get("ZIMAGE_S3_REGION") or "",
            s3_access_key_id=env.get("ZIMAGE_S3_ACCESS_KEY_ID") or "",
            s3_secret_access_key=env.get("ZIMAGE_S3_SECRET_ACCESS_KEY") or "",
            s3_addressing_style=choice(env, "ZIMAGE_S3_ADDRESSING_STYLE", ("auto", "path", "virtual")),
            s3_max_attempts=integer(env, "ZIMAGE_S3_MAX_ATTEMPTS", DEFAULTS["s3_max_attempts"]),
            presign_expiry_seconds=integer(env, "ZIMAGE_PRESIGN_EXPIRY_SECONDS", DEFAULTS["presign_expiry_seconds"]),
            cache_ttl_seconds=integer(env, "ZIMAGE_CACHE_TTL_SECONDS", DEFAULTS["cache_ttl_seconds"]),
            cache_key_prefix=env.get("ZIMAGE_CACHE_KEY_PREFIX") or DEFAULTS["cache_key_prefix"],
            pushgateway_url=env.get("ZIMAGE_PUSHGATEWAY_URL") or "",
            metrics_file=env.get("ZIMAGE_METRICS_FILE", str(home / "metrics.prom")),
            gpu_hour_price_usd=number(env, "ZIMAGE_GPU_HOUR_PRICE_USD", DEFAULTS["gpu_hour_price_usd"]),
            **operations_settings(env),
            **quality_settings(env, model),
            **scaleout_settings(env, gpu_pool),
            **request_settings(env, model),
            **speed_settings(env),
            **photo_settings(env),
        )

    def describe(self) -> dict[str, str]:
        return {f.name: "***" if "secret" in f.name and getattr(self, f.name) else str(getattr(self, f.name)) for f in fields(self)}

    @property
    def sensors_start_running(self) -> bool:
        """True when ZIMAGE_CATALOG_SOURCE names the team's own catalog; on the bundled sample the
        automatic sensors start stopped (a first `dagster dev` must not generate the whole sample)."""
        return self.catalog_source != str(SAMPLE_CATALOG)


@functools.lru_cache(maxsize=1)
def definition_settings() -> Settings:
    """The settings the code location is built with, read once per process.

    Dagster needs a few of them while it defines assets and sensors (the GPU pool of
    product_images, the sensors' default status); everything else reaches code through resources.
    """
    return Settings.from_env()


def as_env_var(name: str, value: str):
    """A secret for a Dagster resource: `EnvVar(name)` when it came from the process environment.

    Dagster then resolves it at run time and its UI shows the variable's name, never the value.
    A value that did not come from the environment (a settings dict in tests) is passed as is.
    """
    if not value:
        return None
    if os.environ.get(name) == value:
        from dagster import EnvVar

        return EnvVar(name)
    return value
