"""The operating promises and prices that sensors, schedules, checks and reports share."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class ServiceLevels(ConfigurableResource):
    """SLA, refresh policy, GPU price and retention (ZIMAGE_SLA_HOURS, ZIMAGE_REFRESH_*, ...)."""

    sla_hours: float = Field(default=2.0, gt=0, description="A new or changed SKU gets a published image within this many hours")
    refresh_max_age_days: int = Field(default=180, ge=0, description="Monthly refresh redoes images older than this (0 = never for age)")
    seconds_per_image: float = Field(default=1.0, gt=0, description="GPU seconds per image for quotes until receipts measured it")
    gpu_hour_price: float = Field(default=2.5, ge=0, description="Price of one GPU-hour")
    refresh_budget: float = Field(default=0.0, ge=0, description="The monthly refresh mints nothing if its quote costs more (0 = no cap)")
    retention_days: int = Field(default=90, ge=1, description="Batch partitions older than this may be deleted")
