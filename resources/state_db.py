"""The project's tables behind a small, explicit API (SQLAlchemy Core, SQLite or PostgreSQL).

Every write is an upsert on a natural key, inside one transaction, so re-running anything
rewrites the same rows instead of adding new ones, and a killed run leaves either the old or the
new state, never half of a write.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from resources import state_tables as t
from zimage_assets.domain.batching import BatchItem, batch_id, batch_id_prefix

OPEN_BATCH_STATUSES = ("minted", "running", "generated")
_CHUNK = 5000

_ENGINES: dict[str, sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _engine(url: str) -> sa.Engine:
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"timeout": 60})

                @sa.event.listens_for(engine, "connect")
                def _sqlite_pragmas(dbapi_conn, _record):  # concurrent runs on one machine
                    cursor = dbapi_conn.cursor()
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                    cursor.close()
            else:
                engine = sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True)
            _ENGINES[url] = engine
        return _ENGINES[url]


def sqlalchemy_url(url: str) -> str:
    """Plain postgresql:// URLs use psycopg2 (installed with dagster-postgres): SQLAlchemy 2.1 would
    pick psycopg 3, which is not installed. An explicit driver (postgresql+psycopg://) is kept."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url[len(plain) :]
    return url


def dispose_engines() -> None:
    """Drop pooled connections (tests, or after a database restart)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


class StateDB(ConfigurableResource):
    """SKUs, batches, prompts, receipts, verdicts and current images."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:////data/zimage.sqlite or postgresql://...")

    # ---- plumbing ----

    @property
    def engine(self) -> sa.Engine:
        engine = _engine(self.url)
        if not getattr(engine, "_zimage_schema_ready", False):
            if self.url.startswith("sqlite:///"):
                from pathlib import Path

                Path(self.url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
            t.metadata.create_all(engine)
            engine._zimage_schema_ready = True  # type: ignore[attr-defined]
        return engine

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}: use SQLite or PostgreSQL")
        keys = [c.name for c in table.primary_key.columns]
        for start in range(0, len(rows), _CHUNK):
            stmt = insert(table)
            updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates) if updates else stmt.on_conflict_do_nothing()
            conn.execute(stmt, list(rows[start : start + _CHUNK]))

    # ---- catalog ----

    def record_ingest(
        self,
        *,
        ingest_id: str,
        source: str,
        fmt: str,
        rows_read: int,
        skus: Sequence[Mapping[str, Any]],
        rejects: Sequence[Mapping[str, Any]],
        now: datetime | None = None,
    ) -> dict[str, int]:
        """Upsert accepted SKUs and replace this ingest's rejects, in one transaction.

        Returns counts of new, changed (content hash moved) and unchanged SKUs.
        """
        now = now or utcnow()
        with self.engine.begin() as conn:
            known = self._existing_hashes(conn, [r["sku"] for r in skus])
            inserts, updates, counts = [], [], {"new": 0, "changed": 0, "unchanged": 0}
            for row in skus:
                stored = _sku_record(row, source, ingest_id)
                previous = known.get(row["sku"])
                if previous is None:
                    counts["new"] += 1
                    inserts.append({**stored, "first_seen": now, "last_changed": now})
                    known[row["sku"]] = (stored["content_hash"], stored["row_hash"])
                elif previous[0] != stored["content_hash"]:
                    counts["changed"] += 1
                    updates.append({**stored, "last_changed": now})
                else:
                    counts["unchanged"] += 1
                    if previous[1] != stored["row_hash"]:
                        updates.append(stored)  # non-visual edit: keep the row current, no regeneration
            for start in range(0, len(inserts), _CHUNK):
                conn.execute(t.skus.insert(), inserts[start : start + _CHUNK])
            for group in _group_by_columns(updates):
                cols = [c for c in group[0] if c != "sku"]
                stmt = t.skus.update().where(t.skus.c.sku == sa.bindparam("b_sku")).values({c: sa.bindparam(f"b_{c}") for c in cols})
                conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in group])
            conn.execute(t.catalog_rejects.delete().where(t.catalog_rejects.c.ingest_id == ingest_id))
            self._upsert(
                conn,
                t.catalog_rejects,
                [
                    {
                        "ingest_id": ingest_id,
                        "row_number": int(r["row"]),
                        "field": str(r["field"])[:128],
                        "sku": str(r["sku"]),
                        "value": str(r["value"]),
                        "reason": str(r["reason"]),
                    }
                    for r in rejects
                ],
            )
            self._upsert(
                conn,
                t.catalog_ingests,
                [
                    {
                        "ingest_id": ingest_id,
                        "source": source,
                        "format": fmt,
                        "rows_read": rows_read,
                        "accepted": len(skus),
                        "rejected_rows": len({int(r["row"]) for r in rejects}),
                        "new_skus": counts["new"],
                        "changed_skus": counts["changed"],
                        "unchanged_skus": counts["unchanged"],
                        "ingested_at": now,
                    }
                ],
            )
        return counts

    def _existing_hashes(self, conn: sa.Connection, sku_list: list[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        cols = (t.skus.c.sku, t.skus.c.content_hash, t.skus.c.row_hash)
        if len(sku_list) > 50_000:  # a whole-catalog ingest: one scan beats many IN lists
            wanted = set(sku_list)
            for sku, content, row in conn.execute(sa.select(*cols)):
                if sku in wanted:
                    found[sku] = (content, row)
            return found
        for start in range(0, len(sku_list), 900):
            chunk = sku_list[start : start + 900]
            for sku, content, row in conn.execute(sa.select(*cols).where(t.skus.c.sku.in_(chunk))):
                found[sku] = (content, row)
        return found

    def rejects(self, ingest_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.catalog_rejects).where(t.catalog_rejects.c.ingest_id == ingest_id).order_by(t.catalog_rejects.c.row_number)
            )
            return [dict(r._mapping) for r in rows]

    def count_skus(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t.skus)).scalar_one()

    def products(self, sku_list: Iterable[str]) -> dict[str, dict[str, Any]]:
        sku_list = list(dict.fromkeys(sku_list))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(sku_list), 900):
                chunk = sku_list[start : start + 900]
                for row in conn.execute(sa.select(t.skus).where(t.skus.c.sku.in_(chunk))):
                    record = dict(row._mapping)
                    record["attributes"] = json.loads(record["attributes"] or "{}")
                    out[record["sku"]] = record
        return out

    def select_skus(
        self,
        *,
        skus: Sequence[str] = (),
        category: str = "",
        without_current_image: bool = False,
        limit: int | None = None,
    ) -> list[tuple[str, str]]:
        """(sku, category) of the chosen SKUs, oldest first; SKUs already in an open batch are skipped."""
        open_items = (
            sa.select(t.batch_items.c.sku)
            .join(t.batches, t.batches.c.batch_id == t.batch_items.c.batch_id)
            .where(t.batches.c.status.in_(OPEN_BATCH_STATUSES))
        )
        query = sa.select(t.skus.c.sku, t.skus.c.category).where(t.skus.c.sku.not_in(open_items))
        if skus:
            query = query.where(t.skus.c.sku.in_(list(skus)))
        if category:
            prefix = category.strip("/")
            query = query.where(sa.or_(t.skus.c.category == prefix, t.skus.c.category.like(_like_prefix(prefix), escape="\\")))
        if without_current_image:
            query = query.where(~sa.exists().where(t.sku_images.c.sku == t.skus.c.sku))
        query = query.order_by(t.skus.c.first_seen, t.skus.c.sku)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [(r.sku, r.category) for r in conn.execute(query)]

    # ---- batches ----

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
    ) -> str:
        """Create one immutable batch and its items; returns the new batch id."""
        if not items:
            raise ValueError("a batch needs at least one item")
        now = now or utcnow()
        prefix = batch_id_prefix(kind, now)
        hashes = {sku: p["content_hash"] for sku, p in self.products([i.sku for i in items]).items()}
        missing = sorted({i.sku for i in items} - hashes.keys())
        if missing:
            raise ValueError(f"unknown SKU(s) {missing[:5]}: ingest the catalog first")
        for _ in range(100):  # concurrent minters race for a sequence number: retry on conflict
            with self.engine.begin() as conn:
                taken = conn.execute(
                    sa.select(t.batches.c.batch_id).where(t.batches.c.batch_id.like(_like_prefix(prefix, "-"), escape="\\"))
                ).scalars()
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
                            sku_count=len({i.sku for i in items}),
                            item_count=len(items),
                            updated_at=now,
                        )
                    )
                except sa.exc.IntegrityError:
                    continue
                conn.execute(
                    t.batch_items.insert(),
                    [{"batch_id": new_id, "sku": i.sku, "view": i.view, "content_hash": hashes[i.sku]} for i in items],
                )
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

    def set_batch_status(self, batch_id_: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.batches.update().where(t.batches.c.batch_id == batch_id_).values(status=status, updated_at=utcnow()))

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

    # ---- images ----

    def save_receipts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, t.image_receipts, [dict(r) for r in rows])

    def receipts(self, batch_id_: str, latest_only: bool = True) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(t.image_receipts)
                    .where(t.image_receipts.c.batch_id == batch_id_)
                    .order_by(t.image_receipts.c.sku, t.image_receipts.c.view, t.image_receipts.c.attempt)
                )
            ]
        if not latest_only:
            return rows
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            latest[(row["sku"], row["view"])] = row
        return list(latest.values())

    def save_verdicts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            self._upsert(
                conn,
                t.verdicts,
                [
                    {
                        **r,
                        "reasons": r["reasons"] if isinstance(r["reasons"], str) else json.dumps(list(r["reasons"])),
                        "scores": r["scores"] if isinstance(r["scores"], str) else json.dumps(dict(r["scores"]), default=float),
                    }
                    for r in rows
                ],
            )

    def verdicts(self, batch_id_: str, stage: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.verdicts).where(t.verdicts.c.batch_id == batch_id_)
        if stage:
            query = query.where(t.verdicts.c.stage == stage)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(query.order_by(t.verdicts.c.sku, t.verdicts.c.view, t.verdicts.c.attempt)):
                row = dict(r._mapping)
                row["reasons"] = json.loads(row["reasons"])
                row["scores"] = json.loads(row["scores"])
                out.append(row)
            return out

    def publish_current(self, rows: Sequence[Mapping[str, Any]], *, batch_created_at: datetime) -> int:
        """Make these images current, unless a newer batch already published that SKU x view.

        Returns how many rows were left alone because a newer image is current (re-publishing an
        old batch never rolls a SKU back).
        """
        skus = list({r["sku"] for r in rows})
        with self.engine.begin() as conn:
            newer: set[tuple[str, str]] = set()
            for start in range(0, len(skus), 900):
                query = (
                    sa.select(t.sku_images.c.sku, t.sku_images.c.view)
                    .join(t.batches, t.batches.c.batch_id == t.sku_images.c.batch_id)
                    .where(t.sku_images.c.sku.in_(skus[start : start + 900]))
                    .where(t.batches.c.created_at > batch_created_at)
                )
                newer.update((r.sku, r.view) for r in conn.execute(query))
            fresh = [dict(r) for r in rows if (r["sku"], r["view"]) not in newer]
            self._upsert(conn, t.sku_images, fresh)
        return len(rows) - len(fresh)

    def current_images(self, sku_list: Sequence[str] | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.sku_images).order_by(t.sku_images.c.sku, t.sku_images.c.view)
        if sku_list is not None:
            query = query.where(t.sku_images.c.sku.in_(list(sku_list)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def table_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in t.metadata.sorted_tables
            }

    # ---- new SKUs, SLA, monthly refresh, webhooks, retention ----

    def catalog_fingerprint(self) -> str:
        """Moves whenever an ingest is recorded: the only way SKUs become new or changed."""
        ingests = t.catalog_ingests
        with self.engine.connect() as conn:
            count, latest = conn.execute(sa.select(sa.func.count(), sa.func.max(ingests.c.ingested_at))).one()
        return f"{count}:{latest.isoformat() if latest else '-'}"

    def skus_needing_images(self, limit: int) -> list[dict[str, Any]]:
        """SKUs whose current content has neither a published image nor a batch item, oldest change first.

        Keyed by content hash, so each version of a SKU is minted once: a SKU whose batch is still
        open is not picked again, and a SKU that changes while its batch runs is picked for its new
        content. `has_image` tells a changed SKU (it has an older image) from a new one.
        """
        s, img, items = t.skus, t.sku_images, t.batch_items
        up_to_date = sa.exists().where(img.c.sku == s.c.sku, img.c.content_hash == s.c.content_hash)
        minted = sa.exists().where(items.c.sku == s.c.sku, items.c.content_hash == s.c.content_hash)
        has_image = sa.exists().where(img.c.sku == s.c.sku)
        query = (
            sa.select(s.c.sku, s.c.category, s.c.first_seen, s.c.last_changed, sa.case((has_image, 1), else_=0).label("has_image"))
            .where(~up_to_date, ~minted)
            .order_by(s.c.last_changed, s.c.sku)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [{**dict(r._mapping), "has_image": bool(r.has_image)} for r in conn.execute(query)]

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

    def mark_batch_failed(self, batch_id_: str) -> bool:
        """An open batch whose run failed becomes `failed` (a published batch stays published)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                t.batches.update()
                .where(t.batches.c.batch_id == batch_id_, t.batches.c.status.in_(OPEN_BATCH_STATUSES))
                .values(status="failed", updated_at=utcnow())
            )
            return result.rowcount > 0

    def sla_backlog(self, due_before: datetime, sample: int = 10) -> dict[str, Any]:
        """SKUs without a published image of their current content; overdue = changed before `due_before`."""
        s, img = t.skus, t.sku_images
        up_to_date = sa.exists().where(img.c.sku == s.c.sku, img.c.content_hash == s.c.content_hash)
        has_image = sa.exists().where(img.c.sku == s.c.sku)
        pending = (
            sa.select(s.c.sku, s.c.last_changed, sa.case((has_image, 1), else_=0).label("has_image")).where(~up_to_date).subquery()
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
        s, img = t.skus, t.sku_images
        up_to_date = sa.exists().where(img.c.sku == s.c.sku, img.c.content_hash == s.c.content_hash)
        has_image = sa.exists().where(img.c.sku == s.c.sku)
        per_sku = sa.select(
            s.c.category, sa.case((up_to_date, "current"), (has_image, "stale"), else_="missing").label("state")
        ).subquery()
        query = sa.select(per_sku.c.category, per_sku.c.state, sa.func.count().label("skus")).group_by(per_sku.c.category, per_sku.c.state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

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
            "model_changed": sa.or_(img.c.model_id != model_id, img.c.revision != revision),
            "too_old": img.c.published_at < published_before if published_before is not None else sa.false(),
        }
        in_open_batch = (
            sa.exists()
            .where(items.c.sku == s.c.sku, items.c.batch_id == b.c.batch_id, b.c.status.in_(OPEN_BATCH_STATUSES))
        )
        in_this_refresh = sa.exists().where(
            items.c.sku == s.c.sku, items.c.batch_id.like(_like_prefix(skip_batch_prefix, "-"), escape="\\")
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
            self._upsert(
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
            self._upsert(
                conn, t.retired_batches, [{"batch_id": b["batch_id"], "retired_at": now, "batch_status": b["status"]} for b in batches_]
            )

    # ---- metrics and cost ----

    def save_generation_run(self, row: Mapping[str, Any]) -> None:
        """One row per product_images run (upsert on run_id: a retried write changes nothing)."""
        record = dict(row)
        if not isinstance(record.get("latency_counts"), str):
            record["latency_counts"] = json.dumps(list(record["latency_counts"]))
        with self.engine.begin() as conn:
            self._upsert(conn, t.generation_runs, [record])

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


    # ---- safety and quality gates: fixes, final verdicts, review ----

    def save_fixes(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, t.image_fixes, [{**r, "fixes": json.dumps(list(r["fixes"]))} for r in rows])

    def fixes(self, batch_id_: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        """(sku, view, attempt) -> the fixed image of that attempt."""
        with self.engine.connect() as conn:
            out = {}
            for r in conn.execute(sa.select(t.image_fixes).where(t.image_fixes.c.batch_id == batch_id_)):
                row = dict(r._mapping)
                row["fixes"] = json.loads(row["fixes"])
                out[(row["sku"], row["view"], row["attempt"])] = row
            return out

    def final_verdicts(self, batch_id_: str) -> list[dict[str, Any]]:
        """One row per item of the batch: its last image verdict (or its prompt BLOCK), with the
        latest review decision on that attempt applied.

        Keys: sku, view, attempt, verdict (effective), gate_verdict, reasons, scores, decision,
        stage (prompt when no image was made).
        """
        rows = self.verdicts(batch_id_)
        decisions: dict[tuple[str, str, int], dict[str, Any]] = {}
        for d in self.review_decisions(batch_id=batch_id_):  # oldest first: the latest wins
            decisions[(d["sku"], d["view"], d["attempt"])] = d
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:  # ordered by attempt: the last image verdict wins
            key = (row["sku"], row["view"])
            if row["stage"] == "prompt":
                if row["verdict"] == "BLOCK" and key not in items:
                    items[key] = {**row, "gate_verdict": row["verdict"], "decision": None}
                continue
            items[key] = {**row, "gate_verdict": row["verdict"], "decision": None}
        for key, item in items.items():
            if item["stage"] != "image":
                continue
            decision = decisions.get((key[0], key[1], item["attempt"]))
            if decision is not None:
                item["decision"] = decision["decision"]
                item["verdict"] = "PASS" if decision["decision"] == "approve" else "BLOCK"
        return [items[k] for k in sorted(items)]

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
        """
        v, b = t.verdicts, t.batches
        latest_batch = (
            sa.select(v.c.sku, v.c.view, sa.func.max(b.c.created_at).label("created_at"))
            .join(b, b.c.batch_id == v.c.batch_id)
            .where(v.c.stage == "image")
            .group_by(v.c.sku, v.c.view)
            .subquery()
        )
        query = (
            sa.select(v.c.batch_id, v.c.sku, v.c.view, v.c.attempt, v.c.verdict, v.c.reasons, v.c.scores, b.c.created_at)
            .join(b, b.c.batch_id == v.c.batch_id)
            .join(latest_batch, (latest_batch.c.sku == v.c.sku) & (latest_batch.c.view == v.c.view) & (latest_batch.c.created_at == b.c.created_at))
            .where(v.c.stage == "image")
            .order_by(b.c.created_at.desc(), v.c.batch_id, v.c.sku, v.c.view, v.c.attempt)
        )
        with self.engine.connect() as conn:
            last: dict[tuple[str, str, str], dict[str, Any]] = {}
            for r in conn.execute(query):
                last[(r.batch_id, r.sku, r.view)] = dict(r._mapping)  # highest attempt wins
            decided = {
                (r.batch_id, r.sku, r.view, r.attempt)
                for r in conn.execute(sa.select(t.review_decisions.c.batch_id, t.review_decisions.c.sku, t.review_decisions.c.view, t.review_decisions.c.attempt))
            }
            out = []
            for (batch_id_, sku, view), row in last.items():
                if row["verdict"] != "REVIEW" or (batch_id_, sku, view, row["attempt"]) in decided:
                    continue
                receipt = conn.execute(
                    sa.select(t.image_receipts.c.storage_key).where(
                        (t.image_receipts.c.batch_id == batch_id_) & (t.image_receipts.c.sku == sku)
                        & (t.image_receipts.c.view == view) & (t.image_receipts.c.attempt == row["attempt"])
                    )
                ).scalar()
                fixed = conn.execute(
                    sa.select(t.image_fixes.c.storage_key).where(
                        (t.image_fixes.c.batch_id == batch_id_) & (t.image_fixes.c.sku == sku)
                        & (t.image_fixes.c.view == view) & (t.image_fixes.c.attempt == row["attempt"])
                    )
                ).scalar()
                out.append(
                    {
                        "batch_id": batch_id_,
                        "sku": sku,
                        "view": view,
                        "attempt": row["attempt"],
                        "reasons": json.loads(row["reasons"]),
                        "scores": json.loads(row["scores"]),
                        "storage_key": fixed or receipt,
                        "batch_created_at": row["created_at"],
                    }
                )
                if limit and len(out) >= limit:
                    break
            return out

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
        keys = list(dict.fromkeys(keys))
        skus = list({sku for sku, _ in keys})
        out = {key: 0 for key in keys}
        with self.engine.connect() as conn:
            for start in range(0, len(skus), 900):
                query = (
                    sa.select(t.review_decisions.c.sku, t.review_decisions.c.view, sa.func.max(t.review_decisions.c.attempt))
                    .where(t.review_decisions.c.decision == "regenerate")
                    .where(t.review_decisions.c.sku.in_(skus[start : start + 900]))
                    .group_by(t.review_decisions.c.sku, t.review_decisions.c.view)
                )
                for sku, view, attempt in conn.execute(query):
                    if (sku, view) in out:
                        out[(sku, view)] = int(attempt) + 1
        return out


def _sku_record(row: Mapping[str, Any], source: str, ingest_id: str) -> dict[str, Any]:
    attributes = row["attributes"] if isinstance(row["attributes"], str) else json.dumps(row["attributes"], sort_keys=True, ensure_ascii=False)
    record = {
        "sku": row["sku"],
        "title": row["title"],
        "product_name": row["product_name"],
        "category": row["category"],
        "attributes": attributes,
        "description": row["description"],
        "parent_sku": row["parent_sku"],
        "kind": row["kind"],
        "note": row["note"],
        "content_hash": row["content_hash"],
    }
    record["row_hash"] = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    record["source"] = source
    record["last_ingest_id"] = ingest_id
    return record


def _group_by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def _like_prefix(prefix: str, separator: str = "/") -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}{separator}%"
