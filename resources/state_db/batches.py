"""Batches: minting an immutable batch of (SKU, view) items, its status, and its items' prompts.

A batch never changes once minted: its items are fixed, only its status moves
(minted -> running -> generated -> published, or failed). One run generates a batch at a time
(`claim_batch`); a failed run fails only a batch it holds. Prompts are written onto the items by
product_prompts (deterministic, so a re-run rewrites the same values).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import tables as t
from resources.state_db.engine import OPEN_BATCH_STATUSES, Topic, like_prefix, utcnow
from zimage_assets.domain.batching import BatchItem, batch_id, batch_id_prefix


def insert_batch(
    conn: sa.Connection,
    *,
    kind: str,
    priority: str,
    items: Sequence[Mapping[str, Any]],
    template_version: str,
    selection: Mapping[str, Any],
    now: datetime,
    deadline: datetime | None,
) -> str | None:
    """Insert a batch under the next free id of its prefix, and its item rows, in `conn`'s
    transaction. None when a concurrent minter took that id first: the caller rolls back and
    retries in a new transaction."""
    prefix = batch_id_prefix(kind, now)
    taken = conn.execute(sa.select(t.batches.c.batch_id).where(t.batches.c.batch_id.like(like_prefix(prefix, "-"), escape="\\"))).scalars()
    new_id = batch_id(prefix, max((int(b.rsplit("-", 1)[1]) for b in taken), default=0) + 1)
    try:
        conn.execute(
            t.batches.insert().values(
                batch_id=new_id,
                kind=kind,
                priority=priority,
                status="minted",
                created_at=now,
                deadline=deadline,
                selection=json.dumps(dict(selection), sort_keys=True, default=str),
                template_version=template_version,
                sku_count=len({i["sku"] for i in items}),
                item_count=len(items),
                updated_at=now,
            )
        )
    except sa.exc.IntegrityError:
        return None
    conn.execute(t.batch_items.insert(), [{"batch_id": new_id, **i} for i in items])
    return new_id


class BatchState(Topic):
    def mint_batch(
        self,
        *,
        kind: str,
        priority: str,
        items: Sequence[BatchItem],
        template_version: str,
        selection: Mapping[str, Any],
        now: datetime | None = None,
        deadline: datetime | None = None,
        carried: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> str:
        """Create one immutable batch and its items; returns the new batch id.

        `carried`: item rows of items that are no catalog SKUs (a request's images), copied with
        their own prompt, seed, size and steps."""
        if not items:
            raise ValueError("a batch needs at least one item")
        now = now or utcnow()
        prefix = batch_id_prefix(kind, now)
        carried = carried or {}
        hashes = {sku: p["content_hash"] for sku, p in self.products([i.sku for i in items if (i.sku, i.view) not in carried]).items()}  # type: ignore[attr-defined]
        missing = sorted({i.sku for i in items if (i.sku, i.view) not in carried} - hashes.keys())
        if missing:
            raise ValueError(f"unknown SKU(s) {missing[:5]}: ingest the catalog first")
        rows = [dict(carried[(i.sku, i.view)]) if (i.sku, i.view) in carried else {"sku": i.sku, "view": i.view, "content_hash": hashes[i.sku]} for i in items]
        for _ in range(100):  # concurrent minters race for a sequence number: retry on conflict
            with self.engine.begin() as conn:
                new_id = insert_batch(
                    conn, kind=kind, priority=priority, items=rows, template_version=template_version, selection=selection, now=now, deadline=deadline
                )
                if new_id is not None:
                    return new_id
        raise RuntimeError(f"could not allocate a batch id under {prefix!r}")

    def batch(self, batch_id_: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.batches).where(t.batches.c.batch_id == batch_id_)).first()
            return dict(row._mapping) if row else None

    def batches(self, *, statuses: Sequence[str] = (), limit: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.batches).order_by(t.batches.c.created_at, t.batches.c.batch_id)
        if statuses:
            query = query.where(t.batches.c.status.in_(list(statuses)))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def minted_batches(self, kinds: Sequence[str], limit: int | None = None) -> list[dict[str, Any]]:
        """Minted batches of these kinds, most urgent first: high, normal, low priority; then oldest."""
        urgency = sa.case((t.batches.c.priority == "high", 0), (t.batches.c.priority == "normal", 1), else_=2)
        query = (
            sa.select(t.batches)
            .where(t.batches.c.status == "minted", t.batches.c.kind.in_(list(kinds)))
            .order_by(urgency, t.batches.c.created_at, t.batches.c.batch_id)
        )
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def set_batch_status(self, batch_id_: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.batches.update().where(t.batches.c.batch_id == batch_id_).values(status=status, updated_at=utcnow()))

    def mark_batch_failed(self, batch_id_: str, run_id: str | None = None, holder_alive: Callable[[str], bool] | None = None) -> bool:
        """An open batch whose run failed becomes `failed` (a published batch stays published).

        With `run_id`: not while another run that is still alive (`holder_alive`; without it, any
        other run) holds the batch's claim: a run refused because another run is generating the
        batch does not fail it."""
        if run_id is not None:
            holder = self.batch_claim(batch_id_)
            if holder not in (None, run_id) and (holder_alive is None or holder_alive(holder)):
                return False
        with self.engine.begin() as conn:
            query = t.batches.update().where(t.batches.c.batch_id == batch_id_, t.batches.c.status.in_(OPEN_BATCH_STATUSES))
            return conn.execute(query.values(status="failed", updated_at=utcnow())).rowcount > 0

    def batch_claim(self, batch_id_: str) -> str | None:
        """The run that last claimed the batch (it may have ended since), or None."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(t.batch_claims.c.run_id).where(t.batch_claims.c.batch_id == batch_id_)).scalar()

    def claim_batch(self, batch_id_: str, run_id: str, holder_alive: Callable[[str], bool]) -> str | None:
        """Make `run_id` the run generating this batch; None when it is, else the live run that is.

        A claim held by a run that `holder_alive` says has ended (or died) is taken over. The swap
        is a compare-and-set on the old holder, so of two runs racing for a batch exactly one wins."""
        claims = t.batch_claims
        for _ in range(20):
            holder = self.batch_claim(batch_id_)
            if holder == run_id:
                return None
            if holder is not None and holder_alive(holder):
                return holder
            with self.engine.begin() as conn:
                if holder is None:
                    try:
                        conn.execute(claims.insert().values(batch_id=batch_id_, run_id=run_id, claimed_at=utcnow()))
                        return None
                    except sa.exc.IntegrityError:
                        continue  # another run claimed it first: look again
                swapped = conn.execute(
                    claims.update().where(claims.c.batch_id == batch_id_, claims.c.run_id == holder).values(run_id=run_id, claimed_at=utcnow())
                )
                if swapped.rowcount == 1:
                    return None
        raise RuntimeError(f"could not claim batch {batch_id_!r}: its claim keeps changing")

    def batch_items(self, batch_id_: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.batch_items).where(t.batch_items.c.batch_id == batch_id_).order_by(t.batch_items.c.sku, t.batch_items.c.view)
            )
            return [dict(r._mapping) for r in rows]

    def save_prompts(self, batch_id_: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            stmt = (
                t.batch_items.update()
                .where(t.batch_items.c.batch_id == batch_id_)
                .where(t.batch_items.c.sku == sa.bindparam("b_sku"))
                .where(t.batch_items.c.view == sa.bindparam("b_view"))
                .values(
                    prompt=sa.bindparam("b_prompt"),
                    negative_prompt=sa.bindparam("b_negative_prompt"),
                    seed=sa.bindparam("b_seed"),
                    width=sa.bindparam("b_width"),
                    height=sa.bindparam("b_height"),
                )
            )
            conn.execute(stmt, [{f"b_{k}": r[k] for k in ("sku", "view", "prompt", "negative_prompt", "seed", "width", "height")} for r in rows])
