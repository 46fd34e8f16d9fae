"""Requests from other systems: recording them (one transaction each), minting them into
`request` batches, finishing them, and the facts a task's status is computed from.

- `record_task` (the API): the idempotency claim, the key's images per day and the task row, in
  one transaction. Same key + same Idempotency-Key (or body) within the window = the earlier task.
- `record_queued_tasks` (the RabbitMQ intake): many messages' tasks in one transaction; a
  task_id already recorded is a duplicate (a redelivery), never a second task.
- `mint_request_batch`: the batch, its items and the claim of its tasks, in one transaction, so a
  task is in exactly one batch however often the sensor runs or crashes.
- `task_facts`: every row `zimage_assets/domain/task_status.py` needs for one task.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import request_tables as rt
from resources.state_db import tables as t
from resources.state_db.api_keys import add_usage, dialect_insert
from resources.state_db.batches import insert_batch
from resources.state_db.engine import Topic, rows_in_chunks
from resources.state_db.images import shown_images_select
from zimage_assets.domain import review as review_rules
from zimage_assets.domain.requests import item_sku
from zimage_assets.domain.task_status import FINISHED


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before, within the window, for a different body."""

    def __init__(self, task_id: str):
        super().__init__(task_id)
        self.task_id = task_id


class ImagesPerDayExceeded(Exception):
    def __init__(self, used: int, limit: int):
        super().__init__(f"{used} > {limit}")
        self.used, self.limit = used, limit


class _Lost(Exception):
    """Rolls a mint back: another minter claimed one of its tasks first."""


