"""Run metrics and cost: one row per product_images run, totals for Prometheus, receipt stats.

`generation_runs` rows are written once per run (an upsert on run_id, so a retried write changes
nothing); the Prometheus collector reads the sums and the latest run per model.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

import sqlalchemy as sa

from resources.state_db import tables as t
from resources.state_db.engine import Topic, upsert


class RunMetricState(Topic):
    def save_generation_run(self, row: Mapping[str, Any]) -> None:
        """One row per product_images run (upsert on run_id: a retried write changes nothing)."""
        record = dict(row)
        if not isinstance(record.get("latency_counts"), str):
            record["latency_counts"] = json.dumps(list(record["latency_counts"]))
        with self.engine.begin() as conn:
            upsert(conn, t.generation_runs, [record])

    def generation_runs(self, *, since: datetime | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.generation_runs).order_by(t.generation_runs.c.finished_at, t.generation_runs.c.run_id)
        if since is not None:
            query = query.where(t.generation_runs.c.finished_at >= since)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(query):
                record = dict(r._mapping)
                record["latency_counts"] = json.loads(record["latency_counts"])
                out.append(record)
            return out

    def generation_totals(self) -> list[dict[str, Any]]:
        """Sums over every run, per (model, priority): the counters behind the Prometheus metrics."""
        g = t.generation_runs
        query = sa.select(
            g.c.model_id,
            g.c.priority,
            sa.func.count().label("runs"),
            sa.func.sum(g.c.generated).label("generated"),
            sa.func.sum(g.c.cache_hits).label("cache_hits"),
            sa.func.sum(g.c.cache_misses).label("cache_misses"),
            sa.func.sum(g.c.cache_errors).label("cache_errors"),
            sa.func.sum(g.c.already_stored).label("already_stored"),
            sa.func.sum(g.c.gpu_seconds).label("gpu_seconds"),
            sa.func.sum(g.c.cost_usd).label("cost_usd"),
            sa.func.sum(g.c.latency_sum).label("latency_sum"),
        ).group_by(g.c.model_id, g.c.priority)
        with self.engine.connect() as conn:
            totals = [dict(r._mapping) for r in conn.execute(query)]
            # Histogram buckets are JSON lists: summed here, per model.
            buckets: dict[str, list[int]] = {}
            for model_id, counts in conn.execute(sa.select(g.c.model_id, g.c.latency_counts)):
                counts = json.loads(counts)
                acc = buckets.setdefault(model_id, [0] * len(counts))
                for i, count in enumerate(counts[: len(acc)]):
                    acc[i] += count
        for row in totals:
            row["latency_counts_by_model"] = buckets.get(row["model_id"], [])
        return totals

    def latest_generation_runs(self) -> list[dict[str, Any]]:
        """The most recent run of each model that made or looked up images (for gauges)."""
        g = t.generation_runs
        latest = (
            sa.select(g.c.model_id, sa.func.max(g.c.finished_at).label("finished_at"))
            .where((g.c.generated > 0) | (g.c.cache_hits + g.c.cache_misses > 0))
            .group_by(g.c.model_id)
            .subquery()
        )
        query = sa.select(g).join(latest, (g.c.model_id == latest.c.model_id) & (g.c.finished_at == latest.c.finished_at))
        with self.engine.connect() as conn:
            rows: dict[str, dict[str, Any]] = {}
            for r in conn.execute(query.order_by(g.c.run_id)):
                rows[r.model_id] = dict(r._mapping)
            return list(rows.values())

    def verdict_counts(self, verdict: str = "BLOCK") -> dict[str, int]:
        """Items per stage with this verdict (latest evaluation of each attempt)."""
        query = (
            sa.select(t.verdicts.c.stage, sa.func.count())
            .where(t.verdicts.c.verdict == verdict)
            .group_by(t.verdicts.c.stage)
        )
        with self.engine.connect() as conn:
            return {stage: int(count) for stage, count in conn.execute(query)}

    def receipt_stats(self, since: datetime) -> dict[str, Any]:
        """Images receipted since `since`: how many, how many from the cache, GPU seconds spent.

        Items of a batch that share a spec share one generated image: its seconds count once.
        """
        r = t.image_receipts
        generated = (
            sa.select(sa.func.max(r.c.seconds).label("seconds"))
            .where(r.c.created_at >= since, r.c.cache_hit.is_(False))
            .group_by(r.c.batch_id, r.c.spec_hash)
            .subquery()
        )
        with self.engine.connect() as conn:
            images, cached, first, last = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.case((r.c.cache_hit, 1), else_=0)), 0),
                    sa.func.min(r.c.created_at),
                    sa.func.max(r.c.created_at),
                ).where(r.c.created_at >= since)
            ).one()
            seconds = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(generated.c.seconds), 0.0))).scalar_one()
        return {"images": int(images), "cache_hits": int(cached), "gpu_seconds": float(seconds), "first": first, "last": last}
