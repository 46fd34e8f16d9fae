"""What the generations API and the RabbitMQ intake accept, and when a request batch is due.

One resource for both faces and the request sensor, built from the ZIMAGE_API_* and
ZIMAGE_REQUEST_* settings in resources/__init__.py. The rules themselves are pure code in
zimage_assets/domain/requests.py; this holds the numbers they are given.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain.requests import Limits, deadline_hours
from zimage_assets.settings import DEFAULTS


class RequestPolicy(ConfigurableResource):
    """Bounds, limits, synchronous answers and deadlines of requests from other systems."""

    served_models: list[str] = Field(default_factory=lambda: ["z-image-turbo"], description="API model names this deployment serves")
    max_images: int = Field(default=DEFAULTS["api_max_images"], ge=1, description="Most images per request")
    max_prompt_chars: int = Field(default=DEFAULTS["prompt_max_chars"], ge=1, description="Longer prompts are refused")
    max_items_per_batch: int = Field(default=DEFAULTS["max_items_per_batch"], ge=1, description="Items per request batch (and per regeneration request)")
    max_body_bytes: int = Field(default=DEFAULTS["api_max_body_bytes"], ge=1024, description="Larger bodies are refused (413)")
    sync_max_images: int = Field(default=DEFAULTS["api_sync_max_images"], ge=0, description="Requests of at most this many images wait for them")
    sync_wait_seconds: float = Field(default=DEFAULTS["api_sync_wait_seconds"], ge=0, description="How long such a request waits before a 202")
    idempotency_hours: float = Field(default=DEFAULTS["api_idempotency_hours"], ge=0, description="A repeated POST within this is the same task")
    requests_per_minute: int = Field(default=DEFAULTS["api_requests_per_minute"], ge=1, description="Default limit of new keys")
    images_per_day: int = Field(default=DEFAULTS["api_images_per_day"], ge=1, description="Default limit of new keys")
    deadline_hours: dict[str, float] = Field(
        default_factory=lambda: deadline_hours(DEFAULTS["request_deadline_hours"]), description="Hours from request to deadline, per priority"
    )

    def limits(self) -> Limits:
        return Limits(
            served_models=tuple(self.served_models),
            max_prompt_chars=self.max_prompt_chars,
            max_images=min(self.max_images, self.max_items_per_batch),
            max_skus=self.max_items_per_batch,
            max_items=self.max_items_per_batch,
        )

    def deadline(self, priority: str, requested_at: datetime) -> datetime:
        return requested_at + timedelta(hours=self.deadline_hours[priority])

    def waits_for_images(self, num_images: int) -> bool:
        return 0 < num_images <= self.sync_max_images and self.sync_wait_seconds > 0
