"""The tables of requests from other systems: API keys and their usage, request tasks, idempotency keys.

Defined on the same `metadata` as every other table (resources/state_db/tables.py), so they are
created with them.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Index, Integer, String, Table, Text

from resources.state_db.tables import metadata

# ---- requests from other systems: the generations API and the RabbitMQ intake ----

# API keys: the secret is never stored, only its SHA-256; a revoked key stays for the audit.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # JSON list: generate, read
    Column("requests_per_minute", Integer, nullable=False),
    Column("images_per_day", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
)

# Fixed-window counters per key, shared by every API process: requests per minute, images per day.
api_usage = Table(
    "api_usage",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("period", String(8), primary_key=True),  # minute | day
    Column("started_at", DateTime, primary_key=True),
    Column("used", Integer, nullable=False),  # requests (minute) or images (day)
)

# One row per request: its normalised body, its batch once minted, and how it ended.
request_tasks = Table(
    "request_tasks",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False),  # '' = no key (the intake without an owner)
    Column("source", String(16), nullable=False),  # api | amqp
    Column("kind", String(16), nullable=False),  # generate | regenerate
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # queued | minted | succeeded | failed | blocked
    Column("reason", Text, nullable=True),  # JSON: why it was blocked or failed
    Column("request", Text, nullable=False),  # JSON: the body with every default applied
    Column("request_hash", String(64), nullable=False),
    Column("num_images", Integer, nullable=False),
    Column("callback_url", Text, nullable=True),
    Column("batch_id", String(64), nullable=True),
    Column("requested_at", DateTime, nullable=False),  # the message's created_at, or created_at
    Column("created_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    Column("seconds_to_published", Float, nullable=True),
    Column("notified_at", DateTime, nullable=True),  # its callback was put in the webhook outbox
    Index("ix_request_tasks_status", "status", "priority", "created_at"),
    Index("ix_request_tasks_batch", "batch_id"),
    Index("ix_request_tasks_key", "key_id", "created_at"),
)

# Same API key + same Idempotency-Key (or the same body) within the window = the same task.
request_idempotency = Table(
    "request_idempotency",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),  # sha256 of key id, scope and header or body
    Column("task_id", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
)
