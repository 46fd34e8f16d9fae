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
from dataclasses import dataclass, fields
from pathlib import Path

from zimage_assets.domain.prompt_safety import DEFAULT_MAX_CHARS

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CATALOG = PACKAGE_DIR / "sample_data" / "products.csv"
DEFAULT_TEMPLATES = PACKAGE_DIR / "templates" / "default.yaml"
SAMPLE_MEDIA = PACKAGE_DIR / "sample_data" / "media"  # the sample catalog's photos (a few of them)

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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("ZIMAGE_HOME") or "zimage_data").expanduser().resolve()
        model = env.get("ZIMAGE_MODEL") or DEFAULTS["model"]
        return cls(
            home=home,
            db_url=env.get("ZIMAGE_DB_URL") or f"sqlite:///{home / 'zimage.sqlite'}",
            storage_url=env.get("ZIMAGE_STORAGE_URL") or str(home / "images"),
            public_base_url=env.get("ZIMAGE_PUBLIC_BASE_URL") or "",
            cache_url=env.get("ZIMAGE_CACHE_URL") or "embedded",
            model=model,
            model_revision=env.get("ZIMAGE_MODEL_REVISION") or "",
            model_path=env.get("ZIMAGE_MODEL_PATH") or "",
            models_dir=env.get("ZIMAGE_MODELS_DIR") or str(home / "models"),
            device=env.get("ZIMAGE_DEVICE") or DEFAULTS["device"],
            dtype=env.get("ZIMAGE_DTYPE") or DEFAULTS["dtype"],
            batch_size=_int(env, "ZIMAGE_BATCH_SIZE", DEFAULTS["batch_size"]),
            templates_path=env.get("ZIMAGE_TEMPLATES") or str(DEFAULT_TEMPLATES),
            catalog_source=env.get("ZIMAGE_CATALOG_SOURCE") or str(SAMPLE_CATALOG),
            max_items_per_batch=_int(env, "ZIMAGE_MAX_ITEMS_PER_BATCH", DEFAULTS["max_items_per_batch"]),
            gpu_pool=env.get("ZIMAGE_GPU_POOL") or f"gpu-{_pool_suffix(model)}",
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
            **_photo_settings(env),
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


# ---- photo-first: the merchant's photos ----


def _photo_settings(env: dict[str, str]) -> dict:
    from zimage_assets.domain.media_refs import MediaRoot

    catalog = env.get("ZIMAGE_CATALOG_SOURCE") or str(SAMPLE_CATALOG)
    # The bundled sample ships a few of its photos; any other catalog names its own media root.
    default_root = str(SAMPLE_MEDIA) if catalog == str(SAMPLE_CATALOG) else ""
    root = env.get("ZIMAGE_MEDIA_ROOT", default_root).strip()
    MediaRoot.parse(root)  # a malformed root fails here, naming the variable
    hosts = lambda name: tuple(h.strip().lower() for h in (env.get(name) or "").split(",") if h.strip())  # noqa: E731
    timeout = _non_negative_float(env, "ZIMAGE_MEDIA_TIMEOUT_SECONDS", DEFAULTS["media_timeout_seconds"])
    if timeout == 0:
        raise ValueError("ZIMAGE_MEDIA_TIMEOUT_SECONDS must be more than 0")
    confidence = _non_negative_float(env, "ZIMAGE_MASK_MIN_CONFIDENCE", DEFAULTS["mask_min_confidence"])
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
        "media_max_bytes": _int(env, "ZIMAGE_MEDIA_MAX_BYTES", DEFAULTS["media_max_bytes"]),
        "media_timeout_seconds": timeout,
        "media_max_attempts": _int(env, "ZIMAGE_MEDIA_MAX_ATTEMPTS", DEFAULTS["media_max_attempts"]),
        "segmenter": segmenter,
        "mask_min_confidence": confidence,
        "illustrative_review": True if review in (None, "") else _flag(env, "ZIMAGE_ILLUSTRATIVE_REVIEW"),
    }
