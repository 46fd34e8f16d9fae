"""Resources: the only code that touches the outside world (model, storage, cache, database, ...).

This module is the one place that turns `Settings` (environment variables) into the resource
instances Dagster injects into assets, checks, sensors and jobs: it picks each interface's
backend (`image_store_from_url`, `result_cache_from_url`), builds the S3 connection with its
secrets as `EnvVar`s, and hands every resource its configured values. No resource reads the
settings itself.
"""

from __future__ import annotations

from dagster_aws.s3 import S3Resource

from resources.catalog_source import CatalogSource
from resources.embedded_cache import EmbeddedCache
from resources.generator import ZImageGenerator
from resources.image_safety import ImageSafety
from resources.image_store import ImageStore
from resources.local_image_store import LocalImageStore
from resources.metrics_publisher import MetricsPublisher
from resources.photo_source import PhotoSource
from resources.prompt_templates import PromptTemplates
from resources.quality_gates import QualityGates
from resources.redis_cache import RedisCache
from resources.request_policy import RequestPolicy
from resources.result_cache import ResultCache
from resources.s3_image_store import MAX_PRESIGN_SECONDS, S3ImageStore
from resources.segmenter import Segmenter
from resources.service_levels import ServiceLevels
from resources.state_db import StateDB
from resources.webhooks import WebhookClient
from zimage_assets.settings import Settings, as_env_var

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def build_resources(settings: Settings) -> dict:
    """Every resource key the definitions use, configured from `settings`."""
    s3 = s3_resource(settings)
    return {
        "state_db": StateDB(url=settings.db_url),
        "image_store": image_store_from_url(settings.storage_url, settings.public_base_url, s3=s3, settings=settings),
        "result_cache": result_cache_from_url(settings.cache_url, str(settings.home / "cache.sqlite"), settings=settings),
        "generator": ZImageGenerator(
            model=settings.model,
            revision=settings.model_revision,
            model_path=settings.model_path,
            models_dir=settings.models_dir,
            device=settings.device,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
            compile=settings.compile != "off",
            compile_mode=settings.compile if settings.compile != "off" else "buckets",
            attention_backend=settings.attention_backend,
            cpu_offload=settings.cpu_offload,
            vae_tiling=settings.vae_tiling,
            fp8=settings.fp8,
            invariance_sample=settings.invariance_sample,
            invariance_tolerance=settings.invariance_tolerance,
        ),
        "catalog_source": CatalogSource(default_source=settings.catalog_source, s3=s3, s3_addressing_style=settings.s3_addressing_style),
        "prompt_templates": PromptTemplates(path=settings.templates_path, max_items_per_batch=settings.max_items_per_batch),
        "service_levels": ServiceLevels(
            sla_hours=settings.sla_hours,
            refresh_max_age_days=settings.refresh_max_age_days,
            seconds_per_image=settings.seconds_per_image,
            gpu_hour_price=settings.gpu_hour_price_usd,
            refresh_budget=settings.refresh_budget_usd,
            retention_days=settings.retention_days,
        ),
        "webhooks": WebhookClient(
            alert_urls=list(settings.alert_webhook_urls),
            callback_urls=list(settings.callback_urls),
            secret=as_env_var("ZIMAGE_WEBHOOK_SECRET", settings.webhook_secret) or "",
            allowed_hosts=list(settings.webhook_allowed_hosts),
            allow_loopback=settings.webhook_allow_loopback,
        ),
        "metrics": MetricsPublisher(textfile_path=settings.metrics_file, pushgateway_url=settings.pushgateway_url),
        "quality_gates": quality_gates_from_settings(settings),
        "request_policy": request_policy_from_settings(settings),
        # photo-first: the merchant's photos, and cutting the product out of them
        "photo_source": PhotoSource(
            media_root=settings.media_root,
            allowed_hosts=list(settings.media_allowed_hosts),
            private_hosts=list(settings.media_private_hosts),
            max_bytes=settings.media_max_bytes,
            timeout_seconds=settings.media_timeout_seconds,
            max_attempts=settings.media_max_attempts,
            s3=s3,
            s3_addressing_style=settings.s3_addressing_style,
        ),
        "segmenter": segmenter_from_settings(settings),
    }


