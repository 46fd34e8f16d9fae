"""New SKUs, the SLA, the monthly refresh, alerts and callbacks (webhooks), retention."""

from __future__ import annotations

from zimage_assets.settings.defaults import DEFAULTS
from zimage_assets.settings.values import flag, integer, number, url_list


def operations_settings(env: dict[str, str]) -> dict:
    from zimage_assets.domain.webhooks import host_of, target_error

    alert_urls = url_list(env, "ZIMAGE_ALERT_WEBHOOK_URLS")
    callback_urls = url_list(env, "ZIMAGE_CALLBACK_URLS")
    secret = env.get("ZIMAGE_WEBHOOK_SECRET") or ""
    allow_loopback = flag(env, "ZIMAGE_WEBHOOK_ALLOW_LOOPBACK")
    allowed = tuple(h.strip().lower() for h in (env.get("ZIMAGE_WEBHOOK_ALLOWED_HOSTS") or "").split(",") if h.strip())
    allowed = allowed or tuple(dict.fromkeys(host_of(u) for u in alert_urls + callback_urls))
    if (alert_urls or callback_urls) and not secret:
        raise ValueError("ZIMAGE_WEBHOOK_SECRET is required when ZIMAGE_ALERT_WEBHOOK_URLS or ZIMAGE_CALLBACK_URLS is set")
    for name, urls in (("ZIMAGE_ALERT_WEBHOOK_URLS", alert_urls), ("ZIMAGE_CALLBACK_URLS", callback_urls)):
        for url in urls:
            error = target_error(url, allowed, allow_loopback)
            if error:
                raise ValueError(f"{name}: {error}")
    sla_hours = number(env, "ZIMAGE_SLA_HOURS", DEFAULTS["sla_hours"])
    seconds_per_image = number(env, "ZIMAGE_SECONDS_PER_IMAGE", DEFAULTS["seconds_per_image"])
    for name, value in (("ZIMAGE_SLA_HOURS", sla_hours), ("ZIMAGE_SECONDS_PER_IMAGE", seconds_per_image)):
        if value == 0:
            raise ValueError(f"{name} must be more than 0")
    return {
        "sla_hours": sla_hours,
        "refresh_max_age_days": integer(env, "ZIMAGE_REFRESH_MAX_AGE_DAYS", DEFAULTS["refresh_max_age_days"], minimum=0),
        "seconds_per_image": seconds_per_image,
        "refresh_budget_usd": number(env, "ZIMAGE_REFRESH_BUDGET_USD", DEFAULTS["refresh_budget_usd"]),
        "alert_webhook_urls": alert_urls,
        "callback_urls": callback_urls,
        "webhook_secret": secret,
        "webhook_allowed_hosts": allowed,
        "webhook_allow_loopback": allow_loopback,
        "retention_days": integer(env, "ZIMAGE_RETENTION_DAYS", DEFAULTS["retention_days"]),
    }
