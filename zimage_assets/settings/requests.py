"""Requests from other systems: the generations API and the RabbitMQ intake."""

from __future__ import annotations

from zimage_assets.settings.defaults import DEFAULTS
from zimage_assets.settings.values import integer, number


def request_settings(env: dict[str, str], model: str) -> dict:
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
        "api_max_images": integer(env, "ZIMAGE_API_MAX_IMAGES", DEFAULTS["api_max_images"]),
        "api_max_body_bytes": integer(env, "ZIMAGE_API_MAX_BODY_BYTES", DEFAULTS["api_max_body_bytes"], minimum=1024),
        "api_sync_max_images": integer(env, "ZIMAGE_API_SYNC_MAX_IMAGES", DEFAULTS["api_sync_max_images"], minimum=0),
        "api_sync_wait_seconds": number(env, "ZIMAGE_API_SYNC_WAIT_SECONDS", DEFAULTS["api_sync_wait_seconds"]),
        "api_idempotency_hours": number(env, "ZIMAGE_API_IDEMPOTENCY_HOURS", DEFAULTS["api_idempotency_hours"]),
        "api_requests_per_minute": integer(env, "ZIMAGE_API_REQUESTS_PER_MINUTE", DEFAULTS["api_requests_per_minute"]),
        "api_images_per_day": integer(env, "ZIMAGE_API_IMAGES_PER_DAY", DEFAULTS["api_images_per_day"]),
        "request_deadline_hours": deadlines,
        "amqp_url": amqp_url,
        "intake_queue_prefix": env.get("ZIMAGE_INTAKE_QUEUE_PREFIX") or DEFAULTS["intake_queue_prefix"],
        "intake_key_id": env.get("ZIMAGE_INTAKE_KEY_ID") or "",
    }