def s3_resource(settings: Settings) -> S3Resource:
    """The project's S3 connection (ZIMAGE_S3_*): endpoint, region, retries, credentials as EnvVars."""
    return S3Resource(
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region or None,
        aws_access_key_id=as_env_var("ZIMAGE_S3_ACCESS_KEY_ID", settings.s3_access_key_id),
        aws_secret_access_key=as_env_var("ZIMAGE_S3_SECRET_ACCESS_KEY", settings.s3_secret_access_key),
        max_attempts=settings.s3_max_attempts,
    )


def image_store_from_url(url: str, public_base_url: str = "", *, s3: S3Resource | None = None, settings: Settings | None = None) -> ImageStore:
    """`/path`, `file:///path` -> a local folder; `s3://bucket/prefix` -> an S3-compatible store."""
    if url.startswith("s3://"):
        options = {}
        if settings is not None:
            options = {
                "addressing_style": settings.s3_addressing_style,
                "presign_expiry_seconds": min(settings.presign_expiry_seconds, MAX_PRESIGN_SECONDS),
            }
        return S3ImageStore.from_url(url, public_base_url=public_base_url, s3=s3, **options)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        raise ValueError(f"ZIMAGE_STORAGE_URL={url!r}: use a folder path, file://..., or s3://bucket/prefix")
    return LocalImageStore(root=url, public_base_url=public_base_url)


def result_cache_from_url(url: str, embedded_path: str, *, settings: Settings | None = None) -> ResultCache:
    """`embedded` -> a SQLite file; `redis://...` / `rediss://...` / `unix://...` -> Redis."""
    options = {"ttl_seconds": settings.cache_ttl_seconds} if settings is not None else {}
    if url in ("", "embedded"):
        return EmbeddedCache(path=embedded_path, **options)
    if url.startswith(REDIS_SCHEMES):
        if settings is not None:
            options["key_prefix"] = settings.cache_key_prefix
        return RedisCache(url=url, **options)
    raise ValueError(f"ZIMAGE_CACHE_URL={url!r}: use 'embedded' or a redis:// URL")


def segmenter_from_settings(settings: Settings) -> Segmenter:
    """The cut-out method as configured by ZIMAGE_SEGMENTER and ZIMAGE_MASK_MIN_CONFIDENCE."""
    return Segmenter(spec=settings.segmenter, min_confidence=settings.mask_min_confidence)


def quality_gates_from_settings(settings: Settings) -> QualityGates:
    """The gates as configured by ZIMAGE_* variables (see zimage_assets/settings/)."""
    return QualityGates(
        quality_mode=settings.quality_mode,
        view_profiles=settings.view_profiles,
        max_attempts=settings.max_attempts,
        max_block_share=settings.max_block_share,
        prompt_max_chars=settings.prompt_max_chars,
        safety_terms_dir=settings.safety_terms_dir,
        image_safety=ImageSafety(review_threshold=settings.nsfw_review_threshold, block_threshold=settings.nsfw_block_threshold),
        illustrative_review=settings.illustrative_review,
    )


def request_policy_from_settings(settings: Settings) -> RequestPolicy:
    """What the generations API and the RabbitMQ intake accept (ZIMAGE_API_*, ZIMAGE_REQUEST_*)."""
    return RequestPolicy(
        served_models=list(settings.api_models),
        max_images=settings.api_max_images,
        max_prompt_chars=settings.prompt_max_chars,
        max_items_per_batch=settings.max_items_per_batch,
        max_body_bytes=settings.api_max_body_bytes,
        sync_max_images=settings.api_sync_max_images,
        sync_wait_seconds=settings.api_sync_wait_seconds,
        idempotency_hours=settings.api_idempotency_hours,
        requests_per_minute=settings.api_requests_per_minute,
        images_per_day=settings.api_images_per_day,
        deadline_hours=dict(settings.request_deadline_hours),
    )


def request_queue_from_settings(settings: Settings):
    """The RabbitMQ intake's queues (ZIMAGE_AMQP_URL, ZIMAGE_INTAKE_QUEUE_PREFIX); None without a URL."""
    if not settings.amqp_url:
        return None
    from resources.request_queue import RequestQueue

    return RequestQueue(url=settings.amqp_url, prefix=settings.intake_queue_prefix)
