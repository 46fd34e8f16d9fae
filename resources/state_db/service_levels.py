"""Service levels: the SLA backlog and deadlines, image coverage, monthly refresh candidates,
and retention of old batch partitions.

The SLA clock of a SKU starts when its current content was first seen (`last_changed`) and
stops when an image of that content is current (`has_up_to_date_image`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import tables as t
from zimage_assets.domain.specs import NO_MODEL
from resources.state_db.engine import (
    OPEN_BATCH_STATUSES,
    Topic,
    has_any_image,
    has_up_to_date_image,
    like_prefix,
    upsert,
    utcnow,
)


class ServiceLevelState(Topic):
    def sla_backlog(self, due_before: datetime, sample: int = 10) -> dict[str, Any]:
        """SKUs without a published image of their current content; overdue = changed before `due_before`."""
        s = t.skus
        pending = (
            sa.select(s.c.sku, s.c.last_changed, sa.case((has_any_image(), 1), else_=0).label("has_image"))
            .where(~has_up_to_date_image())
            .subquery()
        )
        overdue = pending.c.last_changed < due_before
        with self.engine.connect() as conn:
            total, late, late_new, oldest, oldest_late = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.case((overdue, 1), else_=0)), 0),
                    sa.func.coalesce(sa.func.sum(sa.case((overdue & (pending.c.has_image == 0), 1), else_=0)), 0),
                    sa.func.min(pending.c.last_changed),
                    sa.func.min(sa.case((overdue, pending.c.last_changed), else_=None)),
                )
            ).one()
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(pending.c.sku, pending.c.last_changed, pending.c.has_image)
                    .where(overdue)
                    .order_by(pending.c.last_changed, pending.c.sku)
                    .limit(sample)
                )
            ]
            latest = self._latest_batches(conn, [r["sku"] for r in rows])
        samples = [
            {
                "sku": r["sku"],
                "due_since": r["last_changed"],
                "kind": "changed" if r["has_image"] else "new",
                "batch_id": latest.get(r["sku"], {}).get("batch_id", ""),
                "batch_status": latest.get(r["sku"], {}).get("status", "not batched"),
            }
            for r in rows
        ]
        return {
            "pending": int(total),
            "overdue": int(late),
            "overdue_new": int(late_new),
            "overdue_changed": int(late) - int(late_new),
            "oldest_due_since": oldest,
            "oldest_overdue_since": oldest_late,
            "sample": samples,
        }

    def _latest_batches(self, conn: sa.Connection, sku_list: list[str]) -> dict[str, dict[str, Any]]:
        if not sku_list:
            return {}
        query = (
            sa.select(t.batch_items.c.sku, t.batches.c.batch_id, t.batches.c.status, t.batches.c.created_at)
            .join(t.batches, t.batches.c.batch_id == t.batch_items.c.batch_id)
            .where(t.batch_items.c.sku.in_(sku_list))
            .order_by(t.batches.c.created_at, t.batches.c.batch_id)
        )
        return {r.sku: {"batch_id": r.batch_id, "status": r.status} for r in conn.execute(query)}

    def batches_with_deadlines(self, since: datetime) -> list[dict[str, Any]]:
        """Batches whose deadline is after `since`, with `published_at`: the first publication
        recorded by the batch-completion sensor, else the last status change of a published batch."""
        b, p = t.batches, t.batch_publications
        published_at = sa.case((b.c.status == "published", sa.func.coalesce(p.c.first_published_at, b.c.updated_at)), else_=p.c.first_published_at)
        query = (
            sa.select(b, published_at.label("published_at"))
            .select_from(b.outerjoin(p, p.c.batch_id == b.c.batch_id))
            .where(b.c.deadline.is_not(None), b.c.deadline >= since)
            .order_by(b.c.deadline, b.c.batch_id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def record_first_publication(self, batch_id_: str, at: datetime, run_id: str) -> bool:
        """Remember when a batch was first published (kept if already known); True if recorded now."""
        with self.engine.begin() as conn:
            known = conn.execute(sa.select(t.batch_publications.c.batch_id).where(t.batch_publications.c.batch_id == batch_id_)).first()
            if known:
                return False
            conn.execute(t.batch_publications.insert().values(batch_id=batch_id_, first_published_at=at, run_id=run_id))
            return True

    def coverage_counts(self) -> list[dict[str, Any]]:
        """(category, state, skus) with state current (image of the current content), stale or missing."""
        s = t.skus
        per_sku = sa.select(
            s.c.category, sa.case((has_up_to_date_image(), "current"), (has_any_image(), "stale"), else_="missing").label("state")
        ).subquery()
        query = sa.select(per_sku.c.category, per_sku.c.state, sa.func.count().label("skus")).group_by(per_sku.c.category, per_sku.c.state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def measured_seconds_per_image(self, model_id: str, revision: str, limit: int = 2000) -> tuple[float | None, int]:
        """Mean generation seconds of the latest generated (not cached) images of this model."""
        r = t.image_receipts
        query = (
            sa.select(r.c.seconds)
            .where(r.c.model_id == model_id, r.c.revision == revision, r.c.cache_hit.is_(False), r.c.seconds > 0)
            .order_by(r.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            seconds = [float(v) for v in conn.execute(query).scalars()]
        return (sum(seconds) / len(seconds) if seconds else None), len(seconds)

    def refresh_candidates(
        self,
        *,
        template_version: str,
        model_id: str,
        revision: str,
        published_before: datetime | None,
        skip_batch_prefix: str,
    ) -> list[dict[str, Any]]:
        """One row per SKU with a current image that is due, with a 0/1 flag per reason.

        Skips SKUs in an open batch and SKUs already in a batch whose id starts with
        `skip_batch_prefix` (this month's refresh), so a second refresh of a month mints nothing.
        """
        s, img, items, b = t.skus, t.sku_images, t.batch_items, t.batches
        reasons = {
            "content_changed": img.c.content_hash != s.c.content_hash,
            "template_changed": img.c.template_version != template_version,
            # a photo-mode image (model `none`) has no model to change
            "model_changed": sa.and_(img.c.model_id != NO_MODEL, sa.or_(img.c.model_id != model_id, img.c.revision != revision)),
            "too_old": img.c.published_at < published_before if published_before is not None else sa.false(),
        }
        in_open_batch = (
            sa.exists()
            .where(items.c.sku == s.c.sku, items.c.batch_id == b.c.batch_id, b.c.status.in_(OPEN_BATCH_STATUSES))
        )
        in_this_refresh = sa.exists().where(
            items.c.sku == s.c.sku, items.c.batch_id.like(like_prefix(skip_batch_prefix, "-"), escape="\\")
        )
        query = (
            sa.select(
                s.c.sku,
                s.c.category,
                *[sa.func.max(sa.case((cond, 1), else_=0)).label(name) for name, cond in reasons.items()],
            )
            .join(img, img.c.sku == s.c.sku)
            .where(sa.or_(*reasons.values()), ~in_open_batch, ~in_this_refresh)
            .group_by(s.c.sku, s.c.category)
            .order_by(s.c.sku)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def retention_candidates(self, created_before: datetime, statuses: Sequence[str]) -> list[dict[str, Any]]:
        """Batches created before the cutoff, in one of `statuses`, whose partition is not retired yet."""
        b, r = t.batches, t.retired_batches
        query = (
            sa.select(b)
            .where(b.c.created_at < created_before, b.c.status.in_(list(statuses)))
            .where(~sa.exists().where(r.c.batch_id == b.c.batch_id))
            .order_by(b.c.created_at, b.c.batch_id)
        )
        with self.engine.connect() as conn:
            return [dict(x._mapping) for x in conn.execute(query)]

    def record_retired(self, batches_: Sequence[Mapping[str, Any]], now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.engine.begin() as conn:
            upsert(conn, t.retired_batches, [{"batch_id": b["batch_id"], "retired_at": now, "batch_status": b["status"]} for b in batches_])
