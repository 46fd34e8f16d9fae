"""Catalog: the SKUs ever ingested, each ingest's rejects, and choosing SKUs to make images of.

A SKU's `content_hash` covers what changes its picture; `last_changed` moves only when it does.
`row_hash` covers every stored field, so a non-visual edit keeps the row current without asking
for a new image.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import tables as t
from resources.state_db.engine import (
    OPEN_BATCH_STATUSES,
    UPSERT_CHUNK,
    Topic,
    chunks,
    has_any_image,
    has_up_to_date_image,
    like_prefix,
    rows_in_chunks,
    upsert,
    utcnow,
)


class CatalogState(Topic):
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
            photos = {}
            for row in skus:
                stored = _sku_record(row, source, ingest_id)
                photos[row["sku"]] = row.get("photos") or "[]"
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
            self._replace_sku_photos(conn, [{"sku": r["sku"], "photos": photos[r["sku"]]} for r in inserts + updates], replaced=[r["sku"] for r in updates])
            for chunk in chunks(inserts, UPSERT_CHUNK):
                conn.execute(t.skus.insert(), list(chunk))
            for group in _group_by_columns(updates):
                cols = [c for c in group[0] if c != "sku"]
                stmt = t.skus.update().where(t.skus.c.sku == sa.bindparam("b_sku")).values({c: sa.bindparam(f"b_{c}") for c in cols})
                conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in group])
            conn.execute(t.catalog_rejects.delete().where(t.catalog_rejects.c.ingest_id == ingest_id))
            upsert(
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
            upsert(
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
        for sku, content, row in rows_in_chunks(conn, sku_list, lambda chunk: sa.select(*cols).where(t.skus.c.sku.in_(chunk))):
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

    def catalog_fingerprint(self) -> str:
        """Moves whenever an ingest is recorded: the only way SKUs become new or changed."""
        ingests = t.catalog_ingests
        with self.engine.connect() as conn:
            count, latest = conn.execute(sa.select(sa.func.count(), sa.func.max(ingests.c.ingested_at))).one()
        return f"{count}:{latest.isoformat() if latest else '-'}"

    def unknown_skus(self, sku_list: Iterable[str]) -> list[str]:
        """The SKUs of `sku_list` that are not in the catalog, in the order given."""
        sku_list = list(dict.fromkeys(sku_list))
        with self.engine.connect() as conn:
            known = {r.sku for r in rows_in_chunks(conn, sku_list, lambda chunk: sa.select(t.skus.c.sku).where(t.skus.c.sku.in_(chunk)))}
        return [s for s in sku_list if s not in known]

    def products(self, sku_list: Iterable[str]) -> dict[str, dict[str, Any]]:
        sku_list = list(dict.fromkeys(sku_list))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in rows_in_chunks(conn, sku_list, lambda chunk: sa.select(t.skus).where(t.skus.c.sku.in_(chunk))):
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
        categories: Sequence[str] = (),
    ) -> list[tuple[str, str]]:
        """(sku, category) of the chosen SKUs, oldest first; SKUs already in an open batch are skipped.

        `category` / `categories`: SKUs under any of these category paths."""
        open_items = (
            sa.select(t.batch_items.c.sku)
            .join(t.batches, t.batches.c.batch_id == t.batch_items.c.batch_id)
            .where(t.batches.c.status.in_(OPEN_BATCH_STATUSES))
        )
        query = sa.select(t.skus.c.sku, t.skus.c.category).where(t.skus.c.sku.not_in(open_items))
        if skus:
            query = query.where(t.skus.c.sku.in_(list(skus)))
        prefixes = [c.strip().strip("/") for c in (category, *categories) if c.strip().strip("/")]
        if prefixes:
            query = query.where(
                sa.or_(*[sa.or_(t.skus.c.category == p, t.skus.c.category.like(like_prefix(p), escape="\\")) for p in prefixes])
            )
        if without_current_image:
            query = query.where(~has_any_image())
        query = query.order_by(t.skus.c.first_seen, t.skus.c.sku)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [(r.sku, r.category) for r in conn.execute(query)]

    def skus_needing_images(self, limit: int) -> list[dict[str, Any]]:
        """SKUs whose current content has neither a published image nor a batch item, oldest change first.

        Keyed by content hash, so each version of a SKU is minted once: a SKU whose batch is still
        open is not picked again, and a SKU that changes while its batch runs is picked for its new
        content. A SKU whose content returns to an earlier version is picked again (its old batch
        was minted before the change back). `has_image` tells a changed SKU from a new one.
        """
        s, items, b = t.skus, t.batch_items, t.batches
        # A batch item counts for this version if its batch is still open, or was minted after the
        # SKU last changed: a SKU that goes back to earlier content (Red -> Crimson -> Red) is
        # minted again, and its new batch reuses the earlier image through the result cache.
        minted = sa.exists().where(
            items.c.sku == s.c.sku,
            items.c.content_hash == s.c.content_hash,
            b.c.batch_id == items.c.batch_id,
            sa.or_(b.c.status.in_(OPEN_BATCH_STATUSES), b.c.created_at >= s.c.last_changed),
        )
        query = (
            sa.select(s.c.sku, s.c.category, s.c.first_seen, s.c.last_changed, sa.case((has_any_image(), 1), else_=0).label("has_image"))
            .where(~has_up_to_date_image(), ~minted)
            .order_by(s.c.last_changed, s.c.sku)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [{**dict(r._mapping), "has_image": bool(r.has_image)} for r in conn.execute(query)]


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
    hashed = {**record, "photos": row["photos"]} if row.get("photos") not in (None, "", "[]") else record  # kept in sku_photos
    record["row_hash"] = hashlib.sha256(json.dumps(hashed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    record["source"] = source
    record["last_ingest_id"] = ingest_id
    return record


def _group_by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())
