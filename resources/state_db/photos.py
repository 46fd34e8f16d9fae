"""Photos: each SKU's photo references, fetch records, cut-outs, item sources and image provenance.

- `sku_photos`: the catalog's ordered references per SKU, rewritten in the ingest's transaction
  whenever the SKU's row is written (new or changed).
- `source_photos`: one record per SKU x reference (sha256, size, status, reason); the latest
  good record of a reference lets the fetcher ask "changed since?" instead of fetching again.
- `photo_cutouts`: one cut-out per photo content x segmentation method and version.
- `item_sources`: per batch item, the mode it gets and the photo it uses.
- `image_provenance`: per image attempt, how it was made (mode, generated, source, mask, placement).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from resources.state_db import photo_tables as pt
from resources.state_db.engine import Topic, chunks, rows_in_chunks, upsert

_JSON_COLUMNS = {"photo_cutouts": ("box", "touches", "notes"), "image_provenance": ("placement",)}


def _dump(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in _JSON_COLUMNS.get(table.name, ()):
        if not isinstance(out.get(name), str):
            out[name] = json.dumps(out.get(name), sort_keys=True)
    return out


def _load(table: sa.Table, row: sa.Row) -> dict[str, Any]:
    out = dict(row._mapping)
    for name in _JSON_COLUMNS.get(table.name, ()):
        out[name] = json.loads(out[name]) if out[name] else None
    return out


class PhotoState(Topic):
    # ---- the catalog's references (written by record_ingest, in its transaction) ----

    def _replace_sku_photos(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]], *, replaced: Sequence[str]) -> None:
        """Write the photo references of these SKU rows (each with `sku` and `photos`: a list or its
        JSON), after deleting those of the `replaced` SKUs (rows that were already stored)."""
        for chunk in chunks(list(replaced), 900):
            conn.execute(pt.sku_photos.delete().where(pt.sku_photos.c.sku.in_(list(chunk))))
        refs = []
        for row in rows:
            photos = row.get("photos") or []
            if photos == "[]":  # most SKUs of a catalog without photo columns: nothing to parse
                continue
            if isinstance(photos, str):
                photos = json.loads(photos) if photos else []
            refs += [
                {"sku": row["sku"], "position": int(p.get("position") or i + 1), "ref": p["ref"], "role": p["role"], "label": p.get("label") or ""}
                for i, p in enumerate(photos)
            ]
        upsert(conn, pt.sku_photos, refs)

    def sku_photos(self, sku_list: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """SKU -> its photo references in order (SKUs without photos are absent)."""
        sku_list = list(dict.fromkeys(sku_list))
        out: dict[str, list[dict[str, Any]]] = {}
        p = pt.sku_photos
        with self.engine.connect() as conn:
            for row in rows_in_chunks(conn, sku_list, lambda chunk: sa.select(p).where(p.c.sku.in_(chunk)).order_by(p.c.sku, p.c.position)):
                out.setdefault(row.sku, []).append(dict(row._mapping))
        return out

    # ---- fetch records ----

    def save_source_photos(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, pt.source_photos, [dict(r) for r in rows])

    def source_photo_records(self, sku_list: Iterable[str]) -> list[dict[str, Any]]:
        s = pt.source_photos
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in rows_in_chunks(conn, list(dict.fromkeys(sku_list)), lambda chunk: sa.select(s).where(s.c.sku.in_(chunk)).order_by(s.c.sku, s.c.ref))]

    def latest_good_fetches(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Reference -> its most recent usable fetch record (any SKU), for conditional re-fetching."""
        s = pt.source_photos
        out: dict[str, dict[str, Any]] = {}
        query = lambda chunk: sa.select(s).where(s.c.ref.in_(chunk), s.c.status != "unusable", s.c.sha256 != "").order_by(s.c.fetched_at)  # noqa: E731
        with self.engine.connect() as conn:
            for row in rows_in_chunks(conn, list(dict.fromkeys(refs)), query):
                out[row.ref] = dict(row._mapping)  # ordered by time: the last one wins
        return out

    # ---- cut-outs ----

    def cutouts(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(sha256, method, version) -> its cut-out record, for those that exist."""
        keys = list(dict.fromkeys(keys))
        c = pt.photo_cutouts
        out = {}
        with self.engine.connect() as conn:
            for row in rows_in_chunks(conn, list({k[0] for k in keys}), lambda chunk: sa.select(c).where(c.c.sha256.in_(chunk))):
                record = _load(c, row)
                key = (record["sha256"], record["method"], record["version"])
                if key in keys:
                    out[key] = record
        return out

    def save_cutout(self, row: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, pt.photo_cutouts, [_dump(pt.photo_cutouts, row)])

    # ---- per item and per attempt ----

    def save_item_sources(self, batch_id_: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, pt.item_sources, [{**r, "batch_id": batch_id_} for r in rows])

    def item_sources(self, batch_id_: str) -> dict[tuple[str, str], dict[str, Any]]:
        """(sku, view) -> the item's mode and photo."""
        i = pt.item_sources
        with self.engine.connect() as conn:
            return {(r.sku, r.view): dict(r._mapping) for r in conn.execute(sa.select(i).where(i.c.batch_id == batch_id_))}

    def save_provenance(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, pt.image_provenance, [_dump(pt.image_provenance, r) for r in rows])

    def provenance(self, batch_id_: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        """(sku, view, attempt) -> how that image was made."""
        p = pt.image_provenance
        with self.engine.connect() as conn:
            return {(r.sku, r.view, r.attempt): _load(p, r) for r in conn.execute(sa.select(p).where(p.c.batch_id == batch_id_))}
