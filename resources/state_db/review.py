"""Review: the decisions people make on REVIEW images, the queue of those still waiting, and
each item's final verdict once decisions apply.

Decisions are appended, never updated (the audit trail). What a decision does to an item is a
business rule kept out of SQL: `zimage_assets.domain.review.final_verdicts`.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import tables as t
from resources.state_db.engine import Topic, rows_in_chunks, same_attempt
from resources.state_db.images import shown_images_select
from zimage_assets.domain import review as rules
from zimage_assets.domain.verdicts import REVIEW


class ReviewState(Topic):
    def final_verdicts(self, batch_id_: str) -> list[dict[str, Any]]:
        """One row per item of the batch: its last image verdict (or its prompt BLOCK), with the
        latest review decision on that attempt applied.

        Keys: sku, view, attempt, verdict (effective), gate_verdict, reasons, scores, decision,
        stage (prompt when no image was made).
        """
        return rules.final_verdicts(self.verdicts(batch_id_), self.review_decisions(batch_id=batch_id_))  # type: ignore[attr-defined]

    def save_review_decisions(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append decisions; a decision already recorded (same id) is left as it was. Returns how many were new."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            known = set(
                conn.execute(
                    sa.select(t.review_decisions.c.decision_id).where(t.review_decisions.c.decision_id.in_([r["decision_id"] for r in rows]))
                ).scalars()
            )
            fresh = [dict(r, previous_reasons=json.dumps(list(r["previous_reasons"]))) for r in rows if r["decision_id"] not in known]
            if fresh:
                conn.execute(t.review_decisions.insert(), fresh)
        return len(fresh)

    def review_decisions(self, *, batch_id: str | None = None, sku: str | None = None, view: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.review_decisions)
        if batch_id is not None:
            query = query.where(t.review_decisions.c.batch_id == batch_id)
        if sku is not None:
            query = query.where(t.review_decisions.c.sku == sku)
        if view is not None:
            query = query.where(t.review_decisions.c.view == view)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(query.order_by(t.review_decisions.c.decided_at, t.review_decisions.c.decision_id)):
                row = dict(r._mapping)
                row["previous_reasons"] = json.loads(row["previous_reasons"])
                out.append(row)
            return out

    def review_queue(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Items waiting for a person: the final verdict of their latest batch is REVIEW, undecided.

        Newest batches first. Each row: batch_id, sku, view, attempt, reasons, scores, storage_key
        (the image to look at: the fixed one when a fix was applied), batch_created_at.

        One query: per SKU x view, the image verdicts of its newest batch(es); of those, the highest
        attempt; kept when its verdict is REVIEW and no decision names that attempt; joined to the
        image that attempt shows.
        """
        v, b = t.verdicts, t.batches
        is_image = v.c.stage == "image"
        latest_batch = (
            sa.select(v.c.sku, v.c.view, sa.func.max(b.c.created_at).label("created_at"))
            .join(b, b.c.batch_id == v.c.batch_id)
            .where(is_image)
            .group_by(v.c.sku, v.c.view)
            .subquery()
        )
        last_attempt = (
            sa.select(v.c.batch_id, v.c.sku, v.c.view, sa.func.max(v.c.attempt).label("attempt"))
            .where(is_image)
            .group_by(v.c.batch_id, v.c.sku, v.c.view)
            .subquery()
        )
        shown = shown_images_select().subquery()
        decided = sa.exists().where(same_attempt(t.review_decisions, v))
        query = (
            sa.select(v.c.batch_id, v.c.sku, v.c.view, v.c.attempt, v.c.reasons, v.c.scores, shown.c.storage_key, b.c.created_at)
            .join(b, b.c.batch_id == v.c.batch_id)
            .join(latest_batch, (latest_batch.c.sku == v.c.sku) & (latest_batch.c.view == v.c.view) & (latest_batch.c.created_at == b.c.created_at))
            .join(last_attempt, same_attempt(last_attempt, v))
            .outerjoin(shown, same_attempt(shown, v))
            .where(is_image, v.c.verdict == REVIEW, ~decided)
            .order_by(b.c.created_at.desc(), v.c.batch_id, v.c.sku, v.c.view)
        )
        if limit:
            query = query.limit(max(limit, 1))  # a negative limit has always meant one row
        with self.engine.connect() as conn:
            return [
                {
                    "batch_id": r.batch_id,
                    "sku": r.sku,
                    "view": r.view,
                    "attempt": r.attempt,
                    "reasons": json.loads(r.reasons),
                    "scores": json.loads(r.scores),
                    "storage_key": r.storage_key,
                    "batch_created_at": r.created_at,
                }
                for r in conn.execute(query)
            ]

    def latest_image_batch(self, sku: str, view: str) -> str | None:
        """The newest batch that made an image of this SKU x view (None when none did)."""
        query = (
            sa.select(t.verdicts.c.batch_id)
            .join(t.batches, t.batches.c.batch_id == t.verdicts.c.batch_id)
            .where((t.verdicts.c.sku == sku) & (t.verdicts.c.view == view) & (t.verdicts.c.stage == "image"))
            .order_by(t.batches.c.created_at.desc(), t.batches.c.batch_id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def regeneration_start_attempts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(sku, view) -> first attempt number for a new image: one past the last attempt a
        reviewer sent back with `regenerate` (0 when none), so a regeneration gets new seeds."""
        d = t.review_decisions
        keys = list(dict.fromkeys(keys))
        skus = list({sku for sku, _ in keys})
        out = {key: 0 for key in keys}

        def regenerated_in(chunk: Sequence[str]) -> sa.Select:
            return (
                sa.select(d.c.sku, d.c.view, sa.func.max(d.c.attempt))
                .where(d.c.decision == "regenerate")
                .where(d.c.sku.in_(chunk))
                .group_by(d.c.sku, d.c.view)
            )

        with self.engine.connect() as conn:
            for sku, view, attempt in rows_in_chunks(conn, skus, regenerated_in):
                if (sku, view) in out:
                    out[(sku, view)] = int(attempt) + 1
        return out
