"""The operating promises and prices that sensors, schedules, checks, reports and cost accounting share."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.settings import DEFAULTS


class ServiceLevels(ConfigurableResource):
    """SLA, refresh policy, GPU price and retention (ZIMAGE_SLA_HOURS, ZIMAGE_REFRESH_*, ...)."""

    sla_hours: float = Field(default=DEFAULTS["sla_hours"], gt=0, description="A new or changed SKU gets a published image within this many hours")
    refresh_max_age_days: int = Field(default=DEFAULTS["refresh_max_age_days"], ge=0, description="Monthly refresh redoes images older than this (0 = never for age)")
    seconds_per_image: float = Field(default=DEFAULTS["seconds_per_image"], gt=0, description="GPU seconds per image for quotes until receipts measured it")
    gpu_hour_price: float = Field(default=DEFAULTS["gpu_hour_price_usd"], ge=0, description="Price of one GPU-hour (USD): quotes, cost per batch, cost per 1000 images")
    refresh_budget: float = Field(default=DEFAULTS["refresh_budget_usd"], ge=0, description="The monthly refresh mints nothing if its quote costs more (0 = no cap)")
    retention_days: int = Field(default=DEFAULTS["retention_days"], ge=1, description="Batch partitions older than this may be deleted")
