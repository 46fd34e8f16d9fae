"""Time new_sku_sensor ticks over a large catalog (default 500,000 SKUs, 2,000 of them new).

    .venv/bin/python benchmarks/bench_sensor_tick.py [--skus N] [--new N] [--views N] [--db-url URL]

Builds a project database in a temporary folder (SQLite unless --db-url names a PostgreSQL
database) holding the state of a catalog that is fully published except for `--new` SKUs: every
other SKU has `--views` current images and batch items in 100-SKU batches. The new SKUs arrive
through `StateDB.record_ingest`, as a catalog ingest writes them. Then, on a real Dagster
instance, it times:

- the SKU-table query the sensor runs (new or changed SKUs not yet minted),
- a tick that mints and launches the new SKUs,
- a quiet tick (no ingest since: the sensor skips the scan),
- a tick after an ingest that changed nothing (full scan, nothing to mint),
- a catalog_drop_sensor tick over a folder of 1,000 catalog files.

It prints figures and asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

CATEGORIES = ["Men/Tops", "Women/Bottoms", "Gear/Bags", "Gear/Watches", "Home/Kitchen"]


def populate(db, skus: int, new: int, views: int, seed: int = 7) -> None:
    """Bulk-write a published catalog of `skus - new` SKUs (images, batches, items)."""
    import sqlalchemy as sa

    from resources.state_db import tables as t
    from resources.state_db import utcnow

    rng = random.Random(seed)
    now = utcnow() - timedelta(days=40)
    view_names = ["front", "back", "detail", "lifestyle", "side"][:views]
    published = skus - new
    chunk = 20_000
    with db.engine.begin() as conn:
        for start in range(0, published, chunk):
            sku_rows, item_rows, image_rows = [], [], []
            for i in range(start, min(start + chunk, published)):
                sku = f"SKU{i:07d}"
                content = hashlib.sha256(sku.encode()).hexdigest()
                batch = f"new-20260101T0000-{i // 100 + 1:04d}"
                sku_rows.append(
                    {
                        "sku": sku, "title": f"Product {i}", "product_name": f"Product {i}", "category": rng.choice(CATEGORIES),
                        "attributes": json.dumps({"color": rng.choice(["Red", "Blue", "Black"])}), "description": "",
                        "parent_sku": "", "kind": "simple", "note": "", "content_hash": content, "row_hash": content,
                        "source": "bench", "first_seen": now, "last_changed": now, "last_ingest_id": "bench",
                    }
                )  # fmt: skip
                for view in view_names:
                    item_rows.append({"batch_id": batch, "sku": sku, "view": view, "content_hash": content})
                    image_rows.append(
                        {
                            "sku": sku, "view": view, "batch_id": batch, "attempt": 0, "storage_key": f"images/{content[:2]}/{content}.png",
                            "public_key": f"public/{sku}/{view}.png", "url": "", "sha256": content, "spec_hash": content,
                            "content_hash": content, "template_version": "test-1", "model_id": "tiny-random-zimage", "revision": "r",
                            "published_at": now,
                        }
                    )  # fmt: skip
            conn.execute(t.skus.insert(), sku_rows)
            conn.execute(t.batch_items.insert(), item_rows)
            conn.execute(t.sku_images.insert(), image_rows)
        batch_count = (published + 99) // 100
        conn.execute(
            t.batches.insert(),
            [
                {
                    "batch_id": f"new-20260101T0000-{b + 1:04d}", "kind": "new", "priority": "high", "status": "published",
                    "created_at": now, "deadline": now + timedelta(hours=2), "selection": "{}", "template_version": "test-1",
                    "sku_count": 100, "item_count": 100 * views, "updated_at": now,
                }
                for b in range(batch_count)
            ],
        )  # fmt: skip
        conn.execute(sa.text("ANALYZE"))


def new_catalog_rows(start: int, count: int) -> list[dict]:
    from zimage_assets.domain.catalog import content_hash

    rows = []
    for i in range(start, start + count):
        attributes = {"color": "Green"}
        rows.append(
            {
                "sku": f"SKU{i:07d}", "title": f"New product {i}", "product_name": f"New product {i}", "category": "Men/Tops",
                "attributes": attributes, "description": "", "parent_sku": "", "kind": "simple", "note": "",
                "content_hash": content_hash(f"New product {i}", "Men/Tops", attributes, ""),
            }
        )  # fmt: skip
    return rows


def timed(label: str, fn):
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    print(f"{label:<58} {seconds:8.3f} s")
    return value, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=500_000)
    ap.add_argument("--new", type=int, default=2_000)
    ap.add_argument("--views", type=int, default=2, help="views per SKU (the templates give Men/Tops 4; the sample fixture 2)")
    ap.add_argument("--db-url", default="", help="SQLAlchemy URL of an empty database (default: SQLite in a temp folder)")
    args = ap.parse_args(argv)


    from dagster import DagsterInstance

    from jobs import ALL_JOBS
    from resources import build_resources
    from sensors import ALL_SCHEDULES, ALL_SENSORS
    from sensors.catalog_drops import catalog_drop_sensor
    from sensors.new_skus import new_sku_sensor
    from zimage_assets.assets import ALL_ASSETS
    from zimage_assets.checks import ALL_CHECKS
    from zimage_assets.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        drops = Path(tmp) / "drops"
        drops.mkdir()
        env = {
            "ZIMAGE_HOME": tmp,
            "ZIMAGE_TEMPLATES": str(REPO / "tests" / "fixtures" / "templates_small.yaml"),
            "ZIMAGE_CATALOG_SOURCE": str(drops),
        }
        if args.db_url:
            env["ZIMAGE_DB_URL"] = args.db_url
        resources = build_resources(Settings.from_env(env))
        db = resources["state_db"]
        defs = dg.Definitions(
            assets=ALL_ASSETS, asset_checks=ALL_CHECKS, jobs=ALL_JOBS, sensors=ALL_SENSORS, schedules=ALL_SCHEDULES, resources=resources
        )
        print(f"{args.skus:,} SKUs ({args.new:,} new), {args.views} views per published SKU, database {db.url.split('@')[-1]}")
        print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
        timed(f"populate {args.skus - args.new:,} published SKUs", lambda: populate(db, args.skus, args.new, args.views))
        rows = new_catalog_rows(args.skus - args.new, args.new)
        timed(f"record_ingest of {args.new:,} new SKUs", lambda: db.record_ingest(
            ingest_id="bench-new", source="bench", fmt="generic", rows_read=len(rows), skus=rows, rejects=[]))  # fmt: skip

        with tempfile.TemporaryDirectory() as dagster_home:
            instance = DagsterInstance.local_temp(dagster_home)

            def tick(sensor, cursor):
                with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs, resources=resources, cursor=cursor) as ctx:
                    return sensor.evaluate_tick(ctx)

            found, _ = timed("query: new or changed SKUs not yet minted", lambda: db.skus_needing_images(5000))
            print(f"{'':<58} -> {len(found):,} SKUs")
            first, _ = timed("tick 1: mint + launch the new SKUs", lambda: tick(new_sku_sensor, None))
            minted = len({r.partition_key for r in first.run_requests})
            print(f"{'':<58} -> {minted} batches minted, {len(first.run_requests)} run requests")
            quiet, _ = timed("tick 2: quiet (no ingest since; re-requests unlaunched)", lambda: tick(new_sku_sensor, first.cursor))
            print(f"{'':<58} -> {len(quiet.run_requests)} run requests (the daemon dedups by run key)")
            timed(f"record_ingest of the same {args.new:,} SKUs (unchanged)", lambda: db.record_ingest(
                ingest_id="bench-again", source="bench", fmt="generic", rows_read=len(rows), skus=rows, rejects=[]))  # fmt: skip
            rescan, _ = timed("tick 3: after an ingest that changed nothing (full scan)", lambda: tick(new_sku_sensor, quiet.cursor))
            print(f"{'':<58} -> {len(db.batches()) - (args.skus - args.new + 99) // 100} new batches in all")

            for i in range(1000):
                (drops / f"catalog_{i:04d}.csv").write_text("sku,title\n")
                settled = time.time() - 60
                os.utime(drops / f"catalog_{i:04d}.csv", (settled, settled))
            listing, _ = timed("catalog_drop_sensor: first tick over 1,000 files", lambda: tick(catalog_drop_sensor, None))
            print(f"{'':<58} -> {len(listing.run_requests)} run requests (20 per tick)")
            timed("catalog_drop_sensor: next tick (cursor of 20 files)", lambda: tick(catalog_drop_sensor, listing.cursor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
