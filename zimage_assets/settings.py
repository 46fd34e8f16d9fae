"""Every environment variable the project reads, in one place.

Switching a part from its embedded default to production is configuration, not code:
set the variable, restart. `Settings.from_env()` is the only reader of `os.environ` for
project settings; resources are built from it in `resources/__init__.py`, and nowhere else.
The values Dagster needs while it builds the definitions (the GPU pool, whether the sensors
start running) come from `definition_settings()`, read once per process.

Each default is written once, in `DEFAULTS`; resources use the same values as their field
defaults, for code that builds a resource by hand.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from zimage_assets.domain.prompt_safety import DEFAULT_MAX_CHARS

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CATALOG = PACKAGE_DIR / "sample_data" / "products.csv"
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
        gpu_pool = env.get("ZIMAGE_GPU_POOL") or f"gpu-{_pool_suffix(model)}"
        return cls(
            home=home,
            db_url=_db_url(env.get("ZIMAGE_DB_URL") or f"sqlite:///{home / 'zimage.sqlite'}"),
            storage_url=env.get("ZIMAGE_STORAGE_URL") or str(home / "images"),
            public_base_url=env.get("ZIMAGE_PUBLIC_BASE_URL") or "",
            cache_url=env.get("ZIMAGE_CACHE_URL") or "embedded",
            model=_model_folder("ZIMAGE_MODEL", model, presets=True),
            model_revision=env.get("ZIMAGE_MODEL_REVISION") or "",
            model_path=_model_folder("ZIMAGE_MODEL_PATH", env.get("ZIMAGE_MODEL_PATH") or ""),
            models_dir=env.get("ZIMAGE_MODELS_DIR") or str(home / "models"),
            device=_device(env.get("ZIMAGE_DEVICE") or DEFAULTS["device"]),
            dtype=_dtype(env.get("ZIMAGE_DTYPE") or DEFAULTS["dtype"]),
            batch_size=_int(env, "ZIMAGE_BATCH_SIZE", DEFAULTS["batch_size"]),
            templates_path=env.get("ZIMAGE_TEMPLATES") or str(DEFAULT_TEMPLATES),
            catalog_source=env.get("ZIMAGE_CATALOG_SOURCE") or str(SAMPLE_CATALOG),
            max_items_per_batch=_int(env, "ZIMAGE_MAX_ITEMS_PER_BATCH", DEFAULTS["max_items_per_batch"]),
            gpu_pool=gpu_pool,
            s3_endpoint_url=env.get("ZIMAGE_S3_ENDPOINT_URL") or "",
            s3_region=env.get("ZIMAGE_S3_REGION") or "",
            s3_access_key_id=env.get("ZIMAGE_S3_ACCESS_KEY_ID") or "",
            s3_secret_access_key=env.get("ZIMAGE_S3_SECRET_ACCESS_KEY") or "",
            s3_addressing_style=_choice(env, "ZIMAGE_S3_ADDRESSING_STYLE", ("auto", "path", "virtual")),
            s3_max_attempts=_int(env, "ZIMAGE_S3_MAX_ATTEMPTS", DEFAULTS["s3_max_attempts"]),
            presign_expiry_seconds=_int(env, "ZIMAGE_PRESIGN_EXPIRY_SECONDS", DEFAULTS["presign_expiry_seconds"]),
            cache_ttl_seconds=_int(env, "ZIMAGE_CACHE_TTL_SECONDS", DEFAULTS["cache_ttl_seconds"]),
            cache_key_prefix=env.get("ZIMAGE_CACHE_KEY_PREFIX") or DEFAULTS["cache_key_prefix"],
            pushgateway_url=env.get("ZIMAGE_PUSHGATEWAY_URL") or "",
            metrics_file=env.get("ZIMAGE_METRICS_FILE", str(home / "metrics.prom")),
            gpu_hour_price_usd=_non_negative_float(env, "ZIMAGE_GPU_HOUR_PRICE_USD", DEFAULTS["gpu_hour_price_usd"]),
            **_operations_settings(env),
            **_quality_settings(env, model),
            **_scaleout_settings(env, gpu_pool),
            **_request_settings(env, model),
            **_speed_settings(env),
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


def _int(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _pool_suffix(model: str) -> str:
    """One pool per model variant: presets keep their name, anything else a short slug."""
    slug = "".join(c if c.isalnum() else "-" for c in Path(model).name.lower()).strip("-")
    return slug[:40] or "model"


# ---- production backends (S3 store, Redis cache, metrics, cost) ----


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name) or allowed[0]
    if raw not in allowed:
        raise ValueError(f"{name}={raw!r}: use one of {', '.join(allowed)}")
    return raw


def _non_negative_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name}={raw!r} must be a finite number of at least 0")
    return value


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


# ---- new SKUs, SLA, monthly refresh, alerts, retention ----


def _operations_settings(env: dict[str, str]) -> dict:
    from zimage_assets.domain.webhooks import host_of, target_error

    alert_urls = _url_list(env, "ZIMAGE_ALERT_WEBHOOK_URLS")
    callback_urls = _url_list(env, "ZIMAGE_CALLBACK_URLS")
    secret = env.get("ZIMAGE_WEBHOOK_SECRET") or ""
    allow_loopback = _flag(env, "ZIMAGE_WEBHOOK_ALLOW_LOOPBACK")
    allowed = tuple(h.strip().lower() for h in (env.get("ZIMAGE_WEBHOOK_ALLOWED_HOSTS") or "").split(",") if h.strip())
    allowed = allowed or tuple(dict.fromkeys(host_of(u) for u in alert_urls + callback_urls))
    if (alert_urls or callback_urls) and not secret:
        raise ValueError("ZIMAGE_WEBHOOK_SECRET is required when ZIMAGE_ALERT_WEBHOOK_URLS or ZIMAGE_CALLBACK_URLS is set")
    for name, urls in (("ZIMAGE_ALERT_WEBHOOK_URLS", alert_urls), ("ZIMAGE_CALLBACK_URLS", callback_urls)):
        for url in urls:
            error = target_error(url, allowed, allow_loopback)
            if error:
                raise ValueError(f"{name}: {error}")
    sla_hours = _non_negative_float(env, "ZIMAGE_SLA_HOURS", DEFAULTS["sla_hours"])
    seconds_per_image = _non_negative_float(env, "ZIMAGE_SECONDS_PER_IMAGE", DEFAULTS["seconds_per_image"])
    for name, value in (("ZIMAGE_SLA_HOURS", sla_hours), ("ZIMAGE_SECONDS_PER_IMAGE", seconds_per_image)):
        if value == 0:
            raise ValueError(f"{name} must be more than 0")
    return {
        "sla_hours": sla_hours,
        "refresh_max_age_days": _int(env, "ZIMAGE_REFRESH_MAX_AGE_DAYS", DEFAULTS["refresh_max_age_days"], minimum=0),
        "seconds_per_image": seconds_per_image,
        "refresh_budget_usd": _non_negative_float(env, "ZIMAGE_REFRESH_BUDGET_USD", DEFAULTS["refresh_budget_usd"]),
        "alert_webhook_urls": alert_urls,
        "callback_urls": callback_urls,
        "webhook_secret": secret,
        "webhook_allowed_hosts": allowed,
        "webhook_allow_loopback": allow_loopback,
        "retention_days": _int(env, "ZIMAGE_RETENTION_DAYS", DEFAULTS["retention_days"]),
    }


def _url_list(env: dict[str, str], name: str) -> tuple:
    return tuple(u.strip() for u in (env.get(name) or "").split(",") if u.strip())


def _flag(env: dict[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r}: use true or false")


# ---- safety and quality gates ----


def _quality_settings(env: dict[str, str], model: str) -> dict:
    mode = env.get("ZIMAGE_QUALITY_MODE") or "auto"
    if mode not in ("auto", "strict", "smoke"):
        raise ValueError(f"ZIMAGE_QUALITY_MODE={mode!r}: use auto, strict or smoke")
    if mode == "auto":  # the tiny random-weight model makes noise: structural checks only
        mode = "smoke" if model == "tiny" else "strict"
    shares = {}
    for name, default in (("ZIMAGE_MAX_BLOCK_SHARE", DEFAULTS["max_block_share"]), ("ZIMAGE_NSFW_REVIEW", DEFAULTS["nsfw_review_threshold"]), ("ZIMAGE_NSFW_BLOCK", DEFAULTS["nsfw_block_threshold"])):
        shares[name] = _non_negative_float(env, name, default)
        if shares[name] > 1:
            raise ValueError(f"{name}={env.get(name)!r} must be between 0 and 1")
    if shares["ZIMAGE_NSFW_REVIEW"] > shares["ZIMAGE_NSFW_BLOCK"]:
        raise ValueError("ZIMAGE_NSFW_REVIEW must not be above ZIMAGE_NSFW_BLOCK")
    return {
        "quality_mode": mode,
        "max_attempts": _int(env, "ZIMAGE_MAX_ATTEMPTS", DEFAULTS["max_attempts"]),
        "view_profiles": env.get("ZIMAGE_VIEW_PROFILES") or "",
        "max_block_share": shares["ZIMAGE_MAX_BLOCK_SHARE"],
        "prompt_max_chars": _int(env, "ZIMAGE_PROMPT_MAX_CHARS", DEFAULTS["prompt_max_chars"]),
        "safety_terms_dir": env.get("ZIMAGE_SAFETY_TERMS_DIR") or "",
        "nsfw_review_threshold": shares["ZIMAGE_NSFW_REVIEW"],
        "nsfw_block_threshold": shares["ZIMAGE_NSFW_BLOCK"],
    }


# ---- beyond one GPU: executors, Celery workers, Kubernetes GPU pods ----


def _scaleout_settings(env: dict[str, str], gpu_pool: str) -> dict:
    from zimage_assets.domain import placement

    values = {
        "executor": placement.check_executor(env.get("ZIMAGE_EXECUTOR") or DEFAULTS["executor"]),
        "celery_broker_url": env.get("ZIMAGE_CELERY_BROKER_URL") or DEFAULTS["celery_broker_url"],
        "celery_backend_url": env.get("ZIMAGE_CELERY_BACKEND_URL") or DEFAULTS["celery_backend_url"],
        "celery_cpu_queue": placement.check_queue(env.get("ZIMAGE_CELERY_CPU_QUEUE") or DEFAULTS["celery_cpu_queue"], "ZIMAGE_CELERY_CPU_QUEUE"),
        "k8s_gpus": _int(env, "ZIMAGE_K8S_GPUS", DEFAULTS["k8s_gpus"]),
        "k8s_node_selector": env.get("ZIMAGE_K8S_NODE_SELECTOR") or f"zimage/gpu-pool={gpu_pool}",
        "k8s_tolerations": env.get("ZIMAGE_K8S_TOLERATIONS", DEFAULTS["k8s_tolerations"]),
        "k8s_gpu_memory": placement.check_quantity(env.get("ZIMAGE_K8S_GPU_MEMORY") or DEFAULTS["k8s_gpu_memory"], "ZIMAGE_K8S_GPU_MEMORY"),
        "k8s_weights_claim": env.get("ZIMAGE_K8S_WEIGHTS_CLAIM", DEFAULTS["k8s_weights_claim"]),
        "k8s_weights_mount": env.get("ZIMAGE_K8S_WEIGHTS_MOUNT") or DEFAULTS["k8s_weights_mount"],
    }
    placement.check_queue(gpu_pool, "ZIMAGE_GPU_POOL")  # the GPU step's Celery queue and node label
    placement.parse_node_selector(values["k8s_node_selector"])  # a wrong value fails here, naming it
    placement.parse_tolerations(values["k8s_tolerations"])
    if not values["k8s_weights_mount"].startswith("/"):
        raise ValueError(f"ZIMAGE_K8S_WEIGHTS_MOUNT={values['k8s_weights_mount']!r} must be an absolute path")
    return values


# ---- requests from other systems: the generations API and the RabbitMQ intake ----


def _request_settings(env: dict[str, str], model: str) -> dict:
    from zimage_assets.domain.requests import MODELS, deadline_hours, served_models_for

    models = tuple(m.strip() for m in (env.get("ZIMAGE_API_MODELS") or "").split(",") if m.strip()) or served_models_for(model)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"ZIMAGE_API_MODELS: unknown model(s) {', '.join(unknown)}; use {', '.join(MODELS)}")
    try:
        deadlines = deadline_hours(env.get("ZIMAGE_REQUEST_DEADLINE_HOURS") or DEFAULTS["request_deadline_hours"])
    except ValueError as exc:
        raise ValueError(f"ZIMAGE_REQUEST_DEADLINE_HOURS: {exc}") from None
    amqp_url = env.get("ZIMAGE_AMQP_URL") or ""
    if amqp_url and not amqp_url.startswith(("amqp://", "amqps://")):
        raise ValueError(f"ZIMAGE_AMQP_URL={amqp_url.split('@')[-1]!r}: use amqp://user:pass@host:5672/vhost")
    return {
        "api_models": models,
        "api_max_images": _int(env, "ZIMAGE_API_MAX_IMAGES", DEFAULTS["api_max_images"]),
        "api_max_body_bytes": _int(env, "ZIMAGE_API_MAX_BODY_BYTES", DEFAULTS["api_max_body_bytes"], minimum=1024),
        "api_sync_max_images": _int(env, "ZIMAGE_API_SYNC_MAX_IMAGES", DEFAULTS["api_sync_max_images"], minimum=0),
        "api_sync_wait_seconds": _non_negative_float(env, "ZIMAGE_API_SYNC_WAIT_SECONDS", DEFAULTS["api_sync_wait_seconds"]),
        "api_idempotency_hours": _non_negative_float(env, "ZIMAGE_API_IDEMPOTENCY_HOURS", DEFAULTS["api_idempotency_hours"]),
        "api_requests_per_minute": _int(env, "ZIMAGE_API_REQUESTS_PER_MINUTE", DEFAULTS["api_requests_per_minute"]),
        "api_images_per_day": _int(env, "ZIMAGE_API_IMAGES_PER_DAY", DEFAULTS["api_images_per_day"]),
        "request_deadline_hours": deadlines,
        "amqp_url": amqp_url,
        "intake_queue_prefix": env.get("ZIMAGE_INTAKE_QUEUE_PREFIX") or DEFAULTS["intake_queue_prefix"],
        "intake_key_id": env.get("ZIMAGE_INTAKE_KEY_ID") or "",
    }


# ---- the model, its device and the database: values checked here, before anything starts ----

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")
DTYPES = ("auto", "bfloat16", "bf16", "float32", "fp32")


def _device(raw: str) -> str:
    if not _DEVICE.match(raw):
        raise ValueError(f"ZIMAGE_DEVICE={raw!r}: use auto, cpu, cuda, cuda:N (a GPU index) or mps")
    return raw


def _dtype(raw: str) -> str:
    if raw in ("float16", "fp16", "half"):
        raise ValueError(f"ZIMAGE_DTYPE={raw!r}: Z-Image produces NaN (black) images in float16; use bfloat16 or auto")
    if raw not in DTYPES:
        raise ValueError(f"ZIMAGE_DTYPE={raw!r}: use {', '.join(DTYPES)}")
    return raw


def _model_folder(name: str, raw: str, presets: bool = False) -> str:
    """A value written as a path (/..., ./..., ~/...) must be a folder; a hub id (org/name) is not a path."""
    if raw and raw.startswith(("/", "./", "../", "~")) and not Path(raw).expanduser().is_dir():
        hint = "a preset (tiny, turbo, base), a hub id (org/name) or " if presets else ""
        raise ValueError(f"{name}={raw!r}: no such folder; give {hint}the folder that holds the weights")
    return raw


def _db_url(url: str) -> str:
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+", "postgres://")):
        shown = re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", url)
        raise ValueError(f"ZIMAGE_DB_URL={shown!r}: use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
    return url
# ---- GPU speed options and batch invariance ----


def _speed_settings(env: dict[str, str]) -> dict:
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
    tolerance = _non_negative_float(env, "ZIMAGE_INVARIANCE_TOLERANCE", DEFAULTS["invariance_tolerance"])
    if tolerance > 255:
        raise ValueError(f"ZIMAGE_INVARIANCE_TOLERANCE={env.get('ZIMAGE_INVARIANCE_TOLERANCE')!r} must be between 0 and 255")
    return {
        "compile": compile_mode,
        "attention_backend": backend,
        "cpu_offload": _flag(env, "ZIMAGE_CPU_OFFLOAD"),
        "vae_tiling": _flag(env, "ZIMAGE_VAE_TILING"),
        "fp8": _choice(env, "ZIMAGE_FP8", ("off", "layerwise", "torchao")),
        "invariance_sample": _int(env, "ZIMAGE_INVARIANCE_SAMPLE", DEFAULTS["invariance_sample"], minimum=0),
        "invariance_tolerance": tolerance,
    }
