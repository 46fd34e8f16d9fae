"""The project's tables behind a small, explicit API (SQLAlchemy Core, SQLite or PostgreSQL).

Every write is an upsert on a natural key, inside one transaction, so re-running anything
rewrites the same rows instead of adding new ones, and a killed run leaves either the old or the
new state, never half of a write.

`StateDB` is one Dagster resource composed of one mixin per topic, each in its own file:

- `tables.py`          every table (the schema)
- `engine.py`          engines, `utcnow`, the upsert and the SQL snippets the topics share
- `catalog.py`         SKUs, ingests and their rejects; choosing SKUs to make images of
- `batches.py`         minting batches, their status, their items and prompts
- `images.py`          receipts, verdicts, compliance fixes, the image each attempt shows, current images
- `review.py`          review decisions, the review queue, final verdicts
- `service_levels.py`  SLA backlog and deadlines, coverage, refresh candidates, retention
- `webhooks.py`        the webhook outbox and its attempts
- `run_metrics.py`     one row per generation run, totals for Prometheus, receipt stats
- `requests.py`        requests from other systems (API, RabbitMQ): tasks, idempotency, request batches
- `api_keys.py`        API keys (stored hashed) and their per-minute / per-day usage counters
- `photos.py`          photo references per SKU, fetch records, cut-outs, item sources, image provenance

Business rules (what a reviewer's decision does, never rolling a SKU back) are pure functions in
`zimage_assets/domain/review.py`; the topic files only fetch the facts and write the outcome.
"""

from __future__ import annotations

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from resources.state_db import tables as t
from resources.state_db.api_keys import ApiKeyState
from resources.state_db.batches import BatchState
from resources.state_db.catalog import CatalogState
from resources.state_db.engine import OPEN_BATCH_STATUSES, dispose_engines, engine_for, sqlalchemy_url, utcnow
from resources.state_db.images import ImageState
from resources.state_db.requests import RequestState
from resources.state_db.photos import PhotoState
from resources.state_db.review import ReviewState
from resources.state_db.run_metrics import RunMetricState
from resources.state_db.service_levels import ServiceLevelState
from resources.state_db.webhooks import WebhookState

__all__ = ["OPEN_BATCH_STATUSES", "StateDB", "dispose_engines", "sqlalchemy_url", "utcnow"]


class StateDB(
    CatalogState,
    BatchState,
    ImageState,
    ReviewState,
    ServiceLevelState,
    WebhookState,
    RunMetricState,
    RequestState,
    ApiKeyState,
    PhotoState,
    ConfigurableResource,
):
    """SKUs, batches, prompts, receipts, verdicts and current images."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:////data/zimage.sqlite or postgresql://...")

    @property
    def engine(self) -> sa.Engine:
        """The cached engine for `url`, with every table created."""
        return engine_for(self.url)

    def table_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in t.metadata.sorted_tables
            }
