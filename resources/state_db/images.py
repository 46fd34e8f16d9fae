"""Images: receipts of every attempt, the gates' verdicts, compliance fixes, and current images.

"Which image does this attempt show / publish" has one answer, `shown_images_select()`: the
compliance-fixed image when a fix was recorded for (batch, sku, view, attempt), else the image
of the receipt. `shown_images(batch_id)` and the review queue both read it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import tables as t
from resources.state_db.engine import Topic, rows_in_chunks, same_attempt, upsert
from zimage_assets.domain.review import rows_to_make_current

# The receipt's columns that a compliance fix replaces with its own.
FIXED_COLUMNS = ("storage_key", "sha256", "width", "height")


def shown_images_select() -> sa.Select:
    """One row per receipt (LEFT JOIN its fix): the receipt's columns, with the fixed image's
    FIXED_COLUMNS when a fix was recorded, plus `fixed` (a fix exists) and `fixes` (its JSON list)."""
    r, f = t.image_receipts, t.image_fixes
    columns = [sa.func.coalesce(f.c[c.name], c).label(c.name) if c.name in FIXED_COLUMNS else c for c in r.columns]
    return sa.select(*columns, f.c.batch_id.is_not(None).label("fixed"), f.c.fixes).select_from(r.outerjoin(f, same_attempt(f, r)))


class ImageState(Topic):
    def save_receipts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, t.image_receipts, [dict(r) for r in rows])

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
            upsert(
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

    def save_fixes(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, t.image_fixes, [{**r, "fixes": json.dumps(list(r["fixes"]))} for r in rows])

    def fixes(self, batch_id_: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        """(sku, view, attempt) -> the fixed image of that attempt."""
        with self.engine.connect() as conn:
            out = {}
            for r in conn.execute(sa.select(t.image_fixes).where(t.image_fixes.c.batch_id == batch_id_)):
                row = dict(r._mapping)
                row["fixes"] = json.loads(row["fixes"])
                out[(row["sku"], row["view"], row["attempt"])] = row
            return out

    def shown_images(self, batch_id_: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        """(sku, view, attempt) -> the image that attempt shows and publishes, for every receipt
        of the batch: the receipt's fields, with storage_key, sha256, width and height of the
        compliance-fixed image when one was recorded; `fixed` (bool) and `fixes` (list) say so."""
        r = t.image_receipts
        query = shown_images_select().where(r.c.batch_id == batch_id_).order_by(r.c.sku, r.c.view, r.c.attempt)
        with self.engine.connect() as conn:
            out = {}
            for row in conn.execute(query):
                image = dict(row._mapping)
                image["fixed"] = bool(image["fixed"])
                image["fixes"] = json.loads(image["fixes"]) if image["fixes"] is not None else []
                out[(image["sku"], image["view"], image["attempt"])] = image
            return out

    def publish_current(self, rows: Sequence[Mapping[str, Any]], *, batch_created_at: datetime) -> int:
        """Make these images current, unless a newer batch already published that SKU x view.

        Returns how many rows were left alone because a newer image is current (re-publishing an
        old batch never rolls a SKU back: `rows_to_make_current` decides).
        """
        img, b = t.sku_images, t.batches

        def newer_in(chunk: Sequence[str]) -> sa.Select:
            return (
                sa.select(img.c.sku, img.c.view)
                .join(b, b.c.batch_id == img.c.batch_id)
                .where(img.c.sku.in_(chunk))
                .where(b.c.created_at > batch_created_at)
            )

        skus = list({r["sku"] for r in rows})
        with self.engine.begin() as conn:
            newer = {(r.sku, r.view) for r in rows_in_chunks(conn, skus, newer_in)}
            fresh = rows_to_make_current(rows, newer)
            upsert(conn, t.sku_images, fresh)
        return len(rows) - len(fresh)

    def current_images(self, sku_list: Sequence[str] | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.sku_images).order_by(t.sku_images.c.sku, t.sku_images.c.view)
        if sku_list is not None:
            query = query.where(t.sku_images.c.sku.in_(list(sku_list)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
