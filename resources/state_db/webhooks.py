"""Webhook outbox: one delivery per (event, target URL), and every attempt to send it.

A delivery's body is stored once and sent byte for byte on every attempt, so its signature never
changes and receivers can drop duplicates by delivery id. Sending is resources/webhooks.py's job;
this file only keeps the books.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import tables as t
from resources.state_db.engine import Topic, upsert


class WebhookState(Topic):
    def enqueue_webhook_deliveries(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert deliveries that are not there yet (an event is enqueued once per URL); returns how many."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            ids = [r["delivery_id"] for r in rows]
            known = set(
                conn.execute(sa.select(t.webhook_deliveries.c.delivery_id).where(t.webhook_deliveries.c.delivery_id.in_(ids))).scalars()
            )
            fresh = [dict(r) for r in rows if r["delivery_id"] not in known]
            if fresh:
                conn.execute(t.webhook_deliveries.insert(), fresh)
            return len(fresh)

    def due_webhook_deliveries(self, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        d = t.webhook_deliveries
        query = (
            sa.select(d)
            .where(d.c.status == "pending", sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now))
            .order_by(d.c.created_at, d.c.delivery_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def record_webhook_attempt(
        self,
        delivery_id: str,
        *,
        attempt: int,
        at: datetime,
        http_status: int | None,
        error: str,
        seconds: float,
        status: str,
        next_attempt_at: datetime | None,
    ) -> None:
        with self.engine.begin() as conn:
            upsert(
                conn,
                t.webhook_attempts,
                [{"delivery_id": delivery_id, "attempt": attempt, "at": at, "http_status": http_status, "error": error, "seconds": seconds}],
            )
            conn.execute(
                t.webhook_deliveries.update()
                .where(t.webhook_deliveries.c.delivery_id == delivery_id)
                .values(
                    attempts=attempt,
                    status=status,
                    next_attempt_at=next_attempt_at,
                    last_status=http_status,
                    last_error=error,
                    updated_at=at,
                )
            )

    def webhook_deliveries(self, event_id: str | None = None) -> list[dict[str, Any]]:
        d = t.webhook_deliveries
        query = sa.select(d).order_by(d.c.created_at, d.c.delivery_id)
        if event_id is not None:
            query = query.where(d.c.event_id == event_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def webhook_attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        a = t.webhook_attempts
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(sa.select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.attempt))
            ]