class RequestState(Topic):
    # ---- recording ----

    def record_task(
        self,
        task: Mapping[str, Any],
        *,
        idempotency_key: str,
        window_start: datetime,
        images_per_day: int | None,
        day_start: datetime,
    ) -> tuple[dict[str, Any], bool]:
        """(the task, True) when recorded now; (the earlier task, False) when it already was.

        Raises `IdempotencyConflict` (same key, other body) and `ImagesPerDayExceeded` (nothing
        is written then). `images_per_day` None: the task uses no images (a refused prompt).
        """
        idem = rt.request_idempotency
        for _ in range(3):  # a concurrent request may claim an expired key between our two statements
            with self.engine.begin() as conn:
                claim = dialect_insert(conn, idem).values(
                    idempotency_key=idempotency_key, task_id=task["task_id"], request_hash=task["request_hash"], created_at=task["created_at"]
                )
                if conn.execute(claim.on_conflict_do_nothing().returning(idem.c.task_id)).first() is None:
                    earlier = conn.execute(sa.select(idem).where(idem.c.idempotency_key == idempotency_key)).one()
                    if earlier.created_at >= window_start:
                        if earlier.request_hash != task["request_hash"]:
                            raise IdempotencyConflict(earlier.task_id)
                        row = conn.execute(sa.select(rt.request_tasks).where(rt.request_tasks.c.task_id == earlier.task_id)).first()
                        if row is not None:
                            return dict(row._mapping), False
                    taken = conn.execute(
                        idem.update()
                        .where(idem.c.idempotency_key == idempotency_key, idem.c.task_id == earlier.task_id)
                        .values(task_id=task["task_id"], request_hash=task["request_hash"], created_at=task["created_at"])
                    )
                    if taken.rowcount != 1:
                        continue
                if images_per_day is not None:
                    used = add_usage(conn, task["key_id"], "day", day_start, task["num_images"])
                    if used > images_per_day:
                        raise ImagesPerDayExceeded(used, images_per_day)
                conn.execute(rt.request_tasks.insert().values(**task))
                return dict(task), True
        raise RuntimeError(f"could not claim idempotency key for task {task['task_id']}")

    def record_queued_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """task_id -> recorded | duplicate (already recorded, same body) | conflict (other body)."""
        if not tasks:
            return {}
        first: dict[str, Mapping[str, Any]] = {}
        outcome: dict[str, str] = {}
        for task in tasks:  # a redelivery may arrive in the same batch as the first delivery
            first.setdefault(task["task_id"], task)
        r = rt.request_tasks
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, r).on_conflict_do_nothing(index_elements=["task_id"]).returning(r.c.task_id)
            recorded = set(conn.execute(stmt, [dict(v) for v in first.values()]).scalars())
            others = [tid for tid in first if tid not in recorded]
            known = dict(rows_in_chunks(conn, others, lambda chunk: sa.select(r.c.task_id, r.c.request_hash).where(r.c.task_id.in_(chunk))))
        for task_id, task in first.items():
            if task_id in recorded:
                outcome[task_id] = "recorded"
            else:
                outcome[task_id] = "duplicate" if known.get(task_id) == task["request_hash"] else "conflict"
        return outcome

    def task(self, task_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(rt.request_tasks).where(rt.request_tasks.c.task_id == task_id)).first()
        return dict(row._mapping) if row else None

    def tasks(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        r = rt.request_tasks
        with self.engine.connect() as conn:
            return {row.task_id: dict(row._mapping) for row in rows_in_chunks(conn, list(task_ids), lambda c: sa.select(r).where(r.c.task_id.in_(c)))}

    # ---- minting ----

    def waiting_tasks(self, limit: int) -> list[dict[str, Any]]:
        """Recorded tasks without a batch, most urgent first (high, normal, low; then oldest)."""
        r = rt.request_tasks
        urgency = sa.case((r.c.priority == "high", 0), (r.c.priority == "normal", 1), else_=2)
        query = sa.select(r).where(r.c.status == "queued").order_by(urgency, r.c.created_at, r.c.task_id).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def mint_request_batch(
        self,
        *,
        task_ids: Sequence[str],
        items: Sequence[Mapping[str, Any]],
        priority: str,
        deadline: datetime | None,
        template_version: str,
        selection: Mapping[str, Any],
        now: datetime,
    ) -> str | None:
        """One `request` batch of these items, claiming these (queued) tasks; its id, or None
        when one of the tasks was claimed by someone else first (nothing is written then)."""
        r = rt.request_tasks
        for _ in range(100):
            try:
                with self.engine.begin() as conn:
                    new_id = insert_batch(
                        conn, kind="request", priority=priority, items=items, template_version=template_version,
                        selection=selection, now=now, deadline=deadline,
                    )  # fmt: skip
                    if new_id is None:
                        continue  # a concurrent minter took the id: nothing was written
                    claimed = conn.execute(
                        r.update().where(r.c.task_id.in_(list(task_ids)), r.c.status == "queued").values(status="minted", batch_id=new_id)
                    ).rowcount
                    if claimed != len(task_ids):
                        raise _Lost
                    return new_id
            except _Lost:
                return None
        raise RuntimeError("could not allocate a request batch id")

    def finish_task(self, task_id: str, *, status: str, reason: Any = None, finished_at: datetime, seconds_to_published: float | None = None) -> None:
        r = rt.request_tasks
        values = {"status": status, "finished_at": finished_at, "seconds_to_published": seconds_to_published}
        if reason is not None:
            values["reason"] = json.dumps(reason)
        with self.engine.begin() as conn:
            conn.execute(r.update().where(r.c.task_id == task_id).values(**values))

    def tasks_to_finish(self, limit: int = 500) -> list[dict[str, Any]]:
        """Minted tasks whose batch is done (published or failed), with the batch's status."""
        r, b = rt.request_tasks, t.batches
        query = (
            sa.select(r, b.c.status.label("batch_status"))
            .join(b, b.c.batch_id == r.c.batch_id)
            .where(r.c.status == "minted", b.c.status.in_(["published", "failed"]))
            .order_by(r.c.created_at, r.c.task_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def tasks_to_notify(self, limit: int = 500) -> list[dict[str, Any]]:
        """Finished tasks with a callback URL whose callback is not in the webhook outbox yet."""
        r = rt.request_tasks
        query = (
            sa.select(r)
            .where(r.c.status.in_(list(FINISHED)), r.c.callback_url.is_not(None), r.c.notified_at.is_(None))
            .order_by(r.c.finished_at, r.c.task_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def mark_notified(self, task_ids: Sequence[str], now: datetime) -> None:
        r = rt.request_tasks
        with self.engine.begin() as conn:
            for chunk in [list(task_ids)[i : i + 900] for i in range(0, len(task_ids), 900)]:
                conn.execute(r.update().where(r.c.task_id.in_(chunk)).values(notified_at=now))

    def carried_items(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """(sku, view) -> the item row (prompt, seed, size, steps, content hash) of its newest
        batch, for items that carry their own prompt (a request's images), not catalog SKUs."""
        i, b = t.batch_items, t.batches
        catalog = self.products(sku for sku, _ in keys)  # type: ignore[attr-defined]
        wanted = {key for key in keys if key[0] not in catalog}
        out: dict[tuple[str, str], dict[str, Any]] = {}
        columns = [c for c in i.columns if c.name != "batch_id"]
        with self.engine.connect() as conn:
            query = lambda chunk: (  # noqa: E731
                sa.select(*columns).join(b, b.c.batch_id == i.c.batch_id).where(i.c.sku.in_(chunk), i.c.prompt.is_not(None)).order_by(b.c.created_at)
            )
            for row in rows_in_chunks(conn, sorted({sku for sku, _ in wanted}), query):
                if (row.sku, row.view) in wanted:
                    out[(row.sku, row.view)] = dict(row._mapping)  # the newest batch wins
        return out

    # ---- what a task's status is computed from ----

    def task_facts(self, task_id: str) -> dict[str, Any] | None:
        """The task, its batch, its batch items, the image each shows (last attempt), final
        verdicts (review decisions applied), its latest run and when its batch was published."""
        task = self.task(task_id)
        if task is None:
            return None
        facts: dict[str, Any] = {"task": task, "batch": None, "items": [], "receipts": {}, "finals": {}, "run_id": None, "published_at": None}
        batch_id = task["batch_id"]
        if batch_id is None:
            return facts
        i, g, p = t.batch_items, t.generation_runs, t.batch_publications
        items_query = sa.select(i).where(i.c.batch_id == batch_id).order_by(i.c.sku, i.c.view)
        request = json.loads(task["request"])
        if task["kind"] == "generate":  # a batch holds other requests' items too
            items_query = items_query.where(i.c.sku.in_([item_sku(task_id, n) for n in range(task["num_images"])]))
        else:
            items_query = items_query.where(i.c.sku.in_(request["skus"]))
            if request["views"]:
                items_query = items_query.where(i.c.view.in_(request["views"]))
        shown = shown_images_select().subquery()
        with self.engine.connect() as conn:
            facts["batch"] = dict(conn.execute(sa.select(t.batches).where(t.batches.c.batch_id == batch_id)).one()._mapping)
            facts["items"] = [dict(row._mapping) for row in conn.execute(items_query)]
            keys = {(row["sku"], row["view"]) for row in facts["items"]}
            for row in conn.execute(sa.select(shown).where(shown.c.batch_id == batch_id).order_by(shown.c.attempt)):
                if (row.sku, row.view) in keys:
                    facts["receipts"][(row.sku, row.view)] = dict(row._mapping)  # the last attempt wins
            facts["run_id"] = conn.execute(
                sa.select(g.c.run_id).where(g.c.batch_id == batch_id).order_by(g.c.finished_at.desc()).limit(1)
            ).scalar()
            facts["published_at"] = conn.execute(sa.select(p.c.first_published_at).where(p.c.batch_id == batch_id)).scalar()
        if facts["published_at"] is None and facts["batch"]["status"] == "published":
            facts["published_at"] = facts["batch"]["updated_at"]  # before the completion sensor recorded it
        verdicts = [v for v in self.verdicts(batch_id) if (v["sku"], v["view"]) in keys]  # type: ignore[attr-defined]
        decisions = [d for d in self.review_decisions(batch_id=batch_id) if (d["sku"], d["view"]) in keys]  # type: ignore[attr-defined]
        facts["finals"] = {(f["sku"], f["view"]): f for f in review_rules.final_verdicts(verdicts, decisions)}
        return facts

    # ---- metrics ----

    def task_counts(self) -> list[dict[str, Any]]:
        """(status as clients see it, priority, source, tasks): finished ones as recorded, others
        from their batch's status."""
        r, b = rt.request_tasks, t.batches
        status = sa.case(
            (r.c.status.in_(list(FINISHED)), r.c.status),
            (b.c.status.in_(["running", "generated"]), "running"),
            (b.c.status == "published", "succeeded"),
            (b.c.status == "failed", "failed"),
            else_="queued",
        ).label("status")
        query = (
            sa.select(status, r.c.priority, r.c.source, sa.func.count().label("tasks"))
            .select_from(r.outerjoin(b, b.c.batch_id == r.c.batch_id))
            .group_by(status, r.c.priority, r.c.source)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def waiting_requests(self) -> dict[str, int]:
        """Recorded tasks that no batch holds yet, per priority."""
        r = rt.request_tasks
        query = sa.select(r.c.priority, sa.func.count()).where(r.c.status == "queued").group_by(r.c.priority)
        with self.engine.connect() as conn:
            return {priority: int(n) for priority, n in conn.execute(query)}

    def publish_latency_buckets(self, bounds: Sequence[float]) -> list[dict[str, Any]]:
        """Per priority: how many published tasks took <= each bound (seconds), their count and sum."""
        r = rt.request_tasks
        seconds = r.c.seconds_to_published
        columns = [sa.func.sum(sa.case((seconds <= bound, 1), else_=0)).label(f"le_{i}") for i, bound in enumerate(bounds)]
        query = (
            sa.select(r.c.priority, sa.func.count().label("count"), sa.func.sum(seconds).label("sum"), *columns)
            .where(seconds.is_not(None))
            .group_by(r.c.priority)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
