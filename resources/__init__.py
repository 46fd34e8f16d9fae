"""Resources: the only code that touches the outside world (model, storage, cache, database).

`build_resources` turns `Settings` (environment variables) into the resource instances that
Dagster injects into assets, checks, sensors and jobs.
"""

from __future__ import annotations

from zimage_assets.settings import Settings


def build_resources(settings: Settings) -> dict:
    from resources.catalog_source import CatalogSource
    from resources.generator import ZImageGenerator
    from resources.image_store import image_store_from_url
    from resources.prompt_templates import PromptTemplates
    from resources.result_cache import result_cache_from_url
    from resources.state_db import StateDB

    return {
        "state_db": StateDB(url=settings.db_url),
        "image_store": image_store_from_url(settings.storage_url, settings.public_base_url, **_s3_store_options(settings)),
        "result_cache": result_cache_from_url(settings.cache_url, str(settings.home / "cache.sqlite"), **_cache_options(settings)),
        "generator": ZImageGenerator(
            model=settings.model,
            revision=settings.model_revision,
            model_path=settings.model_path,
            models_dir=settings.models_dir,
            device=settings.device,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
        ),
        "catalog_source": CatalogSource(default_source=settings.catalog_source),
        "prompt_templates": PromptTemplates(
            path=settings.templates_path, max_items_per_batch=settings.max_items_per_batch
        ),
        **_operations_resources(settings),
        **_metrics_resources(settings),
        **_quality_resources(settings),
    }


# ---- production backends (S3 store, Redis cache, metrics, cost) ----


def _s3_store_options(settings: Settings) -> dict:
    """Endpoint, credentials (as EnvVars) and presign expiry for an s3:// store; nothing for a folder."""
    if not settings.storage_url.startswith("s3://"):
        return {}
    from resources.s3_image_store import s3_store_options

    return s3_store_options(settings)


def _cache_options(settings: Settings) -> dict:
    """TTL for every cache backend; the key prefix for Redis."""
    options: dict = {"ttl_seconds": settings.cache_ttl_seconds}
    if settings.cache_url.startswith(("redis://", "rediss://", "unix://")):
        options["key_prefix"] = settings.cache_key_prefix
    return options


def _metrics_resources(settings: Settings) -> dict:
    """Per-run cost accounting and metrics publication (text file and/or Pushgateway)."""
    from resources.metrics import MetricsRecorder

    return {
        "metrics": MetricsRecorder(
            gpu_hour_price_usd=settings.gpu_hour_price_usd,
            textfile_path=settings.metrics_file,
            pushgateway_url=settings.pushgateway_url,
        )
    }


# ---- new SKUs, SLA, monthly refresh, alerts, retention ----


def _operations_resources(settings: Settings) -> dict:
    """Service levels for sensors, schedules, checks and reports; the webhook client for alerts."""
    from resources.service_levels import ServiceLevels
    from resources.webhooks import WebhookClient
    from zimage_assets.settings import as_env_var

    return {
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
    }


# ---- safety and quality gates ----


def _quality_resources(settings: Settings) -> dict:
    """The gates' policy and the NSFW classifier (loaded on first use)."""
    from resources.quality_gates import quality_gates_from_settings

    return {"quality_gates": quality_gates_from_settings(settings)}
